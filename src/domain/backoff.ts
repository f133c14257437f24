import { invalidArgument } from './errors.js';

/** Exponential backoff between attempts. All durations in milliseconds. */
export interface RetryPolicy {
  initialMs: number;
  multiplier: number;
  maxMs: number;
  /** Fraction 0..1: each delay is spread uniformly over +/- this share of itself. */
  jitter: number;
}

/**
 * Delay before the retry that follows failed attempt `attempt` (1-based): initial *
 * multiplier^(attempt-1), capped at max, then jittered. Jitter keeps jobs that failed
 * together (an outage) from retrying together.
 */
export function backoffDelayMs(policy: RetryPolicy, attempt: number, random: () => number = Math.random): number {
  const exponent = Math.max(0, attempt - 1);
  const base = Math.min(policy.maxMs, policy.initialMs * Math.pow(policy.multiplier, exponent));
  const spread = base * policy.jitter * (2 * random() - 1);
  return Math.max(0, Math.round(Math.min(policy.maxMs, base + spread)));
}

export function validateRetryPolicy(policy: RetryPolicy): RetryPolicy {
  if (!(policy.initialMs > 0)) throw invalidArgument(`retry.initial_ms must be > 0, got ${policy.initialMs}`);
  if (!(policy.multiplier >= 1) || !Number.isFinite(policy.multiplier)) {
    throw invalidArgument(`retry.multiplier must be a finite number >= 1, got ${policy.multiplier}`);
  }
  if (!(policy.maxMs >= policy.initialMs)) {
    throw invalidArgument(`retry.max_ms (${policy.maxMs}) must be >= retry.initial_ms (${policy.initialMs})`);
  }
  if (!(policy.jitter >= 0 && policy.jitter <= 1)) throw invalidArgument(`retry.jitter must be within 0..1, got ${policy.jitter}`);
  return policy;
}
