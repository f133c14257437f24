import { describe, expect, it } from 'vitest';
import { AutoPrefetch, HOLD_TARGET_MS } from '../clients/typescript/src/auto-prefetch.js';

describe('AutoPrefetch', () => {
  it('holds nothing until a handler has finished, then as many jobs as the slots finish within the hold target', () => {
    const p = new AutoPrefetch(50, 10_000);
    expect(p.depth).toBe(0);
    p.observe(0.05);
    expect(p.depth).toBe(50); // short jobs: one more per slot, never more
    const slow = new AutoPrefetch(50, 10_000);
    slow.observe(50);
    expect(slow.depth).toBe(Math.floor((50 * HOLD_TARGET_MS) / 50));
    const long = new AutoPrefetch(50, 10_000);
    long.observe(1000);
    expect(long.depth).toBe(0);
    expect(new AutoPrefetch(50, 3).depth).toBe(0);
    const capped = new AutoPrefetch(50, 3);
    capped.observe(0);
    expect(capped.depth).toBe(3);
  });

  it('stops holding once a held job was handed back, and resumes after a run of short handlers', () => {
    const p = new AutoPrefetch(4, 10_000);
    p.observe(0.1);
    expect(p.depth).toBe(4);
    p.handedBack(100);
    expect(p.depth).toBe(0);
    let runs = 0;
    while (p.depth === 0 && runs < 1000) p.observe(0.1), runs++;
    expect(runs).toBeGreaterThan(10);
    expect(runs).toBeLessThan(100);
    expect(p.depth).toBeGreaterThan(0);
  });
});
