import { JobState } from '../../domain/job-state.js';
import { formatJobId, parseJobId, type JobKey } from '../../domain/job-id.js';
import type { ExpiredLease, ExtendCommand, FailCommand, PromotedJob, ReleaseCommand } from '../flush-batch.js';
import type { JobRow, NewJob, ReleasedJob } from '../types.js';
import { appendHistory, appendJsonArray, attemptEntry, jsonText } from './pg-history.js';
import {
  DB_TRANSACTION_NOW_MS,
  queryRows,
  schemaPrefix,
  storableKey,
  storableText,
  storableTextOrNull,
  type PgQueryable,
} from './sql.js';

/**
 * The hot-path writes of the PostgreSQL store besides the claim and the ack (pg-claims.ts):
 * enqueue with dedup, nack, extend, release, promotion of due jobs, lease expiry, cancel
 * (docs/design/postgres-store.md, 3.2, 3.6, 3.7). Each is one set-based statement with bound
 * parameters (enqueue: one more SELECT when a dedup key was taken), none fails on stale input
 * (its guards match zero rows), so all fit a pipelined flush. Same row changes and results as
 * JobStore's statements (src/store/job-store.ts) for the same inputs, with two rules of this
 * store: statement times (updated_at, finished_at, history, lease deadlines) are the database's
 * now() (the transaction's start, one time per flush as SQLite's @now); values the broker
 * decided (created_at, run_at, an error's `at`) are taken as given. Text from outside goes
 * through sql.ts's U+0000 rule. Not wired into the broker yet (step 5).
 */

const DB_NOW_MS = DB_TRANSACTION_NOW_MS;
const CLOCK = `clock AS (SELECT ${DB_NOW_MS} AS now_ms)`;
const UNFINISHED = `('scheduled','pending','active')`;

interface Schema {
  /** Qualifies the tables; default: the connection's search_path. */
  schema?: string;
}

/** A job id as a stored key: ids that do not parse, or whose seq is past 2^53, name no row. */
function storedKey(id: string): JobKey | undefined {
  const key = parseJobId(id);
  return key && Number.isSafeInteger(key.seq) ? key : undefined;
}

/** Inputs whose ids name a storable row, with their input index (the others stay misses). */
function keyed<T extends { id: string }>(inputs: readonly T[]): { input: T; key: JobKey; index: number }[] {
  const out: { input: T; key: JobKey; index: number }[] = [];
  inputs.forEach((input, index) => {
    const key = storedKey(input.id);
    if (key) out.push({ input, key, index });
  });
  return out;
}

// --- enqueue ---------------------------------------------------------------------------

export interface EnqueueManyOptions extends Schema {
  jobs: readonly NewJob[];
  /** Per job, pending or scheduled (the caller decided it from runAt and now). */
  states: readonly JobState[];
  /** The broker's time (DB-aligned, 3.7): created_at and updated_at, as JobStore.insert's now. */
  now: number;
}

export interface EnqueuedJob {
  id: string;
  state: JobState;
  /** True: not inserted, `id` and `state` are the unfinished job already holding the dedup key. */
  deduplicated: boolean;
}

/** The columns JobStore.insert sets, in its order; created_at and updated_at are the bound now. */
const INSERT_COLUMNS =
  'queue, type, state, priority, payload, metadata, run_at, max_attempts, retry, lease_timeout_ms, dedup_key, group_key, created_at, updated_at, inherits';

/**
 * The jobs in input order (ORDER BY ordinality: identities are drawn in insertion order). A job
 * with a dedup key meets jobs_dedup's predicate on insert (it is scheduled or pending), so ON
 * CONFLICT skips it when an unfinished job of its queue holds the key, including one inserted
 * earlier by this statement (DO NOTHING, unlike DO UPDATE, may meet a row of its own command):
 * the first of a batch wins, as on SQLite's sequential path. A key held by an uncommitted
 * insert of another transaction makes this one wait for it, then skip or insert.
 */
function insertSql(q: string): string {
  return `INSERT INTO ${q}jobs (${INSERT_COLUMNS})
    SELECT j.queue, j.type, j.state, j.priority, j.payload, j.metadata, j.run_at, j.max_attempts, j.retry, j.lease_timeout_ms,
           j.dedup_key, j.group_key, $14::bigint, $14::bigint, j.inherits
      FROM unnest($1::text[], $2::text[], $3::text[], $4::smallint[], $5::text[], $6::text[], $7::bigint[], $8::integer[], $9::text[],
                  $10::integer[], $11::text[], $12::text[], $13::smallint[])
           WITH ORDINALITY AS j(queue, type, state, priority, payload, metadata, run_at, max_attempts, retry, lease_timeout_ms,
                                dedup_key, group_key, inherits, i)
     ORDER BY j.i
    ON CONFLICT (queue, dedup_key) WHERE dedup_key IS NOT NULL AND state IN ${UNFINISHED} DO NOTHING
    RETURNING seq, created_at, queue, dedup_key`;
}

/** The unfinished job holding each (queue, dedup key): at most one each (jobs_dedup is UNIQUE). */
function holdersSql(q: string): string {
  return `SELECT jobs.seq, jobs.created_at, jobs.state, jobs.queue, jobs.dedup_key
      FROM unnest($1::text[], $2::text[]) AS k(queue, dedup_key)
      JOIN ${q}jobs AS jobs ON jobs.queue = k.queue AND jobs.dedup_key = k.dedup_key
     WHERE jobs.dedup_key IS NOT NULL AND jobs.state IN ${UNFINISHED}`;
}

/** Rounds of insert + lookup before a key that keeps changing hands is given up on. */
const DEDUP_ROUNDS = 3;

/** A dedup key's holder finished between the insert that met it and the lookup, DEDUP_ROUNDS times running. */
export class DedupRaceError extends Error {
  constructor(readonly index: number) {
    super(`the dedup key of input ${index} kept changing hands during ${DEDUP_ROUNDS} inserts; try again`);
    this.name = 'DedupRaceError';
  }
}

const dedupId = (queue: string, key: string) => `${queue}\u0000${key}`;

/**
 * JobStore.insertMany + insert + findUnfinishedByDedupKey in one statement, plus one SELECT
 * when a dedup key was taken: per input, the inserted job, or the unfinished job that holds its
 * dedup key (the earlier one of this batch, or one already stored; a finished job holds none).
 * Ids come from RETURNING (seq, created_at), never from seq arithmetic: identities are not
 * consecutive across brokers, and a skipped conflict uses one up.
 *
 * One race has no SQLite counterpart: the holder of a key (another broker's job) finishes
 * between the insert that met it and the lookup. The inputs of such keys are inserted again
 * (the next round may insert them: they then get seqs after the rest of the batch); after
 * DEDUP_ROUNDS rounds, DedupRaceError. A dedup or group key holding U+0000 is refused before
 * any statement (UnstorableKeyError, sql.ts).
 */
export async function enqueueMany(db: PgQueryable, options: EnqueueManyOptions): Promise<EnqueuedJob[]> {
  const { jobs, states, now } = options;
  if (jobs.length !== states.length) throw new RangeError(`${jobs.length} jobs but ${states.length} states`);
  jobs.forEach((job, i) => {
    storableKey(job.dedupKey, 'dedup_key', i);
    storableKey(job.groupKey, 'group_key', i);
    if (states[i] !== JobState.Pending && states[i] !== JobState.Scheduled) throw new RangeError(`input ${i}: a new job is pending or scheduled, not ${states[i]}`);
  });
  const q = schemaPrefix(options.schema);
  const out: EnqueuedJob[] = new Array(jobs.length);
  let todo = jobs.map((_, i) => i);
  for (let round = 1; todo.length > 0; round++) {
    const batch = todo.map((i) => jobs[i]!);
    const inserted = await queryRows<{ seq: number; created_at: number; queue: string; dedup_key: string | null }>(db, insertSql(q), [
      batch.map((j) => j.queue), batch.map((j) => j.type), todo.map((i) => states[i]), batch.map((j) => j.priority),
      batch.map((j) => j.payload), batch.map((j) => j.metadata), batch.map((j) => j.runAt), batch.map((j) => j.maxAttempts),
      batch.map((j) => j.retry), batch.map((j) => j.leaseTimeoutMs), batch.map((j) => j.dedupKey), batch.map((j) => j.groupKey),
      batch.map((j) => j.inherits), now,
    ]);
    // Which inputs were inserted: every one without a key, and the first of each key that came back.
    const insertedKeys = new Set(inserted.filter((r) => r.dedup_key !== null).map((r) => dedupId(r.queue, r.dedup_key!)));
    const seen = new Set<string>();
    const insertedInputs: number[] = [];
    const skipped: number[] = [];
    for (const i of todo) {
      const job = jobs[i]!;
      if (job.dedupKey === null) {
        insertedInputs.push(i);
        continue;
      }
      const k = dedupId(job.queue, job.dedupKey);
      if (!seen.has(k) && insertedKeys.has(k)) insertedInputs.push(i);
      else skipped.push(i);
      seen.add(k);
    }
    // RETURNING has no order; identities were drawn in insertion order, i.e. input order.
    inserted.sort((a, b) => a.seq - b.seq);
    if (inserted.length !== insertedInputs.length) throw new Error(`enqueue: ${inserted.length} rows inserted for ${insertedInputs.length} inputs`);
    insertedInputs.forEach((i, k) => {
      const row = inserted[k]!;
      const job = jobs[i]!;
      if (row.queue !== job.queue || row.dedup_key !== job.dedupKey) throw new Error(`enqueue: row ${row.seq} does not match input ${i}`);
      out[i] = { id: formatJobId(row.seq, row.created_at), state: states[i]!, deduplicated: false };
    });
    if (skipped.length === 0) break;
    const keys = [...new Map(skipped.map((i) => [dedupId(jobs[i]!.queue, jobs[i]!.dedupKey!), jobs[i]!])).values()];
    const holders = await queryRows<{ seq: number; created_at: number; state: JobState; queue: string; dedup_key: string }>(db, holdersSql(q), [
      keys.map((j) => j.queue),
      keys.map((j) => j.dedupKey),
    ]);
    const holderOf = new Map(holders.map((h) => [dedupId(h.queue, h.dedup_key), h]));
    todo = [];
    for (const i of skipped) {
      const h = holderOf.get(dedupId(jobs[i]!.queue, jobs[i]!.dedupKey!));
      if (h) out[i] = { id: formatJobId(h.seq, h.created_at), state: h.state, deduplicated: true };
      else todo.push(i);
    }
    if (todo.length > 0 && round === DEDUP_ROUNDS) throw new DedupRaceError(todo[0]!);
  }
  return out;
}

// --- nack ------------------------------------------------------------------------------

/** The command of flush-batch.ts (one definition for every backend). */
export type FailCmd = FailCommand;

export interface FailManyOptions extends Schema {
  fails: readonly FailCmd[];
}

/**
 * JobStore.fail for many jobs. The guard is the lease and also the attempt and max_attempts
 * the broker decided from (design 3.2): an UpdateQueue that changed the job's max_attempts since
 * the claim (applyQueueDefaults) makes the nack miss, to be re-decided, instead of writing a
 * decision made from the old value. `pick` keeps, per job, the first input that passes the
 * guards (SQLite's one-at-a-time path: the first matching fail wins, the rest miss); the UPDATE
 * checks the guards again on the newest row version (READ COMMITTED re-reads a row changed by a
 * concurrent commit).
 */
function failSql(q: string): string {
  const entry = attemptEntry(`'"nacked"'`, [jsonText('pick.message'), jsonText('pick.state'), `CASE WHEN pick.state = 'scheduled' THEN pick.run_at::text ELSE 'null' END`]);
  return `WITH input AS (
      SELECT * FROM unnest($1::bigint[], $2::text[], $3::integer[], $4::integer[], $5::text[], $6::bigint[], $7::text[], $8::text[])
        WITH ORDINALITY AS f(seq, lease_id, attempt, max_attempts, state, run_at, message, entry, i)
    ), pick AS (
      SELECT DISTINCT ON (f.seq) f.* FROM input f
        JOIN ${q}jobs AS j ON j.seq = f.seq AND j.state = 'active' AND j.lease_id = f.lease_id
                          AND j.attempt = f.attempt AND j.max_attempts = f.max_attempts
       ORDER BY f.seq, f.i
    ), ${CLOCK}
    UPDATE ${q}jobs AS jobs SET state = pick.state, run_at = pick.run_at, last_error = pick.message,
           errors = ${appendJsonArray('jobs.errors', 'pick.entry')},
           lease_id = NULL, lease_expires_at = NULL,
           finished_at = CASE WHEN pick.state = 'dead' THEN clock.now_ms END, updated_at = clock.now_ms,
           ${appendHistory(entry)}
      FROM pick, clock
     WHERE jobs.seq = pick.seq AND jobs.state = 'active' AND jobs.lease_id = pick.lease_id
       AND jobs.attempt = pick.attempt AND jobs.max_attempts = pick.max_attempts
    RETURNING pick.i AS i`;
}

/**
 * Active (under its lease, at the attempt and max_attempts decided from) -> scheduled or dead,
 * the error appended to `errors` and the attempt's history entry written as JobStore.fail
 * writes them. Returns, per input, whether it changed the job; a miss is answered by a read
 * after the flush (design 3.2).
 */
export async function failMany(db: PgQueryable, options: FailManyOptions): Promise<boolean[]> {
  const out: boolean[] = new Array(options.fails.length).fill(false);
  const args = keyed(options.fails);
  if (args.length === 0) return out;
  for (const { input } of args) {
    if (input.state !== JobState.Scheduled && input.state !== JobState.Dead) throw new RangeError(`a nack leaves a job scheduled or dead, not ${String(input.state)}`);
  }
  const messages = args.map(({ input }) => storableText(input.error.message));
  const rows = await queryRows<{ i: number }>(db, failSql(schemaPrefix(options.schema)), [
    args.map((a) => a.key.seq),
    args.map((a) => a.input.leaseId),
    args.map((a) => a.input.attempt),
    args.map((a) => a.input.maxAttempts),
    args.map((a) => a.input.state),
    args.map((a) => a.input.runAt),
    messages,
    // The entry JobStore.fail stores (JSON.stringify of the error, in the broker's key order).
    args.map(({ input: { error } }, k) => JSON.stringify({ attempt: error.attempt, message: messages[k], at: error.at, nonRetryable: error.nonRetryable })),
  ]);
  for (const { i } of rows) out[args[i - 1]!.index] = true;
  return out;
}

// --- extend ----------------------------------------------------------------------------

/** The command of flush-batch.ts (one definition for every backend). */
export type ExtendCmd = ExtendCommand;

export interface ExtendManyOptions extends Schema {
  extends: readonly ExtendCmd[];
}

/**
 * A row is updated once per statement, while SQLite applies repeated heartbeats of one lease one
 * after the other (each succeeds; the last deadline and the last non-null progress stay). So
 * the inputs are folded per (job, lease) to that end state, and each input's own deadline is
 * computed from the returned now and lease_timeout_ms (the same for all: a lease renewal
 * changes neither).
 */
function extendSql(q: string): string {
  return `WITH input AS (
      SELECT * FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::text[]) WITH ORDINALITY AS e(seq, lease_id, extend_ms, progress, i)
    ), folded AS (
      SELECT seq, lease_id, (array_agg(extend_ms ORDER BY i DESC))[1] AS extend_ms,
             (array_agg(progress ORDER BY i DESC) FILTER (WHERE progress IS NOT NULL))[1] AS progress
        FROM input GROUP BY seq, lease_id
    ), ${CLOCK}
    UPDATE ${q}jobs AS jobs SET lease_expires_at = clock.now_ms + CASE WHEN folded.extend_ms > 0 THEN folded.extend_ms ELSE jobs.lease_timeout_ms END,
           progress = coalesce(folded.progress, jobs.progress), updated_at = clock.now_ms
      FROM folded, clock
     WHERE jobs.seq = folded.seq AND jobs.state = 'active' AND jobs.lease_id = folded.lease_id
    RETURNING jobs.seq, folded.lease_id, clock.now_ms, jobs.lease_timeout_ms, jobs.attempt`;
}

/**
 * JobStore.extend for many heartbeats: the deadline from the database's now (3.7: a broker's
 * clock never moves a lease). Per input the new deadline and the attempt, or undefined (stale
 * or wrong lease, unknown id, job not active).
 */
export async function extendMany(db: PgQueryable, options: ExtendManyOptions): Promise<({ deadline: number; attempt: number } | undefined)[]> {
  const out: ({ deadline: number; attempt: number } | undefined)[] = new Array(options.extends.length).fill(undefined);
  const args = keyed(options.extends);
  if (args.length === 0) return out;
  const rows = await queryRows<{ seq: number; lease_id: string; now_ms: number; lease_timeout_ms: number; attempt: number }>(
    db,
    extendSql(schemaPrefix(options.schema)),
    [args.map((a) => a.key.seq), args.map((a) => a.input.leaseId), args.map((a) => a.input.extendMs), args.map((a) => a.input.progress)],
  );
  const renewed = new Map(rows.map((r) => [`${r.seq} ${r.lease_id}`, r]));
  for (const { input, key, index } of args) {
    const r = renewed.get(`${key.seq} ${input.leaseId}`);
    if (r) out[index] = { deadline: r.now_ms + (input.extendMs > 0 ? input.extendMs : r.lease_timeout_ms), attempt: r.attempt };
  }
  return out;
}

// --- release and expiry ----------------------------------------------------------------

/** The command of flush-batch.ts (one definition for every backend). */
export type ReleaseCmd = ReleaseCommand;

export interface ReleaseManyOptions extends Schema {
  releases: readonly ReleaseCmd[];
}

/** SQLite's RELEASED_STATE over the source row `r` (r.counts boolean). */
const RELEASED_STATE = `CASE WHEN r.counts AND jobs.attempt >= jobs.max_attempts THEN 'dead' ELSE 'pending' END`;

/**
 * SQLite's release statement, column for column, over a source `r` (counts, reason, outcome):
 * when the lease counts as an attempt, the job dies if it was its last (finished_at set), the
 * reason becomes last_error and an errors entry; when it does not, the attempt is refunded
 * (never below 0) and last_error/errors stay. Either way the job leaves active (pending or dead),
 * worker_id and started_at stay (the history names them), and the history gets the attempt
 * entry with the outcome, the reason and the state it left the job in.
 */
export const RELEASE_SET = `state = ${RELEASED_STATE},
           ${appendHistory(attemptEntry(jsonText('r.outcome'), [jsonText('r.reason'), jsonText(RELEASED_STATE)]))},
           attempt = CASE WHEN r.counts THEN jobs.attempt ELSE greatest(jobs.attempt - 1, 0) END,
           last_error = CASE WHEN r.counts THEN r.reason ELSE jobs.last_error END,
           errors = CASE WHEN r.counts THEN ${appendJsonArray(
             'jobs.errors',
             `'{"attempt":' || jobs.attempt || ',"message":' || ${jsonText('r.reason')} || ',"at":' || clock.now_ms || ',"nonRetryable":false}'`,
           )} ELSE jobs.errors END,
           finished_at = CASE WHEN r.counts AND jobs.attempt >= jobs.max_attempts THEN clock.now_ms END,
           lease_id = NULL, lease_expires_at = NULL, updated_at = clock.now_ms`;

export const RELEASED_RETURNING = 'jobs.state, jobs.queue, jobs.type, jobs.attempt, jobs.metadata';

/** First input per (job, lease) wins: the release guard is the lease alone, so later repeats miss, as on SQLite. */
function releaseSql(q: string): string {
  return `WITH input AS (
      SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::boolean[], $5::text[])
        WITH ORDINALITY AS u(seq, lease_id, reason, counts, outcome, i)
    ), r AS (
      SELECT DISTINCT ON (seq, lease_id) * FROM input ORDER BY seq, lease_id, i
    ), ${CLOCK}
    UPDATE ${q}jobs AS jobs SET ${RELEASE_SET}
      FROM r, clock
     WHERE jobs.seq = r.seq AND jobs.state = 'active' AND jobs.lease_id = r.lease_id
    RETURNING r.i AS i, ${RELEASED_RETURNING}`;
}

/**
 * JobStore.release for many leases. Per input the job as released (its new state, attempt,
 * ...: ReleasedJob), or undefined when nothing changed (stale or wrong lease, unknown id, not
 * active, or a repeat of an input released in this call).
 */
export async function releaseMany(db: PgQueryable, options: ReleaseManyOptions): Promise<(ReleasedJob | undefined)[]> {
  const out: (ReleasedJob | undefined)[] = new Array(options.releases.length).fill(undefined);
  const args = keyed(options.releases);
  if (args.length === 0) return out;
  const rows = await queryRows<ReleasedJob & { i: number }>(db, releaseSql(schemaPrefix(options.schema)), [
    args.map((a) => a.key.seq),
    args.map((a) => a.input.leaseId),
    args.map((a) => storableText(a.input.reason)),
    args.map((a) => a.input.countsAsAttempt),
    args.map((a) => outcomeOf(a.input.outcome)),
  ]);
  for (const { i, state, queue, type, attempt, metadata } of rows) out[args[i - 1]!.index] = { state, queue, type, attempt, metadata };
  return out;
}

function outcomeOf(outcome: ReleaseCmd['outcome']): 'expired' | 'released' {
  if (outcome === undefined) return 'released';
  if (outcome !== 'expired' && outcome !== 'released') throw new RangeError(`a lease ends expired or released, not ${String(outcome)}`);
  return outcome;
}

export interface ExpireLeasesOptions extends Schema {
  limit: number;
  /** The reason written for each expired lease (the broker's 'lease expired: ...'). */
  reason: string;
}

/** The types of flush-batch.ts (one definition for every backend). */
export type { ExpiredLease, PromotedJob };

/**
 * JobStore.expiredLeases + release(counts, 'expired') of each, in one statement: the pick and
 * the release cannot be two statements of a pipelined flush (the second would need the first's
 * rows), and a pick alone would only keep other brokers off the rows until its commit. `pick`
 * takes leases past the database's now in expiredLeases' order (lease_expires_at, then seq as
 * SQLite's index breaks ties), FOR UPDATE SKIP LOCKED: two brokers expiring at once never take
 * one row, and a row another transaction holds (an ack in flight) is left to it. The pick reads
 * the lease from the newest row version (a heartbeat committed meanwhile that moved the
 * deadline past now drops the row: the lock re-checks the WHERE).
 */
function expireSql(q: string): string {
  return `WITH r AS (
      SELECT seq, lease_id, true AS counts, $2::text AS reason, 'expired'::text AS outcome FROM ${q}jobs
       WHERE state = 'active' AND lease_expires_at <= ${DB_NOW_MS}
       ORDER BY lease_expires_at, seq
       LIMIT $1
       FOR UPDATE SKIP LOCKED
    ), ${CLOCK}
    UPDATE ${q}jobs AS jobs SET ${RELEASE_SET}
      FROM r, clock
     WHERE jobs.seq = r.seq AND jobs.state = 'active' AND jobs.lease_id = r.lease_id
    RETURNING jobs.seq, jobs.created_at, r.lease_id, ${RELEASED_RETURNING}`;
}

/**
 * Up to `limit` expired leases (taken in expiry order) released as attempts (the job dies on its last). Returns them in
 * seq order; fewer than `limit` means no other expired lease was free to take.
 */
export async function expireLeases(db: PgQueryable, options: ExpireLeasesOptions): Promise<ExpiredLease[]> {
  const rows = await queryRows<ReleasedJob & { seq: number; created_at: number; lease_id: string }>(db, expireSql(schemaPrefix(options.schema)), [
    rowLimit(options.limit),
    storableText(options.reason),
  ]);
  return rows
    .sort((a, b) => a.seq - b.seq)
    .map((r) => ({
      id: formatJobId(r.seq, r.created_at),
      leaseId: r.lease_id,
      released: { state: r.state, queue: r.queue, type: r.type, attempt: r.attempt, metadata: r.metadata },
    }));
}

function rowLimit(n: number): number {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`not a row count: ${n}`);
  return n;
}

// --- promote ---------------------------------------------------------------------------

export interface PromoteDueOptions extends Schema {
  limit: number;
}

/**
 * JobStore.promoteDue: scheduled jobs whose run_at has come by the database's now, oldest run_at
 * first (ties by seq, as SQLite's jobs_scheduled index orders them), FOR UPDATE SKIP LOCKED so
 * brokers promoting at once take disjoint rows; a job cancelled by a commit after this
 * statement's snapshot is dropped when its lock re-checks state.
 */
function promoteSql(q: string): string {
  return `WITH pick AS (
      SELECT seq FROM ${q}jobs WHERE state = 'scheduled' AND run_at <= ${DB_NOW_MS}
       ORDER BY run_at, seq
       LIMIT $1
       FOR UPDATE SKIP LOCKED
    ), ${CLOCK}
    UPDATE ${q}jobs AS jobs SET state = 'pending', updated_at = clock.now_ms,
           ${appendHistory(`'["p",' || clock.now_ms || ',' || jobs.attempt || ']'`)}
      FROM pick, clock
     WHERE jobs.seq = pick.seq AND jobs.state = 'scheduled'
    RETURNING jobs.seq, jobs.created_at, jobs.queue, jobs.type, jobs.attempt`;
}

/** Scheduled -> pending for up to `limit` due jobs; returned in seq order. */
export async function promoteDue(db: PgQueryable, options: PromoteDueOptions): Promise<PromotedJob[]> {
  const rows = await queryRows<{ seq: number; created_at: number; queue: string; type: string; attempt: number }>(
    db,
    promoteSql(schemaPrefix(options.schema)),
    [rowLimit(options.limit)],
  );
  return rows.sort((a, b) => a.seq - b.seq).map((r) => ({ id: formatJobId(r.seq, r.created_at), queue: r.queue, type: r.type, attempt: r.attempt }));
}

// --- cancel ----------------------------------------------------------------------------

export interface CancelCmd {
  id: string;
  /** Becomes last_error when set; null keeps it. */
  reason: string | null;
}

export interface CancelManyOptions extends Schema {
  cancels: readonly CancelCmd[];
}

/**
 * JobStore.cancel, guarded as it is (the id's seq and created_at, an unfinished state); an
 * active job's history gets the attempt entry ('cancelled'), another a 'c' entry. The first
 * input per job wins (the rest find it cancelled, as on SQLite).
 */
function cancelSql(q: string): string {
  const entry = `CASE WHEN jobs.state = 'active' THEN ${attemptEntry(`'"cancelled"'`, [jsonText('c.reason'), `'"cancelled"'`])}
    ELSE '["c",' || clock.now_ms || ',' || ${jsonText('c.reason')} || ',' || jobs.attempt || ']' END`;
  return `WITH input AS (
      SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[]) WITH ORDINALITY AS c(seq, created_at, reason, i)
    ), c AS (
      SELECT DISTINCT ON (seq) * FROM input ORDER BY seq, i
    ), ${CLOCK}
    UPDATE ${q}jobs AS jobs SET state = 'cancelled', lease_id = NULL, lease_expires_at = NULL,
           last_error = coalesce(c.reason, jobs.last_error), finished_at = clock.now_ms, updated_at = clock.now_ms,
           ${appendHistory(entry)}
      FROM c, clock
     WHERE jobs.seq = c.seq AND jobs.created_at = c.created_at AND jobs.state IN ${UNFINISHED}
    RETURNING c.i AS i, jobs.*`;
}

/**
 * Scheduled/pending/active -> cancelled for many jobs. Per input the row after the change (with
 * its id), or undefined (unknown id, already finished, a repeat); the caller reads the state of
 * a miss after the flush, as JobStore.cancel's `current`.
 */
export async function cancelMany(db: PgQueryable, options: CancelManyOptions): Promise<(JobRow | undefined)[]> {
  const out: (JobRow | undefined)[] = new Array(options.cancels.length).fill(undefined);
  const args = keyed(options.cancels);
  if (args.length === 0) return out;
  const rows = await queryRows<JobRow & { i: number }>(db, cancelSql(schemaPrefix(options.schema)), [
    args.map((a) => a.key.seq),
    args.map((a) => a.key.createdAt),
    args.map((a) => storableTextOrNull(a.input.reason)),
  ]);
  for (const { i, ...row } of rows) {
    const { input, index } = args[i - 1]!;
    out[index] = { ...row, id: input.id };
  }
  return out;
}
