import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { DbClock, type ClockSample } from './db-clock.js';
import { DB_CLOCK_NOW_MS, queryRows, quoteIdent, type PgQueryable } from './sql.js';

/**
 * This broker's row in the `brokers` table (migration 4) and its view of the others: register at
 * start, heartbeat, sweep brokers whose heartbeat lapsed (docs/design/postgres-store.md, 3.6), and
 * the offset-corrected database clock (3.7). One per broker process.
 *
 * Passive on purpose: it owns no timer and releases no lease. The broker calls heartbeat() every
 * heartbeatIntervalMs and acts on what comes back (revoke its streams' leases and re-register on
 * 'declared-dead'; release the leases of the ids sweepLapsed() and register() return), so the
 * write path decides how leases are released and tests drive the registry step by step.
 *
 * Every liveness time is the database's (`clock_timestamp()`), never a broker's: brokers with
 * skewed clocks still agree on who has lapsed.
 */
export interface BrokerRegistryOptions {
  /** Schema of the tables; default: the connection's search_path decides. */
  schema?: string;
  /** --broker-name: a broker registering under a name replaces the previous row of that name. */
  name?: string;
  /** Where other brokers and operators reach this broker (host:port), for listings. */
  address?: string;
  /** A broker whose last heartbeat is older than this is swept; default 10,000 ms (3.6). */
  heartbeatTimeoutMs?: number;
  /** The local clock DbClock corrects; Date.now by default. */
  localClock?: () => number;
}

/** A row of `brokers`. */
export interface BrokerRow {
  id: string;
  name: string | null;
  /** Epoch ms, database clock. */
  started_at: number;
  heartbeat_at: number;
  subscribed: string[];
  address: string | null;
}

export interface Registration {
  /** This boot's id: 16 random hex chars, the prefix of every lease it hands out. */
  id: string;
  /**
   * The row this registration replaced: the previous broker of the same name (a restart), or this
   * registry's own earlier row. Its leases are now held by no registered broker: release them.
   */
  previousId: string | undefined;
}

export type HeartbeatResult = 'alive' | 'declared-dead';

/** heartbeat() before register(): there is no row to keep alive. */
export class BrokerNotRegisteredError extends Error {
  override readonly name = 'BrokerNotRegisteredError';
  constructor(operation: string) {
    super(`${operation}: this broker is not registered yet; call register() first`);
  }
}

export const DEFAULT_HEARTBEAT_TIMEOUT_MS = 10_000;

/** The database's time when the statement reads it: liveness is judged by the database alone. */
const DB_NOW_MS = DB_CLOCK_NOW_MS;

/**
 * The advisory lock key that serializes registrations under one name ($1 = schema, or NULL for
 * the search_path's; $2 = name). Never NULL as a whole: pg_advisory_xact_lock(NULL) returns
 * without locking. Without the lock, two brokers
 * starting under one name would both find no previous row and the second insert would fail on the
 * UNIQUE name; with it, the second waits and replaces the first, as a restart does.
 */
export const BROKER_NAME_LOCK_KEY = `hashtextextended('sluice.broker-name.' || coalesce($1::text, current_schema(), '') || '.' || $2::text, 0)`;

const COLUMNS = 'id, name, started_at, heartbeat_at, subscribed, address';

export class BrokerRegistry {
  readonly name: string | undefined;
  readonly address: string | undefined;
  readonly heartbeatTimeoutMs: number;
  private readonly q: string;
  private readonly clock: DbClock;
  private myId: string | undefined;

  constructor(
    private readonly db: PgQueryable,
    private readonly options: BrokerRegistryOptions = {},
  ) {
    const timeout = options.heartbeatTimeoutMs ?? DEFAULT_HEARTBEAT_TIMEOUT_MS;
    if (!Number.isSafeInteger(timeout) || timeout <= 0) throw new RangeError(`heartbeatTimeoutMs must be a positive integer, got ${timeout}`);
    this.heartbeatTimeoutMs = timeout;
    this.name = options.name;
    this.address = options.address;
    this.q = options.schema === undefined ? '' : `${quoteIdent(options.schema)}.`;
    this.clock = new DbClock(db, options.localClock);
  }

  /** How often to heartbeat (3.6: a quarter of the timeout, so three can be lost in a row). */
  get heartbeatIntervalMs(): number {
    return Math.max(1, Math.floor(this.heartbeatTimeoutMs / 4));
  }

  /** This boot's id, or undefined before register(). Stays set after 'declared-dead' until re-registered. */
  get id(): string | undefined {
    return this.myId;
  }

  /**
   * Inserts a row under a new id with heartbeat_at = started_at = the database's now. In the same
   * transaction it deletes the previous row of this name and this registry's own earlier row (a
   * re-registration after 'declared-dead', or a second call), so at most one row is replaced:
   * the UNIQUE name means the two are the same row whenever both exist.
   */
  async register(): Promise<Registration> {
    const id = randomBytes(8).toString('hex');
    const previousId = await this.transaction(async (client) => {
      if (this.name !== undefined) {
        await client.query(`SELECT pg_advisory_xact_lock(${BROKER_NAME_LOCK_KEY})`, [this.options.schema ?? null, this.name]);
      }
      const replaced = await queryRows<{ id: string }>(
        client,
        `DELETE FROM ${this.q}brokers WHERE name = $1 OR id = $2 RETURNING id`,
        [this.name ?? null, this.myId ?? null],
      );
      // clock_timestamp() read once: two reads may straddle a millisecond, and a fresh row's
      // heartbeat_at is its started_at.
      await client.query(
        `INSERT INTO ${this.q}brokers (id, name, started_at, heartbeat_at, address)
         SELECT $1, $2, t, t, $3 FROM (SELECT ${DB_NOW_MS} AS t) AS db_now`,
        [id, this.name ?? null, this.address ?? null],
      );
      return replaced[0]?.id;
    });
    this.myId = id;
    return { id, previousId };
  }

  /**
   * Keeps this broker's row alive and records the queues it has streams for (3.5's notify
   * targets). Zero rows means another broker's sweep declared this one dead and its leases are
   * already being released: the caller revokes every lease on its streams and re-registers.
   */
  async heartbeat(subscribed: readonly string[]): Promise<HeartbeatResult> {
    if (this.myId === undefined) throw new BrokerNotRegisteredError('heartbeat');
    // Sorted and deduplicated: the row reads the same whatever order streams came in.
    const queues = [...new Set(subscribed)].sort();
    const result = await this.db.query(`UPDATE ${this.q}brokers SET heartbeat_at = ${DB_NOW_MS}, subscribed = $2::text[] WHERE id = $1`, [
      this.myId,
      queues,
    ]);
    return result.rowCount === 1 ? 'alive' : 'declared-dead';
  }

  /**
   * Deletes the brokers whose last heartbeat is older than the timeout and returns their ids, for
   * the caller to release their leases. Whichever broker's sweep gets there first takes a lapsed
   * broker over: a second concurrent DELETE waits on the row lock and then finds the row gone, so
   * no id is ever returned to two sweeps. This broker's own row is left alone: whether it lapsed
   * is for the others to decide (and a lone broker that stalls has nobody to hand its leases to);
   * its next heartbeat tells it.
   */
  async sweepLapsed(): Promise<string[]> {
    const rows = await queryRows<{ id: string }>(
      this.db,
      `DELETE FROM ${this.q}brokers WHERE heartbeat_at < ${DB_NOW_MS} - $1::bigint AND id IS DISTINCT FROM $2 RETURNING id`,
      [this.heartbeatTimeoutMs, this.myId ?? null],
    );
    return rows.map((r) => r.id).sort();
  }

  /** Every registered broker, by id: for listings, and for "is this lease prefix a live broker". */
  async registered(): Promise<BrokerRow[]> {
    return queryRows<BrokerRow>(this.db, `SELECT ${COLUMNS} FROM ${this.q}brokers ORDER BY id`);
  }

  /**
   * Removes this broker's row at a graceful stop (after it released its own leases), so others
   * need not wait out the timeout. False when the row was already gone (declared dead).
   */
  async deregister(): Promise<boolean> {
    if (this.myId === undefined) return false;
    const result = await this.db.query(`DELETE FROM ${this.q}brokers WHERE id = $1`, [this.myId]);
    this.myId = undefined;
    return result.rowCount === 1;
  }

  /** Samples the database clock (3.7): at connect and every heartbeat. */
  sampleClock(): Promise<ClockSample> {
    return this.clock.sampleClock();
  }

  /** The database's time estimated from the local clock, whole epoch ms; throws ClockNotSampledError before the first sample. */
  now(): number {
    return this.clock.now();
  }

  /** The last clock sample, if any. */
  get lastClockSample(): ClockSample | undefined {
    return this.clock.lastSample;
  }

  /** BEGIN ... COMMIT on one session: a pool lends a client for it. */
  private async transaction<T>(work: (client: pg.ClientBase) => Promise<T>): Promise<T> {
    const client = this.db instanceof pg.Pool ? await this.db.connect() : this.db;
    try {
      await client.query('BEGIN');
      try {
        const result = await work(client);
        await client.query('COMMIT');
        return result;
      } catch (error) {
        await client.query('ROLLBACK').catch(() => {});
        throw error;
      }
    } finally {
      if (client !== this.db) (client as pg.PoolClient).release();
    }
  }
}
