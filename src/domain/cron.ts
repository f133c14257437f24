import { Cron } from 'croner';
import { invalidArgument } from './errors.js';

/**
 * Cron expressions and time zones, by croner (a maintained library with IANA zones, DST
 * rules, an optional seconds field and the @hourly/@daily macros) rather than a parser of
 * our own. DST, as croner implements it: a fixed-time expression (`30 2 * * *`) fires once on
 * the spring-forward day (at the first valid time after the gap) and once, not twice, on the
 * fall-back day; an interval expression (`*\/15 * * * *`) skips the missing times and fires at
 * both occurrences of a repeated local time.
 */
export interface CronSpec {
  readonly expression: string;
  readonly timezone: string;
  /** First fire time strictly after `after` (epoch ms), or undefined when there is none. */
  nextAfter(after: number): number | undefined;
  /** Up to `n` fire times in [from, to], oldest first: the latest ones when there are more. */
  latestBetween(from: number, to: number, n: number): number[];
}

/** Parsed expressions are kept: firing reuses them instead of parsing again (~0.1 ms each). */
const cache = new Map<string, CronSpec>();
const CACHE_LIMIT = 2000;

/** Only 5 fields, or 6 with seconds first; croner's 7th (year) field is not accepted. */
const MODE = '5-or-6-parts' as const;

/** Zones already checked (building an Intl.DateTimeFormat costs ~0.1 ms). */
const knownZones = new Set<string>(['UTC']);

export function validateTimezone(timezone: string, field = 'timezone'): string {
  if (timezone === '') return 'UTC';
  if (knownZones.has(timezone)) return timezone;
  if (timezone.length > 64) throw invalidArgument(`${field} is longer than 64 characters`);
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: timezone });
  } catch {
    throw invalidArgument(`${field} ${JSON.stringify(timezone)} is not an IANA time zone (e.g. "Europe/Berlin", "UTC")`);
  }
  if (knownZones.size < 1000) knownZones.add(timezone);
  return timezone;
}

/** Parses and checks an expression in a zone; errors name the field and the problem. */
export function compileCron(expression: string, timezone: string, field = 'cron'): CronSpec {
  const key = `${timezone}\u0000${expression}`;
  const hit = cache.get(key);
  if (hit) return hit;
  const expr = expression.trim();
  if (expr === '') throw invalidArgument(`${field} is required (e.g. "0 2 * * *" or "@daily")`);
  if (expr.length > 256) throw invalidArgument(`${field} is longer than 256 characters`);
  validateTimezone(timezone);
  let cron: Cron;
  try {
    cron = new Cron(expr, { timezone, mode: MODE, paused: true });
  } catch (error) {
    const detail = (error as Error).message.replace(/^CronPattern: /, '');
    throw invalidArgument(`${field} ${JSON.stringify(expr.slice(0, 100))} is not a valid cron expression: ${detail}`);
  }
  const spec: CronSpec = {
    expression: expr,
    timezone,
    nextAfter(after) {
      // croner works in whole seconds: the next run after `after` is after its second.
      const next = cron.nextRun(new Date(after));
      return next ? next.getTime() : undefined;
    },
    latestBetween(from, to, n) {
      // previousRuns(n, ref) answers runs strictly before ref, newest first.
      const runs = cron.previousRuns(n, new Date(to + 1)).map((d) => d.getTime());
      return runs.filter((t) => t >= from && t <= to).reverse();
    },
  };
  if (spec.nextAfter(Date.now()) === undefined) {
    throw invalidArgument(`${field} ${JSON.stringify(expr.slice(0, 100))} never fires (no matching date)`);
  }
  if (cache.size >= CACHE_LIMIT) cache.delete(cache.keys().next().value!);
  cache.set(key, spec);
  return spec;
}
