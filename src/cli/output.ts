/**
 * Output helpers shared by every CLI command: aligned tables for people, one JSON document for
 * scripts, and short human forms of numbers, times, durations and sizes. Commands build plain
 * view objects (views.ts) and hand them here; nothing here knows about jobs or queues.
 */

/** One column of a table: a header and how to read a cell from a row. */
export interface Column<T> {
  header: string;
  value: (row: T) => string;
  /** Right-align (numbers). */
  right?: boolean;
}

/** Columns padded to their widest cell, two spaces apart; "-" for empty cells. */
export function table<T>(rows: readonly T[], columns: readonly Column<T>[]): string {
  const cells = rows.map((row) => columns.map((c) => c.value(row) || '-'));
  const widths = columns.map((c, i) => Math.max(c.header.length, ...cells.map((r) => r[i]!.length)));
  const line = (values: string[]) =>
    values
      .map((v, i) => (columns[i]!.right ? v.padStart(widths[i]!) : v.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(columns.map((c) => c.header)), ...cells.map(line)].join('\n') + '\n';
}

/** "key  value" lines with the keys padded to one width (the detail view of one object). */
export function fields(pairs: readonly (readonly [string, string])[]): string {
  const width = Math.max(...pairs.map(([k]) => k.length));
  return pairs.map(([k, v]) => `${k.padEnd(width)}  ${v || '-'}`).join('\n') + '\n';
}

/** The one JSON document a command prints with --json (indented, newline-terminated). */
export function json(document: unknown): string {
  return JSON.stringify(document, null, 2) + '\n';
}

/** 12345 -> "12,345". */
export function count(n: number): string {
  return n.toLocaleString('en-US');
}

/** Milliseconds as "850ms", "1.5s", "2m 5s", "3h 10m", "2d 4h". */
export function duration(ms: number): string {
  const abs = Math.abs(ms);
  if (abs < 1000) return `${Math.round(ms)}ms`;
  if (abs < 60_000) return `${trim(ms / 1000)}s`;
  const s = Math.round(abs / 1000);
  const sign = ms < 0 ? '-' : '';
  if (s < 3600) return `${sign}${Math.floor(s / 60)}m${s % 60 ? ` ${s % 60}s` : ''}`;
  if (s < 86_400) return `${sign}${Math.floor(s / 3600)}h${Math.floor((s % 3600) / 60) ? ` ${Math.floor((s % 3600) / 60)}m` : ''}`;
  return `${sign}${Math.floor(s / 86_400)}d${Math.floor((s % 86_400) / 3600) ? ` ${Math.floor((s % 86_400) / 3600)}h` : ''}`;
}

function trim(n: number): string {
  return n.toFixed(1).replace(/\.0$/, '');
}

/** A time relative to now: "5s ago", "in 2m". */
export function ago(at: Date | undefined, now = Date.now()): string {
  if (!at) return '';
  const delta = now - at.getTime();
  if (Math.abs(delta) < 1000) return 'now';
  return delta > 0 ? `${duration(delta)} ago` : `in ${duration(-delta)}`;
}

/** ISO time with its relative form: "2026-12-01T23:10:05.123Z (5s ago)". */
export function when(at: Date | undefined, now = Date.now()): string {
  return at ? `${at.toISOString()} (${ago(at, now)})` : '';
}

/** 1536 -> "1.5 KiB". */
export function bytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${n} B` : `${trim(v)} ${units[i]}`;
}

/** Cuts a one-line cell to `max` characters (newlines folded), marking the cut with "…". */
export function clip(text: string, max = 60): string {
  const one = text.replace(/\s*\n\s*/g, ' ');
  return one.length <= max ? one : `${one.slice(0, max - 1)}…`;
}

/** A JSON value as compact text for a table cell or detail line; "" for null/undefined. */
export function compactJson(value: unknown): string {
  return value === undefined || value === null ? '' : JSON.stringify(value);
}
