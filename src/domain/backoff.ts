import { invalidArgument } from './errors.js';
import { MAX_DURATION_MS } from './ranges.js';

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

/** A job's or queue's policy: unset fields fall through to the next layer. */
export type PartialRetryPolicy = Partial<RetryPolicy>;

/** The effective policy: the job's fields over the queue's over the broker's defaults. */
export function resolveRetryPolicy(defaults: RetryPolicy, ...layers: (PartialRetryPolicy | undefined)[]): RetryPolicy {
  const policy = { ...defaults };
  for (const layer of layers) {
    if (!layer) continue;
    if (layer.initialMs !== undefined) policy.initialMs = layer.initialMs;
    if (layer.multiplier !== undefined) policy.multiplier = layer.multiplier;
    if (layer.maxMs !== undefined) policy.maxMs = layer.maxMs;
    if (layer.jitter !== undefined) policy.jitter = layer.jitter;
  }
  return policy;
}

/** Checks the fields that are set; returns only those, or undefined when none is. */
export function validateRetryPolicy(policy: PartialRetryPolicy): PartialRetryPolicy | undefined {
  const out: PartialRetryPolicy = {};
  const { initialMs, multiplier, maxMs, jitter } = policy;
  if (initialMs !== undefined) {
    if (!(initialMs > 0 && initialMs <= MAX_DURATION_MS)) throw invalidArgument(`retry.initial_ms must be > 0 and <= ${MAX_DURATION_MS}, got ${initialMs}`);
    out.initialMs = initialMs;
  }
  if (multiplier !== undefined) {
    if (!(multiplier >= 1 && multiplier <= 1000) || !Number.isFinite(multiplier)) throw invalidArgument(`retry.multiplier must be a finite number >= 1 and <= 1000, got ${multiplier}`);
    out.multiplier = multiplier;
  }
  if (maxMs !== undefined) {
    if (!(maxMs > 0 && maxMs <= MAX_DURATION_MS)) throw invalidArgument(`retry.max_ms must be > 0 and <= ${MAX_DURATION_MS}, got ${maxMs}`);
    if (initialMs !== undefined && maxMs < initialMs) throw invalidArgument(`retry.max_ms (${maxMs}) must be >= retry.initial_ms (${initialMs})`);
    out.maxMs = maxMs;
  }
  if (jitter !== undefined) {
    if (!(jitter >= 0 && jitter <= 1)) throw invalidArgument(`retry.jitter must be within 0..1, got ${jitter}`);
    out.jitter = jitter;
  }
  return Object.keys(out).length > 0 ? out : undefined;
}
