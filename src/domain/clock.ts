/** Time source, injected so lease, delay and backoff logic can be tested without sleeping. */
export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
  /**
   * Calls `fn` once `ms` have passed on this clock; returns a function that cancels it.
   * Optional: without it, timers run on real time (`setTimeout`), which is what a clock that
   * follows real time wants. A test clock implements it so that moving its time fires the
   * broker's delay and lease timers exactly when the test says so.
   */
  setTimer?(fn: () => void, ms: number): () => void;
}

export const systemClock: Clock = { now: () => Date.now() };

/**
 * Calls `fn` once after `ms` on the clock's own timers when it has them (a test clock), on real
 * ones otherwise; returns the function that cancels it. `unref`: a real timer does not keep the
 * process alive (a timer that only matters while something else runs).
 */
export function startTimer(clock: Clock | undefined, fn: () => void, ms: number, options: { unref?: boolean } = {}): () => void {
  if (clock?.setTimer) return clock.setTimer(fn, ms);
  const handle = setTimeout(fn, ms);
  if (options.unref) handle.unref();
  return () => clearTimeout(handle);
}
