/**
 * The brokers registry (src/store/postgres/broker-registry.ts, design 3.6 and 3.7) against a real
 * PostgreSQL, with several registries on one database, each on its own connection as separate
 * broker processes would be: registration, heartbeats, the sweep of a broker that stopped
 * heartbeating (by another broker, exactly once even when two sweep at once), 'declared-dead' for
 * the swept broker, replacement under the same name, and the database clock offset.
 *
 * Needs PostgreSQL (test/helpers/postgres.ts); where it is not required only the contracts that
 * need no database are checked here, the rest is not registered.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import pg from 'pg';
import {
  BROKER_NAME_LOCK_KEY,
  BrokerNotRegisteredError,
  BrokerRegistry,
  DEFAULT_HEARTBEAT_TIMEOUT_MS,
  type BrokerRegistryOptions,
} from '../src/store/postgres/broker-registry.js';
import { ClockNotSampledError, DbClock } from '../src/store/postgres/db-clock.js';
import { queryRows } from '../src/store/postgres/sql.js';
import { postgresRequired, testDatabase, type TestDatabase } from './helpers/postgres.js';

// A client that never connects: these calls must fail before any query.
test('heartbeat before register, and now() before a clock sample, fail with typed errors', async () => {
  const registry = new BrokerRegistry(new pg.Client());
  expect(registry.heartbeatTimeoutMs).toBe(DEFAULT_HEARTBEAT_TIMEOUT_MS);
  expect(registry.heartbeatIntervalMs).toBe(DEFAULT_HEARTBEAT_TIMEOUT_MS / 4);
  expect(registry.id).toBeUndefined();
  await expect(registry.heartbeat([])).rejects.toBeInstanceOf(BrokerNotRegisteredError);
  expect(() => registry.now()).toThrow(ClockNotSampledError);
  expect(() => new DbClock(new pg.Client()).now()).toThrow(ClockNotSampledError);
  expect(await registry.deregister()).toBe(false);
});

test('a heartbeat timeout that is not a positive integer is refused', () => {
  for (const heartbeatTimeoutMs of [0, -1, 1.5, Number.NaN]) {
    expect(() => new BrokerRegistry(new pg.Client(), { heartbeatTimeoutMs })).toThrow(RangeError);
  }
});

if (postgresRequired()) {
  describe('PostgreSQL broker registry', () => {
    /** Short enough to wait out, long enough that the heartbeating brokers never lapse meanwhile. */
    const TIMEOUT_MS = 500;
    /** How long a wait on the database may take before the test fails (a loaded CI machine). */
    const DEADLINE_MS = 20_000;
    const HEX16 = /^[0-9a-f]{16}$/;

    let db: TestDatabase;
    let admin: pg.Client;
    const connect = () => db.connect();
    // A migrated schema of its own per test, so tests never see each other's brokers.
    const freshSchema = () => db.freshSchema();

    /** Each registry's connection, to find its server session in pg_locks. */
    const connectionOf = new Map<BrokerRegistry, pg.Client>();

    /** A registry on its own connection, as a broker process would have. */
    async function registry(schema: string, options: Omit<BrokerRegistryOptions, 'schema'> = {}): Promise<BrokerRegistry> {
      const client = await connect();
      const r = new BrokerRegistry(client, { schema, heartbeatTimeoutMs: TIMEOUT_MS, ...options });
      connectionOf.set(r, client);
      return r;
    }

    async function backendPids(registries: BrokerRegistry[]): Promise<number[]> {
      return Promise.all(
        registries.map(async (r) => (await queryRows<{ pid: number }>(connectionOf.get(r)!, 'SELECT pg_backend_pid() AS pid'))[0]!.pid),
      );
    }

    async function dbNowMs(): Promise<number> {
      const [row] = await queryRows<{ t: number }>(admin, `SELECT extract(epoch FROM clock_timestamp())::float8 * 1000 AS t`);
      return row!.t;
    }

    /** Polls until probe returns something, or fails at the deadline. */
    async function waitFor<T>(what: string, probe: () => Promise<T | undefined>): Promise<T> {
      const deadline = Date.now() + DEADLINE_MS;
      for (;;) {
        const value = await probe();
        if (value !== undefined) return value;
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
        await sleep(20);
      }
    }

    /** Resolves once the server shows every one of pids waiting for a lock. */
    async function waitUntilBlocked(pids: number[]): Promise<void> {
      await waitFor(`sessions ${pids.join(', ')} to wait on a lock`, async () => {
        const [row] = await queryRows<{ n: number }>(
          admin,
          `SELECT count(DISTINCT pid) AS n FROM pg_locks WHERE NOT granted AND pid = ANY($1::int[])`,
          [pids],
        );
        return row!.n === pids.length ? true : undefined;
      });
    }

    beforeAll(async () => {
      db = await testDatabase('brokers');
      admin = db.admin;
    });

    afterAll(async () => {
      await db?.close();
    });

    test('three brokers register with distinct ids, and each heartbeat keeps its row and records its queues', async () => {
      const schema = await freshSchema();
      const a = await registry(schema, { name: 'alpha', address: '10.0.0.1:7070' });
      const b = await registry(schema, { name: 'beta', address: '10.0.0.2:7070' });
      const c = await registry(schema); // no --broker-name: name and address stay NULL
      const regs = [await a.register(), await b.register(), await c.register()];
      for (const r of regs) expect(r).toEqual({ id: expect.stringMatching(HEX16), previousId: undefined });
      expect(new Set(regs.map((r) => r.id)).size).toBe(3);
      expect([a.id, b.id, c.id]).toEqual(regs.map((r) => r.id));

      const rows = await c.registered();
      expect(rows.map((r) => r.id)).toEqual(regs.map((r) => r.id).sort());
      const byId = new Map(rows.map((r) => [r.id, r]));
      expect(byId.get(a.id!)).toMatchObject({ name: 'alpha', address: '10.0.0.1:7070', subscribed: [] });
      expect(byId.get(b.id!)).toMatchObject({ name: 'beta', address: '10.0.0.2:7070', subscribed: [] });
      expect(byId.get(c.id!)).toMatchObject({ name: null, address: null, subscribed: [] });
      const registeredBy = Math.ceil(await dbNowMs());
      for (const row of rows) {
        expect(row.heartbeat_at).toBe(row.started_at);
        expect(row.started_at).toBeLessThanOrEqual(registeredBy);
      }

      // Let the database clock pass every started_at, so a heartbeat visibly moves heartbeat_at.
      const latest = Math.max(...rows.map((r) => r.started_at));
      await waitFor('the database clock to pass the registrations', async () => ((await dbNowMs()) > latest + 1 ? true : undefined));
      expect(await a.heartbeat(['orders', 'emails', 'orders'])).toBe('alive');
      expect(await b.heartbeat(['emails'])).toBe('alive');
      expect(await c.heartbeat([])).toBe('alive');
      const after = new Map((await a.registered()).map((r) => [r.id, r]));
      expect(after.get(a.id!)!.subscribed).toEqual(['emails', 'orders']);
      expect(after.get(b.id!)!.subscribed).toEqual(['emails']);
      expect(after.get(c.id!)!.subscribed).toEqual([]);
      for (const row of after.values()) {
        expect(row.heartbeat_at).toBeGreaterThan(row.started_at);
        expect(row.started_at).toBe(byId.get(row.id)!.started_at);
      }
      // Nobody lapsed: every broker heartbeat within the timeout.
      expect(await b.sweepLapsed()).toEqual([]);
    });

    test('a broker that stops heartbeating is swept by another, whose sweep returns exactly its id; its next heartbeat says declared-dead', async () => {
      const schema = await freshSchema();
      const [a, b, c] = [await registry(schema, { name: 'alpha' }), await registry(schema, { name: 'beta' }), await registry(schema)];
      await a.register();
      await b.register();
      await c.register();
      const lapsed = a.id!;

      // b and c keep heartbeating right before each sweep; a does not. The sweep returns nothing
      // until a's heartbeat is TIMEOUT_MS old by the database's clock, then exactly a.
      const swept = await waitFor('the sweep to take a over', async () => {
        expect(await b.heartbeat(['q'])).toBe('alive');
        expect(await c.heartbeat(['q'])).toBe('alive');
        const ids = await c.sweepLapsed();
        return ids.length > 0 ? ids : undefined;
      });
      expect(swept).toEqual([lapsed]);
      expect((await b.registered()).map((r) => r.id)).toEqual([b.id, c.id].sort());
      // Gone, so a later sweep does not hand it out again.
      expect(await b.sweepLapsed()).toEqual([]);

      // The swept broker learns it on its next heartbeat, and re-registers under a new id; its
      // old row is already gone, so nothing is replaced.
      expect(await a.heartbeat(['q'])).toBe('declared-dead');
      expect(await a.heartbeat(['q'])).toBe('declared-dead');
      const again = await a.register();
      expect(again).toEqual({ id: expect.stringMatching(HEX16), previousId: undefined });
      expect(again.id).not.toBe(lapsed);
      expect(await a.heartbeat(['q'])).toBe('alive');
      expect((await c.registered()).map((r) => r.id)).toEqual([a.id, b.id, c.id].sort());
    });

    test('two brokers sweeping at once return the lapsed id once in total', async () => {
      const schema = await freshSchema();
      const [a, b, c] = [await registry(schema), await registry(schema), await registry(schema)];
      await a.register();
      await b.register();
      await c.register();
      const holder = await connect();
      await waitFor('a to lapse', async () => {
        await b.heartbeat([]);
        await c.heartbeat([]);
        const rows = await queryRows<{ id: string }>(
          holder,
          `SELECT id FROM ${schema}.brokers WHERE heartbeat_at < (extract(epoch FROM clock_timestamp()) * 1000)::bigint - $1`,
          [TIMEOUT_MS],
        );
        return rows.length > 0 ? rows : undefined;
      });

      // Hold a's row so both sweeps provably find it lapsed and queue on its lock together; the
      // holder changes nothing, so when it commits both go on, and the loser finds the row gone.
      await holder.query('BEGIN');
      await holder.query(`SELECT 1 FROM ${schema}.brokers WHERE id = $1 FOR UPDATE`, [a.id]);
      const sweepers = [b, c];
      const pids = await backendPids(sweepers);
      for (const s of sweepers) await s.heartbeat([]);
      const sweeps = Promise.all(sweepers.map((s) => s.sweepLapsed()));
      await waitUntilBlocked(pids);
      await holder.query('COMMIT');

      const results = await sweeps;
      expect(results.flat()).toEqual([a.id]);
      expect(await a.heartbeat([])).toBe('declared-dead');
      expect((await holder.query(`SELECT 1 FROM ${schema}.brokers`)).rowCount).toBe(2);
    });

    test('a broker restarted under the same name replaces its old row and gets the old id back', async () => {
      const schema = await freshSchema();
      const old = await registry(schema, { name: 'alpha', address: 'old:7070' });
      const other = await registry(schema);
      const { id: oldId } = await old.register();
      const { id: otherId } = await other.register();

      const restarted = await registry(schema, { name: 'alpha', address: 'new:7070' });
      const r = await restarted.register();
      expect(r.previousId).toBe(oldId);
      const rows = await other.registered();
      expect(rows.map((row) => row.id)).toEqual([r.id, otherId].sort());
      expect(rows.find((row) => row.name === 'alpha')).toMatchObject({ id: r.id, address: 'new:7070' });
      expect(await old.heartbeat([])).toBe('declared-dead');

      // A registry that registers again replaces its own row, named or not.
      const r2 = await restarted.register();
      expect(r2.previousId).toBe(r.id);
      const o2 = await other.register();
      expect(o2.previousId).toBe(otherId);
      expect((await other.registered()).map((row) => row.id)).toEqual([r2.id, o2.id].sort());
    });

    test('two brokers registering under one name at once: the later replaces the earlier, no unique violation', async () => {
      const schema = await freshSchema();
      const x = await registry(schema, { name: 'gamma' });
      const y = await registry(schema, { name: 'gamma' });
      const pids = await backendPids([x, y]);
      // Hold the name's lock, so both registrations are provably in flight together.
      const holder = await connect();
      await holder.query('BEGIN');
      await holder.query(`SELECT pg_advisory_xact_lock(${BROKER_NAME_LOCK_KEY})`, [schema, 'gamma']);
      const both = Promise.all([x.register(), y.register()]);
      await waitUntilBlocked(pids);
      await holder.query('COMMIT');
      const [rx, ry] = await both;

      const rows = await x.registered();
      expect(rows).toHaveLength(1);
      const survivor = rows[0]!.id === rx.id ? { won: rx, lost: ry } : { won: ry, lost: rx };
      expect(rows[0]!.id).toBe(survivor.won.id);
      expect(survivor.won.previousId).toBe(survivor.lost.id);
      expect(survivor.lost.previousId).toBeUndefined();
    });

    test('on a pool: register, heartbeat and deregister; a deregistered broker is not registered', async () => {
      const schema = await freshSchema();
      const pool = new pg.Pool({ connectionString: db.url, max: 2 });
      try {
        const r = new BrokerRegistry(pool, { schema, name: 'pooled' });
        const { id } = await r.register();
        expect(await r.heartbeat(['q'])).toBe('alive');
        expect((await r.registered()).map((row) => row.id)).toEqual([id]);
        expect(await r.deregister()).toBe(true);
        expect(await r.registered()).toEqual([]);
        expect(r.id).toBeUndefined();
        await expect(r.heartbeat([])).rejects.toBeInstanceOf(BrokerNotRegisteredError);
      } finally {
        await pool.end();
      }
    });

    test('the clock offset against the local clock lies within its error bound, and now() follows the database clock forward', async () => {
      const schema = await freshSchema();
      // Same host: the database and Date.now read the same clock, so the true offset is 0.
      const local = await registry(schema);
      const sample = await local.sampleClock();
      expect(sample.roundTripMs).toBeGreaterThanOrEqual(0);
      expect(sample.errorBoundMs).toBe((sample.roundTripMs + 1) / 2);
      expect(Math.abs(sample.offsetMs)).toBeLessThanOrEqual(sample.errorBoundMs);
      expect(local.lastClockSample).toEqual(sample);

      // A local clock an hour ahead: the offset corrects it, within the bound.
      const HOUR = 3_600_000;
      const skewed = await registry(schema, { localClock: () => Date.now() + HOUR });
      const s = await skewed.sampleClock();
      expect(Math.abs(s.offsetMs + HOUR)).toBeLessThanOrEqual(s.errorBoundMs);

      // now() is the database's time within the bound (whole ms, floored), for both.
      for (const r of [local, skewed]) {
        const bound = r.lastClockSample!.errorBoundMs;
        const before = await dbNowMs();
        const n = r.now();
        const after = await dbNowMs();
        expect(Number.isInteger(n)).toBe(true);
        expect(n).toBeGreaterThanOrEqual(Math.floor(before - bound) - 1);
        expect(n).toBeLessThanOrEqual(after + bound);
      }

      // Between samples now() never goes back and moves on with time.
      const first = local.now();
      const moved = await waitFor('now() to move forward', async () => {
        const n = local.now();
        expect(n).toBeGreaterThanOrEqual(first);
        return n > first ? n : undefined;
      });
      expect(moved).toBeGreaterThan(first);
    });
  });
}
