import { describe, expect, it } from 'vitest';
import { TokenBucket } from '../src/domain/token-bucket.js';
import { ConcurrencyLimiter } from '../src/domain/concurrency-limiter.js';
import { walkRing } from '../src/domain/group-round-robin.js';
import { effectivePriority, orderWithAging } from '../src/domain/aging.js';
import { validateQueueLimits, hasGroupPolicy, limitsFromJson, limitsToJson } from '../src/domain/queue-limits.js';
import { SluiceError } from '../src/domain/errors.js';

describe('TokenBucket', () => {
  it('starts full at burst, refills at count per interval, never above burst', () => {
    const b = new TokenBucket({ count: 50, intervalMs: 1000, burst: 10 }, 0);
    expect(b.take(0, 100)).toBe(10);
    expect(b.available(0)).toBe(0);
    expect(b.nextTokenAt(0)).toBe(20); // 1 token per 20 ms
    expect(b.available(19)).toBe(0);
    expect(b.available(20)).toBe(1);
    expect(b.take(1000, 100)).toBe(10); // capped at burst after a long wait
    // Over 10 s from empty: exactly 500 tokens, in any split of the takes.
    let got = 0;
    for (let t = 1000; t <= 11_000; t += 7) got += b.take(t, 3);
    got += b.take(11_000, 1000);
    expect(got).toBe(500);
  });

  it('keeps fractions: 10 per minute hands out one every 6 s', () => {
    const b = new TokenBucket({ count: 10, intervalMs: 60_000, burst: 1 }, 0);
    expect(b.take(0)).toBe(1);
    expect(b.nextTokenAt(0)).toBe(6000);
    expect(b.take(5999)).toBe(0);
    expect(b.take(6000)).toBe(1);
    expect(b.isFull(6000)).toBe(false);
    expect(b.isFull(12_000)).toBe(true);
  });
});

describe('ConcurrencyLimiter', () => {
  it('counts slots per key by job id, idempotently, and forgets keys with no slot', () => {
    const c = new ConcurrencyLimiter(2);
    c.acquire('j1', 'a');
    c.acquire('j1', 'a');
    c.acquire('j2', 'a');
    c.acquire('j3', 'b');
    expect(c.held('a')).toBe(2);
    expect(c.hasRoom('a')).toBe(false);
    expect(c.room('b')).toBe(1);
    expect(c.release('j1')).toBe('a');
    expect(c.release('j1')).toBeUndefined();
    expect(c.hasRoom('a')).toBe(true);
    c.release('j2');
    c.release('j3');
    expect(c.keys).toBe(0);
    expect(c.size).toBe(0);
  });
});

/** A ring over an in-memory map of group -> remaining jobs (what the index would answer). */
function ring(groups: Record<string, number>) {
  const keys = () => Object.keys(groups).filter((k) => groups[k]! > 0).sort();
  return {
    next: (after: string | undefined) => keys().find((k) => after === undefined || k > after),
    take: (key: string, max: number) => {
      const n = Math.min(max, groups[key]!);
      groups[key]! -= n;
      return n;
    },
  };
}

describe('walkRing (group round-robin)', () => {
  it('takes one job per group per turn, whatever the size of a big group', () => {
    const groups = { big: 20_000, b: 2, c: 2, d: 1 };
    const r = ring(groups);
    const order: string[] = [];
    const res = walkRing({ cursor: undefined, want: 8, maxVisits: 100, next: r.next, weight: () => 1, serve: (k, m) => (order.push(k), r.take(k, m)) });
    expect(order).toEqual(['b', 'big', 'c', 'd', 'b', 'big', 'c', 'big']);
    expect(res).toMatchObject({ taken: 8, stop: 'filled', cursor: 'big' });
  });

  it('resumes after the cursor and honours weights', () => {
    const groups = { a: 10, b: 10, c: 10 };
    const r = ring(groups);
    const order: string[] = [];
    walkRing({ cursor: 'a', want: 7, maxVisits: 100, next: r.next, weight: (k) => (k === 'c' ? 3 : 1), serve: (k, m) => (order.push(`${k}${m}`), r.take(k, m)) });
    expect(order).toEqual(['b1', 'c3', 'a1', 'b1', 'c1']);
  });

  it('skips blocked groups and stops after one lap that starts nothing', () => {
    const groups = { a: 5, b: 5, c: 5 };
    const r = ring(groups);
    let visits = 0;
    const res = walkRing({ cursor: 'b', want: 10, maxVisits: 100, next: r.next, weight: () => 1, serve: (k, m) => (visits++, k === 'a' ? r.take(k, m) : 0) });
    expect(groups.a).toBe(0);
    expect(res.stop).toBe('idle');
    expect(res.taken).toBe(5);
    expect(visits).toBeLessThan(20);
  });

  it('stops at the visit budget so one walk stays short, and reports it', () => {
    const groups = Object.fromEntries(Array.from({ length: 1000 }, (_, i) => [`g${String(i).padStart(4, '0')}`, 1]));
    const r = ring(groups);
    const res = walkRing({ cursor: undefined, want: 1000, maxVisits: 64, next: r.next, weight: () => 1, serve: () => 0 });
    expect(res).toMatchObject({ stop: 'budget', visits: 64, taken: 0 });
    const empty = walkRing({ cursor: 'x', want: 1, maxVisits: 64, next: () => undefined, weight: () => 1, serve: () => 1 });
    expect(empty.stop).toBe('idle');
  });
});

describe('aging', () => {
  it('raises a level per aging period, capped at critical', () => {
    expect(effectivePriority(1, 0, 999, 1000)).toBe(1);
    expect(effectivePriority(1, 0, 1000, 1000)).toBe(2);
    expect(effectivePriority(1, 0, 10_000, 1000)).toBe(4);
    expect(effectivePriority(1, 0, 10_000, undefined)).toBe(1);
  });

  it('orders by effective level, then FIFO: an aged low job goes before newer high jobs', () => {
    const jobs = [
      { seq: 1, priority: 1, readyAt: 0 },
      { seq: 5, priority: 3, readyAt: 2500 },
      { seq: 6, priority: 3, readyAt: 2600 },
      { seq: 2, priority: 2, readyAt: 0 },
    ];
    // seq 2 (normal, 2 periods) is critical now; seq 1 (low, 2 periods) is high and older than 5 and 6.
    expect(orderWithAging(jobs, 2700, 1000, 4).map((j) => j.seq)).toEqual([2, 1, 5, 6]);
    expect(orderWithAging(jobs, 2700, undefined, 2).map((j) => j.seq)).toEqual([5, 6]);
  });
});

describe('queue limits validation', () => {
  const bad = (input: Parameters<typeof validateQueueLimits>[0], field: RegExp) => {
    try {
      validateQueueLimits(input);
    } catch (e) {
      expect(e).toBeInstanceOf(SluiceError);
      expect((e as SluiceError).code).toBe('INVALID_ARGUMENT');
      expect((e as SluiceError).message).toMatch(field);
      return;
    }
    throw new Error('expected INVALID_ARGUMENT');
  };

  it('rejects zero or negative rates, absurd intervals and caps', () => {
    bad({ rate: { count: 0, intervalMs: 1000, burst: 0 } }, /limits\.rate\.count/);
    bad({ rate: { count: -5, intervalMs: 1000, burst: 0 } }, /limits\.rate\.count/);
    bad({ groupRate: { count: 5, intervalMs: 0, burst: 0 } }, /limits\.group_rate\.interval_ms/);
    bad({ groupRate: { count: 5, intervalMs: 1e9, burst: 0 } }, /interval_ms/);
    bad({ rate: { count: 5, intervalMs: 1000, burst: -1 } }, /burst/);
    bad({ concurrency: -1 }, /limits\.concurrency/);
    bad({ groupConcurrency: 2e6 }, /group_concurrency/);
    bad({ agingMs: 1 }, /aging_ms/);
    bad({ groupWeights: { a: 0 } }, /group_weights/);
  });

  it('fills defaults, round-trips through JSON, and tells group policies apart', () => {
    const l = validateQueueLimits({ rate: { count: 50, intervalMs: 1000, burst: 0 }, concurrency: 0, groupConcurrency: 1 });
    expect(l).toEqual({ rate: { count: 50, intervalMs: 1000, burst: 50 }, groupConcurrency: 1 });
    expect(limitsFromJson(limitsToJson(l))).toEqual(l);
    expect(limitsToJson({})).toBeNull();
    expect(hasGroupPolicy(l)).toBe(true);
    expect(hasGroupPolicy({ rate: l.rate })).toBe(false);
    expect(hasGroupPolicy({ fairGroups: true })).toBe(true);
  });
});
