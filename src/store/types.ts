import type { JobState } from '../domain/job-state.js';
import { formatJobId } from '../domain/job-id.js';

/*
 * The rows and values the broker, its views and the stores exchange: backend-neutral (no
 * SQLite types here), so a second store backend returns the same shapes
 * (docs/design/postgres-store.md, section 4 step 1).
 */

// --- jobs ------------------------------------------------------------------------------

/** A jobs row as stored (plus its computed id). Times are epoch milliseconds; JSON columns hold JSON text. */
export interface JobRow {
  seq: number;
  /** Computed from seq and created_at (see domain/job-id.ts), not stored. */
  id: string;
  queue: string;
  type: string;
  state: JobState;
  priority: number;
  payload: string;
  metadata: string | null;
  run_at: number;
  attempt: number;
  max_attempts: number;
  retry: string | null;
  lease_timeout_ms: number;
  lease_id: string | null;
  lease_expires_at: number | null;
  worker_id: string | null;
  progress: string | null;
  result: string | null;
  last_error: string | null;
  errors: string | null;
  dedup_key: string | null;
  group_key: string | null;
  created_at: number;
  started_at: number | null;
  finished_at: number | null;
  updated_at: number;
  /** Compact history entries (see store/job-history.ts). */
  history: string | null;
}

/** A validated job ready to insert. */
export interface NewJob {
  queue: string;
  type: string;
  payload: string;
  metadata: string | null;
  priority: number;
  runAt: number;
  maxAttempts: number;
  retry: string | null;
  leaseTimeoutMs: number;
  dedupKey: string | null;
  groupKey: string | null;
  /** Which of maxAttempts / leaseTimeoutMs came from a default (INHERITS_* bits), not the job. */
  inherits: number;
}

/** `jobs.inherits` bits: the job did not set this itself, so the queue's default applies (migration 6). */
export const INHERITS_MAX_ATTEMPTS = 1;
export const INHERITS_LEASE_TIMEOUT = 2;

/** What a worker needs to run a leased job. */
export interface ClaimedJob {
  seq: number;
  id: string;
  queue: string;
  type: string;
  payload: string;
  metadata: string | null;
  attempt: number;
  max_attempts: number;
  lease_timeout_ms: number;
  lease_expires_at: number;
  priority: number;
  created_at: number;
  progress: string | null;
  group_key: string | null;
  lease_id: string;
  /** When the job became due (its enqueue, or its run_at): the start of its wait. */
  run_at: number;
}

/** A job whose lease was released, as the release statement returns it. */
export interface ReleasedJob {
  state: JobState;
  queue: string;
  type: string;
  attempt: number;
  metadata: string | null;
}

/** A completed job, as the ack statement returns it. */
export interface CompletedJob {
  attempt: number;
  queue: string;
  started_at: number;
  metadata: string | null;
}


export interface ReadyRef {
  seq: number;
  priority: number;
}

/** One entry of a job's error history, as stored in the errors JSON array. */
export interface StoredJobError {
  attempt: number;
  message: string;
  at: number;
  nonRetryable: boolean;
}

export interface QueueRow {
  name: string;
  paused: 0 | 1;
  max_attempts: number | null;
  retry: string | null;
  lease_timeout_ms: number | null;
  created_at: number;
  retention_max_age_ms: number | null;
  retention_max_count: number | null;
  /** JSON (src/domain/queue-limits.ts) or null. */
  limits: string | null;
  max_queued: number | null;
  max_queued_per_group: number | null;
}

/** A ready job as the limited dispatch paths see it. */
export interface ReadyJobRef {
  seq: number;
  priority: number;
  run_at: number;
  group_key: string | null;
}

/** A job holding a concurrency slot: active, or waiting for a retry (attempt > 0). */
export interface SlotHolder {
  seq: number;
  created_at: number;
  group_key: string | null;
  state: 'active' | 'scheduled';
}

export interface JobFilter {
  queue?: string;
  state?: JobState;
  type?: string;
  groupKey?: string;
}

export interface DeadLetterSelection {
  ids?: string[];
  queue?: string;
  type?: string;
  deadBefore?: number;
}

/** The outcome of a guarded transition: the row after the change, or why nothing changed. */
export type Transition<T> = { ok: true; value: T } | { ok: false; current: Pick<JobRow, 'state' | 'lease_id'> | undefined };

/** Jobs per (queue, state), from the counts the store keeps (no table scan). */
export interface QueueStateCount {
  queue: string;
  state: JobState;
  n: number;
}

/** Dead jobs that share one last error. */
export interface DeadLetterGroup {
  message: string;
  n: number;
  last_at: number;
}

/** When the job at the head of a queue's ready list became ready. */
export interface PendingHead {
  queue: string;
  run_at: number;
}

/** The oldest job of a group waiting for its retry backoff. */
export interface RetryingJobRef {
  seq: number;
  created_at: number;
  run_at: number;
}

// --- job history -----------------------------------------------------------------------

/** What happened to a job at one step of its life. */
export type HistoryKind =
  | 'enqueued'
  | 'promoted'
  | 'delivered'
  | 'extended'
  | 'acked'
  | 'nacked'
  | 'expired'
  | 'released'
  | 'cancelled'
  | 'replayed'
  | 'dead';

export interface HistoryEntry {
  at: number;
  kind: HistoryKind;
  /** The attempt the step belongs to (0 before the first delivery and after a replay). */
  attempt: number;
  workerId: string;
  leaseId: string;
  error: string;
  detail: string;
}

// --- schedules -------------------------------------------------------------------------

export type CatchUpPolicy = 'skip' | 'once' | 'all';
export type OverlapPolicy = 'allow' | 'skip' | 'queue_one';
export type RunKind = 'scheduled' | 'manual';
export type RunOutcome = 'enqueued' | 'skipped';

/** A schedules row as stored. Times are epoch milliseconds. */
export interface ScheduleRow {
  id: string;
  name: string;
  cron: string;
  timezone: string;
  /** JSON of the job template (broker/schedule-template.ts). */
  template: string;
  paused: 0 | 1;
  start_at: number | null;
  end_at: number | null;
  catch_up: CatchUpPolicy;
  catch_up_limit: number;
  overlap: OverlapPolicy;
  history_limit: number;
  next_fire_at: number | null;
  last_fire_at: number | null;
  created_at: number;
  updated_at: number;
}

export interface NewRun {
  scheduleId: string;
  fireTime: number;
  kind: RunKind;
  outcome: RunOutcome;
  reason: string | null;
  jobSeq: number | null;
  jobCreatedAt: number | null;
}

/** A run with its job as it is now (the job columns are null when skipped or the job is gone). */
export interface RunRow {
  seq: number;
  schedule_id: string;
  fire_time: number;
  kind: RunKind;
  outcome: RunOutcome;
  reason: string | null;
  job_seq: number | null;
  job_created_at: number | null;
  created_at: number;
  job_state: JobState | null;
  job_attempt: number | null;
  job_started_at: number | null;
  job_finished_at: number | null;
  job_last_error: string | null;
}

/** The id of the run's job; null when the fire was skipped or the job is gone. */
export function runJobId(r: RunRow): string | null {
  return r.job_seq !== null && r.job_created_at !== null ? formatJobId(r.job_seq, r.job_created_at) : null;
}

/** How long the run's job ran, once it has finished; null before. */
export function runDurationMs(r: RunRow): number | null {
  return r.job_finished_at !== null && r.job_started_at !== null ? Math.max(0, r.job_finished_at - r.job_started_at) : null;
}

/** An unfinished job created by a schedule (for the overlap policy). */
export interface UnfinishedRunJob {
  job_seq: number;
  job_created_at: number;
  fire_time: number;
  state: JobState;
}
