/**
 * The PostgreSQL claim and ack (src/store/postgres/pg-claims.ts, design 3.2, 3.6, 3.7) against a
 * real PostgreSQL: the same rows claimed and completed on SQLite (JobStore) and on PostgreSQL
 * change the same columns the same way and give the same jobs to the same slots; three
 * connections claiming and completing 10,000 jobs at once hand out each job exactly once; the
 * lease id fences acks; a paused queue claims nothing; lease times are the database's clock.
 *
 * Rows come from a SQLite store written through its own paths and copied over by the test-only
 * seeding helper (test/helpers/pg-seed.ts), except the 10,000-job backlog, inserted by one
 * test-only INSERT ... SELECT. Needs PostgreSQL: not registered where it is not required.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import pg from 'pg';
import { JobState } from '../src/domain/job-state.js';
import { formatJobId } from '../src/domain/job-id.js';
import { JobStore } from '../src/store/job-store.js';
import { claimForSlots, completeMany, type ClaimSlot } from '../src/store/postgres/pg-claims.js';
import { queryRows, quoteIdent } from '../src/store/postgres/sql.js';
import type { ClaimedJob, JobRow } from '../src/store/types.js';
import { newJob, seededSchema, seqOf, SqliteFiles, T0 } from './helpers/pg-fixtures.js';
import { dumpPostgres, dumpSqlite } from './helpers/pg-seed.js';
import { postgresRequired, testDatabase, type TestDatabase } from './helpers/postgres.js';

/**
 * Jobs rows with the history column decoded (job-history.ts parses it the same way). The texts
 * differ in one way only: better-sqlite3 binds a JS number as a REAL, so SQLite's json_array
 * writes the statement's @now as `1764000000030.0`; PostgreSQL writes the bigint `1764000000030`.
 * Same numbers once parsed; everything else is compared as stored.
 */
function decodedHistory(rows: Record<string, unknown>[]): Record<string, unknown>[] {
  return rows.map((r) => ({ ...r, history: typeof r.history === 'string' ? JSON.parse(`[${r.history}]`) : r.history }));
}

// A client that never connects: nothing to claim or complete must not reach the database.
test('no slots, no acks or only ids that name no job: answered without a query', async () => {
  const never = new pg.Client();
  expect(await claimForSlots(never, { queue: 'alpha', slots: [] })).toEqual([]);
  expect(await completeMany(never, { acks: [] })).toEqual([]);
  const unknown = [{ id: 'not-an-id', leaseId: 'x', result: null }, { id: `${formatJobId(1, T0).slice(0, 19)}bfff-ffffffffffff`, leaseId: 'y', result: null }];
  expect(await completeMany(never, { acks: unknown })).toEqual([undefined, undefined]);
});

if (postgresRequired()) {
  describe('PostgreSQL claims and acks', () => {
    let db: TestDatabase;
    let admin: pg.Client;
    const sqlite = new SqliteFiles();

    beforeAll(async () => {
      db = await testDatabase('claims');
      admin = db.admin;
    });

    afterAll(async () => {
      await db?.close();
      sqlite.close();
    });

    const connect = () => db.connect();
    // A migrated schema per test, so tests never see each other's jobs.
    const freshSchema = () => db.freshSchema();

    const sqliteStore = () => new JobStore(sqlite.open());

    /** The SQLite store's rows copied into a fresh schema. */
    const seededFrom = (store: JobStore) => seededSchema(db, store.db);

    async function jobRows(schema: string): Promise<Record<string, unknown>[]> {
      return (await dumpPostgres(admin, schema)).jobs;
    }

    /** The database clock as the store writes times: whole epoch ms, floored. */
    async function dbClockMs(): Promise<number> {
      const [row] = await queryRows<{ t: number }>(admin, `SELECT floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint AS t`);
      return row!.t;
    }

    /** SQLite's claim for slots: peekReady in delivery order, then one claim per slot (as the dispatcher does per stream). */
    function sqliteClaimForSlots(store: JobStore, queue: string, slots: ClaimSlot[], now: number, types?: string[]): ClaimedJob[] {
      const refs = store.peekReady(queue, slots.length, types);
      return refs.flatMap((ref, i) => store.claim([ref.seq], slots[i]!.prefix, slots[i]!.workerId, now));
    }

    test('the same jobs claimed and completed on SQLite and PostgreSQL: same jobs to the same slots, same rows after', async () => {
      const store = sqliteStore();
      for (const q of ['alpha', 'beta']) store.ensureQueue(q, T0);
      const ids = store.insertMany(
        [
          newJob({ priority: 1 }),
          newJob({ priority: 3, metadata: '{"trace":"t-1"}', groupKey: 'g1' }),
          newJob({ priority: 2, type: 'sms', payload: '{ "spaced" : [1, 2] }' }),
          newJob({ priority: 4, leaseTimeoutMs: 2_147_483_647 }),
          newJob({ priority: 3 }),
          newJob({ priority: 2, retry: '{"backoff":"fixed","delayMs":1000}' }),
          newJob({ priority: 4, type: 'sms', groupKey: 'é' }),
          newJob({ priority: 1, type: 'sms' }),
          newJob({ priority: 2, runAt: T0 + 60_000 }),
          newJob({ queue: 'beta', priority: 4 }),
          newJob({ priority: 3, payload: '{"esc":"\\u0000\\n\\"q\\"","emoji":"😀"}' }),
          newJob({ priority: 2 }),
          newJob({ priority: 2 }),
        ],
        [...Array(8).fill(JobState.Pending), JobState.Scheduled, ...Array(4).fill(JobState.Pending)],
        T0,
      );
      // Before the copy: one job leased and extended (its ack writes a heartbeat time into the
      // history), one leased, released and re-leased (the second attempt's ack; the first lease
      // is stale), both under worker ids that need JSON escaping in the history.
      const [held] = store.claim([seqOf(ids[11]!)], 'b0.1.', 'w "quoted"\n\u0001 ünï', T0 + 10);
      store.extend(held!.id, held!.lease_id, 0, '{"pct":50}', T0 + 20);
      const [first] = store.claim([seqOf(ids[12]!)], 'b0.2.', 'w-1', T0 + 10);
      store.release(first!.id, first!.lease_id, 'stream lost', true, T0 + 30);
      const [second] = store.claim([seqOf(ids[12]!)], 'b0.3.', 'w\\2', T0 + 40);
      const schema = await seededFrom(store);
      expect(await jobRows(schema)).toEqual(dumpSqlite(store.db).jobs);

      const pgClient = await connect();
      const claimed: ClaimedJob[] = [];
      // Rounds of different sizes through the backlog, one with a type filter and one with
      // more slots than ready jobs; each claim's time is the database's, given to SQLite as its now.
      const rounds: { slots: number; types?: string[] }[] = [{ slots: 3 }, { slots: 2, types: ['sms'] }, { slots: 1 }, { slots: 10 }, { slots: 4 }];
      for (const [r, round] of rounds.entries()) {
        const slots = Array.from({ length: round.slots }, (_, i) => ({ prefix: `b1.${r}.`, workerId: `w-${r}-${i}` }));
        const onPg = await claimForSlots(pgClient, { schema, queue: 'alpha', slots, types: round.types });
        const now = onPg[0] ? onPg[0].lease_expires_at - onPg[0].lease_timeout_ms : T0;
        expect(onPg).toStrictEqual(sqliteClaimForSlots(store, 'alpha', slots, now, round.types));
        const rows = await jobRows(schema);
        expect(rows).toEqual(dumpSqlite(store.db).jobs);
        for (const [i, j] of onPg.entries()) {
          expect(j.lease_id).toBe(`b1.${r}.${j.seq}`);
          expect(rows.find((row) => row.seq === j.seq)!.worker_id).toBe(slots[i]!.workerId);
        }
        claimed.push(...onPg);
      }
      // Delivery order and slot assignment: priority DESC then seq, the i-th job to slot i.
      const byPriority = (a: ClaimedJob, b: ClaimedJob) => b.priority - a.priority || a.seq - b.seq;
      expect(claimed.slice(0, 3).map((j) => j.seq)).toEqual([...claimed.slice(0, 3)].sort(byPriority).map((j) => j.seq));
      expect(claimed.slice(0, 3).map((j) => j.priority)).toEqual([4, 4, 3]);
      expect(claimed.slice(3, 5).map((j) => [j.type, j.priority])).toEqual([['sms', 2], ['sms', 1]]);
      // 11 pending in alpha, 2 of them leased before the copy; the last round found none left.
      expect(claimed).toHaveLength(9);
      expect(await claimForSlots(pgClient, { schema, queue: 'alpha', slots: [{ prefix: 'b1.9.', workerId: 'w' }] })).toEqual([]);
      expect(await claimForSlots(pgClient, { schema, queue: 'alpha', slots: [] })).toEqual([]);

      // Acks: current leases, the seeded ones, a stale lease, a wrong one, the same job twice
      // (wrong lease first, then twice the right one), an unknown id, a job not active.
      const acks = [
        { id: claimed[0]!.id, leaseId: claimed[0]!.lease_id, result: '{"ok": true}' },
        { id: held!.id, leaseId: held!.lease_id, result: null },
        { id: second!.id, leaseId: first!.lease_id, result: '"stale"' },
        { id: second!.id, leaseId: second!.lease_id, result: '"second"' },
        { id: claimed[1]!.id, leaseId: 'b9.9.' + claimed[1]!.seq, result: null },
        { id: claimed[1]!.id, leaseId: claimed[1]!.lease_id, result: '1' },
        { id: claimed[1]!.id, leaseId: claimed[1]!.lease_id, result: '2' },
        { id: formatJobId(999_999, T0), leaseId: 'b1.0.999999', result: null },
        { id: 'not-an-id', leaseId: 'x', result: null },
        { id: ids[8]!, leaseId: 'b1.0.' + seqOf(ids[8]!), result: null },
        ...claimed.slice(2).map((j) => ({ id: j.id, leaseId: j.lease_id, result: `{"seq":${j.seq}}` })),
      ];
      const done = await completeMany(pgClient, { schema, acks });
      const finishedAt = (await jobRows(schema)).find((j) => j.seq === claimed[0]!.seq)!.finished_at as number;
      // Array.from: SQLite's result leaves holes for the inputs that changed nothing, this one holds undefined.
      expect(done).toStrictEqual(Array.from(store.completeMany(acks, finishedAt)));
      expect(done.map((d) => d !== undefined)).toEqual([true, true, false, true, false, true, false, false, false, false, ...claimed.slice(2).map(() => true)]);
      expect(done[5]).toStrictEqual({ attempt: 1, queue: 'alpha', started_at: claimed[1]!.lease_expires_at - claimed[1]!.lease_timeout_ms, metadata: null });
      expect(done[3]).toMatchObject({ attempt: 2 });
      // Every column of every row; the history entries the acks appended, as numbers and strings.
      const after = await jobRows(schema);
      expect(decodedHistory(after)).toEqual(decodedHistory(dumpSqlite(store.db).jobs));
      expect(after.map(({ history: _, ...rest }) => rest)).toEqual(dumpSqlite(store.db).jobs.map(({ history: _, ...rest }) => rest));
      const heldRow = after.find((j) => j.seq === held!.seq) as unknown as JobRow;
      expect(heldRow.history).toBe(`["a",1,"w \\"quoted\\"\\n\\u0001 ünï","b0.1.${held!.seq}",${T0 + 10},${T0 + 20},${finishedAt},"acked"]`);
      expect((after.find((j) => j.seq === claimed[1]!.seq) as unknown as JobRow).result).toBe('1');
      expect(await completeMany(pgClient, { schema, acks: [] })).toEqual([]);
    });

    test('three connections claiming 50 at a time over 10,000 jobs: each job claimed once and completed once', async () => {
      const schema = await freshSchema();
      const q = quoteIdent(schema);
      const TOTAL = 10_000;
      await admin.query(`INSERT INTO ${q}.queues (name, created_at) VALUES ('bulk', $1)`, [T0]);
      // Test-only insert: the PostgreSQL enqueue command does not exist yet.
      await admin.query(
        `INSERT INTO ${q}.jobs (queue, type, state, priority, payload, run_at, max_attempts, lease_timeout_ms, created_at, updated_at)
         SELECT 'bulk', 't', 'pending', 1 + i % 4, '{"i":' || i || '}', $1, 3, 30000, $1, $1 FROM generate_series(1, $2::int) AS i`,
        [T0, TOTAL],
      );
      const conns = await Promise.all([connect(), connect(), connect()]);
      const claimedBy: number[][] = conns.map(() => []);
      const completedBy: number[][] = conns.map(() => []);
      let rounds = 0;
      const started = performance.now();
      await Promise.all(
        conns.map(async (c, b) => {
          for (let counter = 0; ; counter++) {
            const slots = Array.from({ length: 50 }, (_, i) => ({ prefix: `b${b}.${counter}.`, workerId: `w${b}-${i % 5}` }));
            const jobs = await claimForSlots(c, { schema, queue: 'bulk', slots });
            // Another claimer may hold the rest locked: empty means nothing left unlocked, and
            // what is locked belongs to a claimer that completes it.
            if (jobs.length === 0) return;
            rounds++;
            claimedBy[b]!.push(...jobs.map((j) => j.seq));
            for (const j of jobs) {
              expect(j.lease_id).toBe(`b${b}.${counter}.${j.seq}`);
              expect(j.attempt).toBe(1);
            }
            const done = await completeMany(c, { schema, acks: jobs.map((j) => ({ id: j.id, leaseId: j.lease_id, result: null })) });
            done.forEach((d, i) => d && completedBy[b]!.push(jobs[i]!.seq));
          }
        }),
      );
      const seconds = (performance.now() - started) / 1000;
      const claimedAll = claimedBy.flat();
      const completedAll = completedBy.flat();
      expect(claimedAll).toHaveLength(TOTAL);
      expect(new Set(claimedAll).size).toBe(TOTAL);
      expect(completedAll.sort((a, b) => a - b)).toEqual([...claimedAll].sort((a, b) => a - b));
      // Every connection got work (SKIP LOCKED let them run side by side).
      for (const c of claimedBy) expect(c.length).toBeGreaterThan(0);
      const [summary] = await queryRows<{ n: number; completed: number; attempts: number; entries: number }>(
        admin,
        `SELECT count(*)::int AS n, count(*) FILTER (WHERE state = 'completed')::int AS completed,
                count(*) FILTER (WHERE attempt = 1)::int AS attempts,
                count(*) FILTER (WHERE history LIKE '["a",1,%' AND history NOT LIKE '%],[%')::int AS entries
           FROM ${q}.jobs`,
      );
      expect(summary).toEqual({ n: TOTAL, completed: TOTAL, attempts: TOTAL, entries: TOTAL });
      const [counts] = await queryRows<{ n: number }>(admin, `SELECT n FROM ${q}.queue_counts WHERE queue = 'bulk' AND state = 'completed'`);
      expect(counts!.n).toBe(TOTAL);
      console.log(
        `claim 50 + complete, 3 connections, ${TOTAL} jobs: ${seconds.toFixed(2)} s, ${Math.round(TOTAL / seconds)} jobs/s ` +
          `(${rounds} claims; per connection ${claimedBy.map((c) => c.length).join(' / ')})`,
      );
    }, 120_000);

    test('fencing: a stale, wrong or other claimer\'s lease completes nothing; a held job is skipped by other claimers', async () => {
      const store = sqliteStore();
      store.ensureQueue('alpha', T0);
      const ids = store.insertMany(Array.from({ length: 4 }, () => newJob({})), Array(4).fill(JobState.Pending), T0);
      // A stale lease: leased, released (stream lost), leased again, all before the copy.
      const [stale] = store.claim([seqOf(ids[0]!)], 'b0.1.', 'w-old', T0 + 10);
      store.release(stale!.id, stale!.lease_id, 'stream lost', true, T0 + 20);
      const [current] = store.claim([seqOf(ids[0]!)], 'b0.2.', 'w-new', T0 + 30);
      const schema = await seededFrom(store);
      const a = await connect();
      const b = await connect();

      const before = await jobRows(schema);
      expect(await completeMany(b, { schema, acks: [{ id: stale!.id, leaseId: stale!.lease_id, result: '"zombie"' }] })).toEqual([undefined]);
      expect(await completeMany(b, { schema, acks: [{ id: current!.id, leaseId: 'b0.2.', result: null }] })).toEqual([undefined]);
      expect(await jobRows(schema)).toEqual(before);

      // A holds two jobs; B's claim gets the rest, B cannot complete A's jobs under its own leases.
      const held = await claimForSlots(a, { schema, queue: 'alpha', slots: [{ prefix: 'ba.1.', workerId: 'wa' }, { prefix: 'ba.1.', workerId: 'wa' }] });
      expect(held.map((j) => j.seq)).toEqual([seqOf(ids[1]!), seqOf(ids[2]!)]);
      const others = await claimForSlots(b, { schema, queue: 'alpha', slots: [{ prefix: 'bb.1.', workerId: 'wb' }, { prefix: 'bb.1.', workerId: 'wb' }] });
      expect(others.map((j) => j.seq)).toEqual([seqOf(ids[3]!)]);
      const beforeB = await jobRows(schema);
      const forged = held.map((j) => ({ id: j.id, leaseId: `bb.1.${j.seq}`, result: '"b"' }));
      expect(await completeMany(b, { schema, acks: forged })).toEqual([undefined, undefined]);
      expect(await jobRows(schema)).toEqual(beforeB);

      // The holders complete; a repeat of a completed ack, then, changes nothing.
      const acks = [...held.map((j) => ({ id: j.id, leaseId: j.lease_id, result: null })), { id: current!.id, leaseId: current!.lease_id, result: null }];
      expect((await completeMany(a, { schema, acks })).map((d) => d?.attempt)).toEqual([1, 1, 2]);
      const afterA = await jobRows(schema);
      expect(await completeMany(a, { schema, acks })).toEqual([undefined, undefined, undefined]);
      expect(await jobRows(schema)).toEqual(afterA);

      // Row locks: while A holds a ready job's row lock (an open transaction), B's claim skips
      // that job without waiting for it. (A's lock is a plain FOR UPDATE, not an uncommitted
      // claim: that would also hold the queue's queue_counts rows, which B's claim must update
      // too, so B would wait for A's commit; design 3.4, the ledger of step 7.)
      const more = store.insertMany([newJob({}), newJob({})], [JobState.Pending, JobState.Pending], T0);
      const q = quoteIdent(schema);
      await admin.query(
        `INSERT INTO ${q}.jobs OVERRIDING SYSTEM VALUE SELECT * FROM json_populate_recordset(NULL::${q}.jobs, $1::json)`,
        [JSON.stringify(dumpSqlite(store.db).jobs.filter((j) => more.includes(formatJobId(j.seq as number, j.created_at as number))))],
      );
      await a.query('BEGIN');
      try {
        const locked = await queryRows<{ seq: number }>(a, `SELECT seq FROM ${q}.jobs WHERE seq = $1 FOR UPDATE`, [seqOf(more[0]!)]);
        expect(locked).toHaveLength(1);
        const skipped = await claimForSlots(b, { schema, queue: 'alpha', slots: [{ prefix: 'bb.2.', workerId: 'wb' }, { prefix: 'bb.2.', workerId: 'wb' }] });
        expect(skipped.map((j) => j.seq)).toEqual([seqOf(more[1]!)]);
      } finally {
        await a.query('ROLLBACK');
      }
      // Rolled back: the job is pending again and claimable.
      expect((await claimForSlots(b, { schema, queue: 'alpha', slots: [{ prefix: 'bb.3.', workerId: 'wb' }] })).map((j) => j.seq)).toEqual([seqOf(more[0]!)]);
    });

    test('a paused queue claims nothing; resumed, it claims', async () => {
      const store = sqliteStore();
      store.ensureQueue('alpha', T0);
      store.ensureQueue('beta', T0);
      store.insertMany([newJob({}), newJob({ queue: 'beta' })], [JobState.Pending, JobState.Pending], T0);
      store.setQueuePaused('alpha', true);
      const schema = await seededFrom(store);
      const c = await connect();
      const slots = [{ prefix: 'b0.1.', workerId: 'w' }];
      const before = await jobRows(schema);
      expect(await claimForSlots(c, { schema, queue: 'alpha', slots })).toEqual([]);
      expect(await jobRows(schema)).toEqual(before);
      // Another queue is not affected by alpha's pause.
      expect(await claimForSlots(c, { schema, queue: 'beta', slots })).toHaveLength(1);
      await admin.query(`UPDATE ${quoteIdent(schema)}.queues SET paused = 0 WHERE name = 'alpha'`);
      expect(await claimForSlots(c, { schema, queue: 'alpha', slots })).toHaveLength(1);
    });

    test('lease times are the database clock: expiry = its now + lease_timeout_ms', async () => {
      const store = sqliteStore();
      store.ensureQueue('alpha', T0);
      // Enqueued far in the past by the broker's clock: nothing of the claim may come from it.
      store.insertMany([newJob({ leaseTimeoutMs: 1_500 }), newJob({ leaseTimeoutMs: 2_147_483_647 })], [JobState.Pending, JobState.Pending], T0);
      const schema = await seededFrom(store);
      const c = await connect();
      const before = await dbClockMs();
      const jobs = await claimForSlots(c, { schema, queue: 'alpha', slots: [{ prefix: 'b0.1.', workerId: 'w' }, { prefix: 'b0.1.', workerId: 'w' }] });
      const after = await dbClockMs();
      expect(jobs).toHaveLength(2);
      const rows = (await jobRows(schema)) as unknown as JobRow[];
      const startedAt = rows[0]!.started_at!;
      expect(startedAt).toBeGreaterThanOrEqual(before);
      expect(startedAt).toBeLessThanOrEqual(after);
      for (const [i, j] of jobs.entries()) {
        const row = rows.find((r) => r.seq === j.seq)!;
        // One time for the whole statement, as SQLite's @now.
        expect(row).toMatchObject({ started_at: startedAt, updated_at: startedAt, lease_expires_at: startedAt + [1_500, 2_147_483_647][i]! });
        expect(j.lease_expires_at).toBe(row.lease_expires_at);
      }
      const beforeAck = await dbClockMs();
      await completeMany(c, { schema, acks: jobs.map((j) => ({ id: j.id, leaseId: j.lease_id, result: null })) });
      const afterAck = await dbClockMs();
      for (const row of (await jobRows(schema)) as unknown as JobRow[]) {
        expect(row.finished_at).toBeGreaterThanOrEqual(beforeAck);
        expect(row.finished_at).toBeLessThanOrEqual(afterAck);
        expect(row.updated_at).toBe(row.finished_at);
      }
    });
  });
}
