/**
 * The write side of cron schedules on PostgreSQL (src/store/postgres/pg-schedules.ts, design 2
 * "Cron" and 3.8) against a real PostgreSQL:
 * - every statement against SQLite's ScheduleStore on the same rows (copied over by the
 *   test-only seeding helper, test/helpers/pg-seed.ts): same results, same rows after;
 * - exactly once: three connections firing ~50 per-second schedules side by side over a few
 *   hundred simulated seconds give every fire time one run and one job, no gaps;
 * - the lock is not what makes it exact: a firer that never takes the row lock (a broker whose
 *   lock was lost, reading a stale next_fire_at) cannot create a second job for a fire time,
 *   and when the row itself moved back onto fired times (so the firer's plan and its guarded
 *   advance pass) the unique index alone keeps each of those times to its one job;
 * - a firer killed mid-transaction leaves nothing, and another firer then fires that time.
 *
 * `testFire` below does per PostgreSQL transaction what the broker's Scheduler (src/broker/
 * scheduler.ts) does per flush: claim the due schedules, then per schedule a savepoint with the
 * plan (planFires), one job and one run per fire time, the guarded advance and trimRuns; a
 * duplicate fire or a failed advance rolls back to the savepoint and takes its jobs with it.
 * Its job insert is a plain test-only INSERT (the PostgreSQL enqueue command is another step's).
 * Times are injected `now` values; nothing waits on the wall clock. Needs PostgreSQL: not
 * registered where it is not required.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import pg from 'pg';
import { planFires, nextFireTime } from '../src/broker/schedule-plan.js';
import { compileCron } from '../src/domain/cron.js';
import { JobState } from '../src/domain/job-state.js';
import type { Db } from '../src/store/database.js';
import { JobStore } from '../src/store/job-store.js';
import {
  advanceSchedule,
  claimDue,
  deleteSchedule,
  insertRun,
  insertSchedule,
  isDuplicateFire,
  isDuplicateName,
  nextDue,
  setSchedulePaused,
  trimRuns,
  unfinishedJobs,
  updateSchedule,
} from '../src/store/postgres/pg-schedules.js';
import { queryRows, quoteIdent } from '../src/store/postgres/sql.js';
import {
  isDuplicateFire as isDuplicateFireSqlite,
  isDuplicateName as isDuplicateNameSqlite,
  ScheduleStore,
} from '../src/store/schedule-store.js';
import type { NewRun, ScheduleRow } from '../src/store/types.js';
import { newJob, seededSchema, seqOf, SqliteFiles, T0, waitingOnLock } from './helpers/pg-fixtures.js';
import { dumpPostgres, dumpSqlite, type TableDump } from './helpers/pg-seed.js';
import { postgresRequired, testDatabase, type TestDatabase } from './helpers/postgres.js';

/** T0 (pg-fixtures.ts) is a whole second, so per-second cron times fall on T0 + k * SECOND. */
const SECOND = 1000;

function schedule(id: string, name: string, over: Partial<ScheduleRow> = {}): ScheduleRow {
  return {
    id, name, cron: '* * * * * *', timezone: 'UTC', template: '{"queue":"alpha","payload":{}}', paused: 0,
    start_at: null, end_at: null, catch_up: 'all', catch_up_limit: 10_000, overlap: 'allow', history_limit: 100_000,
    next_fire_at: T0 + SECOND, last_fire_at: null, created_at: T0, updated_at: T0, ...over,
  };
}

/** The error a call throws (both backends must throw: a call that returns fails the test). */
async function thrown(work: () => unknown): Promise<unknown> {
  try {
    await work();
  } catch (error) {
    return error;
  }
  throw new Error('expected an error');
}

if (postgresRequired()) {
  describe('PostgreSQL schedules', () => {
    let db: TestDatabase;
    let admin: pg.Client;
    const sqlite = new SqliteFiles();

    beforeAll(async () => {
      db = await testDatabase('schedules');
      admin = db.admin;
    });

    afterAll(async () => {
      await db?.close();
      sqlite.close();
    });

    function sqliteStores(): { jobs: JobStore; schedules: ScheduleStore } {
      const sdb = sqlite.open();
      return { jobs: new JobStore(sdb), schedules: new ScheduleStore(sdb) };
    }

    /**
     * The SQLite rows copied into a fresh schema, with the identity sequences moved past the
     * copied seqs (the seeding helper leaves them at 1), so PostgreSQL's next run seq is
     * SQLite's max(seq) + 1.
     */
    const seededFrom = (sdb: Db) => seededSchema(db, sdb, ['jobs', 'schedule_runs']);

    /** Test-only job insert (the enqueue command is not this module's): one pending job for a fire. */
    async function insertTestJob(c: pg.ClientBase, schema: string, queue: string, payload: string, now: number): Promise<{ seq: number; created_at: number }> {
      const [row] = await queryRows<{ seq: number; created_at: number }>(
        c,
        `INSERT INTO ${quoteIdent(schema)}.jobs (queue, type, state, priority, payload, run_at, max_attempts, lease_timeout_ms, created_at, updated_at)
         VALUES ($1, 'cron', 'pending', 2, $2, $3, 3, 30000, $3, $3) RETURNING seq, created_at`,
        [queue, payload, now],
      );
      return row!;
    }

    interface FireOptions {
      /** Schedules per claim (the Scheduler's FIRE_BATCH is 100; smaller here so firers share the work). */
      limit?: number;
      /**
       * Rows to fire instead of claimDue's: a broker that lost its lock (or never had one) and
       * read next_fire_at without FOR UPDATE, perhaps before another broker's commit.
       */
      rows?: ScheduleRow[];
      /** Called after the last schedule, before COMMIT (kill tests). */
      beforeCommit?: () => Promise<void>;
      /** The jobs' queue; default one queue per schedule (`q-<name>`). */
      queue?: string;
      /** Called after a run is inserted, inside its savepoint. */
      afterRun?: (row: ScheduleRow, fireTime: number) => Promise<void>;
    }

    interface FireResult {
      /** Fire times that got a job and a run, committed. */
      fired: { scheduleId: string; fireTime: number; jobSeq: number }[];
      /** Fire times whose run insert failed on the unique index (they already had their run): rolled back with their job. */
      duplicates: number;
      /** Schedules whose guarded advance matched nothing (another firer moved them). */
      stale: number;
    }

    class StaleSchedule extends Error {}

    /** How late a fire time may be and still run; irrelevant with catch_up 'all', which runs every missed time. */
    const GRACE_MS = 1000;

    /** One Scheduler.fireDue on PostgreSQL: see the file comment. */
    async function testFire(c: pg.ClientBase, schema: string, now: number, options: FireOptions = {}): Promise<FireResult> {
      const result: FireResult = { fired: [], duplicates: 0, stale: 0 };
      const o = { schema };
      /**
       * One run in its own savepoint, as Scheduler.fireOnce/recordSkip (a nested db.transaction):
       * a duplicate fire rolls back to it, taking that fire time's job with it, and is counted,
       * not thrown; the schedule goes on to its other fire times.
       */
      const once = async (work: () => Promise<void>): Promise<boolean> => {
        await c.query('SAVEPOINT run');
        try {
          await work();
          await c.query('RELEASE SAVEPOINT run');
          return true;
        } catch (error) {
          if (!isDuplicateFire(error)) throw error;
          await c.query('ROLLBACK TO SAVEPOINT run');
          result.duplicates++;
          return false;
        }
      };
      await c.query('BEGIN');
      try {
        const due = options.rows ?? (await claimDue(c, now, options.limit ?? 100, o));
        for (const row of due) {
          // Per schedule, as Scheduler.fireDue: a savepoint around the plan, its runs and the advance.
          await c.query('SAVEPOINT schedule');
          const fired: FireResult['fired'] = [];
          try {
            const plan = planFires(
              { nextFireAt: row.next_fire_at!, lastFireAt: row.last_fire_at, catchUp: row.catch_up, catchUpLimit: row.catch_up_limit, startAt: row.start_at, endAt: row.end_at },
              compileCron(row.cron, row.timezone),
              now,
              GRACE_MS,
            );
            for (const { time, reason } of plan.skipped) {
              await once(async () => {
                await insertRun(c, { scheduleId: row.id, fireTime: time, kind: 'scheduled', outcome: 'skipped', reason, jobSeq: null, jobCreatedAt: null }, now, o);
              });
            }
            for (const time of plan.run) {
              let jobSeq = 0;
              const ok = await once(async () => {
                const job = await insertTestJob(c, schema, options.queue ?? `q-${row.name}`, JSON.stringify({ schedule: row.id, fireTime: time }), now);
                await insertRun(c, { scheduleId: row.id, fireTime: time, kind: 'scheduled', outcome: 'enqueued', reason: null, jobSeq: job.seq, jobCreatedAt: job.created_at }, now, o);
                jobSeq = job.seq;
                await options.afterRun?.(row, time);
              });
              if (ok) fired.push({ scheduleId: row.id, fireTime: time, jobSeq });
            }
            // Guarded: only from the next_fire_at this firer read; false = another firer moved it.
            if (!(await advanceSchedule(c, row.id, row.next_fire_at, plan.next ?? null, plan.last ?? null, now, o))) throw new StaleSchedule();
            await trimRuns(c, row.id, row.history_limit, o);
            await c.query('RELEASE SAVEPOINT schedule');
            result.fired.push(...fired);
          } catch (error) {
            if (!(error instanceof StaleSchedule)) throw error;
            // The Scheduler logs "changed while it was firing" and retries; the savepoint takes
            // this schedule's jobs and runs with it, and the transaction goes on.
            await c.query('ROLLBACK TO SAVEPOINT schedule');
            result.stale++;
          }
        }
        await options.beforeCommit?.();
        await c.query('COMMIT');
      } catch (error) {
        await c.query('ROLLBACK').catch(() => {});
        throw error;
      }
      return result;
    }

    /** Schedules and runs as stored, without the claim's lock: what a broker that lost its lock reads. */
    async function readWithoutLock(c: pg.ClientBase, schema: string, now: number): Promise<ScheduleRow[]> {
      return queryRows<ScheduleRow>(
        c,
        `SELECT * FROM ${quoteIdent(schema)}.schedules WHERE paused = 0 AND next_fire_at <= $1 ORDER BY next_fire_at, id`,
        [now],
      );
    }

    async function runsOf(schema: string): Promise<{ schedule_id: string; fire_time: number; job_seq: number | null; kind: string }[]> {
      return queryRows(admin, `SELECT schedule_id, fire_time, job_seq, kind FROM ${quoteIdent(schema)}.schedule_runs ORDER BY seq`);
    }

    async function jobsOf(schema: string): Promise<{ seq: number; payload: string }[]> {
      return queryRows(admin, `SELECT seq, payload FROM ${quoteIdent(schema)}.jobs ORDER BY seq`);
    }

    test('each statement against SQLite ScheduleStore on the same rows: same results, same rows after', async () => {
      const { jobs, schedules: store } = sqliteStores();
      jobs.ensureQueue('alpha', T0);
      // Jobs in every state a run's job can be in: unfinished (scheduled, pending, active) and finished.
      const ids = jobs.insertMany(
        Array.from({ length: 8 }, (_, i) => newJob({ type: 'cron', payload: `{"i":${i}}` })),
        [JobState.Pending, JobState.Pending, JobState.Scheduled, JobState.Pending, JobState.Pending, JobState.Pending, JobState.Pending, JobState.Pending],
        T0,
      );
      jobs.claim([seqOf(ids[1]!)], 'b0.1.', 'w', T0 + 1);
      const [done] = jobs.claim([seqOf(ids[3]!)], 'b0.2.', 'w', T0 + 1);
      jobs.completeMany([{ id: done!.id, leaseId: done!.lease_id, result: null }], T0 + 2);
      jobs.cancel(ids[4]!, 'not needed', T0 + 3);
      // Ties on next_fire_at (s-b, s-a: SQLite orders them by id), one paused while due, one with
      // no next fire, one not due yet, another zone and cron.
      store.insert(schedule('s-b', 'bravo', { next_fire_at: T0 + 1000, overlap: 'skip' }));
      store.insert(schedule('s-a', 'alpha', { next_fire_at: T0 + 1000, overlap: 'queue_one', last_fire_at: T0 - 1000 }));
      store.insert(schedule('s-c', 'charlie', { next_fire_at: T0 + 500, cron: '0 3 * * *', timezone: 'Europe/Berlin', catch_up: 'skip' }));
      store.insert(schedule('s-d', 'delta', { next_fire_at: T0 }));
      store.setPaused('s-d', true, T0, T0 + 4);
      store.insert(schedule('s-e', 'echo', { next_fire_at: null }));
      store.insert(schedule('s-f', 'foxtrot', { next_fire_at: T0 + 60_000, start_at: T0, end_at: T0 + 3_600_000, history_limit: 2 }));
      const key = (id: string) => ({ jobSeq: seqOf(id), jobCreatedAt: T0 });
      const run = (scheduleId: string, fireTime: number, over: Partial<NewRun>): NewRun => ({
        scheduleId, fireTime, kind: 'scheduled', outcome: 'enqueued', reason: null, jobSeq: null, jobCreatedAt: null, ...over,
      });
      store.insertRun(run('s-a', T0 - 3000, key(ids[0]!)), T0);
      store.insertRun(run('s-a', T0 - 2000, key(ids[1]!)), T0);
      store.insertRun(run('s-a', T0 - 1500, { outcome: 'skipped', reason: 'overlap' }), T0);
      store.insertRun(run('s-a', T0 - 1000, key(ids[2]!)), T0);
      store.insertRun(run('s-a', T0 - 500, { kind: 'manual', ...key(ids[3]!) }), T0);
      store.insertRun(run('s-b', T0 - 1000, key(ids[5]!)), T0);
      store.insertRun(run('s-f', T0 - 1000, key(ids[6]!)), T0);
      store.insertRun(run('s-f', T0 - 900, key(ids[7]!)), T0);
      const schema = await seededFrom(jobs.db);
      const o = { schema };
      const c = await db.connect();

      const expectSameRows = async () => {
        const onPg = await dumpPostgres(admin, schema);
        const onSqlite = dumpSqlite(jobs.db);
        for (const table of ['queues', 'jobs', 'schedules', 'schedule_runs'] as (keyof TableDump)[]) expect(onPg[table], table).toEqual(onSqlite[table]);
      };
      await expectSameRows();

      // nextDue and claimDue (due): every now around the fire times, limits cutting through the tie.
      expect(await nextDue(c, o)).toBe(store.nextDue());
      for (const now of [T0 - 1, T0, T0 + 500, T0 + 999, T0 + 1000, T0 + 60_000]) {
        for (const limit of [1, 2, 3, 100]) {
          await c.query('BEGIN');
          const claimed = await claimDue(c, now, limit, o);
          await c.query('COMMIT');
          expect(claimed, `now ${now - T0}, limit ${limit}`).toStrictEqual(store.due(now, limit));
        }
      }
      expect((await claimDue(c, T0 + 1000, 100, o)).map((r) => r.id)).toEqual(['s-c', 's-a', 's-b']);

      // unfinishedJobs: scheduled, pending and active jobs of the schedule's runs, oldest run first.
      for (const id of ['s-a', 's-b', 's-c', 's-f', 'nope']) expect(await unfinishedJobs(c, id, o), id).toStrictEqual(store.unfinishedJobs(id));
      expect((await unfinishedJobs(c, 's-a', o)).map((u) => u.state)).toEqual(['pending', 'active', 'scheduled']);

      // insert; a duplicate name is a typed error on both; a duplicate id is not a duplicate name.
      const golf = schedule('s-g', 'golf', { template: '{"queue":"g","payload":{"emoji":"😀","nul":"\\u0000"}}', start_at: T0, end_at: T0 + 1 });
      store.insert(golf);
      await insertSchedule(c, golf, o);
      await expectSameRows();
      const dupName = { ...golf, id: 's-h' };
      expect(isDuplicateNameSqlite(await thrown(() => store.insert(dupName)))).toBe(true);
      expect(isDuplicateName(await thrown(() => insertSchedule(c, dupName, o)))).toBe(true);
      const dupId = { ...golf, name: 'hotel' };
      expect(isDuplicateNameSqlite(await thrown(() => store.insert(dupId)))).toBe(false);
      const dupIdError = await thrown(() => insertSchedule(c, dupId, o));
      expect(isDuplicateName(dupIdError)).toBe(false);
      expect(isDuplicateFire(dupIdError)).toBe(false);
      await expectSameRows();

      // update: the definition and next_fire_at; paused, last_fire_at and created_at stay.
      const changed: ScheduleRow = { ...golf, name: 'golf-2', cron: '*/5 * * * * *', timezone: 'Asia/Tokyo', template: '{}', start_at: null, end_at: null,
        catch_up: 'once', catch_up_limit: 7, overlap: 'skip', history_limit: 3, next_fire_at: T0 + 5000, paused: 1, last_fire_at: T0, created_at: 1, updated_at: T0 + 10 };
      store.update(changed);
      await updateSchedule(c, changed, o);
      await updateSchedule(c, { ...changed, id: 'nope' }, o);
      await expectSameRows();
      expect((await dumpPostgres(admin, schema)).schedules.find((s) => s.id === 's-g')).toMatchObject({ paused: 0, last_fire_at: null, created_at: T0 });
      expect(isDuplicateName(await thrown(() => updateSchedule(c, { ...changed, name: 'alpha' }, o)))).toBe(true);

      // setPaused, both ways; unknown ids change nothing.
      for (const [id, paused, next, now] of [['s-b', true, T0 + 1000, T0 + 11], ['s-d', false, T0 + 2000, T0 + 12], ['s-e', true, null, T0 + 13], ['nope', true, null, T0]] as const) {
        store.setPaused(id, paused, next, now);
        await setSchedulePaused(c, id, paused, next, now, o);
        await expectSameRows();
      }
      expect(await nextDue(c, o)).toBe(store.nextDue());

      // advance: guarded by the expected next_fire_at (null matches null); last_fire_at kept when null.
      const advances: [string, number | null, number | null, number | null, number][] = [
        ['s-a', T0 + 1000, T0 + 2000, T0 + 1000, T0 + 20],
        ['s-a', T0 + 1000, T0 + 3000, T0 + 2000, T0 + 21], // stale: already moved
        ['s-c', T0 + 500, T0 + 86_400_000, null, T0 + 22], // last_fire_at stays
        ['s-e', null, T0 + 7000, null, T0 + 23], // null expected, null stored
        ['s-c', null, T0, T0, T0 + 24], // null expected, a time stored
        ['s-f', T0 + 60_000, null, T0 + 60_000, T0 + 25], // no fire time left
        ['nope', null, null, null, T0 + 26],
      ];
      const advanced: boolean[] = [];
      for (const [id, expected, next, last, now] of advances) {
        const onPg = await advanceSchedule(c, id, expected, next, last, now, o);
        expect(onPg, `${id} ${expected}`).toBe(store.advance(id, expected, next, last, now));
        advanced.push(onPg);
        await expectSameRows();
      }
      expect(advanced).toEqual([true, false, true, true, false, true, false]);

      // insertRun: the same seqs; a second scheduled run for a fire time is a typed error on both,
      // a manual run at that time is not part of the uniqueness; a skipped run has no job.
      const runs: [NewRun, number][] = [
        [run('s-a', T0 + 1000, key(ids[0]!)), T0 + 30],
        [run('s-a', T0 + 1000, { kind: 'manual', ...key(ids[5]!) }), T0 + 31],
        [run('s-a', T0 + 1000, { kind: 'manual', ...key(ids[6]!) }), T0 + 32],
        [run('s-b', T0 + 1000, { outcome: 'skipped', reason: 'overlap=skip: job … is still pending' }), T0 + 33],
        [run('s-f', T0 + 60_000, key(ids[7]!)), T0 + 34],
        [run('s-c', T0 + 86_400_000, key(ids[1]!)), T0 + 35],
      ];
      for (const [r, now] of runs) expect(await insertRun(c, r, now, o)).toBe(store.insertRun(r, now));
      await expectSameRows();
      for (const r of [run('s-a', T0 + 1000, key(ids[7]!)), run('s-b', T0 + 1000, key(ids[7]!)), run('s-a', T0 - 3000, { outcome: 'skipped', reason: 'x' })]) {
        const onSqlite = await thrown(() => store.insertRun(r, T0 + 40));
        const onPg = await thrown(() => insertRun(c, r, T0 + 40, o));
        expect(isDuplicateFireSqlite(onSqlite)).toBe(true);
        expect(isDuplicateFire(onPg)).toBe(true);
        expect(isDuplicateName(onPg)).toBe(false);
      }
      // A run of an unknown schedule fails on the foreign key on both, not as a duplicate.
      const orphan = run('nope', T0, key(ids[0]!));
      expect(isDuplicateFireSqlite(await thrown(() => store.insertRun(orphan, T0)))).toBe(false);
      expect(isDuplicateFire(await thrown(() => insertRun(c, orphan, T0, o)))).toBe(false);
      await expectSameRows();
      // The one difference: each failed insert used up an identity value (sequences are not
      // rolled back), so PostgreSQL's next run seq is 4 past SQLite's max(seq) + 1. Run seqs
      // only order runs (keyset pages, newest first); gaps change no answer.
      const [identity] = await queryRows<{ last: number }>(admin, `SELECT last_value AS last FROM pg_sequences WHERE schemaname = $1 AND sequencename = 'schedule_runs_seq_seq'`, [schema]);
      const maxRun = Math.max(...dumpSqlite(jobs.db).schedule_runs.map((r) => r.seq as number));
      expect(identity!.last).toBe(maxRun + 4);
      for (const id of ['s-a', 's-b', 's-f']) expect(await unfinishedJobs(c, id, o), id).toStrictEqual(store.unfinishedJobs(id));

      // trimRuns: more to keep than there are, then fewer, then one; another schedule's runs stay.
      for (const [id, keep] of [['s-a', 100], ['s-a', 4], ['s-f', 2], ['s-a', 1], ['s-b', 1], ['nope', 1]] as const) {
        store.trimRuns(id, keep);
        await trimRuns(c, id, keep, o);
        await expectSameRows();
      }
      expect((await runsOf(schema)).filter((r) => r.schedule_id === 's-a')).toHaveLength(1);

      // delete: the schedule and its runs (cascade); its jobs stay.
      for (const id of ['s-a', 's-a', 'nope']) {
        expect(await deleteSchedule(c, id, o), id).toBe(store.delete(id));
        await expectSameRows();
      }
      expect((await runsOf(schema)).some((r) => r.schedule_id === 's-a')).toBe(false);
      expect((await jobsOf(schema)).length).toBe(8);
    });

    test('claimDue: rows another transaction holds are skipped without waiting and do not use up the limit; a committed advance is seen at lock time', async () => {
      const schema = await db.freshSchema();
      const o = { schema };
      const [a, b] = await Promise.all([db.connect(), db.connect()]);
      for (let i = 0; i < 5; i++) await insertSchedule(admin, schedule(`s-${i}`, `n-${i}`, { next_fire_at: T0 + i * SECOND }), o);

      await a.query('BEGIN');
      await b.query('BEGIN');
      try {
        expect((await claimDue(a, T0 + 10 * SECOND, 2, o)).map((r) => r.id)).toEqual(['s-0', 's-1']);
        // B skips A's two rows and still gets two.
        expect((await claimDue(b, T0 + 10 * SECOND, 2, o)).map((r) => r.id)).toEqual(['s-2', 's-3']);
        // A advances s-0 past B's now and commits; B's next claim (a new snapshot) sees the new
        // next_fire_at of s-0 and does not take it; s-1 is due again once A's lock is gone.
        expect(await advanceSchedule(a, 's-0', T0, T0 + 60 * SECOND, T0, T0 + 10 * SECOND, o)).toBe(true);
        await a.query('COMMIT');
        expect((await claimDue(b, T0 + 10 * SECOND, 10, o)).map((r) => [r.id, r.next_fire_at])).toEqual([
          ['s-1', T0 + SECOND],
          ['s-2', T0 + 2 * SECOND],
          ['s-3', T0 + 3 * SECOND],
          ['s-4', T0 + 4 * SECOND],
        ]);
      } finally {
        await a.query('ROLLBACK').catch(() => {});
        await b.query('ROLLBACK');
      }
      // Paused schedules are not claimed.
      await setSchedulePaused(admin, 's-1', true, T0 + SECOND, T0, o);
      await a.query('BEGIN');
      expect((await claimDue(a, T0 + 10 * SECOND, 10, o)).map((r) => r.id)).toEqual(['s-2', 's-3', 's-4']);
      await a.query('ROLLBACK');
    });

    test('exactly once: three firers over 50 per-second schedules for 200 simulated seconds give every fire time one run and one job', async () => {
      const schema = await db.freshSchema();
      const o = { schema };
      const SCHEDULES = 50;
      const SECONDS = 200;
      const END = T0 + SECONDS * SECOND;
      const spec = compileCron('* * * * * *', 'UTC');
      for (let i = 0; i < SCHEDULES; i++) {
        const first = nextFireTime(spec, T0, null, null)!;
        await insertSchedule(admin, schedule(`s-${String(i).padStart(2, '0')}`, `every-second-${i}`, { next_fire_at: first }), o);
      }
      const firers = await Promise.all([db.connect(), db.connect(), db.connect()]);
      // Each firer has its own simulated clock stepping 1, 2 or 3 s (brokers wake at different
      // times; a slower one finds several fire times due per schedule and runs them all, catch_up all).
      const results = await Promise.all(
        firers.map(async (c, f) => {
          const mine: FireResult = { fired: [], duplicates: 0, stale: 0 };
          for (let now = T0 + (f + 1) * SECOND; ; now = Math.min(END, now + (f + 1) * SECOND)) {
            const r = await testFire(c, schema, now, { limit: 10 });
            mine.fired.push(...r.fired);
            mine.duplicates += r.duplicates;
            mine.stale += r.stale;
            if (now === END) return mine;
          }
        }),
      );
      // A firer's last pass may have skipped rows another firer held at an earlier now: one more
      // pass, as the Scheduler's timer re-arms for min(next_fire_at), finishes what is due.
      const drain = await testFire(firers[0]!, schema, END);
      const fired = [...results.flatMap((r) => r.fired), ...drain.fired];

      // Every (schedule, fire time) in (T0, END] exactly once, in the runs and in the jobs.
      const runs = await runsOf(schema);
      const jobs = await jobsOf(schema);
      expect(runs).toHaveLength(SCHEDULES * SECONDS);
      expect(jobs).toHaveLength(SCHEDULES * SECONDS);
      const expected = new Set<string>();
      for (let i = 0; i < SCHEDULES; i++) for (let s = 1; s <= SECONDS; s++) expected.add(`s-${String(i).padStart(2, '0')}@${T0 + s * SECOND}`);
      expect(new Set(runs.map((r) => `${r.schedule_id}@${r.fire_time}`))).toEqual(expected);
      const jobBySeq = new Map(jobs.map((j) => [j.seq, JSON.parse(j.payload) as { schedule: string; fireTime: number }]));
      expect(new Set(runs.map((r) => r.job_seq)).size).toBe(runs.length);
      for (const r of runs) expect(jobBySeq.get(r.job_seq!)).toEqual({ schedule: r.schedule_id, fireTime: r.fire_time });
      // What the firers report as committed is exactly what is stored.
      expect(fired.map((f) => `${f.scheduleId}@${f.fireTime}`).sort()).toEqual([...expected].sort());
      const after = await queryRows<{ next_fire_at: number; last_fire_at: number }>(admin, `SELECT next_fire_at, last_fire_at FROM ${quoteIdent(schema)}.schedules`);
      expect(after).toEqual(Array(SCHEDULES).fill({ next_fire_at: END + SECOND, last_fire_at: END }));
      // With the row lock no firer even tried a fire time another had (duplicate work is what the lock saves).
      for (const r of [...results, drain]) expect([r.duplicates, r.stale]).toEqual([0, 0]);
      for (const r of results) expect(r.fired.length).toBeGreaterThan(0);
      console.log(`cron, 3 firers, ${SCHEDULES} schedules x ${SECONDS} s: fires per firer ${results.map((r) => r.fired.length).join(' / ')}, drain ${drain.fired.length}`);
    }, 120_000);

    test('the lock is not what makes it exact: a firer without the row lock cannot create a second job for a fire time', async () => {
      const schema = await db.freshSchema();
      const o = { schema };
      await insertSchedule(admin, schedule('s-1', 'one', { next_fire_at: T0 + SECOND }), o);
      const [a, s] = await Promise.all([db.connect(), db.connect()]);

      // 1. A stale read: S reads next_fire_at = T0+1s, then A fires that time and commits, then S
      // fires from what it read. Its run insert fails on the unique index and the savepoint
      // takes its job with it (then its guarded advance finds the schedule moved, too).
      const stale = await readWithoutLock(s, schema, T0 + SECOND);
      expect(stale.map((r) => r.next_fire_at)).toEqual([T0 + SECOND]);
      const byA = await testFire(a, schema, T0 + SECOND);
      expect(byA.fired.map((f) => f.fireTime)).toEqual([T0 + SECOND]);
      const byS = await testFire(s, schema, T0 + SECOND, { rows: stale });
      expect(byS).toEqual({ fired: [], duplicates: 1, stale: 1 });
      expect(await runsOf(schema)).toEqual([{ schedule_id: 's-1', fire_time: T0 + SECOND, job_seq: byA.fired[0]!.jobSeq, kind: 'scheduled' }]);
      expect((await jobsOf(schema)).map((j) => j.seq)).toEqual([byA.fired[0]!.jobSeq]);

      // 2. Side by side: A has fired T0+2s and not committed; S, holding no lock, fires the same
      // time from its own read. S's run insert waits on A's uncommitted index entry, and fails
      // once A commits: the index decides, whatever S believed. (S's job goes to another queue:
      // a job of A's queue would already wait on the queue_counts row A's uncommitted job holds,
      // design 3.4, before reaching the run insert.)
      const staleAgain = await readWithoutLock(s, schema, T0 + 2 * SECOND);
      let releaseA!: () => void;
      const aHolds = new Promise<void>((resolve) => (releaseA = resolve));
      let aFired!: () => void;
      const aHasFired = new Promise<void>((resolve) => (aFired = resolve));
      const aDone = testFire(a, schema, T0 + 2 * SECOND, {
        beforeCommit: async () => {
          aFired();
          await aHolds;
        },
      });
      await aHasFired;
      const sPid = await backendPid(s);
      const sDone = testFire(s, schema, T0 + 2 * SECOND, { rows: staleAgain, queue: 'q-stale' });
      await waitingOnLock(admin, sPid, 'schedule_runs');
      releaseA();
      expect((await aDone).fired.map((f) => f.fireTime)).toEqual([T0 + 2 * SECOND]);
      expect(await sDone).toEqual({ fired: [], duplicates: 1, stale: 1 });

      // 3. And if the first firer rolls back, the lockless one's run goes in: one job either way.
      const staleThird = await readWithoutLock(s, schema, T0 + 3 * SECOND);
      let failA!: () => void;
      const aFails = new Promise<void>((_, reject) => (failA = () => reject(new Error('broker gave up'))));
      let aFired3!: () => void;
      const aHasFired3 = new Promise<void>((resolve) => (aFired3 = resolve));
      const aDone3 = testFire(a, schema, T0 + 3 * SECOND, {
        beforeCommit: async () => {
          aFired3();
          await aFails;
        },
      });
      await aHasFired3;
      const sDone3 = testFire(s, schema, T0 + 3 * SECOND, { rows: staleThird, queue: 'q-stale' });
      await waitingOnLock(admin, sPid, 'schedule_runs');
      failA();
      await expect(aDone3).rejects.toThrow('broker gave up');
      expect((await sDone3).fired.map((f) => f.fireTime)).toEqual([T0 + 3 * SECOND]);

      // 4. Where nothing but the index stands in the way: the row itself moved back onto fired
      // times (a redefinition by a broker whose clock is behind, a restored row), so a firer that
      // holds the lock, plans from the row and advances from what it read passes every check of
      // its own. T0+2s and T0+3s fail on the index, each taking its job; T0+4s fires.
      await admin.query(`UPDATE ${quoteIdent(schema)}.schedules SET next_fire_at = $1, last_fire_at = $2`, [T0 + 2 * SECOND, T0 + SECOND]);
      const moved = await testFire(a, schema, T0 + 4 * SECOND);
      expect(moved).toEqual({ fired: [{ scheduleId: 's-1', fireTime: T0 + 4 * SECOND, jobSeq: expect.any(Number) }], duplicates: 2, stale: 0 });

      const runs = await runsOf(schema);
      expect(runs.map((r) => r.fire_time)).toEqual([T0 + SECOND, T0 + 2 * SECOND, T0 + 3 * SECOND, T0 + 4 * SECOND]);
      expect((await jobsOf(schema)).map((j) => j.seq)).toEqual(runs.map((r) => r.job_seq));
    });

    async function backendPid(c: pg.ClientBase): Promise<number> {
      const [row] = await queryRows<{ pid: number }>(c, 'SELECT pg_backend_pid() AS pid');
      return row!.pid;
    }

    test('a firer killed mid-transaction leaves nothing; another firer then fires that time', async () => {
      const schema = await db.freshSchema();
      const o = { schema };
      await insertSchedule(admin, schedule('s-1', 'one', { next_fire_at: T0 + SECOND }), o);
      await insertSchedule(admin, schedule('s-2', 'two', { next_fire_at: T0 + SECOND }), o);
      // Its own client, not the helper's: the killed connection is not ended by close().
      const victim = new pg.Client({ connectionString: db.url });
      // The server ends the killed connection: node-postgres reports it as an 'error' event.
      victim.on('error', () => {});
      await victim.connect();
      const pid = await backendPid(victim);
      const seen: number[] = [];
      let inFlight: { jobs: number; runs: number; advanced: number } | undefined;
      let terminated: boolean | undefined;
      const killed = testFire(victim, schema, T0 + 2 * SECOND, {
        afterRun: async (_row, time) => {
          seen.push(time);
        },
        beforeCommit: async () => {
          // What the open transaction holds: both schedules fired and advanced.
          const q = quoteIdent(schema);
          [inFlight] = await queryRows<{ jobs: number; runs: number; advanced: number }>(
            victim,
            `SELECT (SELECT count(*)::int FROM ${q}.jobs) AS jobs, (SELECT count(*)::int FROM ${q}.schedule_runs) AS runs,
                    (SELECT count(*)::int FROM ${q}.schedules WHERE next_fire_at = $1) AS advanced`,
            [T0 + 3 * SECOND],
          );
          // With a timeout, pg_terminate_backend returns once the backend is gone (PostgreSQL 14+).
          terminated = (await queryRows<{ ok: boolean }>(admin, 'SELECT pg_terminate_backend($1, 10000) AS ok', [pid]))[0]?.ok;
        },
      });
      await expect(killed).rejects.toThrow();
      expect(terminated).toBe(true);
      expect(inFlight).toEqual({ jobs: 4, runs: 4, advanced: 2 });
      expect(seen).toEqual([T0 + SECOND, T0 + 2 * SECOND, T0 + SECOND, T0 + 2 * SECOND]);
      // Nothing of it is left: no job, no run, the schedules where they were, no lock held.
      expect(await jobsOf(schema)).toEqual([]);
      expect(await runsOf(schema)).toEqual([]);
      const rows = await queryRows<{ next_fire_at: number; last_fire_at: number | null }>(admin, `SELECT next_fire_at, last_fire_at FROM ${quoteIdent(schema)}.schedules ORDER BY id`);
      expect(rows).toEqual([{ next_fire_at: T0 + SECOND, last_fire_at: null }, { next_fire_at: T0 + SECOND, last_fire_at: null }]);

      const other = await db.connect();
      const r = await testFire(other, schema, T0 + 2 * SECOND);
      expect(r.fired.map((f) => [f.scheduleId, f.fireTime])).toEqual([
        ['s-1', T0 + SECOND], ['s-1', T0 + 2 * SECOND], ['s-2', T0 + SECOND], ['s-2', T0 + 2 * SECOND],
      ]);
      expect((await runsOf(schema)).map((x) => [x.schedule_id, x.fire_time])).toEqual(r.fired.map((f) => [f.scheduleId, f.fireTime]));
      expect((await jobsOf(schema)).map((j) => j.seq)).toEqual(r.fired.map((f) => f.jobSeq));
    });
  });
}
