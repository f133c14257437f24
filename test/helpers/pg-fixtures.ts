/**
 * Fixtures of the PostgreSQL store's tests (postgres.*.test.ts, store.flush-conformance.test.ts),
 * written once: the job they enqueue unless told otherwise, the SQLite files the comparisons run
 * against, a fresh schema seeded from one, and the normalizations and checks those comparisons
 * share. Each test file keeps what is its own (its rows' shape, its wait conditions' wording).
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'vitest';
import type pg from 'pg';
import { JobState } from '../../src/domain/job-state.js';
import { parseJobId } from '../../src/domain/job-id.js';
import { closeDatabase, openDatabase, type Db } from '../../src/store/database.js';
import { queryRows, quoteIdent } from '../../src/store/postgres/sql.js';
import type { NewJob } from '../../src/store/types.js';
import { tempDir } from './broker.js';
import { continueIdentities, dumpSqlite, seedPostgres } from './pg-seed.js';
import type { TestDatabase } from './postgres.js';

/** A broker time in the past of any test run (Nov 2025, a whole second): run_at and leases from it are due. */
export const T0 = 1_764_000_000_000;

/** A job of queue alpha, due at T0, with `over` on top. */
export function newJob(over: Partial<NewJob> = {}): NewJob {
  return {
    queue: 'alpha', type: 'email', payload: '{"n":1}', metadata: null, priority: 2, runAt: T0, maxAttempts: 3, retry: null,
    leaseTimeoutMs: 30_000, dedupKey: null, groupKey: null, inherits: 0, ...over,
  };
}

/** The seq a job id carries (job-id.ts); the id must be one the store issued. */
export const seqOf = (id: string): number => parseJobId(id)!.seq;

/** `n` times JobState.Pending: the states of an enqueue of ready jobs. */
export const pending = (n: number): JobState[] => new Array<JobState>(n).fill(JobState.Pending);

/**
 * Jobs rows with the JSON text columns that hold bound numbers (history, errors) parsed:
 * better-sqlite3 binds a JS number as a REAL, so SQLite's json_array/json_object write a bound
 * now as `1764000000030.0` where PostgreSQL writes the bigint `1764000000030`. Same values once
 * parsed; every other column is left as stored.
 */
export function decoded(rows: Record<string, unknown>[]): Record<string, unknown>[] {
  return rows.map((r) => ({
    ...r,
    history: typeof r.history === 'string' ? JSON.parse(`[${r.history}]`) : r.history,
    errors: typeof r.errors === 'string' ? JSON.parse(r.errors) : r.errors,
  }));
}

/** SQLite files of one test file, each in a temp dir of its own; close() (in afterAll) closes and removes them all. */
export class SqliteFiles {
  private readonly dirs: string[] = [];
  private readonly dbs: Db[] = [];

  /** A new, migrated SQLite database (synchronous = NORMAL). */
  open(): Db {
    const dir = tempDir();
    this.dirs.push(dir);
    const { db } = openDatabase(join(dir, 'sluice.db'), 'NORMAL');
    this.dbs.push(db);
    return db;
  }

  close(): void {
    for (const db of this.dbs) closeDatabase(db);
    for (const dir of this.dirs) rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * A fresh schema of `db` holding the rows of the SQLite database `source` (pg-seed.ts), with the
 * identities of `continued` moved past the copied seqs (continueIdentities) for tests whose
 * statements then insert rows.
 */
export async function seededSchema(db: TestDatabase, source: Db, continued: readonly ('jobs' | 'schedule_runs')[] = []): Promise<string> {
  const schema = await db.freshSchema();
  await seedPostgres(db.admin, schema, dumpSqlite(source));
  await continueIdentities(db.admin, schema, continued);
  return schema;
}

/**
 * The counts tables of the schema equal SQLite's. queue_counts rows at zero are left out: SQLite
 * keeps a (queue, state) row once its count went back to 0, and the seeder does not copy the
 * counts tables (PostgreSQL's triggers count the copied jobs), so those rows are the fixture's
 * history, not a result of the statement under test.
 */
export async function expectSameCounts(client: pg.ClientBase, schema: string, sqlite: Db): Promise<void> {
  const s = quoteIdent(schema);
  const counts = await queryRows(client, `SELECT queue, state, n FROM ${s}.queue_counts WHERE n > 0 ORDER BY queue, state`);
  expect(counts).toEqual(sqlite.prepare(`SELECT queue, state, n FROM queue_counts WHERE n > 0 ORDER BY queue, state`).all());
  const groups = await queryRows(client, `SELECT queue, group_key, n FROM ${s}.group_counts ORDER BY queue, group_key`);
  expect(groups).toEqual(sqlite.prepare(`SELECT queue, group_key, n FROM group_counts ORDER BY queue, group_key`).all());
}

/**
 * Resolves once backend `pid` waits on a lock (another transaction's uncommitted rows), in a
 * statement whose text includes `statementIncludes` when that is given. Polled through `client`
 * (pg_stat_activity), so no fixed delay decides.
 */
export async function waitingOnLock(client: pg.ClientBase, pid: number, statementIncludes?: string): Promise<void> {
  for (;;) {
    const [row] = await queryRows<{ w: string | null; query: string }>(client, `SELECT wait_event_type AS w, query FROM pg_stat_activity WHERE pid = $1`, [pid]);
    if (row?.w === 'Lock' && (statementIncludes === undefined || row.query.includes(statementIncludes))) return;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}
