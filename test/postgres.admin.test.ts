/**
 * The PostgreSQL rare writes (src/store/postgres/pg-admin.ts: queue admin, limits, inherited
 * defaults, DeleteQueue, dead letters, retention batches, admission's counts reads) against a
 * real PostgreSQL: for each function the same rows on SQLite (JobStore, written through its own
 * paths and copied over by test/helpers/pg-seed.ts) and on PostgreSQL, the same calls on both,
 * and the results and every column of every row (jobs, queues, both counts tables) compared.
 * Needs PostgreSQL: not registered where it is not required.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import pg from 'pg';
import { JobState } from '../src/domain/job-state.js';
import { formatJobId } from '../src/domain/job-id.js';
import { JobStore } from '../src/store/job-store.js';
import {
  applyQueueDefaults,
  assignDefaultGroup,
  deleteJobs,
  deleteQueue,
  ensureQueue,
  isReplayConflict,
  lockQueueCounts,
  purgeDead,
  queuedInGroup,
  queuedInQueue,
  replayDead,
  retentionWindow,
  setQueueLimits,
  setQueuePaused,
  setQueueRetention,
  updateQueueDefaults,
  type QueueDefaultsChange,
} from '../src/store/postgres/pg-admin.js';
import { enqueueMany } from '../src/store/postgres/pg-writes.js';
import { queryRows, quoteIdent } from '../src/store/postgres/sql.js';
import { INHERITS_LEASE_TIMEOUT, INHERITS_MAX_ATTEMPTS, type DeadLetterSelection, type NewJob } from '../src/store/types.js';
import { decoded, expectSameCounts, newJob, seededSchema, seqOf, SqliteFiles, T0, waitingOnLock } from './helpers/pg-fixtures.js';
import { dumpPostgres, dumpSqlite } from './helpers/pg-seed.js';
import { postgresRequired, testDatabase, type TestDatabase } from './helpers/postgres.js';

/** A year after the run: jobs scheduled for it stay scheduled. */
const FAR = Date.now() + 365 * 86_400_000;

/** Creates one job in the given state on SQLite, through JobStore's own transitions; returns its id. */
function jobIn(store: JobStore, state: JobState, over: Partial<NewJob>, at: number, n: number): string {
  const job = newJob(state === JobState.Scheduled ? { runAt: FAR, ...over } : over);
  const [id] = store.insertMany([job], [state === JobState.Scheduled ? JobState.Scheduled : JobState.Pending], at);
  if (state === JobState.Scheduled || state === JobState.Pending) return id!;
  if (state === JobState.Cancelled) {
    store.cancel(id!, 'no longer wanted', at + 1);
    return id!;
  }
  const [claimed] = store.claim([seqOf(id!)], `b0.${n}.`, `w-${n}`, at + 1);
  if (state === JobState.Completed) store.completeMany([{ id: id!, leaseId: claimed!.lease_id, result: '{"ok":true}' }], at + 2);
  if (state === JobState.Dead) {
    store.fail(id!, claimed!.lease_id, { state: JobState.Dead, runAt: at + 2, error: { attempt: 1, message: `boom ${n}`, at: at + 2, nonRetryable: true } }, at + 2);
  }
  return id!;
}

const EVERY_STATE = [JobState.Scheduled, JobState.Pending, JobState.Active, JobState.Completed, JobState.Dead, JobState.Cancelled] as const;

if (postgresRequired()) {
  describe('PostgreSQL rare writes', () => {
    let db: TestDatabase;
    let admin: pg.Client;
    let c: pg.Client;
    const sqlite = new SqliteFiles();

    beforeAll(async () => {
      db = await testDatabase('admin');
      admin = db.admin;
      c = await db.connect();
    }, 120_000);

    afterAll(async () => {
      await db?.close();
      sqlite.close();
    });

    const sqliteStore = () => new JobStore(sqlite.open());

    /** The SQLite store's rows in a fresh schema; the identity continues after the copied seqs. */
    const seededFrom = (store: JobStore) => seededSchema(db, store.db, ['jobs']);

    /** Every column of every job and queue, and both counts tables (expectSameCounts: queue_counts rows at zero left out). */
    async function expectSameRows(schema: string, store: JobStore): Promise<void> {
      const pgDump = await dumpPostgres(admin, schema);
      const sqDump = dumpSqlite(store.db);
      expect(decoded(pgDump.jobs)).toEqual(decoded(sqDump.jobs));
      expect(pgDump.queues).toEqual(sqDump.queues);
      await expectSameCounts(admin, schema, store.db);
    }

    /** Runs `work` on `client` inside one transaction, as the broker's transaction() would. */
    async function inTransaction<T>(client: pg.Client, work: () => Promise<T>): Promise<T> {
      await client.query('BEGIN');
      try {
        const result = await work();
        await client.query('COMMIT');
        return result;
      } catch (error) {
        await client.query('ROLLBACK');
        throw error;
      }
    }

    const backendPid = (client: pg.Client) => (client as unknown as { processID: number }).processID;

    test('queue settings: ensure (new, existing), pause both ways, retention kept or set, defaults set / kept / cleared, limits set and removed', async () => {
      const store = sqliteStore();
      store.ensureQueue('alpha', T0);
      const schema = await seededFrom(store);
      const o = { schema };
      const steps: [string, () => void, () => Promise<void>][] = [
        ['ensure new', () => store.ensureQueue('beta', T0 + 1), () => ensureQueue(c, 'beta', T0 + 1, o)],
        ['ensure existing keeps created_at', () => store.ensureQueue('alpha', T0 + 2), () => ensureQueue(c, 'alpha', T0 + 2, o)],
        ['pause', () => store.setQueuePaused('alpha', true), () => setQueuePaused(c, 'alpha', true, o)],
        ['pause again', () => store.setQueuePaused('alpha', true), () => setQueuePaused(c, 'alpha', true, o)],
        ['pause a missing queue: nothing', () => store.setQueuePaused('nope', true), () => setQueuePaused(c, 'nope', true, o)],
        ['resume', () => store.setQueuePaused('alpha', false), () => setQueuePaused(c, 'alpha', false, o)],
        ['retention both', () => store.setQueueRetention('alpha', 86_400_000, 500), () => setQueueRetention(c, 'alpha', 86_400_000, 500, o)],
        ['retention count only', () => store.setQueueRetention('alpha', undefined, 7), () => setQueueRetention(c, 'alpha', undefined, 7, o)],
        ['retention age 0', () => store.setQueueRetention('alpha', 0, undefined), () => setQueueRetention(c, 'alpha', 0, undefined, o)],
      ];
      const defaults: QueueDefaultsChange[] = [
        { maxAttempts: 5, retry: '{"backoff":"fixed","delayMs":100}', leaseTimeoutMs: 60_000, maxQueued: 1_000, maxQueuedPerGroup: 10 },
        { maxAttempts: null, retry: null, leaseTimeoutMs: null },
        { maxAttempts: null, retry: null, leaseTimeoutMs: null, maxQueued: null, maxQueuedPerGroup: null },
        { maxAttempts: 2, retry: null, leaseTimeoutMs: null, maxQueued: 0 },
        { maxAttempts: null, retry: '{"backoff":"exponential"}', leaseTimeoutMs: 1_000, maxQueued: 2_147_483_647, maxQueuedPerGroup: 0 },
        { maxAttempts: null, retry: null, leaseTimeoutMs: null, maxQueued: 0, maxQueuedPerGroup: 0 },
      ];
      defaults.forEach((d, i) => steps.push([`defaults ${i}`, () => store.updateQueueDefaults('beta', d), () => updateQueueDefaults(c, 'beta', d, o)]));
      steps.push(
        ['limits set', () => store.limits.setQueueLimits('beta', '{"concurrency":{"max":2}}'), () => setQueueLimits(c, 'beta', '{"concurrency":{"max":2}}', o)],
        ['limits replaced', () => store.limits.setQueueLimits('beta', '{"rate":{"per":1000,"max":5}}'), () => setQueueLimits(c, 'beta', '{"rate":{"per":1000,"max":5}}', o)],
        ['limits removed', () => store.limits.setQueueLimits('beta', null), () => setQueueLimits(c, 'beta', null, o)],
      );
      const seen = new Set<string>();
      for (const [name, onSqlite, onPg] of steps) {
        onSqlite();
        await onPg();
        const rows = (await dumpPostgres(admin, schema)).queues;
        expect(rows, name).toEqual(dumpSqlite(store.db).queues);
        seen.add(JSON.stringify(rows));
      }
      // Each step was seen to change something on the way (not a sequence of no-ops compared).
      expect(seen.size).toBe(11);
      const beta = store.getQueue('beta')!;
      expect(beta).toMatchObject({ max_attempts: 2, retry: '{"backoff":"exponential"}', lease_timeout_ms: 1_000, max_queued: null, max_queued_per_group: null });
    });

    test('applyQueueDefaults rewrites only unfinished jobs that inherit the value; assignDefaultGroup gives keyless unfinished and dead jobs the group ""', async () => {
      const store = sqliteStore();
      for (const q of ['alpha', 'beta']) store.ensureQueue(q, T0);
      let n = 0;
      for (const inherits of [0, INHERITS_MAX_ATTEMPTS, INHERITS_LEASE_TIMEOUT, INHERITS_MAX_ATTEMPTS | INHERITS_LEASE_TIMEOUT]) {
        for (const state of EVERY_STATE) {
          jobIn(store, state, { inherits, groupKey: n % 3 === 0 ? 'g' : null }, T0 + 10 * n, n);
          n++;
        }
      }
      jobIn(store, JobState.Pending, { queue: 'beta', inherits: 3 }, T0, n++);
      jobIn(store, JobState.Pending, { inherits: 3, maxAttempts: 7, leaseTimeoutMs: 5_000 }, T0, n++);
      const schema = await seededFrom(store);
      await expectSameRows(schema, store);
      const o = { schema };

      const cases: { maxAttempts?: number; leaseTimeoutMs?: number }[] = [
        { maxAttempts: 7 },
        { leaseTimeoutMs: 5_000 },
        { maxAttempts: 9, leaseTimeoutMs: 9_000 },
        { maxAttempts: 9, leaseTimeoutMs: 9_000 },
        {},
      ];
      const results: number[] = [];
      for (const d of cases) {
        const onSqlite = store.applyQueueDefaults('alpha', d);
        const onPg = await applyQueueDefaults(c, 'alpha', d, o);
        expect(onPg).toBe(onSqlite);
        results.push(onPg);
        await expectSameRows(schema, store);
      }
      // Per value, alpha's unfinished (scheduled, pending, active) jobs with its bit: 3 with that bit alone, 3 with both; the job that
      // set 7 / 5,000 itself (inherits 3) is skipped while it already holds the value, then counted; repeats change nothing.
      expect(results).toEqual([6, 6, 14, 0, 0]);

      const grouped = store.limits.assignDefaultGroup('alpha');
      expect(await assignDefaultGroup(c, 'alpha', o)).toBe(grouped);
      expect(grouped).toBeGreaterThan(0);
      await expectSameRows(schema, store);
      expect(await assignDefaultGroup(c, 'alpha', o)).toBe(store.limits.assignDefaultGroup('alpha'));
      expect(await assignDefaultGroup(c, 'missing', o)).toBe(0);
      await expectSameRows(schema, store);
    });

    test('admission reads: queued per queue and per group from the counts tables, as SQLite', async () => {
      const store = sqliteStore();
      for (const q of ['alpha', 'beta']) store.ensureQueue(q, T0);
      let n = 0;
      for (const state of EVERY_STATE) for (const groupKey of [null, 'g', '']) jobIn(store, state, { groupKey }, T0, n++);
      jobIn(store, JobState.Scheduled, { queue: 'beta', groupKey: 'g' }, T0, n++);
      const schema = await seededFrom(store);
      const o = { schema };
      for (const queue of ['alpha', 'beta', 'missing']) {
        expect(await queuedInQueue(c, queue, o)).toBe(store.queuedInQueue(queue));
        for (const key of ['g', '', 'other']) expect(await queuedInGroup(c, queue, key, o)).toBe(store.queuedInGroup(queue, key));
      }
      expect(await queuedInQueue(c, 'alpha', o)).toBe(6);
      expect(await queuedInGroup(c, 'alpha', 'g', o)).toBe(2);
      expect(await queuedInGroup(c, 'beta', 'g', o)).toBe(1);
    });

    /** Dead jobs for the replay and purge cases, with the ids by name. */
    function deadLetters(store: JobStore): Record<string, string> {
      for (const q of ['alpha', 'beta']) store.ensureQueue(q, T0);
      let n = 0;
      const ids: Record<string, string> = {};
      const dead = (name: string, over: Partial<NewJob>, at: number) => (ids[name] = jobIn(store, JobState.Dead, over, at, n++));
      // A dead job of beta with the lowest seq: a selection over both queues returns rows in seq order, not queue order.
      dead('betaFax', { queue: 'beta', type: 'fax' }, T0 - 1_000);
      dead('plain', {}, T0);
      dead('sms', { type: 'sms', groupKey: 'g' }, T0 + 100);
      dead('held', { dedupKey: 'k-held' }, T0 + 200);
      ids.holder = jobIn(store, JobState.Pending, { dedupKey: 'k-held' }, T0 + 300, n++);
      dead('heldByActive', { dedupKey: 'k-active' }, T0 + 400);
      ids.activeHolder = jobIn(store, JobState.Active, { dedupKey: 'k-active' }, T0 + 500, n++);
      dead('doneKey', { dedupKey: 'k-done' }, T0 + 600);
      ids.doneHolder = jobIn(store, JobState.Completed, { dedupKey: 'k-done' }, T0 + 700, n++);
      dead('twinA', { dedupKey: 'k-twin' }, T0 + 800);
      dead('twinB', { dedupKey: 'k-twin', type: 'sms' }, T0 + 900);
      dead('twinC', { dedupKey: 'k-twin' }, T0 + 1_000);
      dead('betaTwin', { queue: 'beta', dedupKey: 'k-twin' }, T0 + 1_100);
      dead('betaPlain', { queue: 'beta' }, T0 + 1_200);
      dead('alphaFax', { type: 'fax' }, T0 + 1_300);
      ids.pending = jobIn(store, JobState.Pending, {}, T0, n++);
      return ids;
    }

    test('replayDead: a held dedup key stays dead, one of several dead jobs sharing a key comes back, by every selection', async () => {
      const selections = (ids: Record<string, string>): [string, DeadLetterSelection][] => [
        ['ids', { ids: [ids.plain!, ids.held!, ids.twinB!, ids.twinC!, ids.pending!, 'not-an-id', formatJobId(999_999, T0)] }],
        ['only bad ids', { ids: ['not-an-id', formatJobId(999_999, T0)] }],
        ['type', { type: 'sms' }],
        ['type across queues', { type: 'fax', deadBefore: T0 + 2_000 }],
        ['queue', { queue: 'beta' }],
        ['dead before, just before an edge', { queue: 'alpha', deadBefore: T0 + 601 }],
        ['dead before, at an edge', { queue: 'alpha', deadBefore: T0 + 602 }],
        ['all', {}],
        ['all again: nothing dead is replayable', {}],
      ];
      const store = sqliteStore();
      const ids = deadLetters(store);
      const schema = await seededFrom(store);
      await expectSameRows(schema, store);
      const got: Record<string, string[]> = {};
      for (const [name, selection] of selections(ids)) {
        const now = T0 + 10_000 + Object.keys(got).length;
        const onSqlite = store.replayDead(selection, now);
        const onPg = await inTransaction(c, () => replayDead(c, selection, now, { schema }));
        expect(onPg, name).toEqual(onSqlite);
        got[name] = onPg.map((r) => Object.entries(ids).find(([, id]) => id === r.id)![0]);
        await expectSameRows(schema, store);
      }
      expect(got).toEqual({
        ids: ['plain', 'twinB'],
        'only bad ids': [],
        type: ['sms'],
        'type across queues': ['betaFax', 'alphaFax'],
        queue: ['betaTwin', 'betaPlain'],
        // held and heldByActive (dead at T0 + 202, 402) are still held; doneKey died at T0 + 602 (its fail's now), its key's holder is completed.
        'dead before, just before an edge': [],
        'dead before, at an edge': ['doneKey'],
        // Left dead: held, heldByActive, and twinA and twinC, whose key twinB (pending since the first call) holds.
        all: [],
        'all again: nothing dead is replayable': [],
      });
      const rows = (await dumpPostgres(admin, schema)).jobs;
      const row = (name: string) => rows.find((r) => r.seq === seqOf(ids[name]!))!;
      expect(row('held')).toMatchObject({ state: 'dead' });
      expect(row('heldByActive')).toMatchObject({ state: 'dead' });
      expect(row('twinA')).toMatchObject({ state: 'dead' });
      expect(row('twinC')).toMatchObject({ state: 'dead' });
      expect(row('plain')).toMatchObject({ state: 'pending', attempt: 0, run_at: T0 + 10_000, updated_at: T0 + 10_000, finished_at: null });
      expect(String(row('plain').history).endsWith(`,["r",${T0 + 10_000}]`)).toBe(true);
    });

    test('replayDead: two dead jobs sharing a key, neither held: the lower seq comes back, as SQLite; a selection of the higher one alone brings it back', async () => {
      const store = sqliteStore();
      const ids = deadLetters(store);
      const schema = await seededFrom(store);
      const cases: DeadLetterSelection[] = [{ queue: 'alpha', deadBefore: T0 + 1_002 }, { ids: [ids.twinC!] }, { queue: 'alpha' }];
      for (const [i, selection] of cases.entries()) {
        const onSqlite = store.replayDead(selection, T0 + 20_000 + i);
        expect(await replayDead(c, selection, T0 + 20_000 + i, { schema })).toEqual(onSqlite);
        await expectSameRows(schema, store);
      }
      const states = Object.fromEntries((await dumpPostgres(admin, schema)).jobs.map((r) => [r.seq, r.state]));
      expect([ids.twinA, ids.twinB, ids.twinC].map((id) => states[seqOf(id!)])).toEqual(['pending', 'dead', 'dead']);
      // Once twinA is finished again, twinC alone is selected and comes back.
      store.purgeDead({ ids: [ids.twinB!] });
      await purgeDead(c, { ids: [ids.twinB!] }, { schema });
      store.cancel(ids.twinA!, null, T0 + 30_000);
      await queryRows(admin, `UPDATE ${quoteIdent(schema)}.jobs SET state = 'cancelled', finished_at = $2::bigint, updated_at = $2::bigint,
        history = history || ',["c",' || $2::bigint::text || ',null,0]' WHERE seq = $1`, [seqOf(ids.twinA!), T0 + 30_000]);
      const onSqlite = store.replayDead({ ids: [ids.twinC!] }, T0 + 30_001);
      expect(onSqlite.map((r) => r.id)).toEqual([ids.twinC]);
      expect(await replayDead(c, { ids: [ids.twinC!] }, T0 + 30_001, { schema })).toEqual(onSqlite);
      await expectSameRows(schema, store);
    });

    test('replayDead against a key inserted by a transaction still open: waits for it, then fails on jobs_dedup (isReplayConflict), nothing changed', async () => {
      const store = sqliteStore();
      const ids = deadLetters(store);
      const schema = await seededFrom(store);
      const other = await db.connect();
      await other.query('BEGIN');
      await enqueueMany(other, { schema, jobs: [newJob({ queue: 'beta', dedupKey: 'k-twin' })], states: [JobState.Pending], now: T0 + 40_000 });
      await c.query('BEGIN');
      const replay = replayDead(c, { queue: 'beta' }, T0 + 40_001, { schema }).then(
        (rows) => ({ rows }),
        (error: unknown) => ({ error }),
      );
      await waitingOnLock(admin, backendPid(c));
      await other.query('COMMIT');
      const outcome = await replay;
      await c.query('ROLLBACK');
      expect('error' in outcome && isReplayConflict(outcome.error)).toBe(true);
      expect(isReplayConflict(new Error('other'))).toBe(false);
      const rows = (await dumpPostgres(admin, schema)).jobs;
      expect(rows.find((r) => r.seq === seqOf(ids.betaTwin!))).toMatchObject({ state: 'dead' });
      expect(rows.find((r) => r.seq === seqOf(ids.betaPlain!))).toMatchObject({ state: 'dead' });
      // Run again: the guard now sees the committed holder and skips betaTwin only.
      const again = await replayDead(c, { queue: 'beta' }, T0 + 40_002, { schema });
      expect(again.map((r) => r.id)).toEqual([ids.betaFax, ids.betaPlain]);
    });

    test('purgeDead: by ids, type, queue, dead-before edge, all; never a job in another state', async () => {
      const store = sqliteStore();
      const ids = deadLetters(store);
      const schema = await seededFrom(store);
      const cases: [DeadLetterSelection, number][] = [
        [{ ids: [ids.plain!, ids.pending!, ids.holder!, 'not-an-id'] }, 1],
        [{ ids: ['not-an-id'] }, 0],
        [{ type: 'sms' }, 2],
        [{ queue: 'beta' }, 3],
        [{ queue: 'alpha', deadBefore: T0 + 202 }, 1],
        [{ queue: 'alpha', deadBefore: T0 + 401 }, 0],
        [{ queue: 'alpha', deadBefore: T0 + 402 }, 1],
        [{}, 4],
        [{}, 0],
      ];
      for (const [selection, expected] of cases) {
        const onSqlite = store.purgeDead(selection);
        expect(await purgeDead(c, selection, { schema }), JSON.stringify(selection)).toBe(onSqlite);
        expect(onSqlite).toBe(expected);
        await expectSameRows(schema, store);
      }
      expect((await dumpPostgres(admin, schema)).jobs.map((r) => r.state).sort()).toEqual(['active', 'completed', 'pending', 'pending']);
    });

    test('retention: windows at their edges (start, gaps, last row, past the end), deletes by seq with unknown and repeated seqs', async () => {
      const store = sqliteStore();
      for (const q of ['alpha', 'beta']) store.ensureQueue(q, T0);
      let n = 0;
      for (const state of [...EVERY_STATE, ...EVERY_STATE]) jobIn(store, state, { queue: n % 2 ? 'beta' : 'alpha', groupKey: n % 3 ? null : 'g' }, T0 + n, n++);
      const schema = await seededFrom(store);
      const o = { schema };
      const seqs = dumpSqlite(store.db).jobs.map((r) => r.seq as number);
      const last = seqs.at(-1)!;
      const windows = async () => {
        for (const [after, limit] of [[0, 1], [0, 5], [0, 100], [seqs[3]!, 4], [last - 1, 10], [last, 10], [last + 100, 1], [-1, 2]] as const) {
          expect(await retentionWindow(c, after, limit, o), `${after}/${limit}`).toEqual(store.retentionWindow(after, limit));
        }
      };
      await windows();
      expect((await retentionWindow(c, 0, 100, o)).length).toBe(12);
      // Finished and unfinished alike (retention decides; the store deletes what it is given).
      const doomed = [seqs[0]!, seqs[3]!, seqs[3]!, seqs[4]!, seqs[7]!, 999_999];
      const deleted = store.deleteJobs(doomed);
      expect(await deleteJobs(c, doomed, o)).toBe(deleted);
      expect(deleted).toBe(4);
      await expectSameRows(schema, store);
      await windows();
      expect((await retentionWindow(c, seqs[2]!, 2, o)).map((r) => r[0])).toEqual([seqs[5], seqs[6]]);
      // No seqs: answered without a statement (a client that never connected would hang).
      expect(await deleteJobs(new pg.Client(), [], o)).toBe(0);
      expect(store.deleteJobs([])).toBe(0);
    });

    test('deleteQueue: counts read and locked in the transaction, then finished jobs, the queue and its counts deleted; counts tables equal after', async () => {
      const store = sqliteStore();
      for (const q of ['alpha', 'beta', 'done']) store.ensureQueue(q, T0);
      let n = 0;
      for (const queue of ['alpha', 'beta']) for (const state of EVERY_STATE) jobIn(store, state, { queue, groupKey: n % 2 ? 'g' : null }, T0 + n, n++);
      for (const state of [JobState.Completed, JobState.Cancelled, JobState.Completed]) jobIn(store, state, { queue: 'done' }, T0 + n, n++);
      store.setQueuePaused('alpha', true);
      const schema = await seededFrom(store);
      const o = { schema };
      await expectSameRows(schema, store);
      for (const queue of ['alpha', 'done', 'missing']) {
        const counts = store.countsForQueue(queue);
        const deleted = store.deleteQueue(queue);
        const [pgCounts, pgDeleted] = await inTransaction(c, async () => [await lockQueueCounts(c, queue, o), await deleteQueue(c, queue, o)] as const);
        expect(pgCounts, queue).toEqual(counts);
        expect(pgDeleted, queue).toBe(deleted);
        await expectSameRows(schema, store);
      }
      expect(store.countsForQueue('alpha')).toEqual([]);
      expect((await dumpPostgres(admin, schema)).queues.map((q) => q.name)).toEqual(['beta']);
      // alpha's unfinished and dead jobs were left (the broker refuses to delete such a queue; the store deletes what it is told).
      expect((await dumpPostgres(admin, schema)).jobs.filter((r) => r.queue === 'alpha').map((r) => r.state).sort()).toEqual(['active', 'dead', 'pending', 'scheduled']);
    });

    test('lockQueueCounts waits for an enqueue of another connection still open, then counts it', async () => {
      const store = sqliteStore();
      store.ensureQueue('alpha', T0);
      jobIn(store, JobState.Completed, {}, T0, 0);
      jobIn(store, JobState.Pending, {}, T0, 1);
      const schema = await seededFrom(store);
      const other = await db.connect();
      await other.query('BEGIN');
      await enqueueMany(other, { schema, jobs: [newJob({})], states: [JobState.Pending], now: T0 + 1 });
      await c.query('BEGIN');
      const counts = lockQueueCounts(c, 'alpha', { schema });
      await waitingOnLock(admin, backendPid(c));
      await other.query('COMMIT');
      expect(await counts).toEqual([
        { state: 'completed', n: 1 },
        { state: 'pending', n: 2 },
      ]);
      await c.query('ROLLBACK');
    });
  });
}
