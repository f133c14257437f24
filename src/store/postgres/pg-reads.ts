import { ALL_JOB_STATES, type JobState } from '../../domain/job-state.js';
import { formatJobId, parseJobId, type JobKey } from '../../domain/job-id.js';
import type { StoreReads } from '../store-reads.js';
import type {
  DeadLetterGroup,
  JobFilter,
  JobRow,
  PendingHead,
  QueueStateCount,
  RetryingJobRef,
  RunRow,
  ScheduleRow,
} from '../types.js';
import { queryRows, quoteIdent, type PgQueryable } from './sql.js';

/**
 * StoreReads over the PostgreSQL schema of ./migrations.ts: the same statements as the SQLite
 * stores (job-store.ts, schedule-store.ts), with the same results for the same rows. Where
 * SQLite's order comes from a table's key order rather than an ORDER BY (counts, pending
 * heads), the order is written out here, since PostgreSQL promises none without one. Every
 * value is a bound parameter; only the schema name (an identifier) is written into the SQL.
 */
export class PostgresReads implements StoreReads {
  /** `schema.` or nothing (the connection's search_path decides). */
  private readonly q: string;

  constructor(
    private readonly db: PgQueryable,
    options: { schema?: string } = {},
  ) {
    this.q = options.schema === undefined ? '' : `${quoteIdent(options.schema)}.`;
  }

  // --- jobs ----------------------------------------------------------------------------

  async getJob(id: string): Promise<JobRow | undefined> {
    const key = storedKey(id);
    if (!key) return undefined;
    const [row] = await queryRows<JobRow>(this.db, `SELECT * FROM ${this.q}jobs WHERE seq = $1 AND created_at = $2`, [key.seq, key.createdAt]);
    if (row) row.id = id;
    return row;
  }

  async stateAndLease(id: string): Promise<Pick<JobRow, 'state' | 'lease_id'> | undefined> {
    const key = storedKey(id);
    if (!key) return undefined;
    const [row] = await queryRows<Pick<JobRow, 'state' | 'lease_id'>>(
      this.db,
      `SELECT state, lease_id FROM ${this.q}jobs WHERE seq = $1 AND created_at = $2`,
      [key.seq, key.createdAt],
    );
    return row;
  }

  async listJobs(filter: JobFilter, limit: number, beforeSeq?: number): Promise<JobRow[]> {
    const where: string[] = [];
    const args: unknown[] = [];
    const add = (sql: string, value: unknown) => {
      args.push(value);
      where.push(sql.replace('?', `$${args.length}`));
    };
    // Empty strings mean "no filter", as in JobStore.list.
    if (filter.queue) add('queue = ?', filter.queue);
    if (filter.state) add('state = ?', knownState(filter.state));
    if (filter.type) add('type = ?', filter.type);
    if (filter.groupKey) add('group_key = ?', filter.groupKey);
    if (beforeSeq !== undefined) add('seq < ?', beforeSeq);
    args.push(limit);
    const rows = await queryRows<JobRow>(
      this.db,
      `SELECT * FROM ${this.q}jobs ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY seq DESC LIMIT $${args.length}`,
      args,
    );
    for (const row of rows) row.id = formatJobId(row.seq, row.created_at);
    return rows;
  }

  // --- queues --------------------------------------------------------------------------

  async countsByQueueAndState(): Promise<QueueStateCount[]> {
    // SQLite returns these in its primary-key order (queue, state).
    return queryRows<QueueStateCount>(this.db, `SELECT queue, state, n FROM ${this.q}queue_counts WHERE n > 0 ORDER BY queue, state`);
  }

  async countsForQueue(queue: string): Promise<{ state: JobState; n: number }[]> {
    return queryRows(this.db, `SELECT state, n FROM ${this.q}queue_counts WHERE queue = $1 AND n > 0 ORDER BY state`, [queue]);
  }

  async oldestPendingRunAt(queue: string): Promise<number | undefined> {
    // min over the four levels' heads of jobs_ready (the head of a level is its oldest job), as
    // SQLite's four seeks; one statement here since each costs a round trip.
    const [row] = await queryRows<{ at: number | null }>(
      this.db,
      `SELECT min(h.run_at) AS at FROM generate_series(1, 4) AS p(priority),
         LATERAL (SELECT run_at FROM ${this.q}jobs WHERE queue = $1 AND state = 'pending' AND priority = p.priority ORDER BY seq LIMIT 1) AS h`,
      [queue],
    );
    return row?.at ?? undefined;
  }

  async pendingHeads(): Promise<PendingHead[]> {
    // Queues in name order, as SQLite's scan of its queues table returns them.
    return queryRows<PendingHead>(
      this.db,
      `SELECT q.name AS queue, h.run_at FROM ${this.q}queues q,
         LATERAL (SELECT run_at FROM ${this.q}jobs WHERE queue = q.name AND state = 'pending' ORDER BY priority DESC, seq LIMIT 1) AS h
       ORDER BY q.name`,
    );
  }

  async deadLetterSummary(queue: string | undefined, limit: number): Promise<DeadLetterGroup[]> {
    // Groups tied on (n, last_at) come in no defined order on SQLite; here by message, so the
    // answer is at least stable.
    const args: unknown[] = queue ? [queue, limit] : [limit];
    return queryRows<DeadLetterGroup>(
      this.db,
      `SELECT coalesce(last_error, '') AS message, count(*) AS n, max(finished_at) AS last_at FROM ${this.q}jobs
       WHERE state = 'dead'${queue ? ' AND queue = $1' : ''} GROUP BY 1 ORDER BY n DESC, last_at DESC, message LIMIT $${args.length}`,
      args,
    );
  }

  // --- explain ---------------------------------------------------------------------------

  async readyAhead(queue: string, priority: number, seq: number, cap: number): Promise<number> {
    const [row] = await queryRows<{ n: number }>(
      this.db,
      `SELECT count(*) AS n FROM (SELECT 1 FROM ${this.q}jobs WHERE queue = $1 AND state = 'pending'
         AND (priority > $2 OR (priority = $2 AND seq < $3)) LIMIT $4) AS ahead`,
      [queue, priority, seq, cap],
    );
    return row!.n;
  }

  async groupAhead(queue: string, groupKey: string, priority: number, seq: number, cap: number): Promise<number> {
    const [row] = await queryRows<{ n: number }>(
      this.db,
      `SELECT count(*) AS n FROM (SELECT 1 FROM ${this.q}jobs WHERE queue = $1 AND state = 'pending' AND group_key = $2
         AND (priority > $3 OR (priority = $3 AND seq < $4)) LIMIT $5) AS ahead`,
      [queue, groupKey, priority, seq, cap],
    );
    return row!.n;
  }

  async retryingInGroup(queue: string, groupKey: string): Promise<RetryingJobRef | undefined> {
    const [row] = await queryRows<RetryingJobRef>(
      this.db,
      `SELECT seq, created_at, run_at FROM ${this.q}jobs
       WHERE state = 'scheduled' AND queue = $1 AND group_key = $2 AND attempt > 0 ORDER BY seq LIMIT 1`,
      [queue, groupKey],
    );
    return row;
  }

  // --- schedules -------------------------------------------------------------------------

  async getSchedule(id: string): Promise<ScheduleRow | undefined> {
    const [row] = await queryRows<ScheduleRow>(this.db, `SELECT * FROM ${this.q}schedules WHERE id = $1`, [id]);
    return row;
  }

  async getScheduleByName(name: string): Promise<ScheduleRow | undefined> {
    const [row] = await queryRows<ScheduleRow>(this.db, `SELECT * FROM ${this.q}schedules WHERE name = $1`, [name]);
    return row;
  }

  async listSchedules(limit: number, afterName?: string): Promise<ScheduleRow[]> {
    return afterName === undefined
      ? queryRows<ScheduleRow>(this.db, `SELECT * FROM ${this.q}schedules ORDER BY name LIMIT $1`, [limit])
      : queryRows<ScheduleRow>(this.db, `SELECT * FROM ${this.q}schedules WHERE name > $1 ORDER BY name LIMIT $2`, [afterName, limit]);
  }

  async listScheduleRuns(scheduleId: string, limit: number, beforeSeq?: number): Promise<RunRow[]> {
    return beforeSeq === undefined
      ? queryRows<RunRow>(this.db, `${this.runs()} WHERE r.schedule_id = $1 ORDER BY r.seq DESC LIMIT $2`, [scheduleId, limit])
      : queryRows<RunRow>(this.db, `${this.runs()} WHERE r.schedule_id = $1 AND r.seq < $2 ORDER BY r.seq DESC LIMIT $3`, [
          scheduleId,
          beforeSeq,
          limit,
        ]);
  }

  async getScheduleRun(seq: number): Promise<RunRow | undefined> {
    // A fractional or huge number names no run on SQLite; as a bigint parameter it would be an error.
    if (!Number.isSafeInteger(seq)) return undefined;
    const [row] = await queryRows<RunRow>(this.db, `${this.runs()} WHERE r.seq = $1`, [seq]);
    return row;
  }

  /** A run with its job as it is now (LEFT JOIN: the job may be skipped or gone). */
  private runs(): string {
    return `SELECT r.seq, r.schedule_id, r.fire_time, r.kind, r.outcome, r.reason, r.job_seq, r.job_created_at, r.created_at,
      j.state AS job_state, j.attempt AS job_attempt, j.started_at AS job_started_at, j.finished_at AS job_finished_at,
      j.last_error AS job_last_error
      FROM ${this.q}schedule_runs r LEFT JOIN ${this.q}jobs j ON j.seq = r.job_seq AND j.created_at = r.job_created_at`;
  }

  // --- storage ---------------------------------------------------------------------------

  async storeSizes(): Promise<{ db: number; wal: number }> {
    // A server database: its size as `db`; its WAL is the server's, shared by every database.
    const [row] = await queryRows<{ db: number }>(this.db, 'SELECT pg_database_size(current_database()) AS db');
    return { db: row!.db, wal: 0 };
  }
}

/**
 * The key of an id, or undefined when no stored row can have it. Ids may carry seqs up to
 * 2^62 (domain/job-id.ts), which a JS number holds only rounded; the store's seqs are below
 * 2^53, so such an id is unknown (as on SQLite) without asking the database about a rounded
 * number.
 */
function storedKey(id: string): JobKey | undefined {
  const key = parseJobId(id);
  return key && Number.isSafeInteger(key.seq) ? key : undefined;
}

/** JobStore.list refuses an unknown state rather than matching nothing; so does this. */
function knownState(state: JobState): JobState {
  if (!ALL_JOB_STATES.includes(state)) throw new Error(`unknown job state ${String(state)}`);
  return state;
}
