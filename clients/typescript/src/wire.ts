import { status as Status } from '@grpc/grpc-js';
import { JobState, Priority, type Job } from './gen/sluice/v1/job.js';
import type { EnqueueRequest, JobEvent as WireJobEvent } from './gen/sluice/v1/producer.js';
import { InvalidArgumentError } from './errors.js';
import type { EnqueueOptions, JobEvent, JobInfo, JobStateName, PriorityName } from './types.js';
import { withActiveTraceContext } from './trace-context.js';

const PRIORITY_TO_WIRE: Record<PriorityName, Priority> = {
  critical: Priority.PRIORITY_CRITICAL,
  high: Priority.PRIORITY_HIGH,
  normal: Priority.PRIORITY_NORMAL,
  low: Priority.PRIORITY_LOW,
};

const PRIORITY_FROM_WIRE: Partial<Record<Priority, PriorityName>> = {
  [Priority.PRIORITY_CRITICAL]: 'critical',
  [Priority.PRIORITY_HIGH]: 'high',
  [Priority.PRIORITY_NORMAL]: 'normal',
  [Priority.PRIORITY_LOW]: 'low',
};

const STATE_FROM_WIRE: Partial<Record<JobState, JobStateName>> = {
  [JobState.JOB_STATE_SCHEDULED]: 'scheduled',
  [JobState.JOB_STATE_PENDING]: 'pending',
  [JobState.JOB_STATE_ACTIVE]: 'active',
  [JobState.JOB_STATE_COMPLETED]: 'completed',
  [JobState.JOB_STATE_DEAD]: 'dead',
  [JobState.JOB_STATE_CANCELLED]: 'cancelled',
};

export function stateName(state: JobState): JobStateName {
  const name = STATE_FROM_WIRE[state];
  if (!name) throw new InvalidArgumentError(`unknown job state ${state} from the broker`, Status.INVALID_ARGUMENT);
  return name;
}

export function priorityName(priority: Priority): PriorityName {
  return PRIORITY_FROM_WIRE[priority] ?? 'normal';
}

/** Payloads travel as JSON text (payload_json): cheaper than google.protobuf.Value on both ends. */
export function encodePayload(payload: unknown): Buffer {
  let text: string | undefined;
  try {
    text = JSON.stringify(payload);
  } catch (error) {
    throw new InvalidArgumentError(`payload is not JSON-serializable: ${(error as Error).message}`, Status.INVALID_ARGUMENT);
  }
  if (text === undefined) throw new InvalidArgumentError('payload is not JSON-serializable (undefined or a function)', Status.INVALID_ARGUMENT);
  return Buffer.from(text);
}

/** Builds an EnqueueRequest, checking options the broker would reject anyway, with clearer names. */
export function toEnqueueRequest(queue: string, payload: unknown, options: EnqueueOptions = {}): EnqueueRequest {
  if (options.delay !== undefined && options.runAt !== undefined) {
    throw new InvalidArgumentError('set either delay or runAt, not both', Status.INVALID_ARGUMENT);
  }
  let priority = Priority.PRIORITY_UNSPECIFIED;
  if (options.priority !== undefined) {
    priority = PRIORITY_TO_WIRE[options.priority];
    if (priority === undefined) {
      throw new InvalidArgumentError(`priority must be one of critical, high, normal, low; got ${String(options.priority)}`, Status.INVALID_ARGUMENT);
    }
  }
  const b = options.backoff;
  return {
    queue,
    type: options.type ?? '',
    payload: undefined,
    payloadJson: encodePayload(payload),
    priority,
    delayMs: options.delay ?? 0,
    runAt: options.runAt,
    maxAttempts: options.maxAttempts ?? 0,
    retry: b ? { initialMs: b.initialMs, multiplier: b.multiplier, maxMs: b.maxMs, jitter: b.jitter } : undefined,
    leaseTimeoutMs: options.leaseTimeout ?? 0,
    // The active OpenTelemetry span travels with the job (when @opentelemetry/api is installed).
    metadata: withActiveTraceContext(options.metadata),
    dedupKey: options.dedupKey ?? '',
    groupKey: options.groupKey ?? '',
  };
}

export function toJobInfo<P>(job: Job): JobInfo<P> {
  return {
    id: job.id,
    queue: job.queue,
    type: job.type,
    payload: job.payload as P,
    priority: priorityName(job.priority),
    state: stateName(job.state),
    runAt: job.runAt,
    attempt: job.attempt,
    maxAttempts: job.maxAttempts,
    leaseTimeoutMs: job.leaseTimeoutMs,
    metadata: job.metadata,
    progress: job.progress ?? null,
    result: job.result ?? null,
    lastError: job.lastError,
    errors: job.errors.map((e) => ({ attempt: e.attempt, message: e.message, at: e.at, nonRetryable: e.nonRetryable })),
    dedupKey: job.dedupKey,
    groupKey: job.groupKey,
    createdAt: job.createdAt,
    startedAt: job.startedAt,
    finishedAt: job.finishedAt,
    updatedAt: job.updatedAt,
    workerId: job.workerId,
  };
}

export function toJobEvent(e: WireJobEvent): JobEvent {
  return {
    jobId: e.jobId,
    state: stateName(e.state),
    attempt: e.attempt,
    progress: e.progress ?? null,
    result: e.result ?? null,
    error: e.error,
    at: e.at,
  };
}
