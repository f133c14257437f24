import { describe, expect, it } from 'vitest';
import { AutoPrefetch, HELD_PER_SLOT, HOLD_BYTES, HOLD_TARGET_MS } from '../clients/typescript/src/auto-prefetch.js';

describe('AutoPrefetch', () => {
  it('holds nothing until a handler has finished, then as many jobs as the slots finish within the hold target', () => {
    const p = new AutoPrefetch(50, 10_000);
    expect(p.depth).toBe(0);
    p.observe(0.05);
    expect(p.depth).toBe(50 * HELD_PER_SLOT); // short jobs: HELD_PER_SLOT per slot, never more
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

  it('holds no more than HOLD_BYTES of payloads, by the recent average size', () => {
    const p = new AutoPrefetch(50, 10_000);
    p.observe(0.01);
    p.observeSize(100);
    expect(p.depth).toBe(50 * HELD_PER_SLOT); // small payloads: the per-slot bound applies
    const big = new AutoPrefetch(50, 10_000);
    big.observe(0.01);
    big.observeSize(1024 * 1024);
    expect(big.depth).toBe(HOLD_BYTES / (1024 * 1024)); // 1 MiB payloads: 16 held, not 400
    big.observeSize(0);
    expect(big.depth).toBeGreaterThan(HOLD_BYTES / (1024 * 1024)); // the average follows smaller payloads
  });

  it('stops holding once a held job was handed back, and resumes after a run of short handlers', () => {
    const p = new AutoPrefetch(4, 10_000);
    p.observe(0.1);
    expect(p.depth).toBe(4 * HELD_PER_SLOT);
    p.handedBack(100);
    expect(p.depth).toBe(0);
    let runs = 0;
    while (p.depth === 0 && runs < 1000) p.observe(0.1), runs++;
    expect(runs).toBeGreaterThan(10);
    expect(runs).toBeLessThan(100);
    expect(p.depth).toBeGreaterThan(0);
  });
});
