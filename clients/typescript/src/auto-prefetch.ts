/**
 * How many jobs a worker holds ready beyond `concurrency` when `prefetch` is not set. Pure: no
 * I/O, no clocks (times are passed in).
 *
 * Holding jobs hides the round trip to the broker, which is most of a short job's cost (a
 * drain of no-op jobs ran 1.4x faster with 50 held): the next batch is on the wire while this
 * one runs. But a held job waits for a slot on this worker while another worker might be idle,
 * so the depth follows the handlers: it is as many jobs as the worker's slots finish within
 * HOLD_TARGET_MS, judged by the recent handler run time. Short handlers: up to
 * HELD_PER_SLOT jobs per slot, and no more than HOLD_BYTES of payloads; handlers of a second or
 * more: none, as with `prefetch: 0`. Nothing is held before the
 * first handler has finished (the run time is unknown). When a held job still finds no slot
 * after HOLD_LIMIT_MS (the handlers became slow), the worker hands it back and `handedBack`
 * turns holding off until fast handlers bring the average down again.
 */

/** The wait a held job may expect for a free slot. */
export const HOLD_TARGET_MS = 10;
/** A held job that waited this long without a slot goes back to the broker for another worker. */
export const HOLD_LIMIT_MS = 100;
/**
 * Most jobs held per handler slot. Each round trip to the broker costs a fixed ~0.75 ms of its
 * main thread (two messages out, one in, the fsync hand-off) whatever it carries, so the jobs a
 * round trip carries set the broker's CPU per job: a drain of no-op jobs cost it ~30 us/job
 * with 50 held and ~24 with 450. Eight per slot keeps a held job's expected wait within
 * HOLD_TARGET_MS (that is what `fits` checks) while a round trip carries up to 9 x concurrency.
 */
export const HELD_PER_SLOT = 8;
/** Most payload bytes held (by the recent average size), so large payloads are not hoarded in memory. */
export const HOLD_BYTES = 16 * 1024 * 1024;
/** Weight of the newest run time (and payload size) in the moving averages. */
const WEIGHT = 0.1;

export class AutoPrefetch {
  /** Moving average of handler run times (ms); undefined until the first handler finished. */
  private averageMs: number | undefined;
  /** Moving average of payload sizes (bytes); 0 until a job arrived. */
  private averageBytes = 0;

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

  /** A job with a payload of `bytes` arrived. */
  observeSize(bytes: number): void {
    const avg = this.averageBytes;
    this.averageBytes = avg === 0 ? bytes : avg + (bytes - avg) * WEIGHT;
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
    const bytes = Math.floor(HOLD_BYTES / Math.max(this.averageBytes, 1));
    return Math.max(0, Math.min(this.concurrency * HELD_PER_SLOT, this.max, fits, bytes));
  }
}
