/** Numbers and times for people: 1.2k, 3 min ago, 1.5 s. */
export function compact(n: number): string {
  if (!Number.isFinite(n)) return '–';
  const abs = Math.abs(n);
  if (abs < 1000) return String(Math.round(n * 10) / 10);
  if (abs < 1_000_000) return `${trim(n / 1000)}k`;
  if (abs < 1_000_000_000) return `${trim(n / 1_000_000)}M`;
  return `${trim(n / 1_000_000_000)}B`;
}

function trim(x: number): string {
  const abs = Math.abs(x);
  return abs >= 100 ? String(Math.round(x)) : (Math.round(x * 10) / 10).toString();
}

/** Full number with thousands separators, for titles and confirmations. */
export function exact(n: number): string {
  return n.toLocaleString('en-US');
}

export function duration(ms: number): string {
  const s = Math.abs(ms) / 1000;
  if (s < 1) return `${Math.round(Math.abs(ms))} ms`;
  if (s < 10) return `${Math.round(s * 10) / 10} s`;
  if (s < 60) return `${Math.floor(s)} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min${s % 60 >= 1 && s < 600 ? ` ${Math.floor(s % 60)} s` : ''}`;
  if (s < 86400) return `${Math.floor(s / 3600)} h${Math.floor((s % 3600) / 60) ? ` ${Math.floor((s % 3600) / 60)} min` : ''}`;
  return `${Math.floor(s / 86400)} d${Math.floor((s % 86400) / 3600) ? ` ${Math.floor((s % 86400) / 3600)} h` : ''}`;
}

/** "3 min ago" / "in 20 s"; `now` is passed so a ticking clock re-renders it. */
export function ago(iso: string | null | undefined, now: number): string {
  if (!iso) return '–';
  const diff = now - Date.parse(iso);
  if (Math.abs(diff) < 2000) return 'just now';
  return diff > 0 ? `${duration(diff)} ago` : `in ${duration(-diff)}`;
}

/** Local date and time, for tooltips and detail pages. */
export function when(iso: string | null | undefined): string {
  if (!iso) return '–';
  const d = new Date(iso);
  return `${d.toLocaleDateString('en-CA')} ${d.toLocaleTimeString('en-GB', { hour12: false })}`;
}

export function plural(n: number, word: string): string {
  return `${exact(n)} ${word}${n === 1 ? '' : 's'}`;
}

/** Short form of a job id for tables (the full id is the link's title). */
export function shortId(id: string): string {
  return id.length > 16 ? `${id.slice(0, 8)}…${id.slice(-6)}` : id;
}

/** A time as the clock on the wall of `timezone` shows it: "Tue 02:00 Europe/Berlin". */
export function inZone(iso: string | null | undefined, timezone: string): string {
  if (!iso) return '–';
  try {
    const text = new Date(iso).toLocaleString('en-GB', { timeZone: timezone, weekday: 'short', day: 'numeric', month: 'short', hour: '2-digit', minute: '2-digit', hour12: false });
    return `${text} ${timezone}`;
  } catch {
    return when(iso);
  }
}
