/**
 * The PostgreSQL store's connections (src/store/postgres/pg-store.ts) against a real PostgreSQL:
 * open migrates a fresh schema (two stores opened at once migrate it once); reads go through the
 * pool with the store's timeouts; a flush commits on the write connection; the write connection
 * terminated by the server makes execute() fail at once with PostgresStoreUnavailableError until
 * the store has re-opened it ('reconnected'), then flushes work again; idle pooled connections
 * that die are logged, not fatal; close() ends every connection and the pending reconnection
 * timer; no log line holds the password of the URL it was opened with.
 *
 * Needs PostgreSQL (test/helpers/postgres.ts): not registered where it is not required.
 */
import { createHook } from 'node:async_hooks';
import { once } from 'node:events';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { pino } from 'pino';
import { JobState } from '../src/domain/job-state.js';
import { emptyBatch, type FlushBatch } from '../src/store/flush-batch.js';
import { PG_SCHEMA_VERSION } from '../src/store/postgres/migrations.js';
import { FlushFailedError } from '../src/store/postgres/pg-flush.js';
import {
  openPostgresStore,
  PostgresStoreOpenError,
  PostgresStoreUnavailableError,
  type OpenPostgresStoreOptions,
  type PostgresStore,
} from '../src/store/postgres/pg-store.js';
import { queryRows, quoteIdent } from '../src/store/postgres/sql.js';
import { parseStoreUrl } from '../src/store/store-url.js';
import type { NewJob } from '../src/store/types.js';
import { createLogger, type Logger } from '../src/log.js';
import { postgresRequired, testDatabase, type TestDatabase } from './helpers/postgres.js';

const T0 = 1_764_000_000_000;
const SECRET = 'Pw-7f3e9c21-never-logged';

function newJob(over: Partial<NewJob> = {}): NewJob {
  return {
    queue: 'alpha', type: 'email', payload: '{"n":1}', metadata: null, priority: 2, runAt: T0, maxAttempts: 3, retry: null,
    leaseTimeoutMs: 30_000, dedupKey: null, groupKey: null, inherits: 0, ...over,
  };
}

function enqueueBatch(n: number, now = T0): FlushBatch {
  return {
    ...emptyBatch(now),
    newQueues: ['alpha'],
    enqueues: [{ jobs: Array.from({ length: n }, (_, i) => newJob({ payload: `{"n":${i}}` })), states: new Array<JobState>(n).fill(JobState.Pending), atomic: false }],
    ready: ['alpha'],
  };
}

/** Open sockets of this process, by kind (what a connection left open would add to). */
function sockets(): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const kind of process.getActiveResourcesInfo()) {
    if (kind === 'PipeWrap' || kind === 'TCPWrap' || kind === 'TCPSocketWrap') counts[kind] = (counts[kind] ?? 0) + 1;
  }
  return counts;
}

/**
 * Timers created from now on that are still pending, except vitest's own (its runner arms and
 * fires timers during a test, so a count of every Timeout is noise): pg-pool's idle timers, the
 * store's reconnection timer, pg's connect timeouts.
 */
function trackTimers(): { pending(): string[]; stop(): void } {
  // Kept by object, not by async_hooks' destroy (which Node runs later, off the clearTimeout call):
  // a Timeout's `_destroyed` is set at once when it is cleared or has fired (Node's own flag).
  const live = new Map<{ _destroyed?: boolean }, string>();
  const hook = createHook({
    init(_id, type, _trigger, resource) {
      if (type !== 'Timeout') return;
      const stack = new Error().stack ?? '';
      if (!stack.includes('@vitest')) live.set(resource as { _destroyed?: boolean }, stack.split('\n').slice(5, 8).join(' <- '));
    },
  }).enable();
  return {
    pending: () => [...live].filter(([timer]) => timer._destroyed !== true).map(([, where]) => where),
    stop: () => void hook.disable(),
  };
}

function capturingLogger(): { logger: Logger; lines: string[] } {
  const lines: string[] = [];
  return { logger: pino({ level: 'debug' }, { write: (line: string) => void lines.push(line) }), lines };
}

if (postgresRequired()) {
  describe('PostgreSQL store connections', () => {
    let db: TestDatabase;
    let schemas = 0;
    const open: PostgresStore[] = [];
    const newSchema = () => `store_${++schemas}`;

    beforeAll(async () => {
      db = await testDatabase('store');
    });
    afterAll(async () => {
      await Promise.all(open.map((s) => s.close()));
      await db?.close();
    });

    /** The stores earlier tests left open, closed so that a handle count sees only the test's own. */
    async function closeEarlierStores(): Promise<void> {
      await Promise.all(open.splice(0).map((s) => s.close()));
    }

    async function openStore(over: Partial<OpenPostgresStoreOptions> = {}): Promise<PostgresStore> {
      const store = await openPostgresStore({ connection: db.url, logger: createLogger('silent'), ...over });
      open.push(store);
      return store;
    }

    /** Terminates the server processes of this database whose application_name is `name`; returns how many. */
    async function terminate(name: string): Promise<number> {
      const rows = await queryRows<{ ok: boolean }>(
        db.admin,
        `SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity WHERE datname = current_database() AND application_name = $1`,
        [name],
      );
      return rows.filter((r) => r.ok).length;
    }

    test('open migrates a fresh schema; two stores opened at once on another migrate it once', async () => {
      const schema = newSchema();
      const first = await openStore({ schema });
      expect(first.schema).toBe(schema);
      expect(first.migration).toMatchObject({ schema, from: 0, to: PG_SCHEMA_VERSION });
      expect(first.migration.applied).toEqual(Array.from({ length: PG_SCHEMA_VERSION }, (_, i) => i + 1));
      const again = await openStore({ schema });
      expect(again.migration).toMatchObject({ from: PG_SCHEMA_VERSION, applied: [] });

      const shared = newSchema();
      const [a, b] = await Promise.all([openStore({ schema: shared }), openStore({ schema: shared })]);
      expect([...a!.migration.applied, ...b!.migration.applied].sort((x, y) => x - y)).toEqual(first.migration.applied);
      const versions = await queryRows<{ version: number }>(db.admin, `SELECT version FROM ${quoteIdent(shared)}.schema_migrations ORDER BY version`);
      expect(versions.map((v) => v.version)).toEqual(first.migration.applied);
      // The migration connection is closed once open returns.
      const migrators = await queryRows(db.admin, `SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'sluice-migrate'`);
      expect(migrators).toEqual([]);
    });

    test('without a schema option the connection current_schema() is resolved once and used by name', async () => {
      const store = await openStore();
      expect(store.schema).toBe('public');
      const r = await store.execute(enqueueBatch(1));
      const id = (r.enqueues[0]![0] as { id: string }).id;
      expect((await store.reads.getJob(id))?.queue).toBe('alpha');
    });

    test('a flush commits on the write connection and reads see it through the pool, which carries the timeouts', async () => {
      const store = await openStore({ schema: newSchema() });
      const r = await store.execute(enqueueBatch(3));
      const ids = r.enqueues[0]!.map((o) => ('id' in o ? o.id : 'error'));
      expect(ids).toHaveLength(3);
      // Committed: another session sees the rows.
      const rows = await queryRows<{ n: number }>(db.admin, `SELECT count(*)::int AS n FROM ${quoteIdent(store.schema)}.jobs WHERE state = 'pending'`);
      expect(rows).toEqual([{ n: 3 }]);
      const job = await store.reads.getJob(ids[1]!);
      expect(job).toMatchObject({ id: ids[1], queue: 'alpha', state: 'pending', payload: '{"n":1}', created_at: expect.any(Number) });
      expect(await store.reads.countsForQueue('alpha')).toEqual([{ state: 'pending', n: 3 }]);
      const [settings] = (await store.pool.query<{ st: string; iit: string; app: string }>(
        `SELECT current_setting('statement_timeout') AS st, current_setting('idle_in_transaction_session_timeout') AS iit, current_setting('application_name') AS app`,
      )).rows;
      expect(settings).toEqual({ st: '30s', iit: '1min', app: 'sluice-admin' });
      expect(store.pool.options.max).toBe(4);
    });

    test('the write connection terminated by the server: execute fails at once with the typed error, and works after the reconnect', async () => {
      const { logger, lines } = capturingLogger();
      const store = await openStore({ schema: newSchema(), logger, applicationName: 'kill-writer' });
      await store.execute(enqueueBatch(1));
      const lost = once(store, 'lost');
      const reconnected = once(store, 'reconnected');
      expect(await terminate('kill-writer-writer')).toBe(1);
      const [{ attempt }] = (await lost) as [{ attempt: number; delayMs: number }];
      expect(attempt).toBe(1);
      expect(store.available).toBe(false);
      const error = await store.execute(enqueueBatch(1, T0 + 1)).then(() => undefined, (e: unknown) => e);
      expect(error).toBeInstanceOf(PostgresStoreUnavailableError);
      expect(error).toMatchObject({ reason: 'reconnecting', maybeCommitted: false });
      expect((error as Error).message).toMatch(/unavailable.*being re-opened/);

      const [{ attempts }] = (await reconnected) as [{ attempts: number }];
      expect(attempts).toBe(1);
      expect(store.available).toBe(true);
      const r = await store.execute(enqueueBatch(2, T0 + 2));
      expect(r.enqueues[0]!.every((o) => 'id' in o)).toBe(true);
      const rows = await queryRows<{ n: number }>(db.admin, `SELECT count(*)::int AS n FROM ${quoteIdent(store.schema)}.jobs`);
      expect(rows).toEqual([{ n: 3 }]); // the refused flush sent nothing
      expect(lines.some((l) => l.includes('write connection lost'))).toBe(true);
      expect(lines.some((l) => l.includes('write connection re-opened'))).toBe(true);
    });

    test('a flush in flight when the write connection is terminated fails with FlushFailedError (commit unknown); the store reconnects', async () => {
      const store = await openStore({ schema: newSchema(), applicationName: 'kill-inflight' });
      await store.execute(enqueueBatch(1));
      // Hold the flush inside the server: its enqueue waits on this lock until the backend is terminated.
      const locker = await db.connect();
      await locker.query('BEGIN');
      await locker.query(`LOCK TABLE ${quoteIdent(store.schema)}.jobs IN ACCESS EXCLUSIVE MODE`);
      const reconnected = once(store, 'reconnected');
      const inFlight = store.execute(enqueueBatch(5, T0 + 1)).then(() => undefined, (e: unknown) => e);
      expect(await terminate('kill-inflight-writer')).toBe(1);
      const error = await inFlight;
      expect(error).toBeInstanceOf(FlushFailedError);
      // Every statement, the COMMIT included, had been sent: the executor cannot say it rolled back.
      expect((error as FlushFailedError).maybeCommitted).toBe(true);
      await locker.query('ROLLBACK');
      await reconnected;
      await store.execute(enqueueBatch(1, T0 + 2));
      const rows = await queryRows<{ n: number }>(db.admin, `SELECT count(*)::int AS n FROM ${quoteIdent(store.schema)}.jobs`);
      expect(rows).toEqual([{ n: 2 }]); // the terminated flush's transaction was aborted with its backend
    });

    test('idle pooled connections terminated by the server are logged, not fatal; the next read opens a new one', async () => {
      const { logger, lines } = capturingLogger();
      const store = await openStore({ schema: newSchema(), logger, applicationName: 'kill-pool' });
      await Promise.all([store.reads.countsByQueueAndState(), store.reads.countsByQueueAndState()]);
      expect(store.pool.idleCount).toBeGreaterThan(0);
      const idle = store.pool.idleCount;
      let errors = 0;
      const allFailed = new Promise<void>((resolve) => store.pool.on('error', () => ++errors === idle && resolve()));
      expect(await terminate('kill-pool-admin')).toBe(idle);
      // Every idle client noticed (a read handed a client whose end was not yet noticed would fail: the caller's retry).
      await allFailed;
      expect(store.pool.totalCount).toBe(0);
      expect(await store.reads.countsByQueueAndState()).toEqual([]);
      expect(lines.some((l) => l.includes('idle pooled connection failed'))).toBe(true);
    });

    test('close() ends the pool, the write connection, a started ready listener, and is idempotent', async () => {
      await closeEarlierStores();
      const before = sockets();
      const timers = trackTimers();
      const store = await openPostgresStore({ connection: db.url, schema: newSchema(), logger: createLogger('silent') });
      await Promise.all([store.reads.countsByQueueAndState(), store.reads.countsByQueueAndState()]);
      await store.execute(enqueueBatch(1));
      let resyncs = 0;
      const listener = store.readyListener({ onReady: () => {}, onResync: () => void resyncs++ });
      await listener.start();
      expect(resyncs).toBe(1);
      expect(store.pool.totalCount).toBe(2);
      await Promise.all([store.close(), store.close()]);
      await store.close();
      expect(store.pool.totalCount).toBe(0);
      expect(listener.listening).toBe(false);
      expect(store.available).toBe(false);
      expect(sockets()).toEqual(before);
      expect(timers.pending()).toEqual([]);
      timers.stop();
      await expect(store.execute(enqueueBatch(1))).rejects.toMatchObject({ name: 'PostgresStoreUnavailableError', reason: 'closed' });
      const sessions = await queryRows(db.admin, `SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND application_name LIKE 'sluice-%'`);
      expect(sessions).toEqual([]);
    });

    test('close() while a reconnection is pending cancels its timer and opens nothing more', async () => {
      await closeEarlierStores();
      const before = sockets();
      const timers = trackTimers();
      // A long first delay, so the timer is surely pending when close() runs.
      const store = await openPostgresStore({
        connection: db.url, schema: newSchema(), logger: createLogger('silent'), applicationName: 'pending-close',
        reconnect: { initialMs: 60_000, multiplier: 2, maxMs: 60_000, jitter: 0 },
      });
      const lost = once(store, 'lost');
      expect(await terminate('pending-close-writer')).toBe(1);
      await lost;
      expect(timers.pending()).toHaveLength(1); // the reconnection's
      await store.close();
      expect(sockets()).toEqual(before);
      expect(timers.pending()).toEqual([]);
      timers.stop();
      await expect(store.execute(enqueueBatch(1))).rejects.toMatchObject({ reason: 'closed' });
    });

    test('no log line holds the password, through open, a flush, a lost connection, its reconnect and close; a failed open does not show it either', async () => {
      const { logger, lines } = capturingLogger();
      // The test cluster trusts local connections, so a password in the URL is accepted (and ignored).
      const withPassword = db.url.replace('://sluice@', `://sluice:${SECRET}@`);
      expect(withPassword).toContain(SECRET);
      const parsed = parseStoreUrl(`${withPassword}&schema=${newSchema()}`);
      if (parsed.kind !== 'postgres') throw new Error('expected a postgres URL');
      expect(parsed.redacted).not.toContain(SECRET);
      const store = await openStore({ connection: parsed.connectionString, schema: parsed.schema!, logger, applicationName: 'pw' });
      await store.execute(enqueueBatch(1));
      const listener = store.readyListener({ onReady: () => {}, onResync: () => {} });
      await listener.start();
      const reconnected = once(store, 'reconnected');
      expect(await terminate('pw-writer')).toBe(1);
      await reconnected;
      await store.close();

      const nowhere = parseStoreUrl(withPassword.replace(/host=[^&]+/, 'host=%2Fnonexistent-sluice-dir'));
      if (nowhere.kind !== 'postgres') throw new Error('expected a postgres URL');
      const error = await openPostgresStore({ connection: nowhere.connectionString, logger, connectTimeoutMs: 2_000 }).then(() => undefined, (e: unknown) => e);
      expect(error).toBeInstanceOf(PostgresStoreOpenError);
      expect(error).toMatchObject({ stage: 'connect' });
      expect((error as Error).message).toMatch(/could not connect to the PostgreSQL store: .*ENOENT/);
      expect((error as Error).message).not.toContain(SECRET);
      logger.error({ err: error }, 'open failed'); // as a caller would log it

      expect(lines.length).toBeGreaterThan(4);
      expect(lines.some((l) => l.includes('write connection lost'))).toBe(true);
      for (const line of lines) expect(line).not.toContain(SECRET);
    });
  });
}
