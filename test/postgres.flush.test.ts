/**
 * The PostgreSQL flush executor (src/store/postgres/pg-flush.ts, design 3.2) against a real
 * PostgreSQL: a FlushBatch runs as one transaction whose statements all leave before the first
 * answer (one round trip), in the fixed order (a job enqueued in a flush is claimed by it); a job
 * the database refuses costs its own command only (the other commands commit once, with their
 * answers); a held dedup key holds the COMMIT back until its lookup answered; a broken
 * connection fails the flush, and says the commit is unknown; a committed flush notifies other
 * brokers. Needs PostgreSQL: not registered where it is not required.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import pg from 'pg';
import { JobState } from '../src/domain/job-state.js';
import { emptyBatch, type FlushBatch } from '../src/store/flush-batch.js';
import { postgresFlushStatements } from '../src/store/postgres/flush-statements.js';
import { FlushFailedError, PostgresFlushExecutor } from '../src/store/postgres/pg-flush.js';
import { ReadyListener } from '../src/store/postgres/ready-notifier.js';
import { queryRows, quoteIdent } from '../src/store/postgres/sql.js';
import { createLogger } from '../src/log.js';
import { newJob, pending, T0 } from './helpers/pg-fixtures.js';
import { postgresRequired, testDatabase, type TestDatabase } from './helpers/postgres.js';

const slots = (n: number, prefix = 'b1.1.') => Array.from({ length: n }, () => ({ prefix, workerId: 'w1' }));

/**
 * Records, for every query the executor sends, whether any earlier query had been answered at
 * that moment: all false means every statement left before the first answer (one round trip).
 */
function watchRoundTrips(client: pg.Client): { sentAfterAnAnswer: boolean[]; reset(): void } {
  const sentAfterAnAnswer: boolean[] = [];
  let answered = false;
  const original = client.query.bind(client) as (...args: unknown[]) => Promise<unknown>;
  (client as unknown as { query: (...args: unknown[]) => Promise<unknown> }).query = (...args: unknown[]) => {
    sentAfterAnAnswer.push(answered);
    const p = original(...args);
    p.then(
      () => (answered = true),
      () => (answered = true),
    );
    return p;
  };
  return {
    sentAfterAnAnswer,
    reset() {
      sentAfterAnAnswer.length = 0;
      answered = false;
    },
  };
}

if (postgresRequired()) {
  describe('PostgreSQL flush executor', () => {
    let db: TestDatabase;
    const clients: pg.Client[] = [];

    beforeAll(async () => {
      db = await testDatabase('flush');
    });
    afterAll(async () => {
      await Promise.all(clients.map((c) => c.end().catch(() => {})));
      await db?.close();
    });

    async function executor(schema: string): Promise<{ exec: PostgresFlushExecutor; client: pg.Client }> {
      const client = new pg.Client({ connectionString: db.url, pipeline: true } as pg.ClientConfig);
      await client.connect();
      client.on('error', () => {}); // a terminated backend: the flush's own error says it
      clients.push(client);
      return { exec: new PostgresFlushExecutor(client, postgresFlushStatements(schema)), client };
    }

    const jobsOf = (schema: string) =>
      queryRows<{ seq: number; queue: string; state: string; lease_id: string | null; attempt: number; dedup_key: string | null }>(
        db.admin,
        `SELECT seq, queue, state, lease_id, attempt, dedup_key FROM ${quoteIdent(schema)}.jobs ORDER BY seq`,
      );

    test('enqueue, claim and notify in one transaction and one round trip; the claim gets the jobs enqueued before it, in order', async () => {
      const schema = await db.freshSchema();
      const { exec, client } = await executor(schema);
      const trips = watchRoundTrips(client);
      const batch: FlushBatch = {
        ...emptyBatch(T0),
        newQueues: ['alpha'],
        enqueues: [{ jobs: Array.from({ length: 100 }, (_, i) => newJob({ payload: `{"n":${i}}` })), states: pending(100), atomic: false }],
        claims: [{ queue: 'alpha', slots: slots(50) }],
        ready: ['alpha'],
      };
      const r = await exec.execute(batch);
      expect(trips.sentAfterAnAnswer.length).toBe(6); // BEGIN, queues, enqueue, claim, notify, COMMIT
      expect(trips.sentAfterAnAnswer.every((late) => !late)).toBe(true);
      expect(exec.stats).toEqual({ flushes: 1, transactions: 1, isolatedEnqueues: 0 });
      const ids = r.enqueues[0]!.map((o) => ('id' in o ? o.id : 'error'));
      expect(ids).toHaveLength(100);
      expect(r.claims[0]!.map((j) => j.id)).toEqual(ids.slice(0, 50));
      expect(r.claims[0]!.map((j) => j.payload)).toEqual(Array.from({ length: 50 }, (_, i) => `{"n":${i}}`));
      const rows = await jobsOf(schema);
      expect(rows.filter((j) => j.state === 'active')).toHaveLength(50);
      expect(rows.filter((j) => j.state === 'pending')).toHaveLength(50);
      const queues = await queryRows<{ name: string }>(db.admin, `SELECT name FROM ${quoteIdent(schema)}.queues`);
      expect(queues).toEqual([{ name: 'alpha' }]);

      // The next flush settles them: acks, a nack to retry, a heartbeat and a release, with a claim, in one round trip.
      trips.reset();
      const [a, b, c, d, ...rest] = r.claims[0]!;
      const next = await exec.execute({
        ...emptyBatch(T0 + 10),
        acks: rest.map((j) => ({ id: j.id, leaseId: j.lease_id, result: '{"ok":true}' })),
        fails: [{ id: a!.id, leaseId: a!.lease_id, attempt: 1, maxAttempts: 3, state: JobState.Scheduled, runAt: T0 + 5_000, error: { attempt: 1, message: 'boom', at: T0 + 10, nonRetryable: false } }],
        extends: [{ id: b!.id, leaseId: b!.lease_id, extendMs: 60_000, progress: '{"p":1}' }],
        releases: [{ id: c!.id, leaseId: c!.lease_id, reason: 'handed back', countsAsAttempt: false }],
        claims: [{ queue: 'alpha', slots: slots(2, 'b1.2.') }],
      });
      expect(trips.sentAfterAnAnswer.every((late) => !late)).toBe(true);
      expect(next.acks.every((x) => x?.queue === 'alpha' && x.attempt === 1)).toBe(true);
      expect(next.fails).toEqual([true]);
      expect(next.extends[0]?.attempt).toBe(1);
      expect(next.releases[0]).toMatchObject({ state: 'pending', queue: 'alpha', attempt: 0 });
      // Released before the claim: the released job (oldest seq) is claimed again by the same flush.
      expect(next.claims[0]!.map((j) => j.id)).toEqual([c!.id, ids[50]]);
      const after = new Map((await jobsOf(schema)).map((j) => [j.seq, j]));
      expect(after.get(a!.seq)?.state).toBe('scheduled');
      expect(after.get(b!.seq)?.state).toBe('active');
      expect(after.get(c!.seq)).toMatchObject({ state: 'active', lease_id: `b1.2.${c!.seq}` });
      expect(after.get(d!.seq)?.state).toBe('active'); // not settled
      expect(after.get(rest[0]!.seq)?.state).toBe('completed');
    });

    test('an ack and a release of the same lease in one flush: the settle goes first, so the job completes', async () => {
      const schema = await db.freshSchema();
      const { exec } = await executor(schema);
      const seed = await exec.execute({ ...emptyBatch(T0), newQueues: ['alpha'], enqueues: [{ jobs: [newJob()], states: pending(1), atomic: true }], claims: [{ queue: 'alpha', slots: slots(1) }] });
      const job = seed.claims[0]![0]!;
      const r = await exec.execute({
        ...emptyBatch(T0 + 1),
        releases: [{ id: job.id, leaseId: job.lease_id, reason: 'stream lost', countsAsAttempt: true }],
        acks: [{ id: job.id, leaseId: job.lease_id, result: '{}' }],
        claims: [{ queue: 'alpha', slots: slots(1, 'b1.2.') }],
      });
      expect(r.acks).toEqual([expect.objectContaining({ attempt: 1 })]);
      expect(r.releases).toEqual([undefined]);
      expect(r.claims).toEqual([[]]);
      expect((await jobsOf(schema)).map((j) => j.state)).toEqual(['completed']);
    });

    test('a job the database refuses costs its own command only: the others commit once, with their answers', async () => {
      const schema = await db.freshSchema();
      const { exec } = await executor(schema);
      const seed = await exec.execute({ ...emptyBatch(T0), newQueues: ['alpha'], enqueues: [{ jobs: [newJob()], states: pending(1), atomic: true }], claims: [{ queue: 'alpha', slots: slots(1) }] });
      const leased = seed.claims[0]![0]!;
      const bad = newJob({ maxAttempts: 0 }); // CHECK (max_attempts >= 1): SQLSTATE 23514
      const r = await exec.execute({
        ...emptyBatch(T0 + 1),
        acks: [{ id: leased.id, leaseId: leased.lease_id, result: null }],
        enqueues: [
          { jobs: [newJob({ type: 'a1' }), newJob({ type: 'a2' })], states: pending(2), atomic: false },
          { jobs: [newJob({ type: 'b1' }), bad, newJob({ type: 'b3' })], states: pending(3), atomic: false },
          { jobs: [newJob({ type: 'c1' }), bad], states: pending(2), atomic: true },
        ],
        claims: [{ queue: 'alpha', slots: slots(10, 'b1.9.') }],
      });
      // The seed; two rolled-back tries (B, then C, isolated); the one that committed; B's three jobs one by one; C alone.
      expect(exec.stats.transactions).toBe(1 + 2 + 1 + 3 + 1);
      expect(exec.stats.isolatedEnqueues).toBe(2);
      // The ack's answer is the committed one: completed, not a stale miss from a retried try.
      expect(r.acks).toEqual([expect.objectContaining({ queue: 'alpha', attempt: 1 })]);
      const [a, b, c] = r.enqueues;
      expect(a!.every((o) => 'id' in o)).toBe(true);
      expect(b!.map((o) => ('error' in o ? (o.error as { code?: string }).code : 'ok'))).toEqual(['ok', '23514', 'ok']);
      expect(c!.map((o) => ('error' in o ? (o.error as { code?: string }).code : 'ok'))).toEqual(['23514', '23514']);
      // The claim ran with A's jobs only: B's good jobs committed after it, alone.
      expect(r.claims[0]!.map((j) => j.type)).toEqual(['a1', 'a2']);
      const rows = await queryRows<{ type: string; state: string }>(db.admin, `SELECT type, state FROM ${quoteIdent(schema)}.jobs ORDER BY seq`);
      expect(rows).toEqual([
        { type: 'email', state: 'completed' },
        { type: 'a1', state: 'active' },
        { type: 'a2', state: 'active' },
        { type: 'b1', state: 'pending' },
        { type: 'b3', state: 'pending' },
      ]);
    });

    test('a held dedup key: the lookup runs inside the transaction and the COMMIT waits for it', async () => {
      const schema = await db.freshSchema();
      const { exec, client } = await executor(schema);
      const first = await exec.execute({ ...emptyBatch(T0), newQueues: ['alpha'], enqueues: [{ jobs: [newJob({ dedupKey: 'inv-1' })], states: pending(1), atomic: true }] });
      const held = first.enqueues[0]![0]! as { id: string; state: string; deduplicated: boolean };
      const trips = watchRoundTrips(client);
      const r = await exec.execute({
        ...emptyBatch(T0 + 1),
        enqueues: [{ jobs: [newJob({ dedupKey: 'inv-1' }), newJob({ dedupKey: 'inv-2' }), newJob({ dedupKey: 'inv-2' })], states: pending(3), atomic: false }],
        claims: [{ queue: 'alpha', slots: slots(5) }],
      });
      // BEGIN and the insert together; the lookup after the insert's answer; then the claim and the COMMIT.
      expect(trips.sentAfterAnAnswer).toEqual([false, false, true, true, true]);
      const outcomes = r.enqueues[0]!;
      // The holders' states before this flush's claim, as on SQLite (enqueues answer before any claim).
      expect(outcomes[0]).toEqual({ ...held, deduplicated: true });
      expect(outcomes[1]).toMatchObject({ deduplicated: false, state: 'pending' });
      expect(outcomes[2]).toEqual({ ...(outcomes[1] as object), deduplicated: true });
      expect(r.claims[0]!.map((j) => j.id)).toEqual([held.id, (outcomes[1] as { id: string }).id]);
      expect((await jobsOf(schema)).map((j) => j.dedup_key)).toEqual(['inv-1', 'inv-2']);
    });

    test('a job whose key the store cannot hold is refused before anything is sent; the rest of its command goes on', async () => {
      const schema = await db.freshSchema();
      const { exec } = await executor(schema);
      const r = await exec.execute({
        ...emptyBatch(T0),
        newQueues: ['alpha'],
        enqueues: [
          { jobs: [newJob(), newJob({ dedupKey: 'a\u0000b' }), newJob()], states: pending(3), atomic: false },
          { jobs: [newJob(), newJob({ groupKey: '\u0000' })], states: pending(2), atomic: true },
        ],
      });
      expect(exec.stats.transactions).toBe(1);
      expect(r.enqueues[0]!.map((o) => ('error' in o ? o.error.name : 'ok'))).toEqual(['ok', 'UnstorableKeyError', 'ok']);
      expect(r.enqueues[1]!.map((o) => ('error' in o ? o.error.name : 'ok'))).toEqual(['UnstorableKeyError', 'UnstorableKeyError']);
      expect(await jobsOf(schema)).toHaveLength(2);
    });

    test('a connection lost while a flush is in flight: the flush fails and says the commit is unknown; nothing of it committed', async () => {
      const schema = await db.freshSchema();
      const { exec, client } = await executor(schema);
      const seed = await exec.execute({ ...emptyBatch(T0), newQueues: ['alpha'], enqueues: [{ jobs: [newJob()], states: pending(1), atomic: true }], claims: [{ queue: 'alpha', slots: slots(1) }] });
      const job = seed.claims[0]![0]!;
      const [row] = await queryRows<{ pid: number }>(client, 'SELECT pg_backend_pid() AS pid');
      const pid = row!.pid;
      // Another session holds the job's row: the flush's ack waits on it, with its COMMIT already written.
      const holder = await db.connect();
      await holder.query('BEGIN');
      await holder.query(`SELECT 1 FROM ${quoteIdent(schema)}.jobs WHERE seq = $1 FOR UPDATE`, [job.seq]);
      const flush = exec
        .execute({ ...emptyBatch(T0 + 1), acks: [{ id: job.id, leaseId: job.lease_id, result: null }], enqueues: [{ jobs: [newJob({ type: 'next' })], states: pending(1), atomic: true }] })
        .then(() => undefined, (e: unknown) => e);
      await expect
        .poll(async () => (await queryRows<{ n: number }>(db.admin, `SELECT count(*)::int AS n FROM pg_stat_activity WHERE pid = $1 AND wait_event_type = 'Lock'`, [pid]))[0]!.n, { timeout: 20_000 })
        .toBe(1);
      await db.admin.query('SELECT pg_terminate_backend($1)', [pid]);
      const error = await flush;
      await holder.query('ROLLBACK');
      expect(error).toBeInstanceOf(FlushFailedError);
      // The COMMIT had been written to the socket and its answer never came: the executor cannot know it was not applied.
      expect((error as FlushFailedError).maybeCommitted).toBe(true);
      expect(exec.usable).toBe(false);
      expect((await jobsOf(schema)).map((j) => j.state)).toEqual(['active']);
    });

    test('a connection already lost: the next flush is not sent, fails at once and says nothing committed', async () => {
      const schema = await db.freshSchema();
      const { exec, client } = await executor(schema);
      await exec.execute({ ...emptyBatch(T0), newQueues: ['alpha'] });
      const [row] = await queryRows<{ pid: number }>(client, 'SELECT pg_backend_pid() AS pid');
      const ended = new Promise<void>((resolve) => client.once('end', () => resolve()));
      await db.admin.query('SELECT pg_terminate_backend($1)', [row!.pid]);
      await ended;
      expect(exec.usable).toBe(false);
      const error = await exec
        .execute({ ...emptyBatch(T0 + 1), enqueues: [{ jobs: [newJob()], states: pending(1), atomic: true }] })
        .then(() => undefined, (e: unknown) => e);
      expect(error).toBeInstanceOf(FlushFailedError);
      expect((error as FlushFailedError).maybeCommitted).toBe(false);
      expect(await jobsOf(schema)).toEqual([]);
    });

    /** The statements, with `acks` answered once by a real server error of the given SQLSTATE instead. */
    function failingOnce(schema: string, code: string) {
      const real = postgresFlushStatements(schema);
      let armed = true;
      return {
        ...real,
        acks: (c: pg.ClientBase, acks: Parameters<typeof real.acks>[1], now: number) => {
          if (!armed) return real.acks(c, acks, now);
          armed = false;
          return c.query(`DO $$ BEGIN RAISE EXCEPTION 'injected' USING ERRCODE = '${code}'; END $$`) as Promise<never>;
        },
      };
    }

    test('a deadlock or serialization failure reported by the server runs the flush again; any other failure fails it, committing nothing', async () => {
      const schema = await db.freshSchema();
      const { exec: seeder } = await executor(schema);
      const seed = await seeder.execute({ ...emptyBatch(T0), newQueues: ['alpha'], enqueues: [{ jobs: [newJob(), newJob()], states: pending(2), atomic: false }], claims: [{ queue: 'alpha', slots: slots(2) }] });
      const [j1, j2] = seed.claims[0]!;
      const batchFor = (j: typeof j1) => ({
        ...emptyBatch(T0 + 1),
        acks: [{ id: j!.id, leaseId: j!.lease_id, result: null }],
        enqueues: [{ jobs: [newJob({ type: 'next' })], states: pending(1), atomic: true }],
      });

      const client = new pg.Client({ connectionString: db.url, pipeline: true } as pg.ClientConfig);
      await client.connect();
      clients.push(client);
      const retried = new PostgresFlushExecutor(client, failingOnce(schema, '40P01'));
      const r = await retried.execute(batchFor(j1));
      expect(retried.stats.transactions).toBe(2);
      expect(r.acks).toEqual([expect.objectContaining({ attempt: 1 })]);
      expect(r.enqueues[0]![0]).toMatchObject({ deduplicated: false });

      const refused = new PostgresFlushExecutor(client, failingOnce(schema, '42P01'));
      const error = await refused.execute(batchFor(j2)).then(() => undefined, (e: unknown) => e);
      expect(error).toBeInstanceOf(FlushFailedError);
      expect((error as FlushFailedError).maybeCommitted).toBe(false);
      expect(((error as FlushFailedError).cause as { code?: string }).code).toBe('42P01');
      const rows = await queryRows<{ type: string; state: string }>(db.admin, `SELECT type, state FROM ${quoteIdent(schema)}.jobs ORDER BY seq`);
      // j1 acked and one 'next' job from the retried flush; j2 still active, no second 'next'.
      expect(rows).toEqual([{ type: 'email', state: 'completed' }, { type: 'email', state: 'active' }, { type: 'next', state: 'pending' }]);
    });

    test('a steady stream of flushes (enqueue 100, ack the 50 claimed before, claim 50): every job once; figures printed', async () => {
      const schema = await db.freshSchema();
      const { exec, client } = await executor(schema);
      const trips = watchRoundTrips(client);
      const flushes = 200;
      let held: { id: string; lease_id: string }[] = [];
      const times: number[] = [];
      const started = performance.now();
      let oneRoundTrip = 0;
      for (let f = 0; f < flushes; f++) {
        trips.reset();
        const t = performance.now();
        const r = await exec.execute({
          ...emptyBatch(T0 + f),
          newQueues: f === 0 ? ['alpha'] : [],
          enqueues: [{ jobs: Array.from({ length: 100 }, () => newJob()), states: pending(100), atomic: false }],
          acks: held.map((j) => ({ id: j.id, leaseId: j.lease_id, result: null })),
          claims: [{ queue: 'alpha', slots: slots(50, `b1.${f}.`) }],
          ready: ['alpha'],
        });
        times.push(performance.now() - t);
        if (trips.sentAfterAnAnswer.every((late) => !late)) oneRoundTrip++;
        expect(r.acks.every((a) => a !== undefined)).toBe(true);
        held = r.claims[0]!;
        expect(held).toHaveLength(50);
      }
      const seconds = (performance.now() - started) / 1000;
      expect(oneRoundTrip).toBe(flushes);
      expect(exec.stats.transactions).toBe(flushes);
      const counts = await queryRows<{ state: string; n: number }>(db.admin, `SELECT state, count(*)::int AS n FROM ${quoteIdent(schema)}.jobs GROUP BY state ORDER BY state`);
      expect(counts).toEqual([
        { state: 'active', n: 50 },
        { state: 'completed', n: 50 * (flushes - 1) },
        { state: 'pending', n: 100 * flushes - 50 * flushes },
      ]);
      times.sort((a, b) => a - b);
      console.log(
        `flush executor, ${flushes} flushes of enqueue 100 + ack 50 + claim 50 + notify, one connection: ` +
          `${Math.round((150 * flushes) / seconds)} jobs/s (enqueued + completed), flush median ${times[flushes >> 1]!.toFixed(2)} ms, p99 ${times[Math.floor(flushes * 0.99)]!.toFixed(2)} ms`,
      );
    });

    test('a committed flush with ready queues wakes a listener on another connection; a rolled-back one does not', async () => {
      const schema = await db.freshSchema();
      const { exec } = await executor(schema);
      const heard: string[][] = [];
      let wake: (() => void) | undefined;
      const listener = new ReadyListener({
        connection: db.url,
        schema,
        logger: createLogger('silent'),
        onReady: (queues) => {
          heard.push(queues);
          wake?.();
        },
        onResync: () => {},
      });
      await listener.start();
      try {
        // Rolled back by a refused job of an atomic command (its notify goes with it), then committed without it.
        const woken = new Promise<void>((resolve) => (wake = resolve));
        await exec.execute({
          ...emptyBatch(T0),
          newQueues: ['alpha', 'beta'],
          enqueues: [{ jobs: [newJob({ queue: 'beta', maxAttempts: 0 })], states: pending(1), atomic: true }, { jobs: [newJob()], states: pending(1), atomic: true }],
          ready: ['alpha', 'beta'],
        });
        await woken;
        expect(exec.stats.transactions).toBe(3); // rolled back, committed, the refused command alone
        expect(heard).toEqual([['alpha', 'beta']]);
      } finally {
        await listener.close();
      }
    });

    test('an isolated enqueue command notifies its ready queues at its own commit, after the flush that went without it', async () => {
      const schema = await db.freshSchema();
      const { exec } = await executor(schema);
      const heard: string[][] = [];
      let wake: ((queues: string[]) => void) | undefined;
      const listener = new ReadyListener({
        connection: db.url,
        schema,
        logger: createLogger('silent'),
        onReady: (queues) => {
          heard.push(queues);
          wake?.(queues);
        },
        onResync: () => {},
      });
      await listener.start();
      try {
        const r = await exec.execute({
          ...emptyBatch(T0),
          newQueues: ['alpha', 'gamma'],
          enqueues: [
            { jobs: [newJob()], states: pending(1), atomic: true },
            { jobs: [newJob({ queue: 'gamma' }), newJob({ queue: 'gamma', maxAttempts: 0 }), newJob({ queue: 'gamma' })], states: pending(3), atomic: false },
          ],
          ready: ['alpha', 'gamma'],
        });
        expect(r.enqueues[1]!.map((o) => ('error' in o ? 'error' : 'ok'))).toEqual(['ok', 'error', 'ok']);
        // Notifications arrive in commit order: once a later flush's is heard, every earlier one has been.
        const last = new Promise<void>((resolve) => (wake = (queues) => queues.includes('zeta') && resolve()));
        await exec.execute({ ...emptyBatch(T0 + 1), newQueues: ['zeta'], enqueues: [{ jobs: [newJob({ queue: 'zeta' })], states: pending(1), atomic: true }], ready: ['zeta'] });
        await last;
        // The flush without the command; each of its good jobs, committed alone (the refused one rolled back, with its notify).
        expect(heard).toEqual([['alpha', 'gamma'], ['gamma'], ['gamma'], ['zeta']]);
      } finally {
        await listener.close();
      }
    });
  });
}
