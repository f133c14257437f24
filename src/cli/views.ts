/**
 * The CLI's JSON shapes (its --json contract): camelCase field names, states and priorities as
 * lower-case names, times as ISO 8601 strings, and every field always present (null when unset),
 * so scripts can rely on a key existing. Human output is built from the same views.
 */
import type { Job, RetryPolicy } from '../../clients/typescript/src/gen/sluice/v1/job.js';
import type { JobHistoryEntry, Queue, QueueLimits, RateLimit, WorkerStream } from '../../clients/typescript/src/gen/sluice/v1/admin.js';
import type { JobEvent } from '../../clients/typescript/src/gen/sluice/v1/producer.js';
import { priorityName, stateName } from '../../clients/typescript/src/wire.js';

const iso = (d: Date | undefined): string | null => (d ? d.toISOString() : null);
const orNull = (s: string): string | null => (s === '' ? null : s);

export interface RetryView {
  initialMs: number | null;
  multiplier: number | null;
  maxMs: number | null;
  jitter: number | null;
}

export function retryView(r: RetryPolicy | undefined): RetryView | null {
  if (!r) return null;
  return { initialMs: r.initialMs ?? null, multiplier: r.multiplier ?? null, maxMs: r.maxMs ?? null, jitter: r.jitter ?? null };
}

export function jobView(job: Job) {
  return {
    id: job.id,
    queue: job.queue,
    type: orNull(job.type),
    state: stateName(job.state),
    priority: priorityName(job.priority),
    attempt: job.attempt,
    maxAttempts: job.maxAttempts,
    payload: job.payload ?? null,
    progress: job.progress ?? null,
    result: job.result ?? null,
    lastError: orNull(job.lastError),
    errors: job.errors.map((e) => ({ attempt: e.attempt, message: e.message, at: iso(e.at), nonRetryable: e.nonRetryable })),
    metadata: job.metadata,
    dedupKey: orNull(job.dedupKey),
    groupKey: orNull(job.groupKey),
    retry: retryView(job.retry),
    leaseTimeoutMs: job.leaseTimeoutMs,
    workerId: orNull(job.workerId),
    runAt: iso(job.runAt),
    createdAt: iso(job.createdAt),
    startedAt: iso(job.startedAt),
    finishedAt: iso(job.finishedAt),
    updatedAt: iso(job.updatedAt),
    leaseExpiresAt: iso(job.leaseExpiresAt),
  };
}
export type JobView = ReturnType<typeof jobView>;

const rateView = (r: RateLimit | undefined) => (r ? { count: r.count, intervalMs: r.intervalMs, burst: r.burst } : null);

export function limitsView(l: QueueLimits | undefined) {
  return {
    rate: rateView(l?.rate),
    groupRate: rateView(l?.groupRate),
    concurrency: l?.concurrency ?? 0,
    groupConcurrency: l?.groupConcurrency ?? 0,
    fairGroups: l?.fairGroups ?? false,
    groupWeights: l?.groupWeights ?? {},
    agingMs: l?.agingMs ?? 0,
    retryOvertake: l?.retryOvertake ?? false,
    groupRates: Object.fromEntries(Object.entries(l?.groupRates ?? {}).map(([k, r]) => [k, rateView(r)])),
  };
}
export type LimitsView = ReturnType<typeof limitsView>;

export function queueView(q: Queue) {
  const c = q.counts;
  return {
    name: q.name,
    paused: q.paused,
    counts: {
      scheduled: c?.scheduled ?? 0,
      pending: c?.pending ?? 0,
      active: c?.active ?? 0,
      completed: c?.completed ?? 0,
      dead: c?.dead ?? 0,
      cancelled: c?.cancelled ?? 0,
    },
    consumers: q.consumers,
    maxAttempts: q.maxAttempts,
    leaseTimeoutMs: q.leaseTimeoutMs,
    retry: retryView(q.retry),
    retentionMaxAgeMs: q.retentionMaxAgeMs,
    retentionMaxCount: q.retentionMaxCount,
    limits: limitsView(q.limits),
  };
}
export type QueueView = ReturnType<typeof queueView>;

export function workerView(w: WorkerStream) {
  return {
    workerId: w.workerId,
    streamId: w.streamId,
    queues: w.queues,
    types: w.types,
    labels: w.labels,
    credit: w.credit,
    activeJobIds: w.activeJobIds,
    connectedAt: iso(w.connectedAt),
    lastSeenAt: iso(w.lastSeenAt),
    peer: orNull(w.peer),
  };
}
export type WorkerView = ReturnType<typeof workerView>;

export function historyView(h: JobHistoryEntry) {
  return {
    at: iso(h.at),
    kind: h.kind,
    attempt: h.attempt,
    workerId: orNull(h.workerId),
    leaseId: orNull(h.leaseId),
    error: orNull(h.error),
    detail: orNull(h.detail),
  };
}
export type HistoryView = ReturnType<typeof historyView>;

export function eventView(e: JobEvent) {
  return {
    jobId: e.jobId,
    state: stateName(e.state),
    attempt: e.attempt,
    progress: e.progress ?? null,
    result: e.result ?? null,
    error: orNull(e.error),
    at: iso(e.at),
  };
}
export type EventView = ReturnType<typeof eventView>;

export const TERMINAL_STATES: readonly string[] = ['completed', 'dead', 'cancelled'];

/** Parses an ISO string from a view back to a Date for human output. */
export function date(s: string | null): Date | undefined {
  return s === null ? undefined : new Date(s);
}
