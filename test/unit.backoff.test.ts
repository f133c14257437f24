import { describe, expect, it } from 'vitest';
import { backoffDelayMs, resolveRetryPolicy, validateRetryPolicy, type RetryPolicy } from '../src/domain/backoff.js';
import { SluiceError } from '../src/domain/errors.js';

const policy: RetryPolicy = { initialMs: 100, multiplier: 2, maxMs: 1000, jitter: 0.2 };
const mid = () => 0.5;
const low = () => 0;
const high = () => 1;

describe('backoffDelayMs', () => {
  it('random = 0.5 gives the un-jittered exponential base, capped at maxMs', () => {
    expect(backoffDelayMs(policy, 1, mid)).toBe(100);
    expect(backoffDelayMs(policy, 2, mid)).toBe(200);
    expect(backoffDelayMs(policy, 3, mid)).toBe(400);
    expect(backoffDelayMs(policy, 4, mid)).toBe(800);
    expect(backoffDelayMs(policy, 5, mid)).toBe(1000);
    expect(backoffDelayMs(policy, 30, mid)).toBe(1000);
  });

  it('random = 0 subtracts the full jitter share', () => {
    expect(backoffDelayMs(policy, 1, low)).toBe(80);
    expect(backoffDelayMs(policy, 2, low)).toBe(160);
    expect(backoffDelayMs(policy, 4, low)).toBe(640);
    // Jitter applies to the capped base too.
    expect(backoffDelayMs(policy, 10, low)).toBe(800);
  });

  it('random = 1 adds the full jitter share but never exceeds maxMs', () => {
    expect(backoffDelayMs(policy, 1, high)).toBe(120);
    expect(backoffDelayMs(policy, 2, high)).toBe(240);
    expect(backoffDelayMs(policy, 3, high)).toBe(480);
    // 800 * 1.2 = 960 stays under the cap; 1000 * 1.2 is cut to 1000.
    expect(backoffDelayMs(policy, 4, high)).toBe(960);
    expect(backoffDelayMs(policy, 5, high)).toBe(1000);
  });

  it('spreads delays uniformly between the two extremes', () => {
    expect(backoffDelayMs(policy, 2, () => 0.25)).toBe(180);
    expect(backoffDelayMs(policy, 2, () => 0.75)).toBe(220);
  });

  it('with jitter 0 the random source does not matter', () => {
    const exact: RetryPolicy = { initialMs: 250, multiplier: 3, maxMs: 10_000, jitter: 0 };
    for (const r of [low, mid, high]) {
      expect(backoffDelayMs(exact, 1, r)).toBe(250);
      expect(backoffDelayMs(exact, 2, r)).toBe(750);
      expect(backoffDelayMs(exact, 3, r)).toBe(2250);
      expect(backoffDelayMs(exact, 5, r)).toBe(10_000);
    }
  });

  it('treats attempt 0 (or less) like the first attempt', () => {
    expect(backoffDelayMs(policy, 0, mid)).toBe(100);
    expect(backoffDelayMs(policy, -3, mid)).toBe(100);
  });

  it('with multiplier 1 the delay is constant', () => {
    const flat: RetryPolicy = { initialMs: 500, multiplier: 1, maxMs: 500, jitter: 0.5 };
    expect(backoffDelayMs(flat, 1, mid)).toBe(500);
    expect(backoffDelayMs(flat, 9, mid)).toBe(500);
    expect(backoffDelayMs(flat, 9, low)).toBe(250);
    expect(backoffDelayMs(flat, 9, high)).toBe(500);
  });

  it('full jitter can reach zero but never goes negative', () => {
    const full: RetryPolicy = { initialMs: 100, multiplier: 2, maxMs: 1000, jitter: 1 };
    expect(backoffDelayMs(full, 1, low)).toBe(0);
    expect(backoffDelayMs(full, 3, low)).toBe(0);
    expect(backoffDelayMs(full, 1, high)).toBe(200);
  });

  it('returns whole milliseconds', () => {
    const odd: RetryPolicy = { initialMs: 333, multiplier: 1.5, maxMs: 100_000, jitter: 0.1 };
    for (let attempt = 1; attempt <= 10; attempt++) {
      for (const r of [0, 0.123, 0.5, 0.987, 1]) {
        expect(Number.isInteger(backoffDelayMs(odd, attempt, () => r))).toBe(true);
      }
    }
  });

  it('uses Math.random by default and stays within the jitter band', () => {
    for (let i = 0; i < 200; i++) {
      const d = backoffDelayMs(policy, 3);
      expect(d).toBeGreaterThanOrEqual(320);
      expect(d).toBeLessThanOrEqual(480);
    }
  });
});

describe('validateRetryPolicy', () => {
  it('accepts a sane policy and returns it', () => {
    expect(validateRetryPolicy(policy)).toEqual(policy);
  });

  it('keeps only the fields that are set, and undefined when none is', () => {
    expect(validateRetryPolicy({ initialMs: 10, jitter: 0 })).toEqual({ initialMs: 10, jitter: 0 });
    expect(validateRetryPolicy({})).toBeUndefined();
  });

  it('layers a job policy over a queue policy over the defaults, field by field', () => {
    const defaults = { initialMs: 1000, multiplier: 2, maxMs: 60_000, jitter: 0.2 };
    expect(resolveRetryPolicy(defaults, { multiplier: 3, jitter: 0.5 }, { jitter: 0 })).toEqual({ initialMs: 1000, multiplier: 3, maxMs: 60_000, jitter: 0 });
    expect(resolveRetryPolicy(defaults, undefined, undefined)).toEqual(defaults);
  });

  it.each<[string, RetryPolicy, RegExp]>([
    ['initial 0', { initialMs: 0, multiplier: 2, maxMs: 10, jitter: 0 }, /initial_ms must be > 0/],
    ['multiplier < 1', { initialMs: 10, multiplier: 0.5, maxMs: 10, jitter: 0 }, /multiplier must be a finite number >= 1/],
    ['multiplier infinite', { initialMs: 10, multiplier: Infinity, maxMs: 10, jitter: 0 }, /multiplier/],
    ['max below initial', { initialMs: 10, multiplier: 2, maxMs: 5, jitter: 0 }, /max_ms \(5\) must be >= retry.initial_ms \(10\)/],
    ['jitter > 1', { initialMs: 10, multiplier: 2, maxMs: 10, jitter: 1.5 }, /jitter must be within 0..1/],
    ['jitter < 0', { initialMs: 10, multiplier: 2, maxMs: 10, jitter: -0.1 }, /jitter/],
  ])('rejects %s', (_name, bad, message) => {
    let thrown: unknown;
    try {
      validateRetryPolicy(bad);
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(SluiceError);
    expect((thrown as SluiceError).code).toBe('INVALID_ARGUMENT');
    expect((thrown as SluiceError).message).toMatch(message);
  });
});
