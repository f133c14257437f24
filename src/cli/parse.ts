/**
 * Flag value parsers. Each throws commander's InvalidArgumentError, so a bad value is a usage
 * error (exit 2) with commander's "option '--x <n>' argument 'y' is invalid" message.
 */
import { InvalidArgumentError } from 'commander';
import { JobState, Priority } from '../../clients/typescript/src/gen/sluice/v1/job.js';

export function positiveInt(raw: string): number {
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('expected a positive whole number.');
  return n;
}

export function nonNegativeInt(raw: string): number {
  const n = Number(raw);
  if (raw.trim() === '' || !Number.isInteger(n) || n < 0 || n > 0xffff_ffff) throw new InvalidArgumentError('expected a whole number >= 0.');
  return n;
}

/** Page sizes the broker accepts (1-1000). */
export function pageSize(raw: string): number {
  const n = positiveInt(raw);
  if (n > 1000) throw new InvalidArgumentError('expected 1 to 1000.');
  return n;
}

export function nonNegativeNumber(raw: string): number {
  const n = Number(raw);
  if (raw.trim() === '' || !Number.isFinite(n) || n < 0) throw new InvalidArgumentError('expected a number >= 0.');
  return n;
}

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** "250ms", "30s", "5m", "2h", "1d", or a bare number of milliseconds. */
export function durationMs(raw: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(raw.trim());
  if (!m) throw new InvalidArgumentError('expected a duration such as 500ms, 30s, 5m, 2h, 1d.');
  const ms = Math.round(Number(m[1]) * UNIT_MS[m[2] ?? 'ms']!);
  if (ms > 0xffff_ffff) throw new InvalidArgumentError('too long.');
  return ms;
}

/** An ISO 8601 time ("2026-12-01T09:00:00Z"), or a duration meaning that long ago ("1h"). */
export function timeOrAgo(raw: string): Date {
  if (/^\d+(?:\.\d+)?(ms|s|m|h|d)$/.test(raw.trim())) return new Date(Date.now() - durationMs(raw));
  return time(raw);
}

export function time(raw: string): Date {
  const t = new Date(raw);
  if (!/^\d{4}-\d\d-\d\d/.test(raw) || Number.isNaN(t.getTime())) throw new InvalidArgumentError('expected an ISO 8601 time such as 2026-12-01T09:00:00Z.');
  return t;
}

/** Repeatable key=value flag collected into a map. */
export function keyValue(raw: string, previous: Record<string, string> = {}): Record<string, string> {
  const eq = raw.indexOf('=');
  if (eq < 1) throw new InvalidArgumentError('expected key=value.');
  return { ...previous, [raw.slice(0, eq)]: raw.slice(eq + 1) };
}

const STATES: Record<string, JobState> = {
  scheduled: JobState.JOB_STATE_SCHEDULED,
  pending: JobState.JOB_STATE_PENDING,
  active: JobState.JOB_STATE_ACTIVE,
  completed: JobState.JOB_STATE_COMPLETED,
  dead: JobState.JOB_STATE_DEAD,
  cancelled: JobState.JOB_STATE_CANCELLED,
};
export const STATE_NAMES = Object.keys(STATES);

export function jobState(raw: string): JobState {
  const state = STATES[raw.toLowerCase()];
  if (state === undefined) throw new InvalidArgumentError(`expected one of ${STATE_NAMES.join(', ')}.`);
  return state;
}

const PRIORITIES: Record<string, Priority> = {
  low: Priority.PRIORITY_LOW,
  normal: Priority.PRIORITY_NORMAL,
  high: Priority.PRIORITY_HIGH,
  critical: Priority.PRIORITY_CRITICAL,
};

export function priority(raw: string): Priority {
  const p = PRIORITIES[raw.toLowerCase()];
  if (p === undefined) throw new InvalidArgumentError(`expected one of ${Object.keys(PRIORITIES).join(', ')}.`);
  return p;
}

/** "100/1s", "5/250ms", "10/m" (count per interval; a bare unit means 1 of it), optional ":burst". */
export function rate(raw: string): { count: number; intervalMs: number; burst: number } {
  const m = /^(\d+)\/(\d*(?:\.\d+)?)(ms|s|m|h|d)(?::(\d+))?$/.exec(raw.trim());
  if (!m || Number(m[1]) < 1) throw new InvalidArgumentError('expected COUNT/INTERVAL[:BURST], e.g. 100/1s, 10/m, 50/1s:100.');
  const intervalMs = durationMs(`${m[2] || '1'}${m[3]}`);
  return { count: Number(m[1]), intervalMs, burst: m[4] ? Number(m[4]) : 0 };
}
