import { queryRows, type PgQueryable } from './sql.js';

/**
 * The broker's estimate of the database's clock (docs/design/postgres-store.md, 3.7). Lease times
 * are the database's own `now()` inside the flush; everything else the broker computes (run_at of
 * delays and backoffs, cron plans, timer deadlines) uses this offset-corrected local clock, so
 * brokers with skewed clocks still agree on when a delayed job is due.
 *
 * A sample reads `clock_timestamp()` (the server's time when the statement evaluates it, not the
 * transaction start that `now()` would give) and assumes it was read at the local midpoint of the
 * round trip. The read happened somewhere inside the round trip, so the estimate is off by at most
 * half of it, plus the local clock's resolution: Date.now() counts whole milliseconds, so each
 * local reading t stands for [t, t+1).
 */
export interface ClockSample {
  /** DB time - local time, ms: add it to a local reading to get the database's time. */
  offsetMs: number;
  /** |true offset - offsetMs| <= errorBoundMs (half the round trip plus half the local resolution). */
  errorBoundMs: number;
  /** The measured round trip, ms (local clock). */
  roundTripMs: number;
  /** The database's time at the sample, epoch ms (fractional: microsecond precision). */
  dbTimeMs: number;
}

/** now() was asked before the first sample: the caller must sample at connect (3.7). */
export class ClockNotSampledError extends Error {
  override readonly name = 'ClockNotSampledError';
  constructor() {
    super('the database clock has not been sampled yet: call sampleClock() after connecting');
  }
}

/**
 * One per broker; sampled at connect and every heartbeat by the caller (it owns no timer). Each
 * sample replaces the last: a later sample also tracks drift and local clock steps, which an older
 * but tighter one would not. Deciding what error is worth logging (3.7: over 100 ms) is the caller's.
 */
export class DbClock {
  private sample: ClockSample | undefined;

  /** localClock: epoch ms, whole or fractional; Date.now by default (the broker's own clock). */
  constructor(
    private readonly db: PgQueryable,
    private readonly localClock: () => number = Date.now,
    /** The local clock's resolution, ms: 1 for Date.now (whole milliseconds, truncated). */
    private readonly resolutionMs = 1,
  ) {}

  async sampleClock(): Promise<ClockSample> {
    const before = this.localClock();
    // float8, not numeric (which node-postgres hands back as a string) nor bigint (whole ms).
    const [row] = await queryRows<{ t: number }>(this.db, `SELECT extract(epoch FROM clock_timestamp())::float8 * 1000 AS t`);
    const after = this.localClock();
    const dbTimeMs = row!.t;
    // Local readings cover [before, after + resolution): the server read lies inside.
    const roundTripMs = after - before;
    const midpoint = (before + after + this.resolutionMs) / 2;
    this.sample = { offsetMs: dbTimeMs - midpoint, errorBoundMs: (roundTripMs + this.resolutionMs) / 2, roundTripMs, dbTimeMs };
    return this.sample;
  }

  /** The last sample, if any. */
  get lastSample(): ClockSample | undefined {
    return this.sample;
  }

  /**
   * The database's time estimated from the local clock, whole epoch ms (floored: the store's times
   * are bigint, and a fractional value is not a valid bigint parameter). It moves with the local
   * clock between samples; a new sample may move it back by up to the two samples' error bounds,
   * so callers that need order compare database-stamped values, not these.
   */
  now(): number {
    if (!this.sample) throw new ClockNotSampledError();
    return Math.floor(this.localClock() + this.sample.offsetMs);
  }
}
