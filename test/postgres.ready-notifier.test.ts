/**
 * The cross-broker ready notifications (src/store/postgres/ready-notifier.ts, design 3.5) against
 * a real PostgreSQL: a flush's notify statement, committed on one connection, reaches a
 * ReadyListener on another and a rolled-back one sends nothing; channels are scoped by schema;
 * many long queue names are split under the payload limit and each arrives exactly once; a
 * listener whose connection the server terminates reconnects and resyncs; close() stops it for
 * good. Also prints the commit -> callback latency over 1,000 notifications.
 *
 * Needs PostgreSQL (test/helpers/postgres.ts); where it is not required only the encoding is
 * checked here, the rest is not registered.
 */
import { once } from 'node:events';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import pg from 'pg';
import { pino } from 'pino';
import {
  NOTIFY_PAYLOAD_MAX_BYTES,
  READY_CHANNEL,
  ReadyListener,
  ReadyListenerStartError,
  UnencodableQueueNameError,
  decodeReadyPayload,
  encodeReadyPayloads,
  readyChannel,
  readyNotifyStatement,
  type ReadyListenerOptions,
} from '../src/store/postgres/ready-notifier.js';
import { TestClock } from './helpers/clock.js';
import { postgresRequired, sharedPostgres, testDatabase, type TestDatabase } from './helpers/postgres.js';

/** A valid queue name of exactly `length` characters (names.ts: up to 128). */
function longName(i: number, length = 128): string {
  const head = `q${i}.`;
  return head + 'x'.repeat(length - head.length);
}

test('payloads: comma-joined, deduplicated and sorted, split at the byte limit with every name in exactly one', () => {
  expect(encodeReadyPayloads([])).toEqual([]);
  expect(encodeReadyPayloads(['b', 'a', 'b', 'c:d.e-f_g'])).toEqual(['a,b,c:d.e-f_g']);
  // "aaa,bbb" is 7 bytes: it fits in 7, not in 6.
  expect(encodeReadyPayloads(['aaa', 'bbb'], 7)).toEqual(['aaa,bbb']);
  expect(encodeReadyPayloads(['aaa', 'bbb'], 6)).toEqual(['aaa', 'bbb']);

  const names = Array.from({ length: 500 }, (_, i) => longName(i));
  const payloads = encodeReadyPayloads(names);
  for (const p of payloads) expect(Buffer.byteLength(p)).toBeLessThanOrEqual(NOTIFY_PAYLOAD_MAX_BYTES);
  // 129 bytes a name with its comma: 62 names (7,997 bytes) a payload.
  expect(payloads.length).toBe(Math.ceil(500 / 62));
  expect(payloads.flatMap(decodeReadyPayload)).toEqual([...names].sort());

  for (const bad of ['', 'a,b', 'nul\0']) {
    expect(() => encodeReadyPayloads(['ok', bad])).toThrow(UnencodableQueueNameError);
  }
  expect(() => encodeReadyPayloads(['abcdef'], 5)).toThrow(UnencodableQueueNameError);
  expect(readyNotifyStatement([])).toBeUndefined();
  expect(readyNotifyStatement(['b', 'a'], { schema: 's1' })).toEqual({
    text: 'SELECT pg_notify($1, payload) FROM unnest($2::text[]) AS payload',
    values: ['sluice_ready.s1', ['a,b']],
  });
});

test('channels: one per schema, within the 63-byte identifier limit, distinct for distinct schemas', () => {
  expect(readyChannel()).toBe(READY_CHANNEL);
  expect(readyChannel('Tenant "A"')).toBe('sluice_ready.Tenant "A"');
  const long1 = 's'.repeat(63);
  const long2 = `${'s'.repeat(62)}t`;
  const channels = [readyChannel('a'), readyChannel('sluice_ready'), readyChannel(long1), readyChannel(long2), readyChannel('ü'.repeat(30))];
  for (const c of channels) expect(Buffer.byteLength(c)).toBeLessThanOrEqual(63);
  expect(new Set([READY_CHANNEL, ...channels]).size).toBe(channels.length + 1);
  expect(readyChannel(long1)).toMatch(/^sluice_ready#[0-9a-f]{32}$/);
  expect(() => readyChannel('')).toThrow();
});

if (postgresRequired()) {
  describe('PostgreSQL ready notifications', () => {
    const DEADLINE_MS = 20_000;
    const SECRET = 's3cret-pw';

    let db: TestDatabase;
    let admin: pg.Client;
    let urlWithPassword: string;
    let listeners: ReadyListener[] = [];
    let names = 0;

    /** Log lines written by listeners, to check what they say and what they never say. */
    const logLines: string[] = [];
    const logger = pino({ level: 'debug' }, { write: (line: string) => void logLines.push(line) });

    /** Resolves when `probe` holds, checking on every call of `poke` (the callbacks). */
    class Inbox {
      readonly queues: string[] = [];
      resyncs = 0;
      private waiters: { test: () => boolean; resolve: () => void }[] = [];
      readonly onReady = (queues: string[]) => {
        this.queues.push(...queues);
        this.poke();
      };
      readonly onResync = () => {
        this.resyncs += 1;
        this.poke();
      };
      until(what: string, test: () => boolean): Promise<void> {
        if (test()) return Promise.resolve();
        return new Promise((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), DEADLINE_MS);
          this.waiters.push({ test, resolve: () => (clearTimeout(timer), resolve()) });
        });
      }
      private poke(): void {
        this.waiters = this.waiters.filter((w) => (w.test() ? (w.resolve(), false) : true));
      }
    }

    async function listener(
      inbox: Inbox,
      options: Partial<ReadyListenerOptions> = {},
    ): Promise<{ listener: ReadyListener; applicationName: string }> {
      const applicationName = `ready-test-${++names}`;
      const l = new ReadyListener({
        connection: { connectionString: urlWithPassword, application_name: applicationName },
        logger,
        onReady: inbox.onReady,
        onResync: inbox.onResync,
        ...options,
      });
      listeners.push(l);
      await l.start();
      return { listener: l, applicationName };
    }

    async function backendPids(applicationName: string): Promise<number[]> {
      const { rows } = await admin.query<{ pid: number }>(`SELECT pid FROM pg_stat_activity WHERE application_name = $1`, [applicationName]);
      return rows.map((r) => r.pid);
    }

    async function waitForSessions(applicationName: string, n: number): Promise<void> {
      const deadline = Date.now() + DEADLINE_MS;
      while ((await backendPids(applicationName)).length !== n) {
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${n} sessions of ${applicationName}`);
        await sleep(20);
      }
    }

    /** A flush: BEGIN, the notify statement, then COMMIT or ROLLBACK. */
    async function flush(client: pg.Client, queues: string[], end: 'COMMIT' | 'ROLLBACK', schema?: string): Promise<void> {
      const statement = readyNotifyStatement(queues, schema === undefined ? {} : { schema });
      await client.query('BEGIN');
      if (statement) await client.query(statement);
      await client.query(end);
    }

    beforeAll(async () => {
      db = await testDatabase('ready');
      admin = db.admin;
      urlWithPassword = db.url.replace('://sluice@', `://sluice:${SECRET}@`);
      expect(urlWithPassword).toContain(SECRET);
    });

    afterAll(async () => {
      await Promise.all(listeners.map((l) => l.close()));
      await db?.close();
      // Whatever happened, no log line carries the connection string or its password.
      for (const line of logLines) {
        expect(line).not.toContain(SECRET);
        expect(line).not.toContain(db.url);
      }
    });

    test('a committed flush wakes a listener on another connection; a rolled-back one sends nothing', async () => {
      const inbox = new Inbox();
      const { listener: l } = await listener(inbox);
      expect(l.listening).toBe(true);
      expect(inbox.resyncs).toBe(1); // the first connect may have missed notifications too
      await expect(l.start()).rejects.toThrow(/twice/);
      const notifier = await db.connect();

      await flush(notifier, ['rolled-back'], 'ROLLBACK');
      await flush(notifier, ['orders', 'emails'], 'COMMIT');
      await inbox.until('the committed queues', () => inbox.queues.length >= 2);
      // Notifications arrive in commit order, so a rolled-back one would have come first.
      expect(inbox.queues).toEqual(['emails', 'orders']);
    });

    test('channels are scoped by schema: a flush of one schema wakes only that schema\'s listeners', async () => {
      const [inA, inB, inBare] = [new Inbox(), new Inbox(), new Inbox()];
      await listener(inA, { schema: 'tenant_a' });
      await listener(inB, { schema: 'tenant_b' });
      await listener(inBare);
      const notifier = await db.connect();
      await flush(notifier, ['qa'], 'COMMIT', 'tenant_a');
      await flush(notifier, ['qb'], 'COMMIT', 'tenant_b');
      await flush(notifier, ['bare'], 'COMMIT');
      await inA.until('tenant_a', () => inA.queues.length > 0);
      await inB.until('tenant_b', () => inB.queues.length > 0);
      await inBare.until('bare', () => inBare.queues.length > 0);
      // Each listener's own flush came after the others' (commit order), so theirs would have shown.
      expect([inA.queues, inB.queues, inBare.queues]).toEqual([['qa'], ['qb'], ['bare']]);
    });

    test('the server takes a 7,999-byte payload and refuses 8,000, the limit the split assumes', async () => {
      const client = await db.connect();
      await client.query(`SELECT pg_notify('limit_probe', $1)`, ['x'.repeat(NOTIFY_PAYLOAD_MAX_BYTES)]);
      await expect(client.query(`SELECT pg_notify('limit_probe', $1)`, ['x'.repeat(NOTIFY_PAYLOAD_MAX_BYTES + 1)])).rejects.toThrow(
        /payload string too long/,
      );
    });

    test('2,000 queue names of 128 characters in one flush: split into payloads, each queue arrives exactly once', async () => {
      const inbox = new Inbox();
      await listener(inbox, { schema: 'bulk' });
      const queues = Array.from({ length: 2_000 }, (_, i) => longName(i));
      const statement = readyNotifyStatement(queues, { schema: 'bulk' })!;
      const payloads = statement.values![1] as string[];
      expect(payloads.length).toBe(Math.ceil(2_000 / 62));
      const notifier = await db.connect();
      await flush(notifier, [...queues, ...queues.slice(0, 10)], 'COMMIT', 'bulk');
      await inbox.until('every queue', () => inbox.queues.length >= queues.length);
      expect(inbox.queues.length).toBe(queues.length);
      expect([...inbox.queues].sort()).toEqual([...queues].sort());
    });

    test('a connection the server terminates is re-opened and resynced, and notifications flow again', async () => {
      const inbox = new Inbox();
      const { listener: l, applicationName } = await listener(inbox, { reconnect: { initialMs: 20, multiplier: 2, maxMs: 200, jitter: 0.5 } });
      const notifier = await db.connect();
      const [pid] = await backendPids(applicationName);
      expect(pid).toBeDefined();

      const lost = once(l, 'lost', { signal: AbortSignal.timeout(DEADLINE_MS) });
      const back = once(l, 'listening', { signal: AbortSignal.timeout(DEADLINE_MS) });
      await admin.query('SELECT pg_terminate_backend($1)', [pid]);
      const [{ attempt, delayMs }] = (await lost) as [{ attempt: number; delayMs: number }];
      expect(attempt).toBe(1);
      expect(delayMs).toBeGreaterThanOrEqual(10);
      expect(delayMs).toBeLessThanOrEqual(30);
      await back;
      expect(inbox.resyncs).toBe(2);
      expect(l.listening).toBe(true);
      const [newPid] = await backendPids(applicationName);
      expect(newPid).not.toBe(pid);

      await flush(notifier, ['after-reconnect'], 'COMMIT');
      await inbox.until('a notification after the reconnect', () => inbox.queues.includes('after-reconnect'));
      expect(logLines.some((line) => line.includes('ready listener connection lost'))).toBe(true);
    });

    test('reconnection attempts that fail back off, capped and jittered, until one succeeds', async () => {
      const inbox = new Inbox();
      const clock = new TestClock();
      const { listener: l, applicationName } = await listener(inbox, {
        clock,
        reconnect: { initialMs: 100, multiplier: 2, maxMs: 400, jitter: 0.5 },
        random: () => 1, // the top of the jitter range: +50 %, then capped
      });
      // Refuse new sessions of this database while the listener's is killed, so attempts fail
      // (from another database: PostgreSQL will not do it for the current one).
      const database = await currentDatabase();
      const other = await (await sharedPostgres()).connect();
      await other.query(`ALTER DATABASE ${database} WITH ALLOW_CONNECTIONS false`);
      try {
        const delays: number[] = [];
        const [pid] = await backendPids(applicationName);
        let next = once(l, 'lost', { signal: AbortSignal.timeout(DEADLINE_MS) });
        await admin.query('SELECT pg_terminate_backend($1)', [pid]);
        for (let i = 0; i < 4; i++) {
          const [{ delayMs }] = (await next) as [{ delayMs: number }];
          delays.push(delayMs);
          next = once(l, 'lost', { signal: AbortSignal.timeout(DEADLINE_MS) });
          clock.advance(delayMs); // the attempt runs, and fails
        }
        expect(delays).toEqual([150, 300, 400, 400]);
        await next;
        expect(inbox.resyncs).toBe(1);
      } finally {
        await other.query(`ALTER DATABASE ${database} WITH ALLOW_CONNECTIONS true`);
        await other.end();
      }
      const back = once(l, 'listening', { signal: AbortSignal.timeout(DEADLINE_MS) });
      clock.advance(400);
      await back;
      expect(inbox.resyncs).toBe(2);
      expect(logLines.some((line) => line.includes('could not reconnect'))).toBe(true);
    });

    async function currentDatabase(): Promise<string> {
      const { rows } = await admin.query<{ db: string }>('SELECT current_database() AS db');
      return rows[0]!.db;
    }

    test('close() ends the connection and cancels a pending reconnection: nothing reconnects or calls back', async () => {
      // A healthy listener: close() ends its session.
      const quiet = new Inbox();
      const { listener: healthy, applicationName: healthyName } = await listener(quiet);
      await healthy.close();
      expect(healthy.listening).toBe(false);
      await waitForSessions(healthyName, 0);

      // A listener waiting to reconnect: close() cancels the timer, and moving time fires nothing.
      const inbox = new Inbox();
      const clock = new TestClock();
      const { listener: l, applicationName } = await listener(inbox, { clock });
      const [pid] = await backendPids(applicationName);
      const lost = once(l, 'lost', { signal: AbortSignal.timeout(DEADLINE_MS) });
      await admin.query('SELECT pg_terminate_backend($1)', [pid]);
      await lost;
      expect(clock.pendingTimers).toBe(1);
      await l.close();
      expect(clock.pendingTimers).toBe(0);
      clock.advance(60_000);
      await waitForSessions(applicationName, 0);
      expect(l.listening).toBe(false);
      expect(inbox.resyncs).toBe(1);
      await expect(l.start()).rejects.toThrow(/closed/);
      await l.close(); // idempotent
    });

    test('start() against a database that does not exist fails with ReadyListenerStartError, the password unsaid', async () => {
      const l = new ReadyListener({
        connection: urlWithPassword.replace(/\/ready_[a-z0-9_]+\?/, '/no_such_db?'),
        logger,
        onReady: () => {},
        onResync: () => {},
      });
      listeners.push(l);
      const error = await l.start().then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(ReadyListenerStartError);
      expect((error as Error).message).toMatch(/does not exist/);
      expect((error as Error).message).not.toContain(SECRET);
    });

    test('latency: notify-commit -> onReady over 1,000 flushes', async () => {
      const N = 1_000;
      const received = new Map<string, number>();
      let waiting: { queue: string; resolve: () => void } | undefined;
      const l = new ReadyListener({
        connection: urlWithPassword,
        schema: 'latency',
        logger,
        onReady: (queues) => {
          const t = performance.now();
          for (const q of queues) received.set(q, t);
          if (waiting && received.has(waiting.queue)) waiting.resolve();
        },
        onResync: () => {},
      });
      listeners.push(l);
      await l.start();
      const notifier = await db.connect();
      const fromSent: number[] = [];
      const fromAck: number[] = [];
      for (let i = 0; i < N; i++) {
        const queue = `lat.${i}`;
        await notifier.query('BEGIN');
        await notifier.query(readyNotifyStatement([queue], { schema: 'latency' })!);
        const arrived = new Promise<void>((resolve) => (waiting = { queue, resolve }));
        const sent = performance.now();
        await notifier.query('COMMIT');
        const acked = performance.now();
        await arrived;
        fromSent.push(received.get(queue)! - sent);
        fromAck.push(received.get(queue)! - acked);
      }
      expect(received.size).toBe(N);
      const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(p * xs.length))]!;
      console.log(
        `ready notify latency over ${N} flushes: COMMIT sent -> onReady median ${pct(fromSent, 0.5).toFixed(2)} ms, p99 ${pct(fromSent, 0.99).toFixed(2)} ms; ` +
          `COMMIT acknowledged -> onReady median ${pct(fromAck, 0.5).toFixed(2)} ms, p99 ${pct(fromAck, 0.99).toFixed(2)} ms`,
      );
    }, 120_000);
  });
}
