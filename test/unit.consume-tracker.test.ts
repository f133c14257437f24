import { describe, expect, it } from 'vitest';
import { ConsumeTracker } from '../src/bench/consume-tracker.js';
import type { ConsumeTask } from '../src/bench/protocol.js';

const task = (uniquePayloadIndex: boolean): ConsumeTask => ({
  role: 'consume',
  address: '127.0.0.1:0',
  queue: 'q',
  expect: 3,
  concurrency: 1,
  recordLatency: false,
  stallTimeoutMs: 60_000,
  uniquePayloadIndex,
});

describe('bench ConsumeTracker', () => {
  for (const byIndex of [false, true]) {
    it(`counts a job completed twice as a duplicate, and finishes at the expected count (${byIndex ? 'by payload index' : 'by id'})`, async () => {
      const t = new ConsumeTracker(task(byIndex), () => {});
      t.completed('a', { n: 0, t: 0 });
      t.completed('b', { n: 5000, t: 0 }); // past the bitset's first size: it grows
      t.completed('a', { n: 0, t: 0 });
      t.completed('w', { n: -1, t: 0, warm: true }); // warm-up jobs are not counted
      t.completed('c', { n: 7, t: 0 });
      await t.done;
      const r = t.result();
      expect(r.completed).toBe(3);
      expect(r.duplicates).toBe(1);
    });
  }
});
