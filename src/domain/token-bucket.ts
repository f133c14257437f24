import type { RateLimit } from './queue-limits.js';

/**
 * A token bucket (pure: time is passed in). It refills continuously at count/intervalMs and
 * holds at most `burst` tokens; a new bucket starts full. Fractions are kept, so a rate of
 * 50 per second with burst 10 hands out exactly 50 per second after the first burst.
 */
export class TokenBucket {
  private tokens: number;
  private updatedAt: number;
  private readonly perMs: number;

  constructor(
    readonly limit: RateLimit,
    now: number,
  ) {
    this.tokens = limit.burst;
    this.updatedAt = now;
    this.perMs = limit.count / limit.intervalMs;
  }

  private refill(now: number): void {
    if (now > this.updatedAt) {
      this.tokens = Math.min(this.limit.burst, this.tokens + (now - this.updatedAt) * this.perMs);
      this.updatedAt = now;
    }
  }

  /** Whole tokens available now. */
  available(now: number): number {
    this.refill(now);
    // A tiny epsilon: 0.1 + 0.2 style float error must not cost a token.
    return Math.floor(this.tokens + 1e-9);
  }

  /** Takes up to n tokens; returns how many were taken. */
  take(now: number, n = 1): number {
    const taken = Math.min(n, this.available(now));
    this.tokens -= taken;
    return taken;
  }

  /** When the next whole token is there (now if one is there already). */
  nextTokenAt(now: number): number {
    this.refill(now);
    if (this.tokens + 1e-9 >= 1) return now;
    return now + Math.ceil((1 - this.tokens) / this.perMs);
  }

  /** True when the bucket is full: it then carries no state worth keeping. */
  isFull(now: number): boolean {
    this.refill(now);
    return this.tokens >= this.limit.burst;
  }
}
