/**
 * How many jobs a worker holds ready beyond `concurrency` when `prefetch` is not set. Pure: no
 * I/O, no clocks (times are passed in).
 *
 * Holding jobs hides the round trip to the broker, which is most of a short job's cost (a
 * drain of no-op jobs ran 1.4x faster with 50 held): the next batch is on the wire while this
 * one runs. But a held job waits for a slot on this worker while another worker might be idle,
 * so the depth follows the handlers: it is as many jobs as the worker's slots finish within
 * HOLD_TARGET_MS, judged by the recent handler run time. Short handlers: up to `concurrency`
 * held; handlers of a second or more: none, as with `prefetch: 0`. Nothing is held before the
 * first handler has finished (the run time is unknown). When a held job still finds no slot
 * after HOLD_LIMIT_MS (the handlers became slow), the worker hands it back and `handedBack`
 * turns holding off until fast handlers bring the average down again.
 */

/** The wait a held job may expect for a free slot. */
export const HOLD_TARGET_MS = 10;
/** A held job that waited this long without a slot goes back to the broker for another worker. */
export const HOLD_LIMIT_MS = 100;
/** Weight of the newest run time in the moving average. */
const WEIGHT = 0.1;

export class AutoPrefetch {
  /** Moving average of handler run times (ms); undefined until the first handler finished. */
  private averageMs: number | undefined;

  constructor(
    private readonly concurrency: number,
    /** Most jobs ever held (credit limits). */
    private readonly max: number,
  ) {}

  /** A handler ran for `ms`. */
  observe(ms: number): void {
    const avg = this.averageMs;
    this.averageMs = avg === undefined ? ms : avg + (ms - avg) * WEIGHT;
  }

  /** A held job waited `ms` for a slot without getting one: the slots are slower than measured. */
  handedBack(ms: number): void {
    // As if each slot took `ms` per job: the depth drops to 0 and comes back only after
    // about two dozen short runs.
    this.averageMs = Math.max(this.averageMs ?? 0, ms * this.concurrency);
  }

  /** Jobs to hold now. */
  get depth(): number {
    const avg = this.averageMs;
    if (avg === undefined) return 0;
    // The k-th held job starts after about ceil(k / concurrency) runs of a slot.
    const fits = Math.floor((this.concurrency * HOLD_TARGET_MS) / Math.max(avg, 0.001));
    return Math.max(0, Math.min(this.concurrency, this.max, fits));
  }
}
