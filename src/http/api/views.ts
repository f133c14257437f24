import type { BrokerConfig } from '../../config.js';
import type { QueueInfo } from '../../broker/broker-reads.js';
import type { ConsumeSession } from '../../broker/consume-session.js';
import type { HistoryEntry, JobRow, RunRow, ScheduleRow, StoredJobError } from '../../store/types.js';
import type { PartialRetryPolicy } from '../../domain/backoff.js';
import type { Explanation } from '../../broker/explain.js';
import { runDurationMs, runJobId } from '../../store/types.js';
import { definitionOf } from '../../broker/schedules.js';

/**
 * JSON shapes of the HTTP API: camelCase fields, states as their names, times as ISO 8601
 * strings (null when not set), JSON columns as JSON values. Stable: the dashboard and curl
 * scripts read them.
 */

const iso = (ms: number | null | undefined): string | null => (ms === null || ms === undefined ? null : new Date(ms).toISOString());
const json = (text: string | null): unknown => (text === null ? null : JSON.parse(text));

/** A job in a listing: everything but the payload, result and error history (those can be large). */
export function jobSummaryJson(row: JobRow) {
  return {
    id: row.id,
    queue: row.queue,
    type: row.type,
    state: row.state,
    priority: row.priority,
    attempt: row.attempt,
    maxAttempts: row.max_attempts,
    runAt: iso(row.run_at),
    createdAt: iso(row.created_at),
    startedAt: iso(row.started_at),
    finishedAt: iso(row.finished_at),
    updatedAt: iso(row.updated_at),
    lastError: row.last_error,
    groupKey: row.group_key,
    workerId: row.state === 'active' ? row.worker_id : null,
  };
}

export function jobJson(row: JobRow) {
  const errors = row.errors ? (JSON.parse(row.errors) as StoredJobError[]) : [];
  return {
    ...jobSummaryJson(row),
    payload: JSON.parse(row.payload) as unknown,
    result: json(row.result),
    progress: json(row.progress),
    metadata: row.metadata ? (JSON.parse(row.metadata) as Record<string, string>) : {},
    errors: errors.map((e) => ({ attempt: e.attempt, message: e.message, at: iso(e.at), nonRetryable: e.nonRetryable })),
    retry: row.retry ? (JSON.parse(row.retry) as PartialRetryPolicy) : null,
    leaseTimeoutMs: row.lease_timeout_ms,
    leaseExpiresAt: row.state === 'active' ? iso(row.lease_expires_at) : null,
    dedupKey: row.dedup_key,
  };
}

/**
 * A queue with its counts and settings. `settings` are the values in force (the queue's own,
 * else the broker's defaults); `overrides` names those the queue sets itself.
 */
export function queueJson(q: QueueInfo, config: BrokerConfig, pendingSince: number | undefined) {
  const s = q.settings;
  const overrides: string[] = [];
  if (s.maxAttempts !== undefined) overrides.push('maxAttempts');
  if (s.leaseTimeoutMs !== undefined) overrides.push('leaseTimeoutMs');
  if (s.retry !== undefined) overrides.push('retry');
  return {
    name: s.name,
    paused: s.paused,
    counts: q.counts,
    consumers: q.consumers,
    /** When the job at the head of the queue became ready: how long the queue has been backed up. */
    pendingSince: iso(pendingSince),
    settings: {
      maxAttempts: s.maxAttempts ?? config.defaultMaxAttempts,
      leaseTimeoutMs: s.leaseTimeoutMs ?? config.defaultLeaseTimeoutMs,
      retry: {
        initialMs: s.retry?.initialMs ?? config.retryInitialMs,
        multiplier: s.retry?.multiplier ?? config.retryMultiplier,
        maxMs: s.retry?.maxMs ?? config.retryMaxMs,
        jitter: s.retry?.jitter ?? config.retryJitter,
      },
    },
    overrides,
  };
}

export function workerJson(s: ConsumeSession) {
  return {
    streamId: s.id,
    workerId: s.subscription.workerId,
    queues: s.subscription.queues,
    types: s.subscription.types,
    labels: s.subscription.labels,
    credit: s.credit.available,
    inFlight: [...s.leases.keys()],
    draining: s.draining,
    connectedAt: iso(s.connectedAt),
    lastSeenAt: iso(s.lastSeenAt),
    peer: s.peer,
  };
}

/** One step of a job's life (AdminService/GetJobHistory's entries). */
export function historyJson(e: HistoryEntry) {
  return { at: iso(e.at), kind: e.kind, attempt: e.attempt, workerId: e.workerId, leaseId: e.leaseId, error: e.error, detail: e.detail };
}

/** ProducerService/ExplainJob's answer; a reason's optional fields are left out when not set. */
export function explanationJson(e: Explanation) {
  return {
    id: e.id,
    state: e.state,
    summary: e.summary,
    reasons: e.reasons.map((r) => ({
      code: r.code,
      message: r.message,
      at: r.at === undefined ? undefined : iso(r.at),
      count: r.count,
      countIsLowerBound: r.countIsLowerBound,
      limit: r.limit,
      groupKey: r.groupKey,
      workerIds: r.workerIds,
      attempt: r.attempt,
      maxAttempts: r.maxAttempts,
      lastError: r.lastError,
    })),
  };
}

/**
 * A schedule as ScheduleService answers it (grpc/schedule-service.ts scheduleToWire), in this
 * API's spelling: policies as their names, times as ISO strings, the job template's payload as
 * JSON. `upcoming`: the next fire times (ScheduleManager.upcoming).
 */
export function scheduleJson(row: ScheduleRow, upcoming: number[]) {
  const def = definitionOf(row);
  const t = def.job;
  return {
    id: row.id,
    name: def.name,
    cron: def.cron,
    timezone: def.timezone,
    paused: row.paused === 1,
    nextFireAt: iso(row.next_fire_at),
    lastFireAt: iso(row.last_fire_at),
    upcoming: upcoming.map((ms) => iso(ms)!),
    startAt: iso(def.startAt),
    endAt: iso(def.endAt),
    catchUp: def.catchUp,
    catchUpLimit: def.catchUpLimit,
    overlap: def.overlap,
    historyLimit: def.historyLimit,
    job: {
      queue: t.queue,
      type: t.type,
      payload: JSON.parse(t.payload) as unknown,
      priority: t.priority,
      delayMs: t.delayMs,
      maxAttempts: t.maxAttempts ?? null,
      retry: t.retry ?? null,
      leaseTimeoutMs: t.leaseTimeoutMs ?? null,
      metadata: t.metadata ?? {},
      dedupKey: t.dedupKey ?? null,
      groupKey: t.groupKey ?? null,
    },
    createdAt: iso(row.created_at),
    updatedAt: iso(row.updated_at),
  };
}

/**
 * One fire of a schedule with its job as it is now (runToWire's fields): `jobId` is null when
 * the fire was skipped; the job's columns (`jobState`, `attempt`, …) also when the job is gone
 * (purged, or removed by retention).
 */
export function runJson(r: RunRow) {
  return {
    seq: r.seq,
    scheduleId: r.schedule_id,
    fireTime: iso(r.fire_time),
    kind: r.kind,
    skipped: r.outcome === 'skipped',
    reason: r.reason,
    jobId: runJobId(r),
    jobState: r.job_state,
    attempt: r.job_attempt,
    startedAt: iso(r.job_started_at),
    finishedAt: iso(r.job_finished_at),
    durationMs: runDurationMs(r),
    lastError: r.job_last_error,
    createdAt: iso(r.created_at),
  };
}
