import { EventEmitter, once } from 'node:events';
import pg from 'pg';
import type { Clock } from '../../domain/clock.js';
import type { RetryPolicy } from '../../domain/backoff.js';
import type { Logger } from '../../log.js';
import type { FlushBatch, FlushResult } from '../flush-batch.js';
import { postgresFlushStatements } from './flush-statements.js';
import { migratePostgres, SchemaTooNewError, type MigrateResult } from './migrations.js';
import { PostgresFlushExecutor, type FlushStatements } from './pg-flush.js';
import { PostgresReads } from './pg-reads.js';
import { DEFAULT_LISTEN_RECONNECT, describeError, ReadyListener, type ReadyListenerOptions } from './ready-notifier.js';
import { Reconnector } from './reconnector.js';
import { STORE_TYPES } from './sql.js';

/**
 * The PostgreSQL store of one broker (docs/design/postgres-store.md, section 1 "Driver", 3.3,
 * 3.5): the connections it holds and what runs on each.
 *
 * - Migrations first, on a connection of their own that is closed afterwards (migratePostgres:
 *   each migration under the schema's advisory lock, so brokers starting together migrate once).
 * - A small pg.Pool (default 4) for admin reads (`reads`, a PostgresReads) and, later, the rare
 *   writes of `transaction()` (step 3).
 * - One dedicated `pipeline: true` write connection carrying the flushes in order
 *   (PostgresFlushExecutor, `execute`). When it breaks, a new one is opened with capped, jittered
 *   backoff (100 ms doubling to 5 s, +/- 50 %, as the LISTEN connection); meanwhile `execute`
 *   fails at once with PostgresStoreUnavailableError, for the broker to answer UNAVAILABLE. A
 *   flush in flight when it broke fails with the executor's FlushFailedError (`maybeCommitted`).
 * - The LISTEN connection of 3.5 is not opened here: `readyListener()` builds a ReadyListener
 *   with this store's connection settings and schema, for the broker to start (and the store
 *   closes it on close()).
 *
 * The schema is resolved once, at migration (the `schema` option, else the connection's
 * current_schema()), and every statement and the ready channel name it explicitly, so a
 * connection whose search_path differs cannot read or write another schema's tables.
 *
 * Timeouts, on the pool and the write connection (not on the migration connection, whose DDL
 * may wait on another migrator's lock for as long as that one takes):
 * `statement_timeout` 30 s, so a statement stuck on a lock or a runaway admin read fails instead
 * of holding the write path or a pool slot forever (a flush is milliseconds); and
 * `idle_in_transaction_session_timeout` 60 s, so a broker that stalls inside a transaction
 * (an event loop blocked, a bug) cannot hold row locks against the other brokers: the server ends
 * that session and the store reconnects. TCP keepalive is on and connecting times out after 10 s.
 *
 * Connection settings are never logged, nor anything derived from them: errors are logged as
 * code and message only (describeError).
 *
 * Not wired into the broker or the CLI yet (step 5): the broker still opens SQLite from
 * `config.dataFile`.
 */

/** Reconnection of the write connection: the LISTEN connection's policy (100 ms doubling to 5 s, +/- 50 %). */
export const DEFAULT_WRITE_RECONNECT: RetryPolicy = DEFAULT_LISTEN_RECONNECT;

export const DEFAULT_POOL_MAX = 4;
export const DEFAULT_STATEMENT_TIMEOUT_MS = 30_000;
export const DEFAULT_IDLE_IN_TRANSACTION_TIMEOUT_MS = 60_000;
export const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;

export interface OpenPostgresStoreOptions {
  /** A connection string (store-url.ts's `connectionString`) or node-postgres settings. Never logged. */
  connection: string | pg.ClientConfig;
  /** The schema of the store's tables; default: the connection's current_schema(). */
  schema?: string;
  logger: Logger;
  /** Pool size for admin reads and transactions (default 4). */
  poolMax?: number;
  /** `statement_timeout` of the pool and the write connection; 0 = none (default 30 s). */
  statementTimeoutMs?: number;
  /** `idle_in_transaction_session_timeout` of the pool and the write connection; 0 = none (default 60 s). */
  idleInTransactionTimeoutMs?: number;
  /** Connect timeout of every connection (default 10 s). */
  connectTimeoutMs?: number;
  /** application_name prefix: `<prefix>-migrate`, `-admin`, `-writer`, `-listener` (default `sluice`); a URL's application_name wins. */
  applicationName?: string;
  /** Delay before each reconnection attempt of the write connection. */
  reconnect?: RetryPolicy;
  /** Timers for the reconnection delay (Clock.setTimer); setTimeout by default. */
  clock?: Clock;
  /** Jitter source, for tests. */
  random?: () => number;
}

/** execute() cannot run a flush now: the write connection is being re-opened, or the store is closed. Nothing was sent. */
export class PostgresStoreUnavailableError extends Error {
  override readonly name = 'PostgresStoreUnavailableError';
  /** Never: the flush was not sent (same field as FlushFailedError, so callers can test either). */
  readonly maybeCommitted = false;
  constructor(
    readonly reason: 'reconnecting' | 'closed',
    cause?: unknown,
  ) {
    super(
      reason === 'closed'
        ? 'the PostgreSQL store is closed'
        : `the PostgreSQL store is unavailable: its write connection is being re-opened${cause === undefined ? '' : ` (${describeError(cause).message})`}`,
      cause === undefined ? undefined : { cause },
    );
  }
}

/**
 * openPostgresStore could not connect (the migration's connection or the write connection) or
 * migrate. The message holds the server's or socket's error, never the settings.
 */
export class PostgresStoreOpenError extends Error {
  override readonly name = 'PostgresStoreOpenError';
  constructor(
    readonly stage: 'connect' | 'migrate',
    cause: unknown,
  ) {
    const { code, message } = describeError(cause);
    super(`could not ${stage === 'migrate' ? 'migrate' : 'connect to'} the PostgreSQL store: ${message}${code ? ` (${code})` : ''}`, { cause });
  }
}

export interface PostgresStoreEvents {
  /** The write connection was lost, or an attempt to re-open it failed; the next attempt runs after delayMs. */
  lost: [{ attempt: number; delayMs: number }];
  /** A new write connection is in use after `attempts` attempts; execute() works again. */
  reconnected: [{ attempts: number }];
}

interface Writer {
  client: pg.Client;
  executor: PostgresFlushExecutor;
}

/** Opens (migrating first) a PostgreSQL store; see PostgresStore. Rejects with PostgresStoreOpenError or SchemaTooNewError. */
export async function openPostgresStore(options: OpenPostgresStoreOptions): Promise<PostgresStore> {
  const base: pg.ClientConfig = typeof options.connection === 'string' ? { connectionString: options.connection } : { ...options.connection };
  const app = options.applicationName ?? 'sluice';
  const connect: pg.ClientConfig = {
    keepAlive: true,
    connectionTimeoutMillis: options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
    ...base,
  };
  const statementTimeout = options.statementTimeoutMs ?? DEFAULT_STATEMENT_TIMEOUT_MS;
  const idleTimeout = options.idleInTransactionTimeoutMs ?? DEFAULT_IDLE_IN_TRANSACTION_TIMEOUT_MS;
  const session: pg.ClientConfig = {
    ...connect,
    ...(statementTimeout > 0 ? { statement_timeout: statementTimeout } : {}),
    ...(idleTimeout > 0 ? { idle_in_transaction_session_timeout: idleTimeout } : {}),
  };

  const migration = await migrate({ application_name: `${app}-migrate`, ...connect }, options);
  const schema = migration.schema;
  const pool = new pg.Pool({ application_name: `${app}-admin`, ...session, max: options.poolMax ?? DEFAULT_POOL_MAX, types: STORE_TYPES });
  // An idle pooled client whose connection dies emits 'error' on the pool: without a listener that
  // would crash the process. The pool drops the client; the next read opens a new one.
  pool.on('error', (error) => options.logger.warn({ err: describeError(error) }, 'PostgreSQL store: an idle pooled connection failed'));
  const store = new PostgresStore({
    options,
    schema,
    migration,
    pool,
    writeSettings: { application_name: `${app}-writer`, ...session },
    listenSettings: { application_name: `${app}-listener`, ...connect },
  });
  try {
    await store.start();
  } catch (error) {
    await store.close();
    throw error;
  }
  options.logger.info({ schema, migrated: migration.applied }, 'PostgreSQL store open');
  return store;
}

async function migrate(settings: pg.ClientConfig, options: OpenPostgresStoreOptions): Promise<MigrateResult> {
  const client = new pg.Client(settings);
  client.on('error', (error) => options.logger.warn({ err: describeError(error) }, 'PostgreSQL store: migration connection failed'));
  try {
    try {
      await client.connect();
    } catch (error) {
      throw new PostgresStoreOpenError('connect', error);
    }
    try {
      return await migratePostgres(client, options.schema === undefined ? {} : { schema: options.schema });
    } catch (error) {
      throw error instanceof SchemaTooNewError ? error : new PostgresStoreOpenError('migrate', error);
    }
  } finally {
    await client.end().catch(() => {});
  }
}

interface PostgresStoreParts {
  options: OpenPostgresStoreOptions;
  schema: string;
  migration: MigrateResult;
  pool: pg.Pool;
  writeSettings: pg.ClientConfig;
  listenSettings: pg.ClientConfig;
}

/** Built by openPostgresStore. */
export class PostgresStore extends EventEmitter<PostgresStoreEvents> {
  /** The schema of the store's tables, as resolved at migration. */
  readonly schema: string;
  /** What openPostgresStore's migration found and applied. */
  readonly migration: MigrateResult;
  /** The admin pool (reads, and transaction() later). The store ends it on close(). */
  readonly pool: pg.Pool;
  readonly reads: PostgresReads;

  private readonly options: OpenPostgresStoreOptions;
  private readonly writeSettings: pg.ClientConfig;
  private readonly listenSettings: pg.ClientConfig;
  private readonly statements: FlushStatements;
  private readonly reconnector: Reconnector;
  private readonly readyListeners = new Set<ReadyListener>();
  private writer: Writer | undefined;
  /** Why the last write connection was lost, for the unavailable error's message. */
  private lastLoss: unknown;
  /** The connect in progress and its client, so close() can end it and wait. */
  private connecting: Promise<void> | undefined;
  private connectingClient: pg.Client | undefined;
  /** Broken write connections being ended, so close() can wait for their sockets. */
  private readonly ending = new Set<Promise<void>>();
  private closed = false;
  private closing: Promise<void> | undefined;

  /** Connected pooled clients whose socket has not closed yet: pool.end() resolves before they do. */
  private readonly poolClients = new Set<pg.Client>();

  constructor(parts: PostgresStoreParts) {
    super();
    parts.pool.on('connect', (client) => {
      this.poolClients.add(client as pg.Client);
      client.once('end', () => this.poolClients.delete(client as pg.Client));
    });
    this.options = parts.options;
    this.schema = parts.schema;
    this.migration = parts.migration;
    this.pool = parts.pool;
    this.reads = new PostgresReads(parts.pool, { schema: parts.schema });
    this.writeSettings = parts.writeSettings;
    this.listenSettings = parts.listenSettings;
    this.statements = postgresFlushStatements(parts.schema);
    this.reconnector = new Reconnector({
      policy: parts.options.reconnect ?? DEFAULT_WRITE_RECONNECT,
      clock: parts.options.clock,
      random: parts.options.random,
      connect: () => this.track(this.connectWriter()),
      onScheduled: (attempt, delayMs) => this.emit('lost', { attempt, delayMs }),
      onConnected: (attempts) => {
        this.options.logger.info({ attempts }, 'PostgreSQL store: write connection re-opened');
        this.emit('reconnected', { attempts });
      },
      onFailed: (error, attempt) => {
        this.lastLoss = error;
        this.options.logger.warn({ err: describeError(error), attempt }, 'PostgreSQL store: could not re-open the write connection; retrying');
      },
    });
  }

  /** The first write connection; fails (PostgresStoreOpenError) rather than retrying. */
  async start(): Promise<void> {
    try {
      await this.track(this.connectWriter());
    } catch (error) {
      throw error instanceof PostgresStoreUnavailableError ? error : new PostgresStoreOpenError('connect', error);
    }
  }

  /** True while a write connection is open and usable: execute() sends the flush. */
  get available(): boolean {
    return !this.closed && this.writer !== undefined && this.writer.executor.usable;
  }

  /**
   * Runs one flush on the write connection (one at a time: the group commit's contract). Rejects
   * at once with PostgresStoreUnavailableError while the connection is being re-opened or after
   * close(); a flush that was sent fails as PostgresFlushExecutor says (FlushFailedError).
   */
  async execute(batch: FlushBatch): Promise<FlushResult> {
    if (this.closed) throw new PostgresStoreUnavailableError('closed');
    const writer = this.writer;
    if (writer === undefined || !writer.executor.usable) {
      if (writer) this.lost(writer.client, undefined);
      throw new PostgresStoreUnavailableError('reconnecting', this.lastLoss);
    }
    try {
      return await writer.executor.execute(batch);
    } catch (error) {
      if (!writer.executor.usable) this.lost(writer.client, error);
      throw error;
    }
  }

  /**
   * A ReadyListener (3.5) on this store's database and schema, not started: the caller start()s
   * it. close() closes it too.
   */
  readyListener(options: Omit<ReadyListenerOptions, 'connection' | 'schema' | 'logger'> & { logger?: Logger }): ReadyListener {
    if (this.closed) throw new PostgresStoreUnavailableError('closed');
    const listener = new ReadyListener({ logger: this.options.logger, ...options, connection: this.listenSettings, schema: this.schema });
    this.readyListeners.add(listener);
    return listener;
  }

  /** Ends the write connection, a pending reconnection, the pool and the listeners built here. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.closed = true;
      this.reconnector.close();
      // An attempt in flight fails at once (its socket is ended) rather than after the connect timeout.
      void this.connectingClient?.end().catch(() => {});
      await this.connecting?.catch(() => {});
      const writer = this.writer;
      this.writer = undefined;
      await Promise.all([
        writer?.client.end().catch(() => {}),
        this.endPool(),
        ...[...this.readyListeners].map((l) => l.close()),
        ...this.ending,
      ]);
      this.readyListeners.clear();
    })();
    return this.closing;
  }

  /** Ends the pool and waits for its sockets to close (pg-pool's end() resolves once it has asked them to). */
  private async endPool(): Promise<void> {
    await this.pool.end().catch(() => {});
    await Promise.all([...this.poolClients].map((client) => once(client, 'end').catch(() => {})));
  }

  private track(p: Promise<void>): Promise<void> {
    this.connecting = p;
    return p.finally(() => {
      if (this.connecting === p) this.connecting = undefined;
    });
  }

  /** One attempt: a new pipelined client and its executor. Throws on failure (the client is ended). */
  private async connectWriter(): Promise<void> {
    const client = new pg.Client({ ...this.writeSettings, pipeline: true } as pg.ClientConfig);
    // Without an 'error' listener a lost connection would crash the process.
    client.on('error', (error) => this.lost(client, error));
    this.connectingClient = client;
    try {
      await client.connect();
    } catch (error) {
      await client.end().catch(() => {});
      throw this.closed ? new PostgresStoreUnavailableError('closed') : error;
    } finally {
      this.connectingClient = undefined;
    }
    if (this.closed) {
      await client.end().catch(() => {});
      throw new PostgresStoreUnavailableError('closed');
    }
    client.on('end', () => this.lost(client, undefined));
    this.writer = { client, executor: new PostgresFlushExecutor(client, this.statements) };
  }

  /** The write connection `client` broke (an error, its end, or the executor found it broken): re-open it. */
  private lost(client: pg.Client, error: unknown): void {
    if (this.writer?.client !== client) return;
    this.writer = undefined;
    this.lastLoss = error ?? new Error('the connection ended');
    const ended: Promise<void> = client.end().catch(() => {}).finally(() => this.ending.delete(ended));
    this.ending.add(ended);
    if (this.closed) return;
    this.options.logger.warn({ err: describeError(this.lastLoss) }, 'PostgreSQL store: write connection lost; reconnecting');
    this.reconnector.schedule();
  }
}
