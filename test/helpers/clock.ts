import type { Clock } from '../../src/domain/clock.js';

interface Timer {
  at: number;
  seq: number;
  fn: () => void;
}

/**
 * A clock that moves only when the test says so, for the broker's delay, retry and lease
 * timers: a job scheduled 150 ms ahead stays scheduled however slow the machine is, until
 * `advance(150)`. Starts at the real time, so stored timestamps look ordinary. Timers due
 * at or before the current time (a run_at in the past) fire on the next turn of the event
 * loop without an advance, as real timers would.
 */
export class TestClock implements Clock {
  private current: number;
  private timers: Timer[] = [];
  private seq = 0;
  private immediate: NodeJS.Immediate | undefined;

  constructor(start = Date.now()) {
    this.current = start;
  }

  now(): number {
    return this.current;
  }

  setTimer(fn: () => void, ms: number): () => void {
    const timer: Timer = { at: this.current + Math.max(0, ms), seq: this.seq++, fn };
    this.timers.push(timer);
    if (timer.at <= this.current) this.fireDueSoon();
    return () => {
      this.timers = this.timers.filter((t) => t !== timer);
    };
  }

  /** Moves time forward by `ms` and fires, in order, every timer that came due. */
  advance(ms: number): void {
    if (ms < 0) throw new Error('a TestClock only moves forward');
    this.current += ms;
    this.fireDue();
  }

  /** Moves time forward to `at` (no-op if it is already past). */
  advanceTo(at: number): void {
    if (at > this.current) this.advance(at - this.current);
  }

  /** Timers still waiting (for assertions that something is armed). */
  get pendingTimers(): number {
    return this.timers.length;
  }

  private fireDueSoon(): void {
    this.immediate ??= setImmediate(() => {
      this.immediate = undefined;
      this.fireDue();
    });
  }

  private fireDue(): void {
    for (;;) {
      let next: Timer | undefined;
      for (const t of this.timers) if (t.at <= this.current && (!next || t.at < next.at || (t.at === next.at && t.seq < next.seq))) next = t;
      if (!next) return;
      this.timers = this.timers.filter((t) => t !== next);
      next.fn();
    }
  }
}
