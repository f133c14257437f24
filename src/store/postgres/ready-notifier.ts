import { createHash } from 'node:crypto';
import { EventEmitter } from 'node:events';
import pg from 'pg';
import type { Clock } from '../../domain/clock.js';
import type { RetryPolicy } from '../../domain/backoff.js';
import type { Logger } from '../../log.js';
import { Reconnector } from './reconnector.js';
import { quoteIdent } from './sql.js';

/**
 * Cross-broker wake-ups (docs/design/postgres-store.md, 3.5): a flush that made jobs ready ends
 * with pg_notify on the ready channel, and every other broker's dedicated LISTEN connection hands
 * the queue names to the dispatcher (markReady). A notification is a hint, never the delivery
 * path: the claim statement decides, and a missed one costs latency until the next resync or
 * safety sweep, never a job. Hence the listener's one rule: whenever it may have missed
 * notifications (every (re)connect) it says so (onResync) and the broker marks every
 * subscribed queue ready.
 *
 * Not wired into the broker yet (step 5).
 */

/** The channel of a broker using the connection's search_path (no schema option). */
export const READY_CHANNEL = 'sluice_ready';

/**
 * PostgreSQL refuses a payload of NOTIFY_PAYLOAD_MAX_LENGTH (8000) bytes or more (async.c:
 * BLCKSZ - NAMEDATALEN - 128, compared with >=), so the longest payload sent is 7,999 bytes.
 */
export const NOTIFY_PAYLOAD_MAX_BYTES = 7_999;

/** Channel names are identifiers: at most NAMEDATALEN - 1 bytes (pg_notify refuses longer ones). */
const CHANNEL_MAX_BYTES = 63;

/**
 * The ready channel of a schema, so brokers of two schemas on one database never wake each other:
 * `sluice_ready.<schema>` (quoted as an identifier in LISTEN, so case and any character survive),
 * or, when that would pass the 63-byte identifier limit, `sluice_ready#` and the first 32 hex
 * digits of the schema's SHA-256. Every channel is distinct for distinct schemas: the two forms
 * differ in their 13th byte, and without a schema the channel is the bare `sluice_ready`.
 *
 * Without a schema the channel is shared by every broker that relies on search_path: brokers of
 * different schemas then wake each other (a wasted look each), never miss a wake-up. A broker with
 * `schema: 'public'` and one relying on a search_path that resolves to public do NOT share a
 * channel: brokers of one schema must be configured alike (the write path passes the schema).
 */
export function readyChannel(schema?: string): string {
  if (schema === undefined) return READY_CHANNEL;
  quoteIdent(schema); // the same refusal of empty and NUL-holding names as the tables get
  const plain = `${READY_CHANNEL}.${schema}`;
  if (Buffer.byteLength(plain, 'utf8') <= CHANNEL_MAX_BYTES) return plain;
  return `${READY_CHANNEL}#${createHash('sha256').update(schema, 'utf8').digest('hex').slice(0, 32)}`;
}

/** A queue name that the comma-joined payload cannot carry unambiguously. */
export class UnencodableQueueNameError extends Error {
  override readonly name = 'UnencodableQueueNameError';
  constructor(readonly queue: string, reason: string) {
    super(`queue name ${JSON.stringify(queue.slice(0, 140))} cannot be sent in a ready notification: ${reason}`);
  }
}

/**
 * Splits queue names into comma-joined payloads of at most maxBytes (UTF-8) each, every name in
 * exactly one payload, names deduplicated and sorted (the same set always gives the same payloads,
 * which PostgreSQL folds within one transaction).
 *
 * Comma-joined is unambiguous because a queue name cannot hold a comma: src/domain/names.ts allows
 * only A-Z a-z 0-9 _ . : - (1-128 characters). The names are still checked here (no comma, not
 * empty, no NUL, which a text payload cannot hold), so a future loosening of that pattern fails
 * loudly instead of splitting one queue into two.
 */
export function encodeReadyPayloads(queues: Iterable<string>, maxBytes = NOTIFY_PAYLOAD_MAX_BYTES): string[] {
  const names = [...new Set(queues)].sort();
  const payloads: string[] = [];
  let current = '';
  let currentBytes = 0;
  for (const name of names) {
    if (name.length === 0) throw new UnencodableQueueNameError(name, 'it is empty');
    if (name.includes(',')) throw new UnencodableQueueNameError(name, 'it holds a comma, the separator');
    if (name.includes('\0')) throw new UnencodableQueueNameError(name, 'it holds U+0000');
    const bytes = Buffer.byteLength(name, 'utf8');
    if (bytes > maxBytes) throw new UnencodableQueueNameError(name, `it is longer than a payload (${maxBytes} bytes)`);
    if (currentBytes > 0 && currentBytes + 1 + bytes > maxBytes) {
      payloads.push(current);
      current = '';
      currentBytes = 0;
    }
    current = currentBytes === 0 ? name : `${current},${name}`;
    currentBytes += (currentBytes === 0 ? 0 : 1) + bytes;
  }
  if (currentBytes > 0) payloads.push(current);
  return payloads;
}

/** The queue names of one payload (empty names, which encode never writes, are dropped). */
export function decodeReadyPayload(payload: string): string[] {
  return payload.split(',').filter((name) => name.length > 0);
}

/**
 * The statement a flush runs inside its transaction to wake other brokers for these queues, or
 * undefined when there is nothing to say. One statement whatever the number of payloads (one
 * pg_notify per payload over unnest), so it adds one statement to the pipelined flush. The
 * notifications are sent at commit and dropped on rollback, so a woken broker always sees the rows.
 */
export function readyNotifyStatement(queues: Iterable<string>, options: { schema?: string } = {}): pg.QueryConfig | undefined {
  const payloads = encodeReadyPayloads(queues);
  if (payloads.length === 0) return undefined;
  return {
    text: 'SELECT pg_notify($1, payload) FROM unnest($2::text[]) AS payload',
    values: [readyChannel(options.schema), payloads],
  };
}

/** Reconnection after a lost LISTEN connection: 100 ms doubling to 5 s, each delay +/- 50 %. */
export const DEFAULT_LISTEN_RECONNECT: RetryPolicy = { initialMs: 100, multiplier: 2, maxMs: 5_000, jitter: 0.5 };

export interface ReadyListenerOptions {
  /** How to reach the database: a connection string or node-postgres client settings. Never logged. */
  connection: string | pg.ClientConfig;
  /** Scopes the channel (readyChannel); default: the bare channel of search_path brokers. */
  schema?: string;
  logger: Logger;
  /** Queues another broker made ready. Called synchronously from the socket's data handler. */
  onReady(queues: string[]): void;
  /** Notifications may have been missed (every connect and reconnect): treat every subscribed queue as ready. */
  onResync(): void;
  /** Delay before each reconnection attempt (1-based attempt numbers), capped and jittered. */
  reconnect?: RetryPolicy;
  /** Timers for the reconnection delay (Clock.setTimer); setTimeout by default. */
  clock?: Clock;
  /** Jitter source, for tests. */
  random?: () => number;
}

export interface ReadyListenerEvents {
  /** LISTEN is in effect on a new connection (onResync has just been called). */
  listening: [];
  /** The connection was lost or an attempt failed; the next attempt runs after delayMs. */
  lost: [{ attempt: number; delayMs: number }];
}

/** start() found no database to listen on: the broker should not start without its wake-ups. */
export class ReadyListenerStartError extends Error {
  override readonly name = 'ReadyListenerStartError';
  constructor(cause: unknown) {
    super(`could not LISTEN for ready notifications: ${describeError(cause).message}`, { cause });
  }
}

/** The listener was closed (or is closing): it does not start again. */
export class ReadyListenerClosedError extends Error {
  override readonly name = 'ReadyListenerClosedError';
  constructor() {
    super('the ready listener is closed');
  }
}

/** What is logged of a connection error: code and message only (never the settings it connected with). */
export function describeError(error: unknown): { code?: string; message: string } {
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    return typeof code === 'string' ? { code, message: error.message } : { message: error.message };
  }
  return { message: String(error) };
}

/**
 * The dedicated LISTEN connection of one broker. start() connects once (and fails if it cannot);
 * from then on a lost connection is re-opened with capped, jittered backoff until close(), and
 * every successful (re)connect calls onResync. TCP keepalive is on by default, so a peer that
 * vanished without closing the socket is noticed too (within the OS keepalive time).
 */
export class ReadyListener extends EventEmitter<ReadyListenerEvents> {
  readonly channel: string;
  private readonly settings: pg.ClientConfig;
  private readonly reconnector: Reconnector;
  private client: pg.Client | undefined;
  /** The connect in progress (start or a retry) and its client, so close() can end it and wait. */
  private connecting: Promise<void> | undefined;
  private connectingClient: pg.Client | undefined;
  private started = false;
  private closed = false;
  private closing: Promise<void> | undefined;

  constructor(private readonly options: ReadyListenerOptions) {
    super();
    this.channel = readyChannel(options.schema);
    const base = typeof options.connection === 'string' ? { connectionString: options.connection } : options.connection;
    this.settings = { application_name: 'sluice-ready-listener', keepAlive: true, ...base };
    this.reconnector = new Reconnector({
      policy: options.reconnect ?? DEFAULT_LISTEN_RECONNECT,
      clock: options.clock,
      random: options.random,
      connect: () => this.track(this.connectOnce()),
      onScheduled: (attempt, delayMs) => this.emit('lost', { attempt, delayMs }),
      onFailed: (error, attempt) => {
        this.options.logger.warn({ err: describeError(error), attempt }, 'ready listener could not reconnect; retrying');
      },
    });
  }

  /** True while LISTEN is in effect on a live connection. */
  get listening(): boolean {
    return this.client !== undefined;
  }

  /** Connects and LISTENs; rejects with ReadyListenerStartError if that attempt fails (start() may then be called again). */
  async start(): Promise<void> {
    if (this.closed) throw new ReadyListenerClosedError();
    if (this.started) throw new Error('ReadyListener.start() called twice');
    this.started = true;
    try {
      await this.track(this.connectOnce());
    } catch (error) {
      if (error instanceof ReadyListenerClosedError) throw error;
      this.started = false; // nothing runs: the caller may try start() again
      throw new ReadyListenerStartError(error);
    }
  }

  /** Ends the connection and any pending reconnection; nothing is called back afterwards. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.closed = true;
      this.reconnector.close();
      // An attempt in flight fails at once (its socket is ended) rather than after a connect timeout.
      void this.connectingClient?.end().catch(() => {});
      await this.connecting?.catch(() => {});
      const client = this.client;
      this.client = undefined;
      await client?.end().catch(() => {});
    })();
    return this.closing;
  }

  private track(p: Promise<void>): Promise<void> {
    this.connecting = p;
    return p.finally(() => {
      if (this.connecting === p) this.connecting = undefined;
    });
  }

  /** One attempt: a new client, LISTEN, then onResync. Throws on failure (the client is ended). */
  private async connectOnce(): Promise<void> {
    const client = new pg.Client(this.settings);
    // A client without an 'error' listener crashes the process on a lost connection.
    client.on('error', (error) => {
      if (this.client === client && !this.closed) this.options.logger.warn({ err: describeError(error) }, 'ready listener connection error');
    });
    this.connectingClient = client;
    try {
      await client.connect();
      await client.query(`LISTEN ${quoteIdent(this.channel)}`);
    } catch (error) {
      await client.end().catch(() => {});
      throw this.closed ? new ReadyListenerClosedError() : error;
    } finally {
      this.connectingClient = undefined;
    }
    if (this.closed) {
      await client.end().catch(() => {});
      throw new ReadyListenerClosedError();
    }
    client.on('notification', (message) => {
      if (this.client !== client || message.channel !== this.channel || !message.payload) return;
      this.call('onReady', () => this.options.onReady(decodeReadyPayload(message.payload!)));
    });
    client.on('end', () => this.lost(client));
    this.client = client;
    this.options.logger.debug({ channel: this.channel }, 'listening for ready notifications');
    // After LISTEN, not before: whatever commits from here on is delivered, whatever committed
    // earlier (while disconnected) is covered by the resync.
    this.call('onResync', () => this.options.onResync());
    this.emit('listening');
  }

  /** The live connection ended without close(): schedule the first reconnection. */
  private lost(client: pg.Client): void {
    if (this.client !== client) return;
    this.client = undefined;
    if (this.closed) return;
    this.options.logger.warn({ channel: this.channel }, 'ready listener connection lost; reconnecting');
    this.reconnector.schedule();
  }

  /** A callback that throws must not take the connection's event handling down with it. */
  private call(name: string, fn: () => void): void {
    try {
      fn();
    } catch (error) {
      this.options.logger.error({ err: describeError(error) }, `ready listener ${name} callback threw`);
    }
  }
}
