import { invalidArgument } from './errors.js';

/** A token bucket: `count` tokens per `intervalMs`, holding at most `burst`. */
export interface RateLimit {
  count: number;
  intervalMs: number;
  /** Bucket size: how many may start at once after an idle period. */
  burst: number;
}

/**
 * A queue's dispatch limits (stored as JSON with the queue, mirrored in the QueueRegistry).
 * Every field is optional; an empty object is "no limits".
 */
export interface QueueLimits {
  /** For the whole queue. */
  rate?: RateLimit;
  /** For each group_key separately (jobs without a key are one group). */
  groupRate?: RateLimit;
  /** Per-key rate limits that replace groupRate for those keys (e.g. a partner's own quota). */
  groupRates?: Record<string, RateLimit>;
  /** Most active (leased) jobs of the whole queue. */
  concurrency?: number;
  /** Most active jobs per group_key; 1 = strict per-key serial execution. */
  groupConcurrency?: number;
  /** Hand out ready jobs round-robin across group keys (implied by any group limit). */
  fairGroups?: boolean;
  /** Jobs handed to a group per round-robin turn (default 1). */
  groupWeights?: Record<string, number>;
  /** Starvation guard: a job ready for longer than this is served one priority level higher per period. */
  agingMs?: number;
  /**
   * With a group concurrency limit, a job waiting for its retry backoff keeps its group slot,
   * so later jobs of its key cannot overtake it (default). True lets them run meanwhile.
   */
  retryOvertake?: boolean;
}

const MAX_COUNT = 1_000_000;
const MIN_INTERVAL_MS = 10;
const MAX_INTERVAL_MS = 7 * 24 * 3600_000;
const MAX_CONCURRENCY = 1_000_000;
const MAX_WEIGHT = 1000;
const MAX_WEIGHTS = 10_000;
const MIN_AGING_MS = 10;
const MAX_AGING_MS = 30 * 24 * 3600_000;
const MAX_GROUP_KEY_BYTES = 256;

/** The input shape (wire fields as numbers; 0 or undefined = not set). */
export interface RateLimitInput {
  count: number;
  intervalMs: number;
  burst: number;
}

export interface QueueLimitsInput {
  rate?: RateLimitInput | undefined;
  groupRate?: RateLimitInput | undefined;
  groupRates?: Record<string, RateLimitInput>;
  concurrency?: number;
  groupConcurrency?: number;
  fairGroups?: boolean;
  groupWeights?: Record<string, number>;
  agingMs?: number;
  retryOvertake?: boolean;
}

function rateLimit(input: RateLimitInput | undefined, field: string): RateLimit | undefined {
  if (!input) return undefined;
  if (input.count === 0 && input.intervalMs === 0 && input.burst === 0) {
    throw invalidArgument(`${field} is set but empty: give count and interval_ms (leave it unset for no limit)`);
  }
  const { count, intervalMs, burst } = input;
  if (!Number.isInteger(count) || count < 1 || count > MAX_COUNT) {
    throw invalidArgument(`${field}.count must be 1..${MAX_COUNT} jobs per interval, got ${count} (to stop a queue, pause it)`);
  }
  if (!Number.isInteger(intervalMs) || intervalMs < MIN_INTERVAL_MS || intervalMs > MAX_INTERVAL_MS) {
    throw invalidArgument(`${field}.interval_ms must be ${MIN_INTERVAL_MS}..${MAX_INTERVAL_MS} (7 days), got ${intervalMs}`);
  }
  if (!Number.isInteger(burst) || burst < 0 || burst > MAX_COUNT) {
    throw invalidArgument(`${field}.burst must be 0 (= count) or 1..${MAX_COUNT}, got ${burst}`);
  }
  return { count, intervalMs, burst: burst || count };
}

function cap(value: number | undefined, field: string, max: number): number | undefined {
  if (value === undefined || value === 0) return undefined;
  if (!Number.isInteger(value) || value < 0 || value > max) throw invalidArgument(`${field} must be 0 (no limit) or 1..${max}, got ${value}`);
  return value;
}

/** Validates limits from an UpdateQueue request; throws INVALID_ARGUMENT with the field named. */
export function validateQueueLimits(input: QueueLimitsInput): QueueLimits {
  const limits: QueueLimits = {};
  const rate = rateLimit(input.rate, 'limits.rate');
  if (rate) limits.rate = rate;
  const groupRate = rateLimit(input.groupRate, 'limits.group_rate');
  if (groupRate) limits.groupRate = groupRate;
  const overrides = Object.entries(input.groupRates ?? {});
  if (overrides.length > MAX_WEIGHTS) throw invalidArgument(`limits.group_rates has ${overrides.length} keys, over the limit of ${MAX_WEIGHTS}`);
  if (overrides.length > 0) {
    limits.groupRates = {};
    for (const [key, r] of overrides) {
      if (Buffer.byteLength(key) > MAX_GROUP_KEY_BYTES) throw invalidArgument(`limits.group_rates: key "${key.slice(0, 40)}…" is longer than ${MAX_GROUP_KEY_BYTES} bytes`);
      limits.groupRates[key] = rateLimit(r, `limits.group_rates["${key.slice(0, 40)}"]`)!;
    }
  }
  const concurrency = cap(input.concurrency, 'limits.concurrency', MAX_CONCURRENCY);
  if (concurrency) limits.concurrency = concurrency;
  const groupConcurrency = cap(input.groupConcurrency, 'limits.group_concurrency', MAX_CONCURRENCY);
  if (groupConcurrency) limits.groupConcurrency = groupConcurrency;
  if (input.fairGroups) limits.fairGroups = true;
  const weights = Object.entries(input.groupWeights ?? {});
  if (weights.length > MAX_WEIGHTS) throw invalidArgument(`limits.group_weights has ${weights.length} keys, over the limit of ${MAX_WEIGHTS}`);
  if (weights.length > 0) {
    limits.groupWeights = {};
    for (const [key, weight] of weights) {
      if (Buffer.byteLength(key) > MAX_GROUP_KEY_BYTES) throw invalidArgument(`limits.group_weights: key "${key.slice(0, 40)}…" is longer than ${MAX_GROUP_KEY_BYTES} bytes`);
      if (!Number.isInteger(weight) || weight < 1 || weight > MAX_WEIGHT) {
        throw invalidArgument(`limits.group_weights["${key.slice(0, 40)}"] must be 1..${MAX_WEIGHT}, got ${weight}`);
      }
      limits.groupWeights[key] = weight;
    }
  }
  const agingMs = input.agingMs;
  if (agingMs !== undefined && agingMs !== 0) {
    if (!Number.isInteger(agingMs) || agingMs < MIN_AGING_MS || agingMs > MAX_AGING_MS) {
      throw invalidArgument(`limits.aging_ms must be 0 (off) or ${MIN_AGING_MS}..${MAX_AGING_MS} (30 days), got ${agingMs}`);
    }
    limits.agingMs = agingMs;
  }
  if (input.retryOvertake) limits.retryOvertake = true;
  return limits;
}

/** True when dispatch must look at group keys (round-robin, per-group limits). */
export function hasGroupPolicy(limits: QueueLimits | undefined): boolean {
  return !!limits && (!!limits.fairGroups || !!limits.groupRate || !!limits.groupRates || !!limits.groupConcurrency || !!limits.groupWeights);
}

/** True when limits has any setting at all. */
export function hasAnyLimit(limits: QueueLimits | undefined): boolean {
  return !!limits && Object.keys(limits).length > 0;
}

/** Stored form: JSON text, or null for no limits. */
export function limitsToJson(limits: QueueLimits): string | null {
  return hasAnyLimit(limits) ? JSON.stringify(limits) : null;
}

export function limitsFromJson(text: string | null): QueueLimits | undefined {
  if (!text) return undefined;
  const limits = JSON.parse(text) as QueueLimits;
  return hasAnyLimit(limits) ? limits : undefined;
}
