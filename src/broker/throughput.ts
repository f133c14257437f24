/** Seconds of history kept: the dashboard's 15-minute chart. */
export const THROUGHPUT_WINDOW_S = 900;

export interface ThroughputSeries {
  /** Start of the first second in the series (epoch ms, a whole second). */
  startMs: number;
  intervalMs: 1000;
  /** Jobs completed in each second, oldest first. */
  completed: number[];
  /** Failed attempts (nacks and expired leases) in each second, oldest first. */
  failed: number[];
}

/**
 * Completed and failed attempts per second over the last 15 minutes, in two fixed rings of
 * counters. Recording is one division and two array writes per settle batch, so it is fed
 * always (the chart has history the moment a page opens) without a measurable cost; reading
 * copies 2 x 900 numbers and only happens when someone asks.
 */
export class Throughput {
  private readonly completed = new Float64Array(THROUGHPUT_WINDOW_S);
  private readonly failed = new Float64Array(THROUGHPUT_WINDOW_S);
  /** The second (epoch s) the newest slot holds; slots of seconds skipped are zeroed on advance. */
  private second = 0;

  record(nowMs: number, completed: number, failed: number): void {
    // A clock that steps back keeps counting into the newest slot rather than an old one.
    const s = Math.max(Math.floor(nowMs / 1000), this.second);
    if (s !== this.second) this.advance(s);
    const i = s % THROUGHPUT_WINDOW_S;
    this.completed[i]! += completed;
    this.failed[i]! += failed;
  }

  /** The last 15 minutes up to and including the current second. */
  series(nowMs: number): ThroughputSeries {
    const s = Math.max(Math.floor(nowMs / 1000), this.second);
    if (s > this.second) this.advance(s);
    const completed: number[] = new Array(THROUGHPUT_WINDOW_S);
    const failed: number[] = new Array(THROUGHPUT_WINDOW_S);
    const first = s - THROUGHPUT_WINDOW_S + 1;
    for (let k = 0; k < THROUGHPUT_WINDOW_S; k++) {
      const i = (first + k) % THROUGHPUT_WINDOW_S;
      completed[k] = this.completed[i]!;
      failed[k] = this.failed[i]!;
    }
    return { startMs: first * 1000, intervalMs: 1000, completed, failed };
  }

  /** The counts of the second holding `ms`, if it is still in the window. */
  at(ms: number): { completed: number; failed: number } {
    const s = Math.floor(ms / 1000);
    if (s > this.second || s <= this.second - THROUGHPUT_WINDOW_S) return { completed: 0, failed: 0 };
    const i = s % THROUGHPUT_WINDOW_S;
    return { completed: this.completed[i]!, failed: this.failed[i]! };
  }

  private advance(s: number): void {
    const gap = Math.min(s - this.second, THROUGHPUT_WINDOW_S);
    for (let k = 1; k <= gap; k++) {
      const i = (s - gap + k) % THROUGHPUT_WINDOW_S;
      this.completed[i] = 0;
      this.failed[i] = 0;
    }
    this.second = s;
  }
}
