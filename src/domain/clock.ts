/** Time source, injected so lease, delay and backoff logic can be tested without sleeping. */
export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
  /**
   * Timers that run on this clock's time. Absent (the system clock): Node's timers. A test
   * clock that fires its own timers as it is advanced lets timer-driven code (cron schedules)
   * run through a simulated day without waiting.
   */
  setTimer?(callback: () => void, delayMs: number): unknown;
  clearTimer?(handle: unknown): void;
}

export const systemClock: Clock = { now: () => Date.now() };
