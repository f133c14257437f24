/** Priority of a job; higher runs first, FIFO within a level. */
export type PriorityName = 'critical' | 'high' | 'normal' | 'low';

/** A job's state (see the state diagram in proto/README.md). */
export type JobStateName = 'scheduled' | 'pending' | 'active' | 'completed' | 'dead' | 'cancelled';

/** Exponential backoff between attempts: `initialMs * multiplier^(attempt-1)`, capped, +/- jitter. */
export interface BackoffOptions {
  initialMs?: number;
  multiplier?: number;
  maxMs?: number;
  /** Fraction 0..1: 0.2 spreads each delay over +/-20%. */
  jitter?: number;
}

/** Per-job options for `enqueue`. Unset options take the queue's, then the broker's defaults. */
export interface EnqueueOptions {
  /** Job type, to route to a handler (`handlers` of a Worker) or filter a subscription. */
  type?: string;
  priority?: PriorityName;
  /** Run no earlier than this many milliseconds from now. */
  delay?: number;
  /** Run no earlier than this time (exclusive with `delay`). */
  runAt?: Date;
  /** Attempts in total before the job goes to the dead letter queue. */
  maxAttempts?: number;
  backoff?: BackoffOptions;
  /** How long an attempt may run without a heartbeat before it is redelivered, in ms. */
  leaseTimeout?: number;
  /** Free-form string metadata (trace context, tenant...), delivered with the job. */
  metadata?: Record<string, string>;
  /** While a job with this key is unfinished in the queue, enqueueing another returns it. */
  dedupKey?: string;
  /** Group for rate and concurrency limits. */
  groupKey?: string;
}

/** What `enqueue` answers once the job is durable. */
export interface EnqueuedJob {
  id: string;
  /** True when `dedupKey` matched an unfinished job and that job's id was returned. */
  deduplicated: boolean;
  state: JobStateName;
}

/** One failed attempt in a job's history. */
export interface JobErrorEntry {
  attempt: number;
  message: string;
  at: Date | undefined;
  nonRetryable: boolean;
}

/** A job as the broker stores it. */
export interface JobInfo<P = unknown> {
  id: string;
  queue: string;
  type: string;
  payload: P;
  priority: PriorityName;
  state: JobStateName;
  runAt: Date | undefined;
  attempt: number;
  maxAttempts: number;
  leaseTimeoutMs: number;
  metadata: Record<string, string>;
  progress: unknown;
  result: unknown;
  lastError: string;
  errors: JobErrorEntry[];
  dedupKey: string;
  groupKey: string;
  createdAt: Date | undefined;
  startedAt: Date | undefined;
  finishedAt: Date | undefined;
  updatedAt: Date | undefined;
  workerId: string;
}

/** A change to a watched job: its state, progress, result or last error. */
export interface JobEvent {
  jobId: string;
  state: JobStateName;
  attempt: number;
  progress: unknown;
  result: unknown;
  error: string;
  at: Date | undefined;
}

// --- typed payloads -------------------------------------------------------------------------

declare const jobTypesBrand: unique symbol;

/**
 * Marks a queue that carries several job types, each with its own payload:
 *
 *     interface Jobs {
 *       email: JobTypes<{ welcome: { to: string }; reset: { to: string; token: string } }>;
 *       pdf: { reportId: string };            // one payload type, no job types
 *     }
 */
export interface JobTypes<M extends Record<string, unknown>> {
  readonly [jobTypesBrand]: M;
}

/** A map from queue name to its payload type (or `JobTypes<...>`). The default is untyped. */
export type JobMap = Record<string, unknown>;

export type QueueName<J> = keyof J & string;

/** `[payload, options]` accepted by `enqueue` for queue Q: the type picks the payload. */
export type EnqueueArgs<J, Q extends keyof J> =
  J[Q] extends JobTypes<infer M>
    ? { [T in keyof M & string]: [payload: M[T], options: EnqueueOptions & { type: T }] }[keyof M & string]
    : [payload: J[Q], options?: EnqueueOptions];

/** One item for `enqueueBatch`. */
export type BatchItem<J> = {
  [Q in QueueName<J>]: J[Q] extends JobTypes<infer M>
    ? { [T in keyof M & string]: { queue: Q; payload: M[T]; options: EnqueueOptions & { type: T } } }[keyof M & string]
    : { queue: Q; payload: J[Q]; options?: EnqueueOptions };
}[QueueName<J>];

/** The `queue`, `type` and `payload` a handler may see for queues Q: a discriminated union. */
export type DeliveredJob<J, Q extends keyof J> = {
  [K in Q]: J[K] extends JobTypes<infer M>
    ? { [T in keyof M & string]: { queue: K & string; type: T; payload: M[T] } }[keyof M & string]
    : { queue: K & string; type: string; payload: J[K] };
}[Q];

/** Job type names of queues Q (string when a queue has no declared types). */
export type JobTypeName<J, Q extends keyof J> = {
  [K in Q]: J[K] extends JobTypes<infer M> ? keyof M & string : string;
}[Q];

/** Job types declared with `JobTypes` on queues Q (never when none is). */
export type DeclaredTypeName<J, Q extends keyof J> = {
  [K in Q]: J[K] extends JobTypes<infer M> ? keyof M & string : never;
}[Q];
