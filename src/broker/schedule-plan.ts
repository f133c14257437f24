import type { CronSpec } from '../domain/cron.js';
import type { CatchUpPolicy } from '../store/schedule-store.js';

/**
 * What a schedule does when the broker reaches it: pure, so catch-up is tested without a
 * broker. Fire times are "on time" while the broker is at most `graceMs` late for them (a
 * busy loop or a restart inside the grace still runs them); older ones were missed (the
 * broker was down, or the clock jumped) and follow the catch-up policy.
 */
export interface FirePlan {
  /** Fire times that get a job (the overlap policy still applies), oldest first. */
  run: number[];
  /** Fire times recorded as skipped, with why. */
  skipped: { time: number; reason: string }[];
  /** The latest fire time handled (run or skipped), for last_fire_at. */
  last: number | undefined;
  /** The next fire time after now; undefined when none is left. */
  next: number | undefined;
}

export interface PlanInput {
  /** The stored next fire time (<= now when the plan is made). */
  nextFireAt: number;
  lastFireAt: number | null;
  catchUp: CatchUpPolicy;
  catchUpLimit: number;
  startAt: number | null;
  endAt: number | null;
}

/** The first fire time after `after` inside [startAt, endAt). */
export function nextFireTime(spec: CronSpec, after: number, startAt: number | null, endAt: number | null): number | undefined {
  const from = startAt !== null && startAt - 1 > after ? startAt - 1 : after;
  const next = spec.nextAfter(from);
  if (next === undefined || (endAt !== null && next >= endAt)) return undefined;
  return next;
}

/** The next `n` fire times after `after` (GetSchedule's preview). */
export function upcomingFireTimes(spec: CronSpec, first: number | undefined, n: number, endAt: number | null): number[] {
  const out: number[] = [];
  for (let t = first; t !== undefined && out.length < n; t = nextFireTime(spec, t, null, endAt)) out.push(t);
  return out;
}

export function planFires(s: PlanInput, spec: CronSpec, now: number, graceMs: number): FirePlan {
  const after = s.lastFireAt ?? -Infinity;
  // The latest catchUpLimit + 1 fire times in [next, now]: one more than the limit tells
  // that older ones were dropped.
  let due = dueTimes(spec, s.nextFireAt, now, s.catchUpLimit + 1)
    .filter((t) => t > after && (s.endAt === null || t < s.endAt) && (s.startAt === null || t >= s.startAt));
  const skipped: FirePlan['skipped'] = [];
  if (due.length > s.catchUpLimit) {
    due = due.slice(due.length - s.catchUpLimit);
    const first = s.nextFireAt > after ? s.nextFireAt : due[0]!;
    if (first < due[0]!) {
      skipped.push({
        time: first,
        reason: `missed: more fire times than catch_up_limit ${s.catchUpLimit} were due; those from ${iso(first)} to before ${iso(due[0]!)} were not run`,
      });
    }
  }
  const onTime = due.filter((t) => now - t <= graceMs);
  const missed = due.filter((t) => now - t > graceMs);
  let run: number[];
  switch (s.catchUp) {
    case 'all':
      run = due;
      break;
    case 'once':
      run = missed.length > 0 ? [missed[missed.length - 1]!, ...onTime] : onTime;
      for (const t of missed.slice(0, -1)) skipped.push({ time: t, reason: 'missed (the broker was not running, or the clock jumped); catch_up=once runs only the latest missed fire' });
      break;
    case 'skip':
      run = onTime;
      for (const t of missed) skipped.push({ time: t, reason: 'missed (the broker was not running, or the clock jumped); catch_up=skip' });
      break;
  }
  const handled = [...run, ...skipped.map((k) => k.time)];
  const last = handled.length > 0 ? Math.max(...handled) : undefined;
  const next = nextFireTime(spec, Math.max(now, last ?? -Infinity, after), s.startAt, s.endAt);
  skipped.sort((a, b) => a.time - b.time);
  return { run, skipped, last, next };
}

/**
 * Up to `max` fire times in [from, now], the latest ones. Usually only `from` is due, so this
 * steps forward (one cron step each); past `max` it enumerates backwards from now instead,
 * which keeps a long outage of an every-second schedule as cheap as a short one.
 */
function dueTimes(spec: CronSpec, from: number, now: number, max: number): number[] {
  const out: number[] = [];
  for (let t: number | undefined = from; t !== undefined && t <= now; t = spec.nextAfter(t)) {
    if (out.length === max) return spec.latestBetween(from, now, max);
    out.push(t);
  }
  return out;
}

function iso(t: number): string {
  return new Date(t).toISOString();
}
