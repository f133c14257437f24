import type { Clock } from '../../src/domain/clock.js';

/**
 * A clock that stands still until a test moves it, with its own timers, stepped one at a time
 * (`runNext`) so a test can wait for the work each timer starts before time moves on (cron
 * fires must each happen at their own time). The broker's DeadlineTimers use these timers
 * (Clock.setTimer). test/helpers/clock.ts's TestClock fires every due timer at once instead.
 */
export class ManualClock implements Clock {
  private t: number;
  private readonly timers = new Map<number, { at: number; callback: () => void }>();
  private nextId = 1;

  constructor(start: number | Date) {
    this.t = typeof start === 'number' ? start : start.getTime();
  }

  now(): number {
    return this.t;
  }

  setTimer(callback: () => void, delayMs: number): () => void {
    const id = this.nextId++;
    this.timers.set(id, { at: this.t + Math.max(0, delayMs), callback });
    return () => this.timers.delete(id);
  }

  /** The time of the earliest armed timer. */
  nextTimerAt(): number | undefined {
    let min: number | undefined;
    for (const { at } of this.timers.values()) if (min === undefined || at < min) min = at;
    return min;
  }

  /** Runs the earliest timer if it is due by `limit` (time moves to it); false when none is. */
  runNext(limit: number): boolean {
    let id: number | undefined;
    let first: { at: number; callback: () => void } | undefined;
    for (const [k, v] of this.timers) if (!first || v.at < first.at) [id, first] = [k, v];
    if (!first || first.at > limit) return false;
    this.timers.delete(id!);
    if (first.at > this.t) this.t = first.at;
    first.callback();
    return true;
  }

  /** Jumps to `t` without running timers (a wall-clock jump, or time passing while the broker is down). */
  set(t: number | Date): void {
    this.t = typeof t === 'number' ? t : t.getTime();
  }
}
