import type { JobState } from '../domain/job-state.js';
import type {
  DeadLetterGroup,
  JobFilter,
  JobRow,
  PendingHead,
  QueueStateCount,
  RetryingJobRef,
  RunRow,
  ScheduleRow,
} from './types.js';

/**
 * Every read the broker's edges make (gRPC and HTTP handlers, explain, the dashboard's feed,
 * metrics scrapes): outside any write, so each may take a round trip on a backend with one.
 * All return promises; the SQLite backend resolves them at once from its synchronous
 * statements. Reads inside a flush (dispatch, limiter, admission, timers, cron) are not here:
 * they stay synchronous until the flush becomes a batch of commands
 * (docs/design/postgres-store.md, section 4 step 2).
 */
export interface StoreReads {
  // --- jobs ----------------------------------------------------------------------------
  /** undefined for an unknown (or unparsable) id. */
  getJob(id: string): Promise<JobRow | undefined>;
  stateAndLease(id: string): Promise<Pick<JobRow, 'state' | 'lease_id'> | undefined>;
  /** Newest first; `beforeSeq` is the keyset cursor. */
  listJobs(filter: JobFilter, limit: number, beforeSeq?: number): Promise<JobRow[]>;

  // --- queues --------------------------------------------------------------------------
  /** Jobs per (queue, state) with n > 0. */
  countsByQueueAndState(): Promise<QueueStateCount[]>;
  /** Jobs per state of one queue, states with n > 0. */
  countsForQueue(queue: string): Promise<{ state: JobState; n: number }[]>;
  /** The earliest run_at among a queue's ready jobs. */
  oldestPendingRunAt(queue: string): Promise<number | undefined>;
  /** Per queue with a ready job: when its head became ready. */
  pendingHeads(): Promise<PendingHead[]>;
  /** Dead jobs grouped by last error, most frequent first. */
  deadLetterSummary(queue: string | undefined, limit: number): Promise<DeadLetterGroup[]>;

  // --- explain ---------------------------------------------------------------------------
  /** Ready jobs of the queue served before this one, counted up to `cap`. */
  readyAhead(queue: string, priority: number, seq: number, cap: number): Promise<number>;
  /** Ready jobs of one group ahead of this one, counted up to `cap`. */
  groupAhead(queue: string, groupKey: string, priority: number, seq: number, cap: number): Promise<number>;
  /** The oldest job of the group waiting for its retry backoff. */
  retryingInGroup(queue: string, groupKey: string): Promise<RetryingJobRef | undefined>;

  // --- schedules -------------------------------------------------------------------------
  getSchedule(id: string): Promise<ScheduleRow | undefined>;
  getScheduleByName(name: string): Promise<ScheduleRow | undefined>;
  /** By name, after `afterName` (keyset). */
  listSchedules(limit: number, afterName?: string): Promise<ScheduleRow[]>;
  /** Newest first, before `beforeSeq` (keyset). */
  listScheduleRuns(scheduleId: string, limit: number, beforeSeq?: number): Promise<RunRow[]>;
  getScheduleRun(seq: number): Promise<RunRow | undefined>;

  // --- storage ---------------------------------------------------------------------------
  /** Bytes on disk: the database and its write-ahead log (SQLite's files; a server database reports its size as `db`). */
  storeSizes(): Promise<{ db: number; wal: number }>;
}
