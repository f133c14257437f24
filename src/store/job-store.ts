import type { Statement } from 'better-sqlite3';
import type { Db } from './database.js';
import { JobState } from '../domain/job-state.js';

/** A jobs row as stored. Times are epoch milliseconds; JSON columns hold JSON text. */
export interface JobRow {
  seq: number;
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
}

/** A validated job ready to insert. */
export interface NewJob {
  id: string;
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
}

/** What a worker needs to run a leased job. */
export interface ClaimedJob {
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

const CLAIMED_COLUMNS =
  'id, queue, type, payload, metadata, attempt, max_attempts, lease_timeout_ms, lease_expires_at, priority, created_at, progress, group_key, lease_id';

/**
 * All SQL lives here, as named statements prepared once. Every state change is one guarded
 * statement: it names the state (and for active jobs the lease) it expects, and zero rows
 * changed is reported as a result, never thrown.
 */
export class JobStore {
  private readonly s: {
    insert: Statement;
    findUnfinishedByDedupKey: Statement;
    getById: Statement;
    getStateAndLease: Statement;
    peekReady: Statement;
    peekReadyOfTypes: Statement;
    claim: Statement;
    complete: Statement;
    getForFailure: Statement;
    fail: Statement;
    extend: Statement;
    release: Statement;
    promoteDue: Statement;
    nextRunAt: Statement;
    expiredLeases: Statement;
    nextLeaseExpiry: Statement;
    activeLeases: Statement;
    cancel: Statement;
    countsByQueueAndState: Statement;
    countsForQueue: Statement;
    listQueues: Statement;
    ensureQueue: Statement;
    setQueuePaused: Statement;
    updateQueueDefaults: Statement;
    getQueue: Statement;
  };
  private readonly listStatements = new Map<string, Statement>();
  private readonly deadLetterStatements = new Map<string, Statement>();

  constructor(readonly db: Db) {
    const p = (sql: string): Statement => db.prepare(sql);
    this.s = {
      insert: p(`INSERT INTO jobs (id, queue, type, state, priority, payload, metadata, run_at, max_attempts, retry,
                   lease_timeout_ms, dedup_key, group_key, created_at, updated_at)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
      findUnfinishedByDedupKey: p(`SELECT id, state FROM jobs
                 WHERE queue = ? AND dedup_key = ? AND state IN ('scheduled','pending','active')`),
      getById: p(`SELECT * FROM jobs WHERE id = ?`),
      getStateAndLease: p(`SELECT state, lease_id FROM jobs WHERE id = ?`),
      peekReady: p(`SELECT seq, priority FROM jobs WHERE queue = ? AND state = 'pending'
                 ORDER BY priority DESC, seq LIMIT ?`),
      peekReadyOfTypes: p(`SELECT seq, priority FROM jobs WHERE queue = ? AND state = 'pending'
                 AND type IN (SELECT value FROM json_each(?)) ORDER BY priority DESC, seq LIMIT ?`),
      claim: p(`UPDATE jobs SET state = 'active', attempt = attempt + 1, lease_id = ?, lease_expires_at = ? + lease_timeout_ms,
                   worker_id = ?, started_at = ?, updated_at = ?
                 WHERE seq = ? AND state = 'pending' RETURNING ${CLAIMED_COLUMNS}`),
      complete: p(`UPDATE jobs SET state = 'completed', result = ?, lease_id = NULL, lease_expires_at = NULL,
                   finished_at = ?, updated_at = ?
                 WHERE id = ? AND state = 'active' AND lease_id = ? RETURNING attempt`),
      getForFailure: p(`SELECT attempt, max_attempts, retry, queue FROM jobs WHERE id = ? AND state = 'active' AND lease_id = ?`),
      fail: p(`UPDATE jobs SET state = @state, run_at = @runAt, last_error = @error,
                   errors = json_insert(coalesce(errors, '[]'), '$[#]', json(@entry)),
                   lease_id = NULL, lease_expires_at = NULL, finished_at = @finishedAt, updated_at = @now
                 WHERE id = @id AND state = 'active' AND lease_id = @leaseId`),
      extend: p(`UPDATE jobs SET lease_expires_at = @now + CASE WHEN @extendMs > 0 THEN @extendMs ELSE lease_timeout_ms END,
                   progress = coalesce(@progress, progress), updated_at = @now
                 WHERE id = @id AND state = 'active' AND lease_id = @leaseId RETURNING lease_expires_at, attempt`),
      // A lease that ends without a settle (stream lost, expired, broker restarted). When it
      // counts as an attempt the job may die here: a job that kills its worker every time
      // still reaches the dead letter queue. A lease given back by a graceful shutdown does
      // not count: the attempt is returned.
      release: p(`UPDATE jobs SET
                   state = CASE WHEN @counts AND attempt >= max_attempts THEN 'dead' ELSE 'pending' END,
                   attempt = CASE WHEN @counts THEN attempt ELSE max(attempt - 1, 0) END,
                   last_error = CASE WHEN @counts THEN @error ELSE last_error END,
                   errors = CASE WHEN @counts THEN json_insert(coalesce(errors, '[]'), '$[#]',
                     json_object('attempt', attempt, 'message', @error, 'at', @now, 'nonRetryable', json('false')))
                     ELSE errors END,
                   finished_at = CASE WHEN @counts AND attempt >= max_attempts THEN @now ELSE NULL END,
                   lease_id = NULL, lease_expires_at = NULL, updated_at = @now
                 WHERE id = @id AND state = 'active' AND lease_id = @leaseId RETURNING state, queue, type, attempt`),
      promoteDue: p(`UPDATE jobs SET state = 'pending', updated_at = @now
                 WHERE seq IN (SELECT seq FROM jobs WHERE state = 'scheduled' AND run_at <= @now ORDER BY run_at LIMIT @limit)
                 RETURNING id, queue, type, attempt`),
      nextRunAt: p(`SELECT min(run_at) AS at FROM jobs WHERE state = 'scheduled'`),
      expiredLeases: p(`SELECT id, lease_id FROM jobs WHERE state = 'active' AND lease_expires_at <= ?
                 ORDER BY lease_expires_at LIMIT ?`),
      nextLeaseExpiry: p(`SELECT min(lease_expires_at) AS at FROM jobs WHERE state = 'active'`),
      activeLeases: p(`SELECT id, lease_id FROM jobs WHERE state = 'active'`),
      cancel: p(`UPDATE jobs SET state = 'cancelled', lease_id = NULL, lease_expires_at = NULL,
                   last_error = coalesce(@reason, last_error), finished_at = @now, updated_at = @now
                 WHERE id = @id AND state IN ('scheduled','pending','active') RETURNING *`),
      countsByQueueAndState: p(`SELECT queue, state, count(*) AS n FROM jobs GROUP BY queue, state`),
      countsForQueue: p(`SELECT state, count(*) AS n FROM jobs WHERE queue = ? GROUP BY state`),
      listQueues: p(`SELECT * FROM queues ORDER BY name`),
      ensureQueue: p(`INSERT INTO queues (name, created_at) VALUES (?, ?) ON CONFLICT (name) DO NOTHING`),
      setQueuePaused: p(`UPDATE queues SET paused = ? WHERE name = ?`),
      updateQueueDefaults: p(`UPDATE queues SET max_attempts = coalesce(@maxAttempts, max_attempts),
                   retry = coalesce(@retry, retry), lease_timeout_ms = coalesce(@leaseTimeoutMs, lease_timeout_ms)
                 WHERE name = @name`),
      getQueue: p(`SELECT * FROM queues WHERE name = ?`),
    };
  }

  // --- producers -------------------------------------------------------------------------

  /** The unfinished job holding this dedup key, if any. */
  findUnfinishedByDedupKey(queue: string, dedupKey: string): { id: string; state: JobState } | undefined {
    return this.s.findUnfinishedByDedupKey.get(queue, dedupKey) as { id: string; state: JobState } | undefined;
  }

  insert(job: NewJob, state: JobState, now: number): void {
    this.s.insert.run(
      job.id, job.queue, job.type, state, job.priority, job.payload, job.metadata, job.runAt, job.maxAttempts,
      job.retry, job.leaseTimeoutMs, job.dedupKey, job.groupKey, now, now,
    );
  }

  get(id: string): JobRow | undefined {
    return this.s.getById.get(id) as JobRow | undefined;
  }

  stateAndLease(id: string): Pick<JobRow, 'state' | 'lease_id'> | undefined {
    return this.s.getStateAndLease.get(id) as Pick<JobRow, 'state' | 'lease_id'> | undefined;
  }

  /** Scheduled/pending/active -> cancelled. */
  cancel(id: string, reason: string | null, now: number): Transition<JobRow> {
    const row = this.s.cancel.get({ id, reason, now }) as JobRow | undefined;
    return row ? { ok: true, value: row } : { ok: false, current: this.stateAndLease(id) };
  }

  // --- dispatch --------------------------------------------------------------------------

  /** The next ready jobs of a queue in delivery order, without changing them. */
  peekReady(queue: string, limit: number, types?: readonly string[]): ReadyRef[] {
    if (types && types.length > 0) return this.s.peekReadyOfTypes.all(queue, JSON.stringify(types), limit) as ReadyRef[];
    return this.s.peekReady.all(queue, limit) as ReadyRef[];
  }

  /** Pending -> active under a new lease; undefined if the job is no longer pending. */
  claim(seq: number, leaseId: string, workerId: string, now: number): ClaimedJob | undefined {
    return this.s.claim.get(leaseId, now, workerId, now, now, seq) as ClaimedJob | undefined;
  }

  // --- settles ---------------------------------------------------------------------------

  /** Active (under this lease) -> completed. */
  complete(id: string, leaseId: string, result: string | null, now: number): Transition<{ attempt: number }> {
    const row = this.s.complete.get(result, now, now, id, leaseId) as { attempt: number } | undefined;
    return row ? { ok: true, value: row } : { ok: false, current: this.stateAndLease(id) };
  }

  /** The fields a failure decision needs, if this lease is current. */
  failureContext(id: string, leaseId: string): { attempt: number; max_attempts: number; retry: string | null; queue: string } | undefined {
    return this.s.getForFailure.get(id, leaseId) as
      | { attempt: number; max_attempts: number; retry: string | null; queue: string }
      | undefined;
  }

  /** Active (under this lease) -> scheduled (retry at runAt) or dead. */
  fail(
    id: string,
    leaseId: string,
    next: { state: typeof JobState.Scheduled | typeof JobState.Dead; runAt: number; error: StoredJobError },
    now: number,
  ): Transition<void> {
    const changed = this.s.fail.run({
      id,
      leaseId,
      state: next.state,
      runAt: next.runAt,
      error: next.error.message,
      entry: JSON.stringify(next.error),
      finishedAt: next.state === JobState.Dead ? now : null,
      now,
    }).changes;
    return changed === 1 ? { ok: true, value: undefined } : { ok: false, current: this.stateAndLease(id) };
  }

  /** Renews a lease from now; returns the new deadline. */
  extend(id: string, leaseId: string, extendMs: number, progress: string | null, now: number): Transition<{ deadline: number; attempt: number }> {
    const row = this.s.extend.get({ id, leaseId, extendMs, progress, now }) as { lease_expires_at: number; attempt: number } | undefined;
    return row ? { ok: true, value: { deadline: row.lease_expires_at, attempt: row.attempt } } : { ok: false, current: this.stateAndLease(id) };
  }

  /** Ends a lease without a settle; see the statement for the attempt rule. */
  release(
    id: string,
    leaseId: string,
    reason: string,
    countsAsAttempt: boolean,
    now: number,
  ): { state: JobState; queue: string; type: string; attempt: number } | undefined {
    return this.s.release.get({ id, leaseId, error: reason, counts: countsAsAttempt ? 1 : 0, now }) as
      | { state: JobState; queue: string; type: string; attempt: number }
      | undefined;
  }

  // --- timers ----------------------------------------------------------------------------

  /** Scheduled -> pending for jobs whose run_at has come. */
  promoteDue(now: number, limit: number): { id: string; queue: string; type: string; attempt: number }[] {
    return this.s.promoteDue.all({ now, limit }) as { id: string; queue: string; type: string; attempt: number }[];
  }

  nextRunAt(): number | undefined {
    return (this.s.nextRunAt.get() as { at: number | null }).at ?? undefined;
  }

  expiredLeases(now: number, limit: number): { id: string; lease_id: string }[] {
    return this.s.expiredLeases.all(now, limit) as { id: string; lease_id: string }[];
  }

  nextLeaseExpiry(): number | undefined {
    return (this.s.nextLeaseExpiry.get() as { at: number | null }).at ?? undefined;
  }

  activeLeases(): { id: string; lease_id: string }[] {
    return this.s.activeLeases.all() as { id: string; lease_id: string }[];
  }

  // --- admin -----------------------------------------------------------------------------

  /** Newest first; `beforeSeq` is the keyset cursor. */
  list(filter: JobFilter, limit: number, beforeSeq?: number): JobRow[] {
    const where: string[] = [];
    const args: unknown[] = [];
    if (filter.queue) (where.push('queue = ?'), args.push(filter.queue));
    if (filter.state) (where.push('state = ?'), args.push(filter.state));
    if (filter.type) (where.push('type = ?'), args.push(filter.type));
    if (filter.groupKey) (where.push('group_key = ?'), args.push(filter.groupKey));
    if (beforeSeq !== undefined) (where.push('seq < ?'), args.push(beforeSeq));
    const sql = `SELECT * FROM jobs ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY seq DESC LIMIT ?`;
    let stmt = this.listStatements.get(sql);
    if (!stmt) this.listStatements.set(sql, (stmt = this.db.prepare(sql)));
    return stmt.all(...args, limit) as JobRow[];
  }

  countsByQueueAndState(): { queue: string; state: JobState; n: number }[] {
    return this.s.countsByQueueAndState.all() as { queue: string; state: JobState; n: number }[];
  }

  countsForQueue(queue: string): { state: JobState; n: number }[] {
    return this.s.countsForQueue.all(queue) as { state: JobState; n: number }[];
  }

  /** Dead -> pending with attempts reset. Jobs whose dedup key is now held by another
   * unfinished job are skipped (OR IGNORE) rather than breaking the dedup guarantee. */
  replayDead(selection: DeadLetterSelection, now: number): { id: string; queue: string; type: string }[] {
    const { sql, args } = this.deadLetterWhere(selection);
    return this.deadLetterStatement(
      `UPDATE OR IGNORE jobs SET state = 'pending', attempt = 0, run_at = ?, finished_at = NULL, updated_at = ?
       WHERE ${sql} RETURNING id, queue, type`,
    ).all(now, now, ...args) as { id: string; queue: string; type: string }[];
  }

  purgeDead(selection: DeadLetterSelection): number {
    const { sql, args } = this.deadLetterWhere(selection);
    return this.deadLetterStatement(`DELETE FROM jobs WHERE ${sql}`).run(...args).changes;
  }

  private deadLetterWhere(selection: DeadLetterSelection): { sql: string; args: unknown[] } {
    const where = [`state = 'dead'`];
    const args: unknown[] = [];
    if (selection.ids && selection.ids.length > 0) (where.push('id IN (SELECT value FROM json_each(?))'), args.push(JSON.stringify(selection.ids)));
    if (selection.queue) (where.push('queue = ?'), args.push(selection.queue));
    if (selection.type) (where.push('type = ?'), args.push(selection.type));
    if (selection.deadBefore !== undefined) (where.push('finished_at <= ?'), args.push(selection.deadBefore));
    return { sql: where.join(' AND '), args };
  }

  private deadLetterStatement(sql: string): Statement {
    let stmt = this.deadLetterStatements.get(sql);
    if (!stmt) this.deadLetterStatements.set(sql, (stmt = this.db.prepare(sql)));
    return stmt;
  }

  // --- queues ----------------------------------------------------------------------------

  listQueues(): QueueRow[] {
    return this.s.listQueues.all() as QueueRow[];
  }

  getQueue(name: string): QueueRow | undefined {
    return this.s.getQueue.get(name) as QueueRow | undefined;
  }

  ensureQueue(name: string, now: number): void {
    this.s.ensureQueue.run(name, now);
  }

  setQueuePaused(name: string, paused: boolean): void {
    this.s.setQueuePaused.run(paused ? 1 : 0, name);
  }

  updateQueueDefaults(name: string, changes: { maxAttempts: number | null; retry: string | null; leaseTimeoutMs: number | null }): void {
    this.s.updateQueueDefaults.run({ name, ...changes });
  }
}
