/**
 * The takeover of design 3.6 (src/store/postgres/pg-takeover.ts) on a real PostgreSQL, with real
 * BrokerRegistry rows, each broker on its own connection as separate processes would be: the
 * leases of a broker swept for not heartbeating (and of one replaced by a restart under its
 * name) are released with the attempt counted, dead on the last one; the leases of live brokers
 * stay; two sweepers at once release each job once; an ack by the zombie broker after the
 * takeover changes nothing (fenced by the lease id); and a broker whose row is gone claims
 * nothing (pg-claims' own-row check). Needs PostgreSQL: not registered where it is not required.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type pg from 'pg';
import { JobState } from '../src/domain/job-state.js';
import { BrokerRegistry } from '../src/store/postgres/broker-registry.js';
import { claimForSlots, completeMany } from '../src/store/postgres/pg-claims.js';
import { releaseOrphanedLeases, type OrphanedLease } from '../src/store/postgres/pg-takeover.js';
import { enqueueMany } from '../src/store/postgres/pg-writes.js';
import { queryRows, quoteIdent } from '../src/store/postgres/sql.js';
import type { ClaimedJob, NewJob } from '../src/store/types.js';
import { newJob as jobAtT0, T0 } from './helpers/pg-fixtures.js';
import { postgresRequired, testDatabase, type TestDatabase } from './helpers/postgres.js';

/** The fixtures' job (ready at T0) with a 10-minute lease timeout, longer than any test here. */
const newJob = (over: Partial<NewJob> = {}): NewJob => jobAtT0({ leaseTimeoutMs: 600_000, ...over });

if (postgresRequired()) {
  describe('PostgreSQL takeover of a lapsed broker\'s leases', () => {
    /** Short enough to wait out, long enough that the heartbeating brokers never lapse meanwhile. */
    const TIMEOUT_MS = 500;
    /** How long a wait on the database may take before the test fails (a loaded machine). */
    const DEADLINE_MS = 30_000;

    let db: TestDatabase;
    let admin: pg.Client;

    beforeAll(async () => {
      db = await testDatabase('takeover');
      admin = db.admin;
    });
    afterAll(async () => {
      await db?.close();
    });

    /** A broker as the tests need it: its registry and its connection. */
    interface Broker {
      registry: BrokerRegistry;
      conn: pg.Client;
      id: string;
    }

    async function broker(schema: string, name?: string): Promise<Broker> {
      const conn = await db.connect();
      const registry = new BrokerRegistry(conn, { schema, heartbeatTimeoutMs: TIMEOUT_MS, ...(name === undefined ? {} : { name }) });
      const { id } = await registry.register();
      return { registry, conn, id };
    }

    async function enqueue(schema: string, jobs: NewJob[]): Promise<string[]> {
      const out = await enqueueMany(admin, { schema, jobs, states: jobs.map(() => JobState.Pending), now: T0 });
      return out.map((o) => o.id);
    }

    /** `n` jobs of the queue claimed by `b` under stream counter 1, with the own-row check. */
    function claim(schema: string, b: Broker, n: number, queue = 'alpha'): Promise<ClaimedJob[]> {
      return claimForSlots(b.conn, { schema, queue, brokerId: b.id, slots: Array.from({ length: n }, () => ({ prefix: `${b.id}.1.`, workerId: `w-${b.id}` })) });
    }

    /**
     * `survivor` heartbeats and sweeps until `lapsed` has been swept by it: the database's clock
     * passing the timeout decides, so this polls the database, it does not guess a delay.
     */
    async function sweepUntilGone(survivor: Broker, lapsed: Broker): Promise<void> {
      const deadline = Date.now() + DEADLINE_MS;
      for (;;) {
        expect(await survivor.registry.heartbeat([])).toBe('alive');
        const swept = await survivor.registry.sweepLapsed();
        if (swept.includes(lapsed.id)) return;
        if (Date.now() > deadline) throw new Error(`broker ${lapsed.id} was never swept`);
        await sleep(50);
      }
    }

    async function rows(schema: string): Promise<Record<string, unknown>[]> {
      return queryRows(admin, `SELECT seq, state, attempt, lease_id, last_error, errors, history, finished_at FROM ${quoteIdent(schema)}.jobs ORDER BY seq`);
    }

    test('a swept broker\'s leases are released with the attempt counted (dead on its last); live brokers\' leases stay', async () => {
      const schema = await db.freshSchema();
      const a = await broker(schema);
      const b = await broker(schema);
      await enqueue(schema, [newJob(), newJob(), newJob({ maxAttempts: 1 }), newJob({ queue: 'beta' }), newJob(), newJob()]);
      const aLeases = [...(await claim(schema, a, 3)), ...(await claim(schema, a, 1, 'beta'))];
      const bLeases = await claim(schema, b, 2);
      expect(aLeases.map((j) => j.lease_id)).toEqual(aLeases.map((j) => `${a.id}.1.${j.seq}`));

      // Nobody is orphaned while both are registered.
      expect(await releaseOrphanedLeases(b.conn, { schema, limit: 100 })).toEqual([]);

      // a stops heartbeating; b sweeps it once the database's clock says it lapsed.
      await sweepUntilGone(b, a);
      const released = await releaseOrphanedLeases(b.conn, { schema, limit: 100 });
      const reason = `broker ${a.id} stopped heartbeating`;
      expect(released).toEqual(
        aLeases.map((j) => ({
          id: j.id,
          leaseId: j.lease_id,
          brokerId: a.id,
          released: { state: j.max_attempts === 1 ? JobState.Dead : JobState.Pending, queue: j.queue, type: 'email', attempt: 1, metadata: null },
        })),
      );
      const after = new Map((await rows(schema)).map((r) => [r.seq, r]));
      for (const j of aLeases) {
        const r = after.get(j.seq)!;
        const dead = j.max_attempts === 1;
        expect(r).toMatchObject({ state: dead ? 'dead' : 'pending', attempt: 1, lease_id: null, last_error: reason });
        expect(r.finished_at).toEqual(dead ? expect.any(Number) : null);
        expect(JSON.parse(r.errors as string)).toEqual([{ attempt: 1, message: reason, at: expect.any(Number), nonRetryable: false }]);
        const entry = JSON.parse(`[${r.history as string}]`).at(-1) as unknown[];
        expect(entry.slice(0, 4)).toEqual(['a', 1, `w-${a.id}`, j.lease_id]);
        expect(entry.slice(-3)).toEqual(['released', reason, dead ? 'dead' : 'pending']);
      }
      for (const j of bLeases) expect(after.get(j.seq)).toMatchObject({ state: 'active', attempt: 1, lease_id: j.lease_id, last_error: null });

      // Done once: a second run finds nothing; the released jobs are claimable again, attempt 2.
      expect(await releaseOrphanedLeases(b.conn, { schema, limit: 100 })).toEqual([]);
      const again = await claim(schema, b, 5);
      expect(again.map((j) => [j.id, j.attempt])).toEqual(aLeases.filter((j) => j.queue === 'alpha' && j.max_attempts > 1).map((j) => [j.id, 2]));
    });

    test('a broker restarted under its name: its previous leases are released at once, the limit is honoured', async () => {
      const schema = await db.freshSchema();
      const first = await broker(schema, 'node-1');
      await enqueue(schema, Array.from({ length: 5 }, () => newJob()));
      const leases = await claim(schema, first, 5);
      const restarted = await broker(schema, 'node-1');
      expect((await restarted.registry.registered()).map((r) => r.id)).toEqual([restarted.id]);
      const part = await releaseOrphanedLeases(restarted.conn, { schema, limit: 2 });
      expect(part.map((l) => l.id)).toEqual(leases.slice(0, 2).map((j) => j.id));
      const rest = await releaseOrphanedLeases(restarted.conn, { schema, limit: 10 });
      expect(rest.map((l) => l.id)).toEqual(leases.slice(2).map((j) => j.id));
      expect([...part, ...rest].every((l) => l.brokerId === first.id && l.released.state === JobState.Pending)).toBe(true);
      await expect(releaseOrphanedLeases(admin, { schema, limit: -1 })).rejects.toBeInstanceOf(RangeError);
    });

    test('two sweepers at once release each job once: a lease one has locked, the other skips', async () => {
      const schema = await db.freshSchema();
      const dead = await broker(schema);
      const s1 = await broker(schema);
      const s2 = await broker(schema);
      const N = 600;
      // The first 100 seqs in queue beta, the rest in alpha: s1 takes beta's, and s2's release then
      // touches other count rows (queue_counts is per queue), so the only rows the two share are the
      // job rows s1 holds.
      await enqueue(schema, Array.from({ length: N }, (_, i) => newJob({ queue: i < 100 ? 'beta' : 'alpha', payload: `{"i":${i}}` })));
      const leases = [...(await claim(schema, dead, 100, 'beta')), ...(await claim(schema, dead, N - 100))];
      expect(leases).toHaveLength(N);
      await dead.registry.deregister();

      // s1's release stays uncommitted while s2 sweeps: s2 skips the rows s1 holds (it does not wait
      // for s1's commit: it answers first) and takes every other lease.
      await s1.conn.query('BEGIN');
      const held = await releaseOrphanedLeases(s1.conn, { schema, limit: 100 });
      expect(held.map((l) => l.released.queue)).toEqual(new Array(100).fill('beta'));
      const other = await releaseOrphanedLeases(s2.conn, { schema, limit: N });
      expect(other).toHaveLength(N - 100);
      expect(new Set([...held, ...other].map((l) => l.id)).size).toBe(N);
      await s1.conn.query('COMMIT');
      expect(await releaseOrphanedLeases(s2.conn, { schema, limit: N })).toEqual([]);

      // Claimed again by s2 and orphaned again (s2 deregisters): both sweep in loops, at once.
      const second = [...(await claim(schema, s2, 100, 'beta')), ...(await claim(schema, s2, N - 100))];
      expect(second).toHaveLength(N);
      await s2.registry.deregister();
      const s3 = await broker(schema);
      const sweep = async (b: Broker): Promise<OrphanedLease[]> => {
        const got: OrphanedLease[] = [];
        for (;;) {
          const batch = await releaseOrphanedLeases(b.conn, { schema, limit: 25 });
          if (batch.length === 0) return got;
          got.push(...batch);
        }
      };
      const [x, y] = await Promise.all([sweep(s1), sweep(s3)]);
      const ids = [...x, ...y].map((l) => l.id);
      expect(ids).toHaveLength(N);
      expect(new Set(ids).size).toBe(N);
      // Each job: two attempts, two releases in its history and errors, nothing counted twice.
      const all = await rows(schema);
      expect(all.every((r) => r.state === 'pending' && r.attempt === 2)).toBe(true);
      expect(all.every((r) => (JSON.parse(r.errors as string) as unknown[]).length === 2)).toBe(true);
    });

    test('the zombie broker\'s ack after the takeover changes nothing; the job is the new holder\'s', async () => {
      const schema = await db.freshSchema();
      const zombie = await broker(schema);
      const live = await broker(schema);
      const [id] = await enqueue(schema, [newJob()]);
      const [job] = await claim(schema, zombie, 1);
      expect(job!.id).toBe(id);
      await sweepUntilGone(live, zombie);
      expect((await releaseOrphanedLeases(live.conn, { schema, limit: 10 })).map((l) => l.id)).toEqual([id]);

      // Released, not yet claimed again: the zombie's ack with the old lease misses.
      expect(await completeMany(zombie.conn, { schema, acks: [{ id: id!, leaseId: job!.lease_id, result: '{"late":1}' }] })).toEqual([undefined]);
      const [reclaimed] = await claim(schema, live, 1);
      expect(reclaimed).toMatchObject({ id, attempt: 2, lease_id: `${live.id}.1.${job!.seq}` });
      // Claimed by the live broker: still a miss, and the row stays the live broker's.
      expect(await completeMany(zombie.conn, { schema, acks: [{ id: id!, leaseId: job!.lease_id, result: '{"late":2}' }] })).toEqual([undefined]);
      const [row] = await queryRows<{ state: string; lease_id: string; result: string | null }>(
        admin,
        `SELECT state, lease_id, result FROM ${quoteIdent(schema)}.jobs WHERE seq = $1`,
        [job!.seq],
      );
      expect(row).toEqual({ state: 'active', lease_id: reclaimed!.lease_id, result: null });
      // The holder's ack completes it.
      expect(await completeMany(live.conn, { schema, acks: [{ id: id!, leaseId: reclaimed!.lease_id, result: '{"ok":1}' }] })).toEqual([
        { attempt: 2, queue: 'alpha', started_at: expect.any(Number), metadata: null },
      ]);
    });

    test('a broker whose row is gone claims nothing; with a row, or without the check, the claim takes jobs', async () => {
      const schema = await db.freshSchema();
      const gone = await broker(schema);
      const live = await broker(schema);
      await enqueue(schema, Array.from({ length: 4 }, () => newJob()));
      await sweepUntilGone(live, gone);
      expect(await gone.registry.heartbeat([])).toBe('declared-dead');
      expect(await claim(schema, gone, 4)).toEqual([]);
      const [{ n }] = (await queryRows<{ n: number }>(admin, `SELECT count(*)::int AS n FROM ${quoteIdent(schema)}.jobs WHERE state = 'pending'`)) as [{ n: number }];
      expect(n).toBe(4);
      expect((await claim(schema, live, 2)).map((j) => j.lease_id.startsWith(`${live.id}.`))).toEqual([true, true]);
      // No broker id: no check (the existing callers of claimForSlots).
      const unchecked = await claimForSlots(gone.conn, { schema, queue: 'alpha', slots: [{ prefix: 'x.1.', workerId: 'w' }] });
      expect(unchecked).toHaveLength(1);
      // Re-registered under a new id: it claims again.
      const { id } = await gone.registry.register();
      expect(await claimForSlots(gone.conn, { schema, queue: 'alpha', brokerId: id, slots: [{ prefix: `${id}.1.`, workerId: 'w' }] })).toHaveLength(1);
    });
  });
}
