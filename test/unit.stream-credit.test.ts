import { describe, expect, it } from 'vitest';
import { StreamCredit } from '../src/broker/stream-credit.js';
import { SluiceError } from '../src/domain/errors.js';

function expectInvalid(fn: () => void, message: RegExp): void {
  let thrown: unknown;
  try {
    fn();
  } catch (error) {
    thrown = error;
  }
  expect(thrown).toBeInstanceOf(SluiceError);
  expect((thrown as SluiceError).code).toBe('INVALID_ARGUMENT');
  expect((thrown as SluiceError).message).toMatch(message);
}

describe('StreamCredit accounting', () => {
  it('starts empty: no credit, nothing outstanding, take() refuses', () => {
    const c = new StreamCredit(10);
    expect(c.max).toBe(10);
    expect(c.available).toBe(0);
    expect(c.outstanding).toBe(0);
    expect(c.take()).toBe(false);
    expect(c.available).toBe(0);
    expect(c.outstanding).toBe(0);
  });

  it('grant adds available credit; each take moves one unit to outstanding', () => {
    const c = new StreamCredit(10);
    c.grant(3);
    expect(c.available).toBe(3);
    expect(c.take()).toBe(true);
    expect(c.take()).toBe(true);
    expect(c.available).toBe(1);
    expect(c.outstanding).toBe(2);
    expect(c.take()).toBe(true);
    expect(c.available).toBe(0);
    expect(c.outstanding).toBe(3);
    // Out of credit: take fails and changes nothing.
    expect(c.take()).toBe(false);
    expect(c.available).toBe(0);
    expect(c.outstanding).toBe(3);
  });

  it('grants accumulate and a grant of 0 is a no-op', () => {
    const c = new StreamCredit(10);
    c.grant(2);
    c.grant(0);
    c.grant(5);
    expect(c.available).toBe(7);
    expect(c.outstanding).toBe(0);
  });

  it('settled removes one outstanding job but does not return its credit', () => {
    const c = new StreamCredit(10);
    c.grant(2);
    c.take();
    c.take();
    c.settled();
    expect(c.outstanding).toBe(1);
    expect(c.available).toBe(0);
    expect(c.take()).toBe(false);
    c.settled();
    expect(c.outstanding).toBe(0);
    expect(c.available).toBe(0);
  });

  it('settled with nothing outstanding never goes negative', () => {
    const c = new StreamCredit(10);
    c.settled();
    expect(c.outstanding).toBe(0);
    c.grant(1);
    c.take();
    c.settled();
    c.settled();
    expect(c.outstanding).toBe(0);
    expect(c.available).toBe(0);
  });

  it('refund gives the credit of a failed delivery back', () => {
    const c = new StreamCredit(10);
    c.grant(2);
    expect(c.take()).toBe(true);
    c.refund();
    expect(c.available).toBe(2);
    expect(c.outstanding).toBe(0);
    expect(c.take()).toBe(true);
    expect(c.take()).toBe(true);
    expect(c.take()).toBe(false);
  });

  it('deliveries never exceed grants and outstanding never exceeds granted minus settled', () => {
    // A deterministic pseudo-random walk over grant/take/settle.
    let seed = 12345;
    const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const c = new StreamCredit(50);
    let granted = 0;
    let delivered = 0;
    let settled = 0;
    for (let i = 0; i < 5000; i++) {
      const r = rand();
      if (r < 0.3) {
        const room = c.max - c.available - c.outstanding;
        const n = Math.floor(rand() * (room + 1));
        c.grant(n);
        granted += n;
      } else if (r < 0.7) {
        if (c.take()) delivered++;
      } else if (c.outstanding > 0) {
        c.settled();
        settled++;
      }
      expect(delivered).toBeLessThanOrEqual(granted);
      expect(c.outstanding).toBe(delivered - settled);
      expect(c.outstanding).toBeLessThanOrEqual(granted - settled);
      expect(c.available).toBe(granted - delivered);
      expect(c.available + c.outstanding).toBeLessThanOrEqual(c.max);
    }
    expect(delivered).toBeGreaterThan(100);
  });
});

describe('StreamCredit rejects bad grants', () => {
  it.each([-1, -100, 1.5, 0.1, Number.NaN, Number.POSITIVE_INFINITY])('rejects a grant of %s', (n) => {
    const c = new StreamCredit(10);
    c.grant(2);
    expectInvalid(() => c.grant(n), /whole number >= 0/);
    // A rejected grant changes nothing.
    expect(c.available).toBe(2);
    expect(c.outstanding).toBe(0);
  });

  it('rejects a grant that would push unused + outstanding past the maximum', () => {
    const c = new StreamCredit(10);
    c.grant(6);
    c.take();
    c.take();
    c.take(); // unused 3, outstanding 3
    expectInvalid(() => c.grant(5), /exceed this stream's maximum of 10/);
    expect(c.available).toBe(3);
    expect(c.outstanding).toBe(3);
    // Exactly up to the maximum is fine.
    c.grant(4);
    expect(c.available + c.outstanding).toBe(10);
    expectInvalid(() => c.grant(1), /maximum of 10/);
  });

  it('counts outstanding jobs against the maximum until they are settled', () => {
    const c = new StreamCredit(3);
    c.grant(3);
    c.take();
    c.take();
    c.take(); // all three outstanding, nothing unused
    expectInvalid(() => c.grant(1), /unsettled 3/);
    c.settled();
    c.grant(1);
    expect(c.available).toBe(1);
    expect(c.outstanding).toBe(2);
  });

  it('rejects a first grant larger than the maximum', () => {
    const c = new StreamCredit(5);
    expectInvalid(() => c.grant(6), /maximum of 5/);
    expect(c.available).toBe(0);
  });
});
