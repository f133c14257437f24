/**
 * The heartbeat loop (src/store/postgres/broker-heartbeat.ts, design 3.6 and 3.7) around real
 * BrokerRegistry instances on one PostgreSQL, each on its own connection as broker processes
 * would be. Ticks are driven by a TestClock (one advance = one tick), so every test says exactly
 * which tick does what; lapse itself is judged by the database's clock, so where a broker must
 * lapse the test waits for the database clock to pass its deadline.
 *
 * Needs PostgreSQL (test/helpers/postgres.ts); where it is not required only the contracts that
 * need no database are checked here, the rest is not registered.
 */
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import pg from 'pg';
import { pino } from 'pino';
import { BrokerHeartbeat, type TickOutcome } from '../src/store/postgres/broker-heartbeat.js';
import { BrokerRegistry } from '../src/store/postgres/broker-registry.js';
import { queryRows } from '../src/store/postgres/sql.js';
import { TestClock } from './helpers/clock.js';
import { postgresRequired, testDatabase, type TestDatabase } from './helpers/postgres.js';

const silent = pino({ level: 'silent' });

test('the interval defaults to a quarter of the registry timeout, and must be a positive integer', () => {
  const registry = new BrokerRegistry(new pg.Client(), { heartbeatTimeoutMs: 2_000 });
  expect(new BrokerHeartbeat({ registry, subscribed: () => [], logger: silent }).intervalMs).toBe(500);
  expect(new BrokerHeartbeat({ registry, subscribed: () => [], logger: silent, intervalMs: 7 }).intervalMs).toBe(7);
  for (const intervalMs of [0, -5, 1.5]) {
    expect(() => new BrokerHeartbeat({ registry, subscribed: () => [], logger: silent, intervalMs })).toThrow(RangeError);
  }
});

if (postgresRequired()) {
  describe('PostgreSQL heartbeat loop', () => {
    /** Long enough that a heartbeating broker never lapses between its ticks on a loaded machine. */
    const TIMEOUT_MS = 1_000;
    const INTERVAL_MS = TIMEOUT_MS / 4;
    const DEADLINE_MS = 20_000;

    let db: TestDatabase;
    let admin: pg.Client;
    const logLines: string[] = [];
    const logger = pino({ level: 'debug' }, { write: (line: string) => void logLines.push(line) });
    const loops: BrokerHeartbeat[] = [];

    beforeAll(async () => {
      db = await testDatabase('heartbeat');
      admin = db.admin;
    });

    afterAll(async () => {
      await Promise.all(loops.map((l) => l.stop()));
      await db?.close();
    });

    async function broker(schema: string, subscribed: readonly string[] = []) {
      const client = await db.connect();
      const registry = new BrokerRegistry(client, { schema, heartbeatTimeoutMs: TIMEOUT_MS });
      await registry.register();
      await registry.sampleClock();
      const clock = new TestClock();
      const loop = new BrokerHeartbeat({ registry, subscribed: () => subscribed, logger, clock });
      loops.push(loop);
      const [row] = await queryRows<{ pid: number }>(client, 'SELECT pg_backend_pid() AS pid');
      return { registry, clock, loop, client, pid: row!.pid };
    }

    /** Moves the loop's clock one interval (firing one tick) and resolves with that tick's outcome. */
    async function tick(b: { clock: TestClock; loop: BrokerHeartbeat }): Promise<TickOutcome> {
      const done = once(b.loop, 'tick', { signal: AbortSignal.timeout(DEADLINE_MS) });
      b.clock.advance(INTERVAL_MS);
      const [outcome] = (await done) as [TickOutcome];
      return outcome;
    }

    async function dbNowMs(): Promise<number> {
      const [row] = await queryRows<{ t: number }>(admin, `SELECT extract(epoch FROM clock_timestamp())::float8 * 1000 AS t`);
      return row!.t;
    }

    async function rowOf(schema: string, id: string) {
      const [row] = await queryRows<{ heartbeat_at: number; subscribed: string[] }>(
        admin,
        `SELECT heartbeat_at, subscribed FROM ${schema}.brokers WHERE id = $1`,
        [id],
      );
      return row;
    }

    /** Resolves once the server shows the session waiting for a lock. */
    async function waitUntilBlocked(pid: number): Promise<void> {
      const deadline = Date.now() + DEADLINE_MS;
      for (;;) {
        const [row] = await queryRows<{ n: number }>(admin, `SELECT count(*) AS n FROM pg_locks WHERE NOT granted AND pid = $1`, [pid]);
        if (row!.n > 0) return;
        if (Date.now() > deadline) throw new Error(`timed out waiting for session ${pid} to wait on a lock`);
        await sleep(20);
      }
    }

    test('a broker that stops heartbeating is swept by the other\'s loop once its timeout passes, and its id emitted', async () => {
      const schema = await db.freshSchema();
      // `quiet` registered and then never heartbeats: it has no loop (a stalled or killed broker).
      const quiet = new BrokerRegistry(await db.connect(), { schema, heartbeatTimeoutMs: TIMEOUT_MS });
      const { id: quietId } = await quiet.register();
      const live = await broker(schema, ['orders', 'emails']);
      const swept: string[][] = [];
      live.loop.on('swept', (ids) => swept.push(ids));
      live.loop.start();

      // The first tick: alive, the clock sampled, the row's queues recorded, nobody lapsed yet.
      const first = await tick(live);
      expect(first.heartbeat).toBe('alive');
      expect(first.clock).toMatchObject({ offsetMs: expect.any(Number), errorBoundMs: expect.any(Number) });
      expect(first.swept).toEqual([]);
      expect((await rowOf(schema, live.registry.id!))!.subscribed).toEqual(['emails', 'orders']);
      const [quietRow] = await quiet.registered().then((rows) => rows.filter((r) => r.id === quietId));
      expect(quietRow).toBeDefined();
      expect(swept).toEqual([]);

      // Once the database clock is past quiet's heartbeat + timeout, the next tick sweeps it.
      const deadline = quietRow!.heartbeat_at + TIMEOUT_MS;
      while ((await dbNowMs()) <= deadline + 1) await sleep(Math.max(5, deadline + 2 - (await dbNowMs())));
      const sweeping = await tick(live);
      expect(sweeping).toMatchObject({ heartbeat: 'alive', swept: [quietId] });
      expect(swept).toEqual([[quietId]]);
      expect((await live.registry.registered()).map((r) => r.id)).toEqual([live.registry.id]);

      // Gone for good: later ticks sweep nothing and emit nothing; the swept broker hears it.
      expect((await tick(live)).swept).toEqual([]);
      expect(swept).toEqual([[quietId]]);
      expect(await quiet.heartbeat([])).toBe('declared-dead');
      await live.loop.stop();
    });

    test('a broker whose row was deleted gets declared-dead once, sweeps nothing meanwhile, and is alive again after re-registering', async () => {
      const schema = await db.freshSchema();
      const b = await broker(schema);
      const deadIds: string[] = [];
      b.loop.on('declared-dead', (id) => deadIds.push(id));
      b.loop.start();
      expect((await tick(b)).heartbeat).toBe('alive');

      const oldId = b.registry.id!;
      await admin.query(`DELETE FROM ${schema}.brokers WHERE id = $1`, [oldId]);
      const dead = await tick(b);
      expect(dead.heartbeat).toBe('declared-dead');
      expect(dead.swept).toBe('skipped');
      expect(deadIds).toEqual([oldId]);

      // Not re-registered yet: still dead, but the broker was already told.
      expect((await tick(b)).heartbeat).toBe('declared-dead');
      expect(deadIds).toEqual([oldId]);

      const { id: newId } = await b.registry.register();
      const back = await tick(b);
      expect(back).toMatchObject({ heartbeat: 'alive', swept: [] });
      expect(newId).not.toBe(oldId);
      expect((await b.registry.registered()).map((r) => r.id)).toEqual([newId]);
      expect(deadIds).toEqual([oldId]);
      expect(logLines.some((line) => line.includes('declared dead') && line.includes(oldId))).toBe(true);
      await b.loop.stop();
    });

    test('a slow database: ticks due meanwhile are skipped, not queued; a failed heartbeat is logged, not declared-dead, and retried', async () => {
      const schema = await db.freshSchema();
      const b = await broker(schema);
      const deadIds: string[] = [];
      const outcomes: TickOutcome[] = [];
      b.loop.on('declared-dead', (id) => deadIds.push(id));
      b.loop.on('tick', (o) => outcomes.push(o));
      b.loop.start();

      // Hold the broker's row: its next heartbeat UPDATE waits on the lock.
      const holder = await db.connect();
      await holder.query('BEGIN');
      await holder.query(`SELECT 1 FROM ${schema}.brokers WHERE id = $1 FOR UPDATE`, [b.registry.id]);
      const firstDone = once(b.loop, 'tick', { signal: AbortSignal.timeout(DEADLINE_MS) });
      b.clock.advance(INTERVAL_MS);
      await waitUntilBlocked(b.pid);

      // Three more ticks come due while it waits: each is skipped, none reaches the database.
      for (let i = 1; i <= 3; i++) {
        const skipped = once(b.loop, 'skipped', { signal: AbortSignal.timeout(DEADLINE_MS) });
        b.clock.advance(INTERVAL_MS);
        await skipped;
        expect(b.loop.skippedTicks).toBe(i);
      }
      const [inFlight] = await queryRows<{ n: number }>(
        admin,
        `SELECT count(*) AS n FROM pg_stat_activity WHERE pid = $1 AND state = 'active' AND query LIKE 'UPDATE%brokers%'`,
        [b.pid],
      );
      expect(inFlight!.n).toBe(1);
      expect(outcomes).toEqual([]);

      // The blocked heartbeat fails (cancelled on the server): logged, retried next tick, and the
      // row is still there, so nobody says declared-dead.
      await admin.query('SELECT pg_cancel_backend($1)', [b.pid]);
      const [failed] = (await firstDone) as [TickOutcome];
      expect(failed).toEqual({ heartbeat: 'failed', clock: 'skipped', swept: 'skipped' });
      expect(logLines.some((line) => line.includes('heartbeat failed; retrying next tick') && line.includes('57014'))).toBe(true);
      await holder.query('COMMIT');

      const retried = await tick(b);
      expect(retried).toMatchObject({ heartbeat: 'alive', swept: [] });
      expect(deadIds).toEqual([]);
      expect(outcomes.map((o) => o.heartbeat)).toEqual(['failed', 'alive']);
      await b.loop.stop();
    });

    test('stop() waits for the tick in flight and leaves no timer, on the test clock and on real timers', async () => {
      const schema = await db.freshSchema();
      const b = await broker(schema);
      b.loop.start();
      expect(b.clock.pendingTimers).toBe(1);

      // A tick in flight (blocked on the row): stop() resolves only after it finished.
      const holder = await db.connect();
      await holder.query('BEGIN');
      await holder.query(`SELECT 1 FROM ${schema}.brokers WHERE id = $1 FOR UPDATE`, [b.registry.id]);
      const outcome = once(b.loop, 'tick', { signal: AbortSignal.timeout(DEADLINE_MS) });
      b.clock.advance(INTERVAL_MS);
      await waitUntilBlocked(b.pid);
      let stopped = false;
      const stopping = b.loop.stop().then(() => (stopped = true));
      expect(b.clock.pendingTimers).toBe(0);
      await Promise.resolve();
      expect(stopped).toBe(false); // the heartbeat is provably still waiting on the lock
      await holder.query('COMMIT');
      await stopping;
      expect(((await outcome) as [TickOutcome])[0].heartbeat).toBe('alive');
      b.clock.advance(10 * INTERVAL_MS);
      expect(b.clock.pendingTimers).toBe(0);
      await b.loop.stop(); // idempotent
      expect(() => b.loop.start()).toThrow(/stopped/);

      // Real timers (the default setTimeout path): the loop holds exactly one pending timer while it
      // runs and none after stop(). Counted on the timers created while it runs, not process-wide:
      // other Timeouts of the test process (the runner's, the driver's) come and go on their own.
      const pending = new Set<unknown>();
      const realSetTimeout = globalThis.setTimeout;
      const realClearTimeout = globalThis.clearTimeout;
      const tracking = ((fn: (...args: unknown[]) => void, ms?: number, ...args: unknown[]) => {
        const handle: unknown = realSetTimeout(() => {
          pending.delete(handle);
          fn(...args);
        }, ms);
        pending.add(handle);
        return handle;
      }) as unknown as typeof setTimeout;
      const realRegistry = new BrokerRegistry(await db.connect(), { schema, heartbeatTimeoutMs: 40 });
      await realRegistry.register();
      const real = new BrokerHeartbeat({ registry: realRegistry, subscribed: () => [], logger });
      loops.push(real);
      globalThis.setTimeout = tracking;
      globalThis.clearTimeout = ((handle: Parameters<typeof clearTimeout>[0]) => {
        pending.delete(handle);
        realClearTimeout(handle);
      }) as typeof clearTimeout;
      try {
        real.start();
        expect(pending.size).toBe(1);
        for (let i = 0; i < 2; i++) {
          const [o] = (await once(real, 'tick', { signal: AbortSignal.timeout(DEADLINE_MS) })) as [TickOutcome];
          expect(o.heartbeat).toBe('alive');
        }
        await real.stop();
        expect(pending.size).toBe(0);
      } finally {
        globalThis.setTimeout = realSetTimeout;
        globalThis.clearTimeout = realClearTimeout;
      }
    });
  });
}
