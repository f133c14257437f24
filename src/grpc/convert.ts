import { JobState } from '../domain/job-state.js';
import { invalidArgument } from '../domain/errors.js';
import type { PartialRetryPolicy } from '../domain/backoff.js';
import type { ClaimedJob, JobRow, StoredJobError } from '../store/job-store.js';
import { JobState as WireJobState, type Job, type RetryPolicy } from '../../clients/typescript/src/gen/sluice/v1/job.js';
import type { Delivery } from '../../clients/typescript/src/gen/sluice/v1/worker.js';

/** Stored state <-> wire enum. */
const STATE_TO_WIRE: Record<JobState, WireJobState> = {
  scheduled: WireJobState.JOB_STATE_SCHEDULED,
  pending: WireJobState.JOB_STATE_PENDING,
  active: WireJobState.JOB_STATE_ACTIVE,
  completed: WireJobState.JOB_STATE_COMPLETED,
  dead: WireJobState.JOB_STATE_DEAD,
  cancelled: WireJobState.JOB_STATE_CANCELLED,
};

export function stateToWire(state: JobState): WireJobState {
  return STATE_TO_WIRE[state];
}

/** Wire state filter -> stored state; unspecified = no filter. Unknown values are rejected. */
export function stateFilterFromWire(value: number): JobState | undefined {
  if (value === WireJobState.JOB_STATE_UNSPECIFIED) return undefined;
  for (const [state, wire] of Object.entries(STATE_TO_WIRE)) if (wire === value) return state as JobState;
  throw invalidArgument(`unknown job state ${value}: use JOB_STATE_SCHEDULED, _PENDING, _ACTIVE, _COMPLETED, _DEAD or _CANCELLED`);
}

/** JSON text from the store -> a value ts-proto wraps as google.protobuf.Value. */
export function jsonValue(text: string | null): unknown {
  return text === null ? undefined : JSON.parse(text);
}

const date = (ms: number | null): Date | undefined => (ms === null ? undefined : new Date(ms));

export function retryToWire(policy: PartialRetryPolicy | undefined): RetryPolicy | undefined {
  return policy && { initialMs: policy.initialMs, multiplier: policy.multiplier, maxMs: policy.maxMs, jitter: policy.jitter };
}

export function jobToWire(row: JobRow): Job {
  const errors = row.errors ? (JSON.parse(row.errors) as StoredJobError[]) : [];
  return {
    id: row.id,
    queue: row.queue,
    type: row.type,
    payload: JSON.parse(row.payload),
    priority: row.priority,
    state: stateToWire(row.state),
    runAt: new Date(row.run_at),
    attempt: row.attempt,
    maxAttempts: row.max_attempts,
    retry: retryToWire(row.retry ? (JSON.parse(row.retry) as PartialRetryPolicy) : undefined),
    leaseTimeoutMs: row.lease_timeout_ms,
    metadata: row.metadata ? (JSON.parse(row.metadata) as Record<string, string>) : {},
    progress: jsonValue(row.progress),
    result: jsonValue(row.result),
    lastError: row.last_error ?? '',
    errors: errors.map((e) => ({ attempt: e.attempt, message: e.message, at: new Date(e.at), nonRetryable: e.nonRetryable })),
    dedupKey: row.dedup_key ?? '',
    groupKey: row.group_key ?? '',
    createdAt: new Date(row.created_at),
    startedAt: date(row.started_at),
    finishedAt: date(row.finished_at),
    updatedAt: new Date(row.updated_at),
    workerId: row.state === JobState.Active ? (row.worker_id ?? '') : '',
    leaseExpiresAt: date(row.lease_expires_at),
  };
}

const EMPTY_BYTES = Buffer.alloc(0);

export function deliveryToWire(job: ClaimedJob, rawJson: boolean): Delivery {
  return {
    jobId: job.id,
    leaseId: job.lease_id,
    queue: job.queue,
    type: job.type,
    payload: rawJson ? undefined : JSON.parse(job.payload),
    payloadJson: rawJson ? Buffer.from(job.payload) : EMPTY_BYTES,
    attempt: job.attempt,
    maxAttempts: job.max_attempts,
    deadline: new Date(job.lease_expires_at),
    leaseTimeoutMs: job.lease_timeout_ms,
    metadata: job.metadata ? (JSON.parse(job.metadata) as Record<string, string>) : {},
    priority: job.priority,
    createdAt: new Date(job.created_at),
    progress: jsonValue(job.progress),
    groupKey: job.group_key ?? '',
  };
}

// Shared with the HTTP API (one set of rules for every transport).
export { decodePageToken, encodePageToken, pageSize } from '../broker/admin-input.js';
