import type { NewRun, ScheduleRow, UnfinishedRunJob } from '../types.js';
import { queryRows, quoteIdent, type PgQueryable } from './sql.js';

/**
 * The write side of cron schedules on PostgreSQL (docs/design/postgres-store.md, 2 "Cron" and
 * 3.8): the statements of SQLite's ScheduleStore (src/store/schedule-store.ts) with the same row
 * changes and results for the same rows, as async functions over a connection the caller owns.
 * The schedule reads (get, list, runs) are PostgresReads' (pg-reads.ts). Not wired into the
 * broker yet (step 5).
 *
 * Exactly once across brokers (3.8): every broker's scheduler claims due schedules with
 * `claimDue` (FOR UPDATE SKIP LOCKED, so brokers do not fire the same schedule side by side)
 * and, per schedule, inside a savepoint: inserts the job, `insertRun`, `advanceSchedule`. The
 * row lock only saves duplicate work. What makes a fire time exact is the partial UNIQUE index
 * schedule_runs_fire (schedule_id, fire_time) WHERE kind = 'scheduled' of migration 3: a second
 * scheduled run for a fire time fails (`isDuplicateFire`), and rolling back to the savepoint
 * takes that broker's job with it, whatever it believed about next_fire_at or however long it
 * held (or lost) a lock.
 *
 * One difference from SQLite the caller must know: on SQLite a failed statement leaves the
 * transaction usable; on PostgreSQL any error aborts the whole transaction unless it happened
 * inside a savepoint that is then rolled back to. The Scheduler already fires each fire time in
 * its own savepoint (nested `db.transaction`), so its shape carries over unchanged.
 */

export interface PgScheduleOptions {
  /** Qualifies the tables; default: the connection's search_path. */
  schema?: string;
}

/** SQLSTATE unique_violation. */
const UNIQUE_VIOLATION = '23505';
/** The constraint names of migration 3 (PostgreSQL names a column's UNIQUE `<table>_<column>_key`). */
const FIRE_CONSTRAINT = 'schedule_runs_fire';
const NAME_CONSTRAINT = 'schedules_name_key';

/** The fields of node-postgres' DatabaseError read here (duck-typed: a wrapped or re-thrown error keeps them). */
interface PgErrorFields {
  code?: unknown;
  constraint?: unknown;
}

function isUniqueViolationOf(error: unknown, constraint: string): boolean {
  if (typeof error !== 'object' || error === null) return false;
  const e = error as PgErrorFields;
  return e.code === UNIQUE_VIOLATION && e.constraint === constraint;
}

/**
 * True for the error a second scheduled run of the same (schedule, fire time) raises: the
 * fire time already has its run (and its job), committed or held by another open transaction
 * that then committed. PostgreSQL's counterpart of schedule-store.ts' isDuplicateFire.
 */
export function isDuplicateFire(error: unknown): boolean {
  return isUniqueViolationOf(error, FIRE_CONSTRAINT);
}

/** True for a duplicate schedule name (schedule-store.ts' isDuplicateName). */
export function isDuplicateName(error: unknown): boolean {
  return isUniqueViolationOf(error, NAME_CONSTRAINT);
}

function prefixOf(options: PgScheduleOptions): string {
  return options.schema === undefined ? '' : `${quoteIdent(options.schema)}.`;
}

const SCHEDULE_COLUMNS = [
  'id', 'name', 'cron', 'timezone', 'template', 'paused', 'start_at', 'end_at', 'catch_up', 'catch_up_limit',
  'overlap', 'history_limit', 'next_fire_at', 'last_fire_at', 'created_at', 'updated_at',
] as const satisfies readonly (keyof ScheduleRow)[];

// --- management (ScheduleManager: create/upsert/update/setPaused/delete) ---------------------

export async function insertSchedule(db: PgQueryable, row: ScheduleRow, options: PgScheduleOptions = {}): Promise<void> {
  const placeholders = SCHEDULE_COLUMNS.map((_, i) => `$${i + 1}`).join(', ');
  await db.query(
    `INSERT INTO ${prefixOf(options)}schedules (${SCHEDULE_COLUMNS.join(', ')}) VALUES (${placeholders})`,
    SCHEDULE_COLUMNS.map((c) => row[c]),
  );
}

/** Replaces the definition (not paused, last_fire_at or created_at), as ScheduleStore.update. */
export async function updateSchedule(db: PgQueryable, row: ScheduleRow, options: PgScheduleOptions = {}): Promise<void> {
  await db.query(
    `UPDATE ${prefixOf(options)}schedules SET name = $2, cron = $3, timezone = $4, template = $5, start_at = $6, end_at = $7,
            catch_up = $8, catch_up_limit = $9, overlap = $10, history_limit = $11, next_fire_at = $12, updated_at = $13
      WHERE id = $1`,
    [row.id, row.name, row.cron, row.timezone, row.template, row.start_at, row.end_at, row.catch_up, row.catch_up_limit, row.overlap,
      row.history_limit, row.next_fire_at, row.updated_at],
  );
}

/** Deletes the schedule and (ON DELETE CASCADE) its run history; its jobs stay. False when there was none. */
export async function deleteSchedule(db: PgQueryable, id: string, options: PgScheduleOptions = {}): Promise<boolean> {
  const result = await db.query(`DELETE FROM ${prefixOf(options)}schedules WHERE id = $1`, [id]);
  return result.rowCount === 1;
}

export async function setSchedulePaused(
  db: PgQueryable,
  id: string,
  paused: boolean,
  nextFireAt: number | null,
  now: number,
  options: PgScheduleOptions = {},
): Promise<void> {
  await db.query(`UPDATE ${prefixOf(options)}schedules SET paused = $2, next_fire_at = $3, updated_at = $4 WHERE id = $1`, [
    id,
    paused ? 1 : 0,
    nextFireAt,
    now,
  ]);
}

// --- the fire path (Scheduler.wake / fireDue, design 3.8) ---------------------------------

/** The earliest fire time of an active schedule (min over the partial index schedules_due), or undefined. */
export async function nextDue(db: PgQueryable, options: PgScheduleOptions = {}): Promise<number | undefined> {
  const [row] = await queryRows<{ t: number | null }>(
    db,
    `SELECT min(next_fire_at) AS t FROM ${prefixOf(options)}schedules WHERE paused = 0 AND next_fire_at IS NOT NULL`,
  );
  return row?.t ?? undefined;
}

/**
 * Up to `limit` active schedules due at `now`, earliest first, each row locked FOR UPDATE until
 * the caller's transaction ends; rows another broker holds are skipped, not waited for (SKIP
 * LOCKED: the lock sits below the LIMIT, so skipped rows do not use up the limit). MUST run
 * inside the caller's transaction: in autocommit the locks end with the statement.
 *
 * Under READ COMMITTED a row another broker advanced and committed after this statement's
 * snapshot is re-read at lock time and dropped unless still due, so a claimed row's
 * next_fire_at is current while the lock is held. Ties on next_fire_at are ordered by id, the
 * order SQLite's `due` gets from schedules_due (a WITHOUT ROWID table's index entries end in
 * its primary key); PostgreSQL's index would give heap order.
 */
export async function claimDue(db: PgQueryable, now: number, limit: number, options: PgScheduleOptions = {}): Promise<ScheduleRow[]> {
  return queryRows<ScheduleRow>(
    db,
    `SELECT * FROM ${prefixOf(options)}schedules
      WHERE paused = 0 AND next_fire_at IS NOT NULL AND next_fire_at <= $1
      ORDER BY next_fire_at, id
      LIMIT $2
      FOR UPDATE SKIP LOCKED`,
    [now, limit],
  );
}

/**
 * Moves the schedule to its next fire time, only from the one the caller read (`expected`; null
 * matches null, as SQLite's IS): false when the schedule is gone or another broker advanced,
 * paused or redefined it meanwhile. `lastFire` null keeps last_fire_at.
 */
export async function advanceSchedule(
  db: PgQueryable,
  id: string,
  expected: number | null,
  next: number | null,
  lastFire: number | null,
  now: number,
  options: PgScheduleOptions = {},
): Promise<boolean> {
  const result = await db.query(
    `UPDATE ${prefixOf(options)}schedules SET next_fire_at = $3, last_fire_at = coalesce($4::bigint, last_fire_at), updated_at = $5
      WHERE id = $1 AND next_fire_at IS NOT DISTINCT FROM $2::bigint`,
    [id, expected, next, lastFire, now],
  );
  return result.rowCount === 1;
}

/**
 * Records a run and returns its seq. A second 'scheduled' run for the same fire time fails with
 * a unique violation (`isDuplicateFire`); if another open transaction holds that fire time's
 * run, this waits for it and then fails (it committed) or succeeds (it rolled back). Run it
 * inside a savepoint: the error aborts the transaction otherwise (see the module comment).
 * Run seqs are an identity: never reused, where SQLite's max(seq) + 1 reuses the seq of a
 * deleted newest run, and a failed insert (a duplicate fire, a rolled-back savepoint) uses one
 * up, so seqs have gaps. They only order runs (keyset pages, newest first).
 */
export async function insertRun(db: PgQueryable, run: NewRun, now: number, options: PgScheduleOptions = {}): Promise<number> {
  const [row] = await queryRows<{ seq: number }>(
    db,
    `INSERT INTO ${prefixOf(options)}schedule_runs (schedule_id, fire_time, kind, outcome, reason, job_seq, job_created_at, created_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING seq`,
    [run.scheduleId, run.fireTime, run.kind, run.outcome, run.reason, run.jobSeq, run.jobCreatedAt, now],
  );
  return row!.seq;
}

/** The schedule's runs whose job is still unfinished (scheduled, pending, active), oldest run first: the overlap policy's input. */
export async function unfinishedJobs(db: PgQueryable, scheduleId: string, options: PgScheduleOptions = {}): Promise<UnfinishedRunJob[]> {
  const q = prefixOf(options);
  return queryRows<UnfinishedRunJob>(
    db,
    `SELECT r.job_seq, r.job_created_at, r.fire_time, j.state FROM ${q}schedule_runs r
       JOIN ${q}jobs j ON j.seq = r.job_seq AND j.created_at = r.job_created_at
      WHERE r.schedule_id = $1 AND r.job_seq IS NOT NULL AND j.state IN ('scheduled','pending','active')
      ORDER BY r.seq`,
    [scheduleId],
  );
}

/**
 * Keeps the newest `keep` runs of a schedule (by seq), as ScheduleStore.trimRuns: with `keep`
 * or fewer runs the subquery is empty, `seq < NULL` matches nothing. keep < 1 keeps one run,
 * as on SQLite, which reads a negative OFFSET as none (PostgreSQL refuses one; history_limit
 * is >= 1 by its CHECK anyway).
 */
export async function trimRuns(db: PgQueryable, scheduleId: string, keep: number, options: PgScheduleOptions = {}): Promise<void> {
  const q = prefixOf(options);
  await db.query(
    `DELETE FROM ${q}schedule_runs WHERE schedule_id = $1 AND seq <
       (SELECT seq FROM ${q}schedule_runs WHERE schedule_id = $1 ORDER BY seq DESC LIMIT 1 OFFSET greatest($2::bigint - 1, 0))`,
    [scheduleId, keep],
  );
}
