/**
 * The PostgreSQL hot-path writes (src/store/postgres/pg-writes.ts, design 3.2, 3.6, 3.7) against
 * a real PostgreSQL: for each statement the same rows on SQLite (JobStore, written through its
 * own paths and copied over by test/helpers/pg-seed.ts) and on PostgreSQL, the same inputs run on
 * both, and the results and every column of every row compared. Guards (wrong lease, stale
 * attempt or max_attempts, unknown id, finished job), dedup within a batch and against stored
 * rows, the U+0000 rule of sql.ts, and three connections promoting and expiring thousands of rows
 * at once (each row taken exactly once). Needs PostgreSQL: not registered where it is not required.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import pg from 'pg';
import { JobState } from '../src/domain/job-state.js';
import { formatJobId, parseJobId } from '../src/domain/job-id.js';
import { JobStore } from '../src/store/job-store.js';
import { claimForSlots } from '../src/store/postgres/pg-claims.js';
import {
  cancelMany,
  enqueueMany,
  expireLeases,
  extendMany,
  failMany,
  promoteDue,
  releaseMany,
  type EnqueuedJob,
  type ExtendCmd,
  type FailCmd,
  type ReleaseCmd,
} from '../src/store/postgres/pg-writes.js';
import { DB_TRANSACTION_NOW_MS, queryRows, quoteIdent, storableText, UnstorableKeyError } from '../src/store/postgres/sql.js';
import type { ClaimedJob, JobRow, NewJob } from '../src/store/types.js';
import { decoded, expectSameCounts, newJob, seededSchema, seqOf, SqliteFiles, T0, waitingOnLock } from './helpers/pg-fixtures.js';
import { dumpPostgres, dumpSqlite } from './helpers/pg-seed.js';
import { postgresRequired, testDatabase, type TestDatabase } from './helpers/postgres.js';

/** A year after the run: jobs and leases from it are not due. */
const FAR = Date.now() + 365 * 86_400_000;

/** SQLite's enqueue as the broker runs it (broker.ts insertJobs, without admission): runs of keyless jobs by insertMany, a keyed job looked up then inserted alone. */
function sqliteEnqueue(store: JobStore, jobs: NewJob[], states: JobState[], now: number): EnqueuedJob[] {
  const out: EnqueuedJob[] = new Array(jobs.length);
  let run: number[] = [];
  const flush = () => {
    if (run.length === 0) return;
    const ids = store.insertMany(run.map((i) => jobs[i]!), run.map((i) => states[i]!), now);
    run.forEach((i, k) => (out[i] = { id: ids[k]!, state: states[i]!, deduplicated: false }));
    run = [];
  };
  jobs.forEach((job, i) => {
    if (job.dedupKey === null) return void run.push(i);
    flush();
    const existing = store.findUnfinishedByDedupKey(job.queue, job.dedupKey);
    out[i] = existing ? { ...existing, deduplicated: true } : { id: store.insert(job, states[i]!, now), state: states[i]!, deduplicated: false };
  });
  flush();
  return out;
}

// A client that never connects: a call that must not reach the database would hang on it.
test('nothing to write, or only ids that name no job: answered without a query; a key with U+0000 is refused before one', async () => {
  const never = new pg.Client();
  expect(await enqueueMany(never, { jobs: [], states: [], now: T0 })).toEqual([]);
  expect(await failMany(never, { fails: [] })).toEqual([]);
  expect(await extendMany(never, { extends: [{ id: 'not-an-id', leaseId: 'x', extendMs: 0, progress: null }] })).toEqual([undefined]);
  expect(await releaseMany(never, { releases: [{ id: 'nope', leaseId: 'x', reason: '', countsAsAttempt: true }] })).toEqual([undefined]);
  expect(await cancelMany(never, { cancels: [{ id: `${formatJobId(1, T0).slice(0, 19)}bfff-ffffffffffff`, reason: null }] })).toEqual([undefined]);
  const jobs = [newJob({ dedupKey: 'fine' }), newJob({ groupKey: 'g\u0000' })];
  const refused = await enqueueMany(never, { jobs, states: [JobState.Pending, JobState.Pending], now: T0 }).catch((e: unknown) => e);
  expect(refused).toBeInstanceOf(UnstorableKeyError);
  expect(refused).toMatchObject({ field: 'group_key', index: 1 });
  await expect(enqueueMany(never, { jobs: [newJob({ dedupKey: '\u0000' })], states: [JobState.Pending], now: T0 })).rejects.toMatchObject({ field: 'dedup_key', index: 0 });
});

test('the U+0000 rule: U+FFFD in its place, nothing else changed', () => {
  expect(storableText('a\u0000b\u0000')).toBe('a\uFFFDb\uFFFD');
  expect(storableText('plain "quoted"\n é😀')).toBe('plain "quoted"\n é😀');
  expect(storableText('\u0000'.repeat(3)).length).toBe(3);
});

if (postgresRequired()) {
  describe('PostgreSQL hot-path writes', () => {
    let db: TestDatabase;
    let admin: pg.Client;
    let c: pg.Client;
    const sqlite = new SqliteFiles();

    beforeAll(async () => {
      db = await testDatabase('writes');
      admin = db.admin;
      c = await db.connect();
    });

    afterAll(async () => {
      await db?.close();
      sqlite.close();
    });

    const sqliteStore = () => new JobStore(sqlite.open());

    /** The SQLite store's rows in a fresh schema; the identity continues after the copied seqs (the seeder leaves it at 1). */
    const seededFrom = (store: JobStore) => seededSchema(db, store.db, ['jobs']);

    const pgJobs = async (schema: string) => (await dumpPostgres(admin, schema)).jobs;
    const sqliteJobs = (store: JobStore) => dumpSqlite(store.db).jobs;

    /** Every column of every job, and the counts (expectSameCounts: rows at zero left out). */
    async function expectSameRows(schema: string, store: JobStore): Promise<void> {
      const rows = await pgJobs(schema);
      expect(decoded(rows)).toEqual(decoded(sqliteJobs(store)));
      await expectSameCounts(admin, schema, store.db);
    }

    /** Runs `work` in a transaction, given the database's now() of it (the time every statement of the transaction writes). */
    async function atDbNow<T>(work: (now: number) => Promise<T>): Promise<[number, T]> {
      await c.query('BEGIN');
      try {
        const [row] = await queryRows<{ now: number }>(c, `SELECT ${DB_TRANSACTION_NOW_MS} AS now`);
        const result = await work(row!.now);
        await c.query('COMMIT');
        return [row!.now, result];
      } catch (error) {
        await c.query('ROLLBACK');
        throw error;
      }
    }

    /** A job claimed on SQLite (before the copy) under `prefix`, at broker time `at`. */
    function claimed(store: JobStore, id: string, prefix: string, worker: string, at: number) {
      const [job] = store.claim([seqOf(id)], prefix, worker, at);
      return job!;
    }

    test('enqueue: same jobs, ids and rows as SQLite; dedup within the batch, against stored unfinished jobs, never against finished ones', async () => {
      const store = sqliteStore();
      for (const q of ['alpha', 'beta']) store.ensureQueue(q, T0);
      const stored = store.insertMany(
        [
          newJob({ dedupKey: 'k-pending' }),
          newJob({ dedupKey: 'k-done' }),
          newJob({ dedupKey: 'k-active' }),
          newJob({ dedupKey: 'k-sched', runAt: FAR }),
          newJob({ dedupKey: 'k-dead', maxAttempts: 1 }),
          newJob({ dedupKey: 'k-cancelled' }),
        ],
        [JobState.Pending, JobState.Pending, JobState.Pending, JobState.Scheduled, JobState.Pending, JobState.Pending],
        T0,
      );
      const done = claimed(store, stored[1]!, 'b0.1.', 'w', T0 + 1);
      store.completeMany([{ id: done.id, leaseId: done.lease_id, result: null }], T0 + 2);
      claimed(store, stored[2]!, 'b0.2.', 'w', T0 + 1);
      const dead = claimed(store, stored[4]!, 'b0.3.', 'w', T0 + 1);
      store.release(dead.id, dead.lease_id, 'lost', true, T0 + 3);
      store.cancel(stored[5]!, 'no', T0 + 4);
      const schema = await seededFrom(store);
      await expectSameRows(schema, store);

      const now = T0 + 1_000;
      const jobs = [
        newJob({}),
        newJob({ dedupKey: 'k-pending', payload: '{"dup":1}' }),
        newJob({ groupKey: 'g', metadata: '{"trace":"t"}', retry: '{"backoff":"fixed","delayMs":5}', inherits: 3, priority: 4, type: 'sms' }),
        newJob({ dedupKey: 'k-done' }),
        newJob({ dedupKey: 'k-done', payload: '{"second":true}' }),
        newJob({ dedupKey: 'k-active' }),
        newJob({ queue: 'beta', dedupKey: 'k-pending' }),
        newJob({ dedupKey: 'k-new', runAt: FAR, groupKey: '' }),
        newJob({ dedupKey: 'k-new' }),
        newJob({ dedupKey: 'k-sched' }),
        newJob({ dedupKey: 'k-dead', leaseTimeoutMs: 2_147_483_647, maxAttempts: 1_000_000 }),
        newJob({ dedupKey: 'k-cancelled', groupKey: 'g' }),
        ...Array.from({ length: 40 }, (_, i) => newJob({ payload: `{"i":${i},"esc":"\\u0000\\n😀"}`, priority: 1 + (i % 4), groupKey: i % 3 ? null : 'é' })),
        newJob({ dedupKey: 'clé "ü"\n', groupKey: 'g' }),
        newJob({ dedupKey: 'clé "ü"\n' }),
      ];
      const states = jobs.map((j) => (j.runAt > now ? JobState.Scheduled : JobState.Pending));
      const onPg = await enqueueMany(c, { schema, jobs, states, now });
      const onSqlite = sqliteEnqueue(store, jobs, states, now);

      // Identities are not SQLite's seqs (each conflict used one up): map PostgreSQL's new seqs to
      // SQLite's, input by input, then compare results and rows exactly.
      const toSqlite = new Map<number, number>();
      onPg.forEach((r, i) => !r.deduplicated && toSqlite.set(seqOf(r.id), seqOf(onSqlite[i]!.id)));
      expect([...toSqlite.keys()].some((pgSeq) => toSqlite.get(pgSeq) !== pgSeq)).toBe(true);
      const translate = (id: string) => {
        const key = parseJobId(id)!;
        return formatJobId(toSqlite.get(key.seq) ?? key.seq, key.createdAt);
      };
      expect(onPg.map((r) => ({ ...r, id: translate(r.id) }))).toStrictEqual(onSqlite);
      expect(onPg.map((r) => r.deduplicated)).toEqual([
        false, true, false, false, true, true, false, false, true, true, false, false, ...Array(40).fill(false), false, true,
      ]);
      // Deduplicated against: the stored pending job, the batch's own k-done and k-new (scheduled), the stored active and scheduled ones.
      expect(onPg[1]).toEqual({ id: stored[0], state: JobState.Pending, deduplicated: true });
      expect(onPg[4]).toEqual({ id: onPg[3]!.id, state: JobState.Pending, deduplicated: true });
      expect(onPg[5]).toEqual({ id: stored[2], state: JobState.Active, deduplicated: true });
      expect(onPg[8]).toEqual({ id: onPg[7]!.id, state: JobState.Scheduled, deduplicated: true });
      expect(onPg[9]).toEqual({ id: stored[3], state: JobState.Scheduled, deduplicated: true });
      expect(onPg.at(-1)).toEqual({ id: onPg.at(-2)!.id, state: JobState.Pending, deduplicated: true });

      const rows = (await pgJobs(schema)).map((r) => ({ ...r, seq: toSqlite.get(r.seq as number) ?? r.seq }));
      expect(decoded(rows)).toEqual(decoded(sqliteJobs(store)));
      await expectSameCounts(admin, schema, store.db);

      // Again: every keyed job is now deduplicated against the first call's rows; keyless ones are inserted.
      const again = await enqueueMany(c, { schema, jobs: jobs.slice(0, 12), states: states.slice(0, 12), now });
      expect(again.map((r) => r.deduplicated)).toEqual([false, true, false, true, true, true, true, true, true, true, true, true]);
      expect(again[3]).toEqual({ ...onPg[3], deduplicated: true });
      expect(again[6]).toEqual({ ...onPg[6], deduplicated: true });
    });

    test('nack: scheduled or dead as SQLite writes it; guarded by lease, attempt and max_attempts; first matching input wins', async () => {
      const store = sqliteStore();
      store.ensureQueue('alpha', T0);
      const ids = store.insertMany(Array.from({ length: 8 }, (_, i) => newJob({ maxAttempts: i === 2 ? 1 : 3 })), Array(8).fill(JobState.Pending), T0);
      const held = [0, 2, 3, 4, 5].map((i) => claimed(store, ids[i]!, `b0.${i}.`, `w-${i}`, T0 + 10));
      const [a, c2, d, e, f] = held;
      // Job 1 has a history: nacked once (its errors hold an entry), promoted, leased again (attempt 2), extended.
      const b1 = claimed(store, ids[1]!, 'b0.1.', 'w-1', T0 + 10);
      store.fail(b1.id, b1.lease_id, { state: JobState.Scheduled, runAt: T0 + 20, error: { attempt: 1, message: 'first', at: T0 + 15, nonRetryable: false } }, T0 + 15);
      store.promoteDue(T0 + 20, 10);
      const b = claimed(store, ids[1]!, 'b0.9.', 'w "b"', T0 + 30);
      store.extend(b.id, b.lease_id, 0, '{"pct":5}', T0 + 40);
      // UpdateQueue raised job 3's max_attempts after the broker decided from 3.
      store.db.prepare(`UPDATE jobs SET max_attempts = 5 WHERE seq = ?`).run(seqOf(d!.id));
      const schema = await seededFrom(store);
      await expectSameRows(schema, store);

      const failsAt = (now: number): FailCmd[] => {
        const err = (attempt: number, message: string, nonRetryable = false) => ({ attempt, message, at: now, nonRetryable });
        return [
          { id: a!.id, leaseId: a!.lease_id, attempt: 1, maxAttempts: 3, state: JobState.Scheduled, runAt: now + 1_000, error: err(1, 'boom "q"\n\t\u0001 ünï 😀') },
          { id: b.id, leaseId: b.lease_id, attempt: 2, maxAttempts: 3, state: JobState.Scheduled, runAt: now + 2_000, error: err(2, 'second') },
          { id: c2!.id, leaseId: c2!.lease_id, attempt: 1, maxAttempts: 1, state: JobState.Dead, runAt: now, error: err(1, 'last') },
          { id: d!.id, leaseId: d!.lease_id, attempt: 1, maxAttempts: 3, state: JobState.Dead, runAt: now, error: err(1, 'stale max') },
          { id: e!.id, leaseId: e!.lease_id, attempt: 2, maxAttempts: 3, state: JobState.Dead, runAt: now, error: err(2, 'stale attempt') },
          { id: e!.id, leaseId: e!.lease_id, attempt: 1, maxAttempts: 3, state: JobState.Scheduled, runAt: now + 5, error: err(1, 'right one') },
          { id: f!.id, leaseId: 'b9.9.' + f!.seq, attempt: 1, maxAttempts: 3, state: JobState.Dead, runAt: now, error: err(1, 'forged') },
          { id: f!.id, leaseId: f!.lease_id, attempt: 1, maxAttempts: 3, state: JobState.Dead, runAt: now, error: err(1, 'fatal', true) },
          { id: f!.id, leaseId: f!.lease_id, attempt: 1, maxAttempts: 3, state: JobState.Scheduled, runAt: now + 9, error: err(1, 'repeat') },
          { id: ids[6]!, leaseId: 'b0.6.' + seqOf(ids[6]!), attempt: 0, maxAttempts: 3, state: JobState.Dead, runAt: now, error: err(0, 'not active') },
          { id: formatJobId(999_999, T0), leaseId: 'x', attempt: 1, maxAttempts: 3, state: JobState.Dead, runAt: now, error: err(1, 'unknown') },
          { id: 'not-an-id', leaseId: 'x', attempt: 1, maxAttempts: 3, state: JobState.Dead, runAt: now, error: err(1, 'bad id') },
        ];
      };
      const [now, okPg] = await atDbNow((now) => failMany(c, { schema, fails: failsAt(now) }));
      const fails = failsAt(now);
      // SQLite's nack path: the decision's context, then fail (JobStore.fail has no attempt guard; the broker decides from failureContext).
      const okSqlite = fails.map((x) => {
        const ctx = store.failureContext(x.id, x.leaseId);
        if (!ctx || ctx.attempt !== x.attempt || ctx.max_attempts !== x.maxAttempts) return false;
        return store.fail(x.id, x.leaseId, { state: x.state, runAt: x.runAt, error: x.error }, now).ok;
      });
      expect(okPg).toEqual(okSqlite);
      expect(okPg).toEqual([true, true, true, false, false, true, false, true, false, false, false, false]);
      await expectSameRows(schema, store);
      const rowOf = async (id: string) => (await pgJobs(schema)).find((r) => r.seq === seqOf(id)) as unknown as JobRow;
      const bRow = await rowOf(b.id);
      expect(JSON.parse(bRow.errors!)).toEqual([
        { attempt: 1, message: 'first', at: T0 + 15, nonRetryable: false },
        { attempt: 2, message: 'second', at: now, nonRetryable: false },
      ]);
      expect(bRow.history!.endsWith(`["a",2,"w \\"b\\"","b0.9.${b.seq}",${T0 + 30},${T0 + 40},${now},"nacked","second","scheduled",${now + 2_000}]`)).toBe(true);
      expect(await rowOf(d!.id)).toMatchObject({ state: 'active', max_attempts: 5 });
    });

    test('extend: deadline from the database clock, progress kept or replaced, repeated heartbeats as SQLite applies them one by one', async () => {
      const store = sqliteStore();
      store.ensureQueue('alpha', T0);
      const ids = store.insertMany(Array.from({ length: 5 }, (_, i) => newJob({ leaseTimeoutMs: 1_000 * (i + 1) })), Array(5).fill(JobState.Pending), T0);
      const [a, b, c3, d] = [0, 1, 2, 3].map((i) => claimed(store, ids[i]!, `b0.${i}.`, 'w', T0 + 10));
      store.extend(a!.id, a!.lease_id, 0, '{"old":true}', T0 + 20);
      const schema = await seededFrom(store);
      const inputs: ExtendCmd[] = [
        { id: a!.id, leaseId: a!.lease_id, extendMs: 5_000, progress: null },
        { id: b!.id, leaseId: b!.lease_id, extendMs: 0, progress: '{"pct":10}' },
        { id: c3!.id, leaseId: c3!.lease_id, extendMs: 100, progress: '{"p":1}' },
        { id: c3!.id, leaseId: c3!.lease_id, extendMs: 0, progress: '{"p":2}' },
        { id: c3!.id, leaseId: c3!.lease_id, extendMs: 200, progress: null },
        { id: d!.id, leaseId: 'b0.0.' + d!.seq, extendMs: 100, progress: '{"forged":1}' },
        { id: ids[4]!, leaseId: 'b0.4.' + seqOf(ids[4]!), extendMs: 100, progress: null },
        { id: formatJobId(999_999, T0), leaseId: 'x', extendMs: 1, progress: null },
      ];
      const [now, onPg] = await atDbNow(() => extendMany(c, { schema, extends: inputs }));
      const onSqlite = inputs.map((x) => {
        const r = store.extend(x.id, x.leaseId, x.extendMs, x.progress, now);
        return r.ok ? r.value : undefined;
      });
      expect(onPg).toStrictEqual(onSqlite);
      expect(onPg.slice(0, 5)).toEqual([
        { deadline: now + 5_000, attempt: 1 },
        { deadline: now + 2_000, attempt: 1 },
        { deadline: now + 100, attempt: 1 },
        { deadline: now + 3_000, attempt: 1 },
        { deadline: now + 200, attempt: 1 },
      ]);
      await expectSameRows(schema, store);
      // The last heartbeat's deadline, the last progress sent (a null one keeps it).
      expect((await pgJobs(schema)).find((r) => r.seq === c3!.seq)).toMatchObject({ progress: '{"p":2}', lease_expires_at: now + 200 });
    });

    test('release: the attempt counted (maybe dead) or refunded, outcome expired or released, as SQLite; stale and repeated inputs miss', async () => {
      const store = sqliteStore();
      store.ensureQueue('alpha', T0);
      const ids = store.insertMany(Array.from({ length: 8 }, (_, i) => newJob({ groupKey: i % 2 ? 'g' : null })), Array(8).fill(JobState.Pending), T0);
      // Jobs 1 and 3 reach their third (last) attempt: two lost leases before.
      for (const i of [1, 3]) {
        for (let k = 0; k < 2; k++) {
          const j = claimed(store, ids[i]!, `b0.${i}${k}.`, 'w', T0 + 10 + k);
          store.release(j.id, j.lease_id, `lost ${k}`, true, T0 + 12 + k);
        }
      }
      const [j0, j1, j2, j3, j4, j5] = [0, 1, 2, 3, 4, 5].map((i) => claimed(store, ids[i]!, `b1.${i}.`, `w-${i}`, T0 + 20)) as [ClaimedJob, ClaimedJob, ClaimedJob, ClaimedJob, ClaimedJob, ClaimedJob];
      const schema = await seededFrom(store);
      await expectSameRows(schema, store);
      const inputs: ReleaseCmd[] = [
        { id: j0.id, leaseId: j0.lease_id, reason: 'worker stream closed: "gone"\n', countsAsAttempt: true },
        { id: j1.id, leaseId: j1.lease_id, reason: 'last one', countsAsAttempt: true },
        { id: j2.id, leaseId: j2.lease_id, reason: 'released by the worker', countsAsAttempt: false },
        { id: j3.id, leaseId: j3.lease_id, reason: 'shutdown', countsAsAttempt: false },
        { id: j4.id, leaseId: j4.lease_id, reason: 'lease expired', countsAsAttempt: true, outcome: 'expired' },
        { id: j4.id, leaseId: j4.lease_id, reason: 'again', countsAsAttempt: true },
        { id: j5.id, leaseId: 'b1.0.' + j5.seq, reason: 'forged', countsAsAttempt: true },
        { id: ids[6]!, leaseId: 'b1.6.' + seqOf(ids[6]!), reason: 'pending', countsAsAttempt: false },
        { id: formatJobId(999_999, T0), leaseId: 'x', reason: 'unknown', countsAsAttempt: false },
      ];
      const [now, onPg] = await atDbNow(() => releaseMany(c, { schema, releases: inputs }));
      const onSqlite = inputs.map((x) => store.release(x.id, x.leaseId, x.reason, x.countsAsAttempt, now, x.outcome));
      expect(onPg).toStrictEqual(onSqlite);
      expect(onPg.map((r) => r && [r.state, r.attempt])).toEqual([
        ['pending', 1], ['dead', 3], ['pending', 0], ['pending', 2], ['pending', 1], undefined, undefined, undefined, undefined,
      ]);
      await expectSameRows(schema, store);
      const j1Row = (await pgJobs(schema)).find((r) => r.seq === j1.seq) as unknown as JobRow;
      expect(j1Row).toMatchObject({ state: 'dead', finished_at: now, last_error: 'last one', lease_id: null });
      expect(j1Row.history!.endsWith(`["a",3,"w-1","b1.1.${j1.seq}",${T0 + 20},null,${now},"released","last one","dead"]`)).toBe(true);
    });

    test('promote and expire: the due rows SQLite takes, in its order and ties, by the database clock', async () => {
      const store = sqliteStore();
      store.ensureQueue('alpha', T0);
      const sched = store.insertMany(
        [newJob({ runAt: T0 }), newJob({ runAt: T0 - 1_000 }), newJob({ runAt: T0 }), newJob({ runAt: T0, groupKey: 'g' }), newJob({ runAt: FAR }), newJob({ runAt: T0 - 1 })],
        Array(6).fill(JobState.Scheduled),
        T0 - 5_000,
      );
      const active = store.insertMany(
        Array.from({ length: 6 }, (_, i) => newJob({ leaseTimeoutMs: 1_000, maxAttempts: i === 2 ? 1 : 3, groupKey: i === 3 ? 'g' : null })),
        Array(6).fill(JobState.Pending),
        T0,
      );
      // Leases 0-3 expired at T0 + 1010 (ties), 4 at T0 + 510; 5 is held until a year from now.
      const leases = active.map((id, i) => claimed(store, id, `b0.${i}.`, `w-${i}`, i === 4 ? T0 - 490 : i === 5 ? FAR : T0 + 10));
      const schema = await seededFrom(store);
      await expectSameRows(schema, store);

      const [now, promoted] = await atDbNow(() => promoteDue(c, { schema, limit: 3 }));
      const expected = store.promoteDue(now, 3).sort((x, y) => seqOf(x.id) - seqOf(y.id));
      expect(promoted).toStrictEqual(expected);
      expect(promoted.map((p) => p.id)).toEqual([sched[0], sched[1], sched[5]]);
      await expectSameRows(schema, store);
      const [now2, rest] = await atDbNow(() => promoteDue(c, { schema, limit: 10 }));
      expect(rest).toStrictEqual(store.promoteDue(now2, 10).sort((x, y) => seqOf(x.id) - seqOf(y.id)));
      expect(rest.map((p) => p.id)).toEqual([sched[2], sched[3]]);
      await expectSameRows(schema, store);

      const reason = 'lease expired: no heartbeat within the lease timeout';
      for (const limit of [3, 10]) {
        const [at, expired] = await atDbNow(() => expireLeases(c, { schema, limit, reason }));
        const onSqlite = store
          .expiredLeases(at, limit)
          .map(({ id, lease_id }) => ({ id, leaseId: lease_id, released: store.release(id, lease_id, reason, true, at, 'expired')! }))
          .sort((x, y) => seqOf(x.id) - seqOf(y.id));
        expect(expired).toStrictEqual(onSqlite);
        await expectSameRows(schema, store);
      }
      const rows = (await pgJobs(schema)) as unknown as JobRow[];
      // The first round took the earliest deadline (lease 4) and the first two tied ones by seq.
      expect(rows.filter((r) => active.includes(formatJobId(r.seq, r.created_at))).map((r) => r.state)).toEqual(['pending', 'pending', 'dead', 'pending', 'pending', 'active']);
      expect(rows.find((r) => r.seq === leases[5]!.seq)!.lease_id).toBe(leases[5]!.lease_id);
      expect(await promoteDue(c, { schema, limit: 10 })).toEqual([]);
      expect(await expireLeases(c, { schema, limit: 10, reason })).toEqual([]);
    });

    test('cancel: scheduled, pending and active jobs as SQLite cancels them; finished, unknown and repeated ones miss', async () => {
      const store = sqliteStore();
      store.ensureQueue('alpha', T0);
      const ids = store.insertMany(
        Array.from({ length: 7 }, (_, i) => newJob({ runAt: i === 0 ? FAR : T0, groupKey: i === 0 ? 'g' : null })),
        [JobState.Scheduled, ...Array(6).fill(JobState.Pending)],
        T0,
      );
      const act = claimed(store, ids[2]!, 'b0.2.', 'w "x"', T0 + 10);
      const done = claimed(store, ids[3]!, 'b0.3.', 'w', T0 + 10);
      store.completeMany([{ id: done.id, leaseId: done.lease_id, result: '1' }], T0 + 11);
      store.cancel(ids[4]!, 'before', T0 + 12);
      const lost = claimed(store, ids[5]!, 'b0.5.', 'w', T0 + 13);
      store.release(lost.id, lost.lease_id, 'earlier error', true, T0 + 14);
      const schema = await seededFrom(store);
      const inputs = [
        { id: ids[0]!, reason: 'operator "said"\n' },
        { id: ids[1]!, reason: null },
        { id: act.id, reason: 'stop it' },
        { id: ids[3]!, reason: 'too late' },
        { id: ids[4]!, reason: 'again' },
        { id: ids[5]!, reason: null },
        { id: ids[5]!, reason: 'repeat' },
        { id: formatJobId(seqOf(ids[6]!), T0 + 1), reason: 'wrong created_at' },
        { id: formatJobId(999_999, T0), reason: null },
      ];
      const [now, onPg] = await atDbNow(() => cancelMany(c, { schema, cancels: inputs }));
      const onSqlite = inputs.map((x) => {
        const r = store.cancel(x.id, x.reason, now);
        return r.ok ? r.value : undefined;
      });
      const decodedRow = (r: JobRow | undefined) => r && decoded([{ ...r }])[0];
      expect(onPg.map(decodedRow)).toEqual(onSqlite.map(decodedRow));
      expect(onPg.map((r) => r?.state)).toEqual(['cancelled', 'cancelled', 'cancelled', undefined, undefined, 'cancelled', undefined, undefined, undefined]);
      expect(onPg[5]!.last_error).toBe('earlier error');
      await expectSameRows(schema, store);
      expect(((await pgJobs(schema)).find((r) => r.seq === seqOf(ids[6]!)) as unknown as JobRow).state).toBe('pending');
    });

    test('U+0000 in a nack message, a release reason and a cancel reason: stored as U+FFFD (SQLite keeps U+0000); otherwise as SQLite', async () => {
      const store = sqliteStore();
      store.ensureQueue('alpha', T0);
      const ids = store.insertMany(Array.from({ length: 3 }, () => newJob({})), Array(3).fill(JobState.Pending), T0);
      const [a, b] = [0, 1].map((i) => claimed(store, ids[i]!, `b0.${i}.`, 'w', T0 + 10));
      const schema = await seededFrom(store);
      const raw = 'bad\u0000byte\u0000';
      const [now, results] = await atDbNow(async (now) => {
        const failed = await failMany(c, {
          schema,
          fails: [{ id: a!.id, leaseId: a!.lease_id, attempt: 1, maxAttempts: 3, state: JobState.Scheduled, runAt: now + 10, error: { attempt: 1, message: raw, at: now, nonRetryable: false } }],
        });
        const released = await releaseMany(c, { schema, releases: [{ id: b!.id, leaseId: b!.lease_id, reason: raw, countsAsAttempt: true }] });
        const cancelled = await cancelMany(c, { schema, cancels: [{ id: ids[2]!, reason: raw }] });
        return { failed, released, cancelled };
      });
      expect(results.failed).toEqual([true]);
      expect(results.released[0]).toMatchObject({ state: 'pending' });
      expect(results.cancelled[0]!.last_error).toBe('bad\uFFFDbyte\uFFFD');
      const rows = (await pgJobs(schema)) as unknown as JobRow[];
      for (const r of rows) {
        expect(r.last_error).toBe('bad\uFFFDbyte\uFFFD');
        expect(r.history).toContain('"bad\uFFFDbyte\uFFFD"');
        expect(r.history).not.toContain('\\u0000');
      }
      expect(JSON.parse(rows[0]!.errors!)[0].message).toBe('bad\uFFFDbyte\uFFFD');
      expect(JSON.parse(rows[1]!.errors!)[0].message).toBe('bad\uFFFDbyte\uFFFD');

      // SQLite keeps the raw text (and escapes it in JSON); given the rule's text, it writes what PostgreSQL wrote.
      const twin = (s: JobStore, text: string) => {
        s.fail(a!.id, a!.lease_id, { state: JobState.Scheduled, runAt: now + 10, error: { attempt: 1, message: text, at: now, nonRetryable: false } }, now);
        s.release(b!.id, b!.lease_id, text, true, now);
        s.cancel(ids[2]!, text, now);
      };
      twin(store, storableText(raw));
      expect(decoded(rows as unknown as Record<string, unknown>[])).toEqual(decoded(sqliteJobs(store)));
      const second = sqliteStore();
      second.ensureQueue('alpha', T0);
      const ids2 = second.insertMany(Array.from({ length: 3 }, () => newJob({})), Array(3).fill(JobState.Pending), T0);
      expect(ids2).toEqual(ids);
      [0, 1].forEach((i) => claimed(second, ids2[i]!, `b0.${i}.`, 'w', T0 + 10));
      twin(second, raw);
      const rawRows = sqliteJobs(second) as unknown as JobRow[];
      expect(rawRows.map((r) => r.last_error)).toEqual([raw, raw, raw]);
      expect(rawRows[0]!.history).toContain('"bad\\u0000byte\\u0000"');
    });

    test("a dedup key another transaction is inserting: the enqueue waits, then dedups against it once committed, inserts once it rolled back", async () => {
      const schema = await db.freshSchema();
      const [a, b] = await Promise.all([db.connect(), db.connect()]);
      const pid = (await queryRows<{ pid: number }>(b, `SELECT pg_backend_pid() AS pid`))[0]!.pid;
      const states = [JobState.Pending, JobState.Pending, JobState.Scheduled];
      /** Resolves once b waits on a lock (its insert met a's uncommitted row of the key). */
      const bWaits = () => waitingOnLock(admin, pid);
      for (const end of ['COMMIT', 'ROLLBACK'] as const) {
        const jobs = [newJob({ dedupKey: `k1-${end}` }), newJob({}), newJob({ dedupKey: `k2-${end}`, runAt: FAR })];
        await a.query('BEGIN');
        const first = await enqueueMany(a, { schema, jobs, states, now: T0 });
        const second = enqueueMany(b, { schema, jobs, states, now: T0 });
        await bWaits();
        await a.query(end);
        const got = await second;
        if (end === 'COMMIT') {
          expect(got.map((r) => r.deduplicated)).toEqual([true, false, true]);
          expect([got[0], got[2]]).toEqual([first[0], first[2]].map((r) => ({ ...r, deduplicated: true })));
        } else {
          expect(got.map((r) => r.deduplicated)).toEqual([false, false, false]);
        }
      }
      // Committed: a's three and b's keyless one; rolled back: b's three. Each key held by one job.
      const rows = await queryRows<{ dedup_key: string | null; n: number }>(
        admin,
        `SELECT dedup_key, count(*)::int AS n FROM ${quoteIdent(schema)}.jobs GROUP BY dedup_key ORDER BY dedup_key`,
      );
      expect(rows).toEqual([
        { dedup_key: 'k1-COMMIT', n: 1 }, { dedup_key: 'k1-ROLLBACK', n: 1 }, { dedup_key: 'k2-COMMIT', n: 1 }, { dedup_key: 'k2-ROLLBACK', n: 1 },
        { dedup_key: null, n: 3 },
      ]);
    });

    test('three connections promoting and expiring 3,000 + 3,000 rows at once: each row taken exactly once', async () => {
      const schema = await db.freshSchema();
      const q = quoteIdent(schema);
      const N = 3_000;
      await admin.query(`INSERT INTO ${q}.queues (name, created_at) VALUES ('bulk', $1)`, [T0]);
      const jobs = Array.from({ length: 2 * N }, (_, i) => newJob({ queue: 'bulk', runAt: i < N ? T0 - (i % 7) : T0, maxAttempts: 1 + (i % 2), payload: `{"i":${i}}` }));
      const enqueued = await enqueueMany(admin, { schema, jobs, states: jobs.map((_, i) => (i < N ? JobState.Scheduled : JobState.Pending)), now: T0 });
      expect(enqueued.filter((r) => !r.deduplicated)).toHaveLength(2 * N);
      for (let k = 0; k < N; k += 500) {
        const slots = Array.from({ length: 500 }, () => ({ prefix: `bx.${k}.`, workerId: 'w' }));
        expect(await claimForSlots(admin, { schema, queue: 'bulk', slots })).toHaveLength(500);
      }
      // Test-only: the leases' deadlines moved an hour back, so all of them have expired.
      await admin.query(`UPDATE ${q}.jobs SET lease_expires_at = lease_expires_at - 3600000 WHERE state = 'active'`);

      const conns = await Promise.all([db.connect(), db.connect(), db.connect()]);
      const promotedBy: string[][] = conns.map(() => []);
      const expiredBy: string[][] = conns.map(() => []);
      const reason = 'lease expired';
      await Promise.all(
        conns.map(async (conn, b) => {
          let promoting = true;
          let expiring = true;
          while (promoting || expiring) {
            // Both kinds at once on each connection's turn, as a flush would send them; empty = nothing left unlocked.
            if (promoting) {
              const p = await promoteDue(conn, { schema, limit: 100 });
              promotedBy[b]!.push(...p.map((j) => j.id));
              promoting = p.length > 0;
            }
            if (expiring) {
              const e = await expireLeases(conn, { schema, limit: 100, reason });
              expiredBy[b]!.push(...e.map((j) => j.id));
              expiring = e.length > 0;
            }
          }
        }),
      );
      const promoted = promotedBy.flat();
      const expired = expiredBy.flat();
      expect(promoted).toHaveLength(N);
      expect(new Set(promoted).size).toBe(N);
      expect(expired).toHaveLength(N);
      expect(new Set(expired).size).toBe(N);
      for (const by of [...promotedBy, ...expiredBy]) expect(by.length).toBeGreaterThan(0);
      const [summary] = await queryRows<Record<string, number>>(
        admin,
        `SELECT count(*) FILTER (WHERE state = 'pending' AND history = '["p",' || updated_at || ',0]')::int AS promoted_once,
                count(*) FILTER (WHERE history LIKE '["a",1,%,"expired","lease expired",%' AND history NOT LIKE '%],[%')::int AS expired_once,
                count(*) FILTER (WHERE state = 'dead')::int AS dead,
                count(*) FILTER (WHERE state IN ('scheduled', 'active'))::int AS left_over
           FROM ${q}.jobs`,
      );
      // Half of the expired leases were last attempts (max_attempts 1 for even i).
      expect(summary).toEqual({ promoted_once: N, expired_once: N, dead: N / 2, left_over: 0 });
      const counts = await queryRows(admin, `SELECT state, n FROM ${q}.queue_counts WHERE queue = 'bulk' AND n > 0 ORDER BY state`);
      expect(counts).toEqual([{ state: 'dead', n: N / 2 }, { state: 'pending', n: N + N / 2 }]);
    }, 120_000);
  });
}
