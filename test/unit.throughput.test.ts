import { describe, expect, it } from 'vitest';
import { THROUGHPUT_WINDOW_S, Throughput } from '../src/broker/throughput.js';

describe('throughput ring', () => {
  it('counts per second, oldest first, over the last 15 minutes', () => {
    const t = new Throughput();
    const t0 = 1_700_000_000_000;
    t.record(t0, 3, 0);
    t.record(t0 + 999, 2, 1);
    t.record(t0 + 1000, 0, 4);
    const s = t.series(t0 + 1500);
    expect(s.completed).toHaveLength(THROUGHPUT_WINDOW_S);
    expect(s.startMs).toBe(t0 + 1000 - (THROUGHPUT_WINDOW_S - 1) * 1000);
    expect(s.completed.slice(-2)).toEqual([5, 0]);
    expect(s.failed.slice(-2)).toEqual([1, 4]);
    expect(t.at(t0 + 10)).toEqual({ completed: 5, failed: 1 });
  });

  it('forgets seconds older than the window and zeroes the seconds skipped', () => {
    const t = new Throughput();
    const t0 = 1_700_000_000_000;
    t.record(t0, 7, 7);
    t.record(t0 + 5000, 1, 0);
    expect(t.series(t0 + 5000).completed.slice(-6)).toEqual([7, 0, 0, 0, 0, 1]);
    const later = t0 + THROUGHPUT_WINDOW_S * 1000;
    const s = t.series(later);
    expect(s.completed.reduce((a, n) => a + n, 0)).toBe(1);
    expect(t.at(t0)).toEqual({ completed: 0, failed: 0 });
    expect(t.series(later + THROUGHPUT_WINDOW_S * 1000).completed.every((n) => n === 0)).toBe(true);
  });

  it('a clock that steps back counts into the newest second instead of an old one', () => {
    const t = new Throughput();
    const t0 = 1_700_000_000_000;
    t.record(t0 + 10_000, 1, 0);
    t.record(t0, 1, 0);
    expect(t.series(t0 + 10_000).completed.slice(-1)).toEqual([2]);
  });
});
