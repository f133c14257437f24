/** A job whose lease is renewed by heartbeats: `heartbeatAt` is when its next one is due (epoch ms). */
export interface Heartbeating {
  heartbeatAt: number | undefined;
}

/**
 * The heartbeats of all of a worker's jobs on one timer. A timer per job (set on delivery,
 * cleared on finish) cost about a tenth of a worker's CPU on short jobs; here starting and
 * finishing a job only writes `heartbeatAt`, and the timer wakes at the earliest due time.
 */
export class HeartbeatSchedule<J extends Heartbeating> {
  private timer: NodeJS.Timeout | undefined;
  private timerAt = Infinity;

  constructor(
    /** Every job that may want a heartbeat (running and held). */
    private readonly jobs: () => Iterable<J>,
    /** Sends one job's heartbeat; it schedules the next one through `due`. */
    private readonly beat: (job: J) => void,
  ) {}

  /** The next heartbeat of `job` is due at `at`. */
  due(job: J, at: number): void {
    job.heartbeatAt = at;
    if (at < this.timerAt) this.arm(at);
  }

  /** Stops the timer (the worker is closed). */
  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.timerAt = Infinity;
  }

  private arm(at: number): void {
    if (this.timer) clearTimeout(this.timer);
    this.timerAt = at;
    this.timer = setTimeout(() => this.fire(), Math.max(0, at - Date.now()));
    // Heartbeats matter only while the Consume stream is open, and it keeps the process alive
    // by itself; a timer left armed for a finished job must not.
    this.timer.unref();
  }

  private fire(): void {
    this.timer = undefined;
    this.timerAt = Infinity;
    const now = Date.now();
    const dueNow: J[] = [];
    let next = Infinity;
    for (const job of this.jobs()) {
      const at = job.heartbeatAt;
      if (at === undefined) continue;
      if (at <= now) dueNow.push(job);
      else if (at < next) next = at;
    }
    for (const job of dueNow) {
      job.heartbeatAt = undefined;
      this.beat(job);
    }
    if (next < this.timerAt) this.arm(next);
  }
}
