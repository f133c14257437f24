import type { Clock } from '../domain/clock.js';

/** Node timers overflow past 2^31-1 ms; longer waits are re-armed on wake-up. */
const MAX_TIMEOUT_MS = 2_147_483_647;

/**
 * One timer for "the earliest deadline of many". Arming for a later time than the armed one
 * is a no-op; arming earlier replaces it. The callback recomputes and re-arms.
 */
export class DeadlineTimer {
  private handle: unknown;
  private armedAt: number | undefined;
  private stopped = false;

  constructor(
    private readonly clock: Clock,
    private readonly onFire: () => void,
  ) {}

  armAt(at: number | undefined): void {
    if (at === undefined || this.stopped) return;
    if (this.armedAt !== undefined && this.armedAt <= at) return;
    this.clear();
    this.armedAt = at;
    const delay = Math.min(MAX_TIMEOUT_MS, Math.max(0, at - this.clock.now()));
    const fire = () => {
      this.handle = undefined;
      this.armedAt = undefined;
      this.onFire();
    };
    // A clock with its own timers (tests) runs them on its time; otherwise Node's, unref'd.
    if (this.clock.setTimer) this.handle = this.clock.setTimer(fire, delay);
    else this.handle = setTimeout(fire, delay).unref();
  }

  stop(): void {
    this.stopped = true;
    this.clear();
    this.armedAt = undefined;
  }

  private clear(): void {
    if (this.handle === undefined) return;
    if (this.clock.clearTimer) this.clock.clearTimer(this.handle);
    else clearTimeout(this.handle as NodeJS.Timeout);
    this.handle = undefined;
  }
}
