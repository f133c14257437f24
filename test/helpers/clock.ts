import type { Clock } from '../../src/domain/clock.js';

/** A clock the test moves by hand (the broker's timers still use real delays from its readings). */
export class ManualClock implements Clock {
  constructor(private t = Date.parse('2030-01-01T00:00:00Z')) {}
  now(): number {
    return this.t;
  }
  advance(ms: number): void {
    this.t += ms;
  }
}
