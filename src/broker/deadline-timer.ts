import { startTimer, type Clock } from '../domain/clock.js';

/** Node timers overflow past 2^31-1 ms; longer waits are re-armed on wake-up. */
const MAX_TIMEOUT_MS = 2_147_483_647;

/**
 * One timer for "the earliest deadline of many". Arming for a later time than the armed one
 * is a no-op; arming earlier replaces it. The callback recomputes and re-arms.
 */
export class DeadlineTimer {
  private cancel: (() => void) | undefined;
  private armedAt: number | undefined;
  private stopped = false;

  constructor(
    private readonly clock: Clock,
    private readonly onFire: () => void,
  ) {}

  armAt(at: number | undefined): void {
    if (at === undefined || this.stopped) return;
    if (this.armedAt !== undefined && this.armedAt <= at) return;
    this.cancel?.();
    this.armedAt = at;
    const delay = Math.min(MAX_TIMEOUT_MS, Math.max(0, at - this.clock.now()));
    const fire = () => {
      this.cancel = undefined;
      this.armedAt = undefined;
      this.onFire();
    };
    this.cancel = startTimer(this.clock, fire, delay, { unref: true });
  }

  stop(): void {
    this.stopped = true;
    this.cancel?.();
    this.cancel = undefined;
    this.armedAt = undefined;
  }
}
