import { parseJobId, formatJobId } from '../../domain/job-id.js';
import type { JobState } from '../../domain/job-state.js';
import { INHERITS_LEASE_TIMEOUT, INHERITS_MAX_ATTEMPTS, type DeadLetterSelection } from '../types.js';
import { appendHistory } from './pg-history.js';
import { queryRows, schemaPrefix, STORE_TYPES, type PgQueryable } from './sql.js';

/**
 * The rare writes of JobStore (src/store/job-store.ts) on PostgreSQL: queue admin, dead
 * letters, retention batches, and the two admission reads of the counts tables
 * (docs/design/postgres-store.md, 2 "Admin and metrics" and "Retention / history", 3.2's
 * `transaction()` writes). Async functions over a connection the caller owns, each with the
 * row changes and results of the JobStore method of the same name for the same rows; several
 * run inside one caller's transaction (UpdateQueue, DeleteQueue), as on SQLite inside a flush.
 * Not wired into the broker yet (step 5).
 *
 * Times: every time here is bound, never the database's now(). They are broker decisions, not
 * lease times (3.7: only claim, extend and expiry use the database clock): a queue's
 * created_at, a replayed job's run_at (which its updated_at and history entry repeat, as the
 * one `now` SQLite binds to all three), and retention's horizons, which the caller computed.
 *
 * Two differences from SQLite, both from PostgreSQL having no `UPDATE OR IGNORE` (3.3):
 * - replayDead: SQLite skips a dead job whose pending copy would break jobs_dedup (its key is
 *   held by an unfinished job, or by a dead job of the same key replayed earlier in the same
 *   statement). Here a NOT EXISTS guard leaves out keys an unfinished job holds, and DISTINCT
 *   ON (queue, dedup_key) keeps one dead job per key, the lowest seq (the one SQLite's scan
 *   meets first). Against jobs committed before the statement this is the same result; a job
 *   inserted with the key by a transaction still open (another broker) is not seen by the
 *   guard, and the unique index then fails the statement (SQLSTATE 23505 on jobs_dedup,
 *   `isReplayConflict`) instead of skipping the row: the caller's transaction is aborted and
 *   the replay can be run again.
 * - deleteQueue's preceding count (`lockQueueCounts`) locks the queue's counts rows, so an
 *   enqueue of another broker still open when it reads is waited for and counted (SQLite has
 *   one writer). Only rows that exist are locked: an open enqueue whose state has no counts row
 *   for the queue yet (say the first scheduled job of a queue with only pending ones) is not
 *   seen; nor is a broker that still believes in the queue after it is deleted kept from
 *   inserting into it. Both are the several-brokers questions of steps 6-7, not this module's.
 */

interface Schema {
  /** Qualifies the tables; default: the connection's search_path. */
  schema?: string;
}

const UNFINISHED = `('scheduled','pending','active')`;

async function changed(db: PgQueryable, text: string, values: unknown[]): Promise<number> {
  const result = await db.query({ text, values, types: STORE_TYPES });
  return result.rowCount ?? 0;
}

// --- queues ------------------------------------------------------------------------------

/** JobStore.ensureQueue: the queue's row, created at `now` when missing. */
export async function ensureQueue(db: PgQueryable, name: string, now: number, options: Schema = {}): Promise<void> {
  await db.query(`INSERT INTO ${schemaPrefix(options.schema)}queues (name, created_at) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING`, [name, now]);
}

export async function setQueuePaused(db: PgQueryable, name: string, paused: boolean, options: Schema = {}): Promise<void> {
  await db.query(`UPDATE ${schemaPrefix(options.schema)}queues SET paused = $1 WHERE name = $2`, [paused ? 1 : 0, name]);
}

/** JobStore.setQueueRetention: undefined keeps the current value; 0 is stored (retention reads it as no limit). */
export async function setQueueRetention(
  db: PgQueryable,
  name: string,
  maxAgeMs: number | undefined,
  maxCount: number | undefined,
  options: Schema = {},
): Promise<void> {
  await db.query(
    `UPDATE ${schemaPrefix(options.schema)}queues SET retention_max_age_ms = coalesce($2::bigint, retention_max_age_ms),
            retention_max_count = coalesce($3::bigint, retention_max_count) WHERE name = $1`,
    [name, maxAgeMs ?? null, maxCount ?? null],
  );
}

export interface QueueDefaultsChange {
  maxAttempts: number | null;
  retry: string | null;
  leaseTimeoutMs: number | null;
  maxQueued?: number | null;
  maxQueuedPerGroup?: number | null;
}

/**
 * JobStore.updateQueueDefaults: null (or absent) keeps a value; for the admission caps 0 clears
 * it (NULL: the broker's default applies). maxAttempts, retry and leaseTimeoutMs have no clear.
 */
export async function updateQueueDefaults(db: PgQueryable, name: string, changes: QueueDefaultsChange, options: Schema = {}): Promise<void> {
  await db.query(
    `UPDATE ${schemaPrefix(options.schema)}queues SET max_attempts = coalesce($2::integer, max_attempts),
            retry = coalesce($3::text, retry), lease_timeout_ms = coalesce($4::integer, lease_timeout_ms),
            max_queued = CASE WHEN $5::bigint IS NULL THEN max_queued WHEN $5::bigint = 0 THEN NULL ELSE $5::bigint END,
            max_queued_per_group = CASE WHEN $6::bigint IS NULL THEN max_queued_per_group
              WHEN $6::bigint = 0 THEN NULL ELSE $6::bigint END
      WHERE name = $1`,
    [name, changes.maxAttempts, changes.retry, changes.leaseTimeoutMs, changes.maxQueued ?? null, changes.maxQueuedPerGroup ?? null],
  );
}

/** LimitQueries.setQueueLimits: the limits JSON replaces the previous one (null: none). */
export async function setQueueLimits(db: PgQueryable, queue: string, limits: string | null, options: Schema = {}): Promise<void> {
  await db.query(`UPDATE ${schemaPrefix(options.schema)}queues SET limits = $1 WHERE name = $2`, [limits, queue]);
}

/**
 * LimitQueries.assignDefaultGroup: a queue gains a group policy, so its unfinished (and dead,
 * replayable) jobs without a key join the group ''. Returns the jobs changed.
 */
export async function assignDefaultGroup(db: PgQueryable, queue: string, options: Schema = {}): Promise<number> {
  return changed(
    db,
    `UPDATE ${schemaPrefix(options.schema)}jobs SET group_key = '' WHERE queue = $1 AND group_key IS NULL
      AND state IN ('scheduled','pending','active','dead')`,
    [queue],
  );
}

/**
 * JobStore.applyQueueDefaults: the queue's unfinished jobs whose value came from the queue
 * default (the `inherits` bits) take the new one. Two statements, as SQLite's, so a job that
 * inherits both and changes in both counts twice in the result, as there.
 */
export async function applyQueueDefaults(
  db: PgQueryable,
  queue: string,
  defaults: { maxAttempts?: number; leaseTimeoutMs?: number },
  options: Schema = {},
): Promise<number> {
  const q = schemaPrefix(options.schema);
  let n = 0;
  if (defaults.maxAttempts !== undefined) {
    n += await changed(
      db,
      `UPDATE ${q}jobs SET max_attempts = $2 WHERE queue = $1 AND state IN ${UNFINISHED}
        AND (inherits & ${INHERITS_MAX_ATTEMPTS}) != 0 AND max_attempts != $2`,
      [queue, defaults.maxAttempts],
    );
  }
  if (defaults.leaseTimeoutMs !== undefined) {
    n += await changed(
      db,
      `UPDATE ${q}jobs SET lease_timeout_ms = $2 WHERE queue = $1 AND state IN ${UNFINISHED}
        AND (inherits & ${INHERITS_LEASE_TIMEOUT}) != 0 AND lease_timeout_ms != $2`,
      [queue, defaults.leaseTimeoutMs],
    );
  }
  return n;
}

/**
 * JobStore.countsForQueue as DeleteQueue reads it, inside the caller's transaction: the
 * queue's nonzero counts by state (state order), with its counts rows locked (FOR UPDATE, in
 * key order as the count triggers take them) so that an enqueue of another broker either
 * committed before (and is counted) or waits for this transaction. A state whose counts row
 * did not exist yet is not locked: see the module's note.
 */
export async function lockQueueCounts(db: PgQueryable, queue: string, options: Schema = {}): Promise<{ state: JobState; n: number }[]> {
  const rows = await queryRows<{ state: JobState; n: number }>(
    db,
    `SELECT state, n FROM ${schemaPrefix(options.schema)}queue_counts WHERE queue = $1 ORDER BY state FOR UPDATE`,
    [queue],
  );
  return rows.filter((r) => r.n > 0);
}

/**
 * JobStore.deleteQueue, inside the caller's transaction, after it checked (lockQueueCounts)
 * that only completed and cancelled jobs are left: deletes them, the queue's row and its
 * counts rows. Returns the jobs deleted.
 */
export async function deleteQueue(db: PgQueryable, name: string, options: Schema = {}): Promise<number> {
  const q = schemaPrefix(options.schema);
  const deleted = await changed(db, `DELETE FROM ${q}jobs WHERE queue = $1 AND state IN ('completed', 'cancelled')`, [name]);
  await db.query(`DELETE FROM ${q}queues WHERE name = $1`, [name]);
  await db.query(`DELETE FROM ${q}queue_counts WHERE queue = $1`, [name]);
  return deleted;
}

// --- admission -----------------------------------------------------------------------------

/** JobStore.queuedInQueue: pending + scheduled jobs of a queue, from the counts table. */
export async function queuedInQueue(db: PgQueryable, queue: string, options: Schema = {}): Promise<number> {
  const [row] = await queryRows<{ n: number }>(
    db,
    `SELECT coalesce(sum(n), 0)::bigint AS n FROM ${schemaPrefix(options.schema)}queue_counts WHERE queue = $1 AND state IN ('pending','scheduled')`,
    [queue],
  );
  return row!.n;
}

/** JobStore.queuedInGroup: pending + scheduled jobs of one group key in a queue. */
export async function queuedInGroup(db: PgQueryable, queue: string, groupKey: string, options: Schema = {}): Promise<number> {
  const [row] = await queryRows<{ n: number }>(
    db,
    `SELECT coalesce(max(n), 0)::bigint AS n FROM ${schemaPrefix(options.schema)}group_counts WHERE queue = $1 AND group_key = $2`,
    [queue, groupKey],
  );
  return row!.n;
}

// --- dead letters --------------------------------------------------------------------------

/**
 * JobStore.deadLetterWhere: dead jobs, narrowed by the selection. Ids are [seq, created_at]
 * pairs; ids that do not parse (or whose seq is past 2^53, which no stored row has) match
 * nothing, and a non-empty list of only such ids matches no job at all, as on SQLite.
 * Placeholders from $first on.
 */
function deadLetterWhere(selection: DeadLetterSelection, first: number): { sql: string; args: unknown[] } {
  const where = [`jobs.state = 'dead'`];
  const args: unknown[] = [];
  const next = () => `$${first + args.length}`;
  if (selection.ids && selection.ids.length > 0) {
    const keys = selection.ids.map(parseJobId).filter((k) => k !== undefined && Number.isSafeInteger(k.seq));
    const seqs = next();
    args.push(keys.map((k) => k!.seq));
    const createdAts = next();
    args.push(keys.map((k) => k!.createdAt));
    where.push(`(jobs.seq, jobs.created_at) IN (SELECT * FROM unnest(${seqs}::bigint[], ${createdAts}::bigint[]))`);
  }
  if (selection.queue) (where.push(`jobs.queue = ${next()}`), args.push(selection.queue));
  if (selection.type) (where.push(`jobs.type = ${next()}`), args.push(selection.type));
  if (selection.deadBefore !== undefined) (where.push(`jobs.finished_at <= ${next()}::bigint`), args.push(selection.deadBefore));
  return { sql: where.join(' AND '), args };
}

/**
 * JobStore.replayDead: dead -> pending at `now` with attempts reset, a replay entry in the
 * history. A job whose dedup key an unfinished job holds stays dead, and of several selected
 * dead jobs sharing a key only the lowest seq comes back (see the module's note). Rows in seq
 * order.
 */
export async function replayDead(
  db: PgQueryable,
  selection: DeadLetterSelection,
  now: number,
  options: Schema = {},
): Promise<{ id: string; queue: string; type: string }[]> {
  const q = schemaPrefix(options.schema);
  const { sql, args } = deadLetterWhere(selection, 2);
  const rows = await queryRows<{ seq: number; created_at: number; queue: string; type: string }>(
    db,
    `WITH picked AS (
       SELECT jobs.seq FROM ${q}jobs AS jobs WHERE ${sql} AND jobs.dedup_key IS NULL
       UNION ALL
       SELECT d.seq FROM (
         SELECT DISTINCT ON (jobs.queue, jobs.dedup_key) jobs.seq FROM ${q}jobs AS jobs
          WHERE ${sql} AND jobs.dedup_key IS NOT NULL
            AND NOT EXISTS (SELECT 1 FROM ${q}jobs AS h WHERE h.queue = jobs.queue AND h.dedup_key = jobs.dedup_key AND h.state IN ${UNFINISHED})
          ORDER BY jobs.queue, jobs.dedup_key, jobs.seq) AS d
     ), replayed AS (
       UPDATE ${q}jobs AS jobs SET state = 'pending', attempt = 0, run_at = $1::bigint, finished_at = NULL, updated_at = $1::bigint,
              ${appendHistory(`'["r",' || $1::bigint::text || ']'`)}
         FROM picked WHERE jobs.seq = picked.seq AND jobs.state = 'dead'
       RETURNING jobs.seq, jobs.created_at, jobs.queue, jobs.type
     )
     SELECT * FROM replayed ORDER BY seq`,
    [now, ...args],
  );
  return rows.map((r) => ({ id: formatJobId(r.seq, r.created_at), queue: r.queue, type: r.type }));
}

/** True for the error replayDead raises when another open transaction inserted a job holding a replayed job's dedup key. */
export function isReplayConflict(error: unknown): boolean {
  if (typeof error !== 'object' || error === null) return false;
  const e = error as { code?: unknown; constraint?: unknown };
  return e.code === '23505' && e.constraint === 'jobs_dedup';
}

/** JobStore.purgeDead: deletes the selected dead jobs; returns how many. */
export async function purgeDead(db: PgQueryable, selection: DeadLetterSelection, options: Schema = {}): Promise<number> {
  const { sql, args } = deadLetterWhere(selection, 1);
  return changed(db, `DELETE FROM ${schemaPrefix(options.schema)}jobs AS jobs WHERE ${sql}`, args);
}

// --- retention -----------------------------------------------------------------------------

/** JobStore.retentionWindow: up to `limit` jobs after `afterSeq`, oldest first: [seq, queue, state, finished_at, created_at]. */
export async function retentionWindow(
  db: PgQueryable,
  afterSeq: number,
  limit: number,
  options: Schema = {},
): Promise<[number, string, JobState, number | null, number][]> {
  const rows = await queryRows<{ seq: number; queue: string; state: JobState; finished_at: number | null; created_at: number }>(
    db,
    `SELECT seq, queue, state, finished_at, created_at FROM ${schemaPrefix(options.schema)}jobs WHERE seq > $1 ORDER BY seq LIMIT $2`,
    [afterSeq, limit],
  );
  return rows.map((r) => [r.seq, r.queue, r.state, r.finished_at, r.created_at]);
}

/** JobStore.deleteJobs: deletes jobs by seq (history goes with the row; the count triggers adjust); no statement for none. */
export async function deleteJobs(db: PgQueryable, seqs: readonly number[], options: Schema = {}): Promise<number> {
  if (seqs.length === 0) return 0;
  return changed(db, `DELETE FROM ${schemaPrefix(options.schema)}jobs WHERE seq = ANY($1::bigint[])`, [seqs]);
}
