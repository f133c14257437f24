/**
 * Spike for the PostgreSQL store (issue 14, docs/design/postgres-store.md): what the shapes a
 * Sluice backend would use cost on a real cluster with node-postgres. Not a test, not part of
 * `sluice bench`; numbers go into the design doc.
 *
 *   npm run build && flock /tmp/sluice-bench.lock node dist/src/bench/pg-spike.js [--url URL] [--quick]
 *     [--only commit,insert,claim,notify,notify-contention,shapes,flush,flush-net] [--delay-ms 1]
 *
 * Without --url it starts a throwaway cluster (scripts/pg-cluster.sh: unix socket, fsync on,
 * synchronous_commit on) in /tmp and removes it afterwards. Sections:
 *   commit   one-row autocommit INSERTs, synchronous_commit on vs off (the fsync a commit waits for)
 *   insert   1,000 jobs per INSERT ... SELECT FROM unnest($arrays), one statement per commit
 *   claim    UPDATE ... WHERE seq IN (SELECT ... FOR UPDATE SKIP LOCKED LIMIT 50) RETURNING, then
 *            the 50 completed (guarded by lease id) in the next transaction; 1 and 3 connections;
 *            checks that no job is claimed twice and every claimed job completes exactly once
 *   notify   LISTEN/NOTIFY, pg_notify committed on one connection -> notification on another
 *   notify-contention  commits per second of small flushes on 1 and 3 connections, with and without NOTIFY
 *   shapes   the claim with slots assigned in one statement and the dedup insert (ON CONFLICT)
 *   flush    one group-commit flush (insert + claim + complete + notify) sequential, pipelined,
 *            as one multi-statement query, as one statement with data-modifying CTEs
 *   flush-net  the same through a TCP proxy that delays each chunk (--delay-ms, default 1): a
 *            database across a network
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import net from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { median, percentileSorted } from './stats.js';

// bigint columns (seq, times) as numbers: every value here is below 2^53.
pg.types.setTypeParser(20, (v) => Number(v));

const args = process.argv.slice(2);
const flag = (name: string): string | undefined => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const QUICK = args.includes('--quick');
const ONLY = flag('--only')?.split(',');

/** ~100 bytes of JSON, like the bench workloads' payloads. */
const PAYLOAD = JSON.stringify({ orderId: 123456, customer: 'c-000123', amount: 1999, currency: 'EUR', items: [1, 2, 3], note: 'xxxxxxxxxxxx' });

const SCHEMA = `
DROP TABLE IF EXISTS jobs;
DROP TABLE IF EXISTS commit_probe;
-- Migrations 1-2 and 4-6 of src/store/migrations.ts, in PostgreSQL types.
CREATE TABLE jobs (
  seq              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  queue            text     NOT NULL,
  type             text     NOT NULL DEFAULT '',
  state            text     NOT NULL CHECK (state IN ('scheduled','pending','active','completed','dead','cancelled')),
  priority         smallint NOT NULL CHECK (priority BETWEEN 1 AND 4),
  payload          text     NOT NULL,
  metadata         text,
  run_at           bigint   NOT NULL,
  attempt          integer  NOT NULL DEFAULT 0,
  max_attempts     integer  NOT NULL,
  retry            text,
  lease_timeout_ms integer  NOT NULL,
  lease_id         text,
  lease_expires_at bigint,
  worker_id        text,
  progress         text,
  result           text,
  last_error       text,
  errors           text,
  dedup_key        text,
  group_key        text,
  created_at       bigint   NOT NULL,
  started_at       bigint,
  finished_at      bigint,
  updated_at       bigint   NOT NULL,
  history          text,
  inherits         smallint NOT NULL DEFAULT 0,
  CHECK ((state = 'active') = (lease_id IS NOT NULL)),
  CHECK ((state = 'active') = (lease_expires_at IS NOT NULL))
);
CREATE INDEX jobs_ready ON jobs (queue, priority DESC, seq) WHERE state = 'pending';
CREATE INDEX jobs_scheduled ON jobs (run_at) WHERE state = 'scheduled';
CREATE INDEX jobs_leases ON jobs (lease_expires_at) WHERE state = 'active';
CREATE INDEX jobs_dead ON jobs (queue, seq) WHERE state = 'dead';
CREATE UNIQUE INDEX jobs_dedup ON jobs (queue, dedup_key) WHERE dedup_key IS NOT NULL AND state IN ('scheduled','pending','active');
CREATE INDEX jobs_group_ready ON jobs (queue, priority DESC, group_key, seq) WHERE state = 'pending' AND group_key IS NOT NULL;
CREATE TABLE commit_probe (n integer);
`;

/** Milliseconds since the epoch on the database clock (lease times come from the database). */
const DB_NOW = `(extract(epoch FROM now()) * 1000)::bigint`;

const INSERT_SQL = `INSERT INTO jobs (queue, state, priority, payload, run_at, max_attempts, lease_timeout_ms, created_at, updated_at)
  SELECT $1, 'pending', p, pl, ${DB_NOW}, 3, 30000, ${DB_NOW}, ${DB_NOW} FROM unnest($2::smallint[], $3::text[]) AS u(p, pl)
  RETURNING seq`;

const claimSql = (limit: number) => `UPDATE jobs SET state = 'active', attempt = attempt + 1, lease_id = $2 || seq,
    lease_expires_at = ${DB_NOW} + lease_timeout_ms, worker_id = $3, started_at = ${DB_NOW}, updated_at = ${DB_NOW}
  WHERE seq IN (SELECT seq FROM jobs WHERE queue = $1 AND state = 'pending' ORDER BY priority DESC, seq LIMIT ${limit} FOR UPDATE SKIP LOCKED)
  RETURNING seq, lease_id, payload, attempt`;

const COMPLETE_SQL = `UPDATE jobs SET state = 'completed', result = NULL, lease_id = NULL, lease_expires_at = NULL,
    finished_at = ${DB_NOW}, updated_at = ${DB_NOW}
  FROM unnest($1::bigint[], $2::text[]) AS a(s, l)
  WHERE jobs.seq = a.s AND jobs.state = 'active' AND jobs.lease_id = a.l
  RETURNING jobs.seq`;

interface ClaimRow {
  seq: number;
  lease_id: string;
  payload: string;
  attempt: number;
}

type Conn = { host: string; port: number; user: string; database: string } | { connectionString: string };

async function connect(conn: Conn, pipeline = false): Promise<pg.Client> {
  const client = new pg.Client({ ...conn, pipeline });
  await client.connect();
  return client;
}

function report(title: string, lines: Record<string, string | number>): void {
  console.log(`\n## ${title}`);
  for (const [k, v] of Object.entries(lines)) console.log(`  ${k}: ${typeof v === 'number' ? fmt(v) : v}`);
}

function fmt(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  if (Math.abs(n) >= 100) return Math.round(n).toLocaleString('en-US');
  return n.toFixed(n >= 10 ? 1 : 3);
}

function latencyLine(samples: number[]): string {
  const s = [...samples].sort((a, b) => a - b);
  return `median ${fmt(median(s))} ms, p99 ${fmt(percentileSorted(s, 99))} ms, min ${fmt(s[0]!)} ms, max ${fmt(s[s.length - 1]!)} ms (n=${s.length})`;
}

async function insertJobs(client: pg.Client, queue: string, n: number, perStatement = 1000): Promise<void> {
  const priorities = new Array<number>(perStatement).fill(2);
  const payloads = new Array<string>(perStatement).fill(PAYLOAD);
  for (let done = 0; done < n; done += perStatement) {
    const k = Math.min(perStatement, n - done);
    await client.query(INSERT_SQL, [queue, priorities.slice(0, k), payloads.slice(0, k)]);
  }
}

// --- sections ----------------------------------------------------------------------------

async function commitCost(conn: Conn): Promise<void> {
  const c = await connect(conn);
  const n = QUICK ? 300 : 2000;
  const run = async (sync: 'on' | 'off') => {
    await c.query(`SET synchronous_commit = ${sync}`);
    const samples: number[] = [];
    for (let i = 0; i < n; i++) {
      const t = performance.now();
      await c.query('INSERT INTO commit_probe VALUES ($1)', [i]);
      samples.push(performance.now() - t);
    }
    return samples;
  };
  const rtt: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await c.query('SELECT 1');
    rtt.push(performance.now() - t);
  }
  const on = await run('on');
  const off = await run('off');
  await c.query('SET synchronous_commit = on');
  await c.end();
  report('commit cost (one-row autocommit INSERT, one connection)', {
    'round trip (SELECT 1)': latencyLine(rtt),
    'synchronous_commit=on': latencyLine(on),
    'synchronous_commit=off': latencyLine(off),
    'commit flush (median on - median off)': `${fmt(median(on) - median(off))} ms`,
  });
}

async function batchInsert(conn: Conn): Promise<void> {
  const c = await connect(conn);
  await c.query('TRUNCATE jobs');
  const batches = QUICK ? 20 : 100;
  const priorities = new Array<number>(1000).fill(2);
  const payloads = new Array<string>(1000).fill(PAYLOAD);
  const samples: number[] = [];
  const t0 = performance.now();
  for (let b = 0; b < batches; b++) {
    const t = performance.now();
    const r = await c.query(INSERT_SQL, ['q', priorities, payloads]);
    if (r.rowCount !== 1000) throw new Error(`inserted ${r.rowCount}`);
    samples.push(performance.now() - t);
  }
  const seconds = (performance.now() - t0) / 1000;
  // Several producers' batches at once: three connections inserting concurrently.
  const conns = await Promise.all([0, 1, 2].map(() => connect(conn)));
  const t1 = performance.now();
  await Promise.all(conns.map(async (k) => {
    for (let b = 0; b < batches; b++) await k.query(INSERT_SQL, ['q', priorities, payloads]);
  }));
  const seconds3 = (performance.now() - t1) / 1000;
  await Promise.all(conns.map((k) => k.end()));
  await c.end();
  report('batch insert, 1,000 jobs per statement (unnest arrays, RETURNING seq), synchronous_commit=on', {
    'per statement (one connection)': latencyLine(samples),
    'one connection': `${fmt((batches * 1000) / seconds)} jobs/s`,
    'three connections at once': `${fmt((3 * batches * 1000) / seconds3)} jobs/s`,
  });
}

/** Claims 50 and completes them in the next transaction until the queue is empty. */
async function consumer(c: pg.Client, id: string, claimed: number[], counters: { completed: number }, samples: { claim: number[]; complete: number[] }): Promise<void> {
  let round = 0;
  for (;;) {
    const prefix = `${id}.${(++round).toString(36)}.`;
    let t = performance.now();
    const { rows } = await c.query<ClaimRow>(claimSql(50), ['q', prefix, id]);
    samples.claim.push(performance.now() - t);
    if (rows.length === 0) return;
    for (const r of rows) claimed.push(r.seq);
    t = performance.now();
    const done = await c.query(COMPLETE_SQL, [rows.map((r) => r.seq), rows.map((r) => r.lease_id)]);
    samples.complete.push(performance.now() - t);
    if (done.rowCount !== rows.length) throw new Error(`completed ${done.rowCount} of ${rows.length} claimed jobs`);
    counters.completed += done.rowCount;
  }
}

/**
 * Per-(queue, state) counts, as SQLite's triggers keep them (migration 2), in two shapes: counter
 * rows updated by statement-level triggers (every flush of every broker updates the same few rows,
 * and holds their locks until its commit), or an append-only ledger of deltas (no shared row; a
 * reader sums it, a periodic job folds it).
 */
const COUNT_SCHEMAS: Record<string, string> = {
  none: `DROP TABLE IF EXISTS queue_counts; DROP TABLE IF EXISTS queue_count_deltas;
    DROP TRIGGER IF EXISTS jobs_counts_i ON jobs; DROP TRIGGER IF EXISTS jobs_counts_u ON jobs;`,
  'counter rows': `
    CREATE TABLE queue_counts (queue text NOT NULL, state text NOT NULL, n bigint NOT NULL, PRIMARY KEY (queue, state));
    CREATE OR REPLACE FUNCTION jobs_counts() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF TG_OP = 'INSERT' THEN
        INSERT INTO queue_counts AS c (queue, state, n)
          SELECT queue, state, count(*) FROM new_rows GROUP BY queue, state ORDER BY queue, state
          ON CONFLICT (queue, state) DO UPDATE SET n = c.n + excluded.n;
      ELSE
        -- One sorted pass, so two flushes lock the same rows in the same order (no deadlock).
        INSERT INTO queue_counts AS c (queue, state, n)
          SELECT queue, state, sum(d) FROM (SELECT queue, state, 1 AS d FROM new_rows
            UNION ALL SELECT queue, state, -1 FROM old_rows) x
          GROUP BY queue, state HAVING sum(d) <> 0 ORDER BY queue, state
          ON CONFLICT (queue, state) DO UPDATE SET n = c.n + excluded.n;
      END IF;
      RETURN NULL;
    END $$;
    CREATE TRIGGER jobs_counts_i AFTER INSERT ON jobs REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION jobs_counts();
    CREATE TRIGGER jobs_counts_u AFTER UPDATE ON jobs REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION jobs_counts();`,
  'delta ledger': `
    CREATE TABLE queue_count_deltas (queue text NOT NULL, state text NOT NULL, d bigint NOT NULL);
    CREATE OR REPLACE FUNCTION jobs_counts() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF TG_OP = 'INSERT' THEN
        INSERT INTO queue_count_deltas SELECT queue, state, count(*) FROM new_rows GROUP BY queue, state;
      ELSE
        INSERT INTO queue_count_deltas SELECT queue, state, sum(d) FROM (SELECT queue, state, 1 AS d FROM new_rows
          UNION ALL SELECT queue, state, -1 FROM old_rows) x GROUP BY queue, state HAVING sum(d) <> 0;
      END IF;
      RETURN NULL;
    END $$;
    CREATE TRIGGER jobs_counts_i AFTER INSERT ON jobs REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION jobs_counts();
    CREATE TRIGGER jobs_counts_u AFTER UPDATE ON jobs REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION jobs_counts();`,
};

async function countsOf(c: pg.Client, variant: string): Promise<string> {
  if (variant === 'none') return '';
  const sql =
    variant === 'counter rows'
      ? `SELECT state, n::int FROM queue_counts WHERE n <> 0 ORDER BY state`
      : `SELECT state, sum(d)::int AS n FROM queue_count_deltas GROUP BY state HAVING sum(d) <> 0 ORDER BY state`;
  const { rows } = await c.query<{ state: string; n: number }>(sql);
  return rows.map((r) => `${r.state}=${r.n}`).join(' ');
}

async function claimAndComplete(conn: Conn): Promise<void> {
  const setup = await connect(conn);
  const runs: [number, string][] = [
    [1, 'none'],
    [3, 'none'],
    [1, 'counter rows'],
    [3, 'counter rows'],
    [3, 'delta ledger'],
  ];
  for (const [consumers, counts] of runs) {
    const total = (QUICK ? 10_000 : 30_000) * consumers;
    await setup.query(COUNT_SCHEMAS.none!);
    if (counts !== 'none') await setup.query(COUNT_SCHEMAS[counts]!);
    await setup.query('TRUNCATE jobs');
    await insertJobs(setup, 'q', total);
    await setup.query('VACUUM ANALYZE jobs');
    const clients = await Promise.all(Array.from({ length: consumers }, () => connect(conn)));
    const claimed: number[] = [];
    const counters = { completed: 0 };
    const samples = { claim: [] as number[], complete: [] as number[] };
    const t0 = performance.now();
    await Promise.all(clients.map((c, i) => consumer(c, `w${i}`, claimed, counters, samples)));
    const seconds = (performance.now() - t0) / 1000;
    await Promise.all(clients.map((c) => c.end()));
    const distinct = new Set(claimed).size;
    const { rows } = await setup.query<{ state: string; n: number; max_attempt: number }>(
      `SELECT state, count(*)::int AS n, max(attempt) AS max_attempt FROM jobs GROUP BY state`,
    );
    const counted = await countsOf(setup, counts);
    const ok =
      distinct === claimed.length && claimed.length === total && counters.completed === total && rows.length === 1 &&
      rows[0]!.state === 'completed' && rows[0]!.n === total && rows[0]!.max_attempt === 1 &&
      (counts === 'none' || counted === `completed=${total}`);
    report(`claim 50 (FOR UPDATE SKIP LOCKED) + complete them in the next transaction, ${consumers} connection(s), counts: ${counts}, ${total.toLocaleString('en-US')} jobs`, {
      throughput: `${fmt(total / seconds)} jobs/s (${fmt(seconds)} s)`,
      'claim statement': latencyLine(samples.claim),
      'complete statement': latencyLine(samples.complete),
      'claimed twice': String(claimed.length - distinct),
      check: ok
        ? `every job claimed exactly once, completed once, attempt 1${counts === 'none' ? '' : `; counts ${counted}`}`
        : `FAILED: ${JSON.stringify({ claimed: claimed.length, distinct, completed: counters.completed, rows, counted })}`,
    });
    if (!ok) process.exitCode = 1;
  }
  await setup.query(COUNT_SCHEMAS.none!);
  await setup.end();
}

async function notifyLatency(conn: Conn): Promise<void> {
  const listener = await connect(conn);
  const notifier = await connect(conn);
  await listener.query('LISTEN sluice_ready');
  const n = QUICK ? 300 : 1000;
  let waiting: ((at: number) => void) | undefined;
  listener.on('notification', () => waiting?.(performance.now()));
  const oneWay: number[] = [];
  for (let i = 0; i < n; i++) {
    const arrived = new Promise<number>((resolve) => (waiting = resolve));
    const t = performance.now();
    await notifier.query(`SELECT pg_notify('sluice_ready', $1)`, [`q${i}`]);
    oneWay.push((await arrived) - t);
  }
  // A notification inside a transaction that also writes (how a flush would send it): delivered at commit.
  const inTx: number[] = [];
  for (let i = 0; i < n; i++) {
    const arrived = new Promise<number>((resolve) => (waiting = resolve));
    const t = performance.now();
    await notifier.query('BEGIN');
    await notifier.query('INSERT INTO commit_probe VALUES ($1)', [i]);
    await notifier.query(`SELECT pg_notify('sluice_ready', 'q')`);
    await notifier.query('COMMIT');
    inTx.push((await arrived) - t);
  }
  // Ping-pong: the listener notifies the notifier, which answers on another channel.
  await listener.query('UNLISTEN sluice_ready');
  listener.removeAllListeners('notification');
  await notifier.query('LISTEN sluice_ping');
  notifier.on('notification', () => void notifier.query(`SELECT pg_notify('sluice_pong', 'x')`));
  let pong: ((at: number) => void) | undefined;
  await listener.query('LISTEN sluice_pong');
  listener.on('notification', () => pong?.(performance.now()));
  const roundTrip: number[] = [];
  for (let i = 0; i < n; i++) {
    const back = new Promise<number>((resolve) => (pong = resolve));
    const t = performance.now();
    await listener.query(`SELECT pg_notify('sluice_ping', 'x')`);
    roundTrip.push((await back) - t);
  }
  await listener.end();
  await notifier.end();
  report('LISTEN/NOTIFY between two connections', {
    'pg_notify (autocommit) sent -> notification received': latencyLine(oneWay),
    'BEGIN; INSERT; pg_notify; COMMIT sent -> notification received': latencyLine(inTx),
    'ping-pong (A notifies B, B notifies A)': latencyLine(roundTrip),
  });
}

/** The claim the design proposes: slot i (a stream, in round-robin order) gets the i-th ready job. */
const slotClaimSql = (limit: number) => `WITH pick AS (SELECT seq, priority FROM jobs WHERE queue = $1 AND state = 'pending'
    ORDER BY priority DESC, seq LIMIT ${limit} FOR UPDATE SKIP LOCKED),
  ranked AS (SELECT seq, row_number() OVER (ORDER BY priority DESC, seq) AS i FROM pick)
  UPDATE jobs SET state = 'active', attempt = attempt + 1, lease_id = s.prefix || jobs.seq, worker_id = s.worker,
    lease_expires_at = ${DB_NOW} + lease_timeout_ms, started_at = ${DB_NOW}, updated_at = ${DB_NOW}
  FROM ranked JOIN unnest($2::text[], $3::text[]) WITH ORDINALITY AS s(prefix, worker, i) USING (i)
  WHERE jobs.seq = ranked.seq
  RETURNING s.i, jobs.seq, jobs.lease_id, jobs.payload, jobs.attempt`;

const DEDUP_INSERT_SQL = `INSERT INTO jobs (queue, state, priority, payload, run_at, max_attempts, lease_timeout_ms, created_at, updated_at, dedup_key)
  SELECT $1, 'pending', p, pl, ${DB_NOW}, 3, 30000, ${DB_NOW}, ${DB_NOW}, k
  FROM unnest($2::smallint[], $3::text[], $4::text[]) WITH ORDINALITY AS u(p, pl, k, i) ORDER BY i
  ON CONFLICT (queue, dedup_key) WHERE dedup_key IS NOT NULL AND state IN ('scheduled','pending','active') DO NOTHING
  RETURNING seq`;

/** The statement shapes the design proposes, against the ones measured above. */
async function proposedShapes(conn: Conn): Promise<void> {
  const c = await connect(conn);
  const rounds = QUICK ? 100 : 400;
  const lines: Record<string, string> = {};
  // Claims of 50 for 5 streams (10 slots each, round-robin), against the plain claim of 50.
  const prefixes = Array.from({ length: 50 }, (_, i) => `b.${i % 5}.`);
  const workers = Array.from({ length: 50 }, (_, i) => `w${i % 5}`);
  for (const [name, run] of [
    ['plain claim of 50 (one lease prefix)', (r: number) => c.query<ClaimRow>(claimSql(50), ['q', `p.${r}.`, 'w'])],
    ['slot claim of 50 (5 streams round-robin, one statement)', (r: number) => c.query<ClaimRow>(slotClaimSql(50), ['q', prefixes.map((p) => `${p}${r}.`), workers])],
  ] as const) {
    await c.query('TRUNCATE jobs');
    await insertJobs(c, 'q', rounds * 50);
    await c.query('VACUUM ANALYZE jobs');
    const samples: number[] = [];
    for (let r = 0; r < rounds; r++) {
      const t = performance.now();
      const { rows } = await run(r);
      samples.push(performance.now() - t);
      if (rows.length !== 50) throw new Error(`${name}: claimed ${rows.length}`);
    }
    lines[name] = latencyLine(samples);
  }
  // 1,000 jobs per statement with distinct dedup keys (ON CONFLICT on the partial index), against none.
  const priorities = new Array<number>(1000).fill(2);
  const payloads = new Array<string>(1000).fill(PAYLOAD);
  await c.query('TRUNCATE jobs');
  const plain: number[] = [];
  const dedup: number[] = [];
  for (let r = 0; r < rounds / 4; r++) {
    let t = performance.now();
    await c.query(INSERT_SQL, ['q', priorities, payloads]);
    plain.push(performance.now() - t);
    const keys = Array.from({ length: 1000 }, (_, i) => `k${r}-${i}`);
    t = performance.now();
    const { rowCount } = await c.query(DEDUP_INSERT_SQL, ['q', priorities, payloads, keys]);
    dedup.push(performance.now() - t);
    if (rowCount !== 1000) throw new Error(`dedup insert: ${rowCount} of 1000`);
  }
  lines['insert 1,000, no dedup keys'] = latencyLine(plain);
  lines['insert 1,000 with dedup keys, ON CONFLICT DO NOTHING'] = latencyLine(dedup);
  await c.end();
  report('proposed statement shapes (one connection, autocommit, synchronous_commit=on)', lines);
}

/**
 * PostgreSQL serializes the commits of transactions that NOTIFY (PreCommit_Notify takes a
 * cluster-wide heavyweight lock held until after the commit), so brokers that notify in every
 * flush queue behind each other's fsyncs. Small flushes (10 inserted jobs) on 3 connections at
 * once, with and without a pg_notify in each.
 */
async function notifyContention(conn: Conn): Promise<void> {
  const perConn = QUICK ? 300 : 1500;
  const priorities = new Array<number>(10).fill(2);
  const payloads = new Array<string>(10).fill(PAYLOAD);
  const lines: Record<string, string> = {};
  for (const connections of [1, 3]) {
    for (const notify of [false, true]) {
      const clients = await Promise.all(Array.from({ length: connections }, () => connect(conn, true)));
      const samples: number[] = [];
      const t0 = performance.now();
      await Promise.all(
        clients.map(async (c) => {
          for (let i = 0; i < perConn; i++) {
            const t = performance.now();
            await Promise.all([
              c.query('BEGIN'),
              c.query(INSERT_SQL, ['q', priorities, payloads]),
              ...(notify ? [c.query(`SELECT pg_notify('sluice_ready', 'q')`)] : []),
              c.query('COMMIT'),
            ]);
            samples.push(performance.now() - t);
          }
        }),
      );
      const seconds = (performance.now() - t0) / 1000;
      await Promise.all(clients.map((c) => c.end()));
      lines[`${connections} connection(s), ${notify ? 'with' : 'without'} pg_notify`] =
        `${fmt((connections * perConn) / seconds)} commits/s; ${latencyLine(samples)}`;
    }
  }
  report('commits that NOTIFY vs not: BEGIN; INSERT 10 jobs; [pg_notify]; COMMIT, pipelined, in a loop per connection', lines);
}

/**
 * One group-commit flush of a loaded broker: insert 100 new jobs, complete the 50 acked in the
 * last flush, claim 50 for a stream, notify the queue. Four ways to send it.
 */
async function flushShapes(conn: Conn, where = '', scale = 1): Promise<void> {
  const seqClient = await connect(conn);
  const pipeClient = await connect(conn, true);
  const flushes = Math.round((QUICK ? 150 : 600) * scale);
  const priorities = new Array<number>(100).fill(2);
  const payloads = new Array<string>(100).fill(PAYLOAD);
  const results: Record<string, string> = {};
  const light: Record<string, string> = {};

  type Flush = (prev: ClaimRow[], round: number) => Promise<ClaimRow[]>;
  const shapes: [string, Flush][] = [
    [
      'sequential (BEGIN, 4 statements, COMMIT: 6 round trips)',
      async (prev, round) => {
        const c = seqClient;
        await c.query('BEGIN');
        await c.query(INSERT_SQL, ['q', priorities, payloads]);
        await c.query(COMPLETE_SQL, [prev.map((r) => r.seq), prev.map((r) => r.lease_id)]);
        const { rows } = await c.query<ClaimRow>(claimSql(50), ['q', `s.${round}.`, 'w']);
        await c.query(`SELECT pg_notify('sluice_ready', 'q')`);
        await c.query('COMMIT');
        return rows;
      },
    ],
    [
      'pipelined (node-postgres pipeline: true; same 6 messages, 1 round trip)',
      async (prev, round) => {
        const c = pipeClient;
        const [, , , claim] = await Promise.all([
          c.query('BEGIN'),
          c.query(INSERT_SQL, ['q', priorities, payloads]),
          c.query(COMPLETE_SQL, [prev.map((r) => r.seq), prev.map((r) => r.lease_id)]),
          c.query<ClaimRow>(claimSql(50), ['q', `p.${round}.`, 'w']),
          c.query(`SELECT pg_notify('sluice_ready', 'q')`),
          c.query('COMMIT'),
        ]);
        return claim.rows;
      },
    ],
    [
      'one multi-statement simple query (values inlined as literals)',
      async (prev, round) => {
        const c = seqClient;
        const lit = (a: readonly (string | number)[]) => c.escapeLiteral(arrayLiteral(a));
        const sql = [
          'BEGIN',
          INSERT_SQL.replace('$1', () => `'q'`).replace('$2', () => lit(priorities)).replace('$3', () => lit(payloads)),
          COMPLETE_SQL.replace('$1', () => lit(prev.map((r) => r.seq))).replace('$2', () => lit(prev.map((r) => r.lease_id))),
          claimSql(50).replace('$1', () => `'q'`).replace('$2', () => `'m.${round}.'`).replace('$3', () => `'w'`),
          `SELECT pg_notify('sluice_ready', 'q')`,
          'COMMIT',
        ].join(';\n');
        const out = (await c.query(sql)) as unknown as pg.QueryResult[];
        return out[3]!.rows as ClaimRow[];
      },
    ],
    [
      'one statement, data-modifying CTEs (implicit transaction)',
      async (prev, round) => {
        const c = seqClient;
        const { rows } = await c.query<{ claimed: ClaimRow[] | null }>(
          `WITH ins AS (${INSERT_SQL.replace('$2', () => '$4').replace('$3', () => '$5')}),
                done AS (${COMPLETE_SQL.replace('$1', () => '$6').replace('$2', () => '$7')}),
                claim AS (${claimSql(50)}),
                note AS (SELECT pg_notify('sluice_ready', 'q'))
           SELECT (SELECT json_agg(claim) FROM claim) AS claimed, (SELECT count(*) FROM ins) AS ins,
                  (SELECT count(*) FROM done) AS done, (SELECT count(*) FROM note) AS note`,
          ['q', `c.${round}.`, 'w', priorities, payloads, prev.map((r) => r.seq), prev.map((r) => r.lease_id)],
        );
        return rows[0]!.claimed ?? [];
      },
    ],
  ];

  for (const [name, flush] of shapes) {
    await seqClient.query('TRUNCATE jobs');
    await insertJobs(seqClient, 'q', 5000);
    await seqClient.query('VACUUM ANALYZE jobs');
    let prev: ClaimRow[] = [];
    const samples: number[] = [];
    const t0 = performance.now();
    for (let i = 0; i < flushes; i++) {
      const t = performance.now();
      const next = await flush(prev, i);
      samples.push(performance.now() - t);
      if (next.length !== 50) throw new Error(`${name}: claimed ${next.length}`);
      prev = next;
    }
    const seconds = (performance.now() - t0) / 1000;
    const { rows } = await seqClient.query<{ n: number }>(`SELECT count(*)::int AS n FROM jobs WHERE state = 'completed'`);
    if (rows[0]!.n !== 50 * (flushes - 1)) throw new Error(`${name}: ${rows[0]!.n} completed, expected ${50 * (flushes - 1)}`);
    results[name] = `${fmt(flushes / seconds)} flushes/s = ${fmt((50 * flushes) / seconds)} jobs/s end to end; ${latencyLine(samples)}`;
  }

  // Light load: a flush holding one enqueued job.
  const n = Math.round((QUICK ? 300 : 1500) * scale);
  const one = [[2], [PAYLOAD]] as const;
  const lightShapes: [string, () => Promise<unknown>][] = [
    ['autocommit INSERT (1 round trip)', () => seqClient.query(INSERT_SQL, ['q', ...one])],
    [
      'BEGIN; INSERT; COMMIT sequential (3 round trips)',
      async () => {
        await seqClient.query('BEGIN');
        await seqClient.query(INSERT_SQL, ['q', ...one]);
        await seqClient.query('COMMIT');
      },
    ],
    [
      'BEGIN; INSERT; COMMIT pipelined',
      () => Promise.all([pipeClient.query('BEGIN'), pipeClient.query(INSERT_SQL, ['q', ...one]), pipeClient.query('COMMIT')]),
    ],
  ];
  for (const [name, f] of lightShapes) {
    const samples: number[] = [];
    for (let i = 0; i < n; i++) {
      const t = performance.now();
      await f();
      samples.push(performance.now() - t);
    }
    light[name] = latencyLine(samples);
  }
  await seqClient.end();
  await pipeClient.end();
  report(`one flush: insert 100 + complete 50 + claim 50 + notify, one connection, synchronous_commit=on${where}`, results);
  report(`one flush holding one enqueued job (light load)${where}`, light);
}

/**
 * A TCP proxy on 127.0.0.1 to the cluster's unix socket that holds every chunk `delayMs` in each
 * direction: a database across a network (the socket's own round trip is ~0.04 ms). Chunks keep
 * their order (timers of one duration fire in the order they were set).
 */
async function delayingProxy(socketPath: string, delayMs: number): Promise<{ port: number; close(): void }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(socketPath);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.setNoDelay?.(true);
      s.on('error', () => {});
      s.on('close', () => sockets.delete(s));
    }
    client.on('data', (chunk) => setTimeout(() => upstream.write(chunk), delayMs));
    upstream.on('data', (chunk) => setTimeout(() => client.write(chunk), delayMs));
    client.on('end', () => upstream.end());
    upstream.on('end', () => client.end());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () => {
      for (const s of sockets) s.destroy();
      server.close();
    },
  };
}

async function flushShapesOverNetwork(conn: Conn): Promise<void> {
  if (!('host' in conn)) return console.log('\n(flush-net needs the throwaway cluster: skipped with --url)');
  const delayMs = Number(flag('--delay-ms') ?? 1);
  const proxy = await delayingProxy(join(conn.host, `.s.PGSQL.${conn.port}`), delayMs);
  try {
    const c = await connect({ ...conn, host: '127.0.0.1', port: proxy.port });
    const rtt: number[] = [];
    for (let i = 0; i < 50; i++) {
      const t = performance.now();
      await c.query('SELECT 1');
      rtt.push(performance.now() - t);
    }
    await c.end();
    console.log(`\n(through a TCP proxy holding each chunk ${delayMs} ms each way: SELECT 1 round trip ${latencyLine(rtt)})`);
    await flushShapes({ ...conn, host: '127.0.0.1', port: proxy.port }, `, through the ${delayMs} ms proxy`, 0.25);
  } finally {
    proxy.close();
  }
}

/** A PostgreSQL array literal ('{...}') of numbers or strings. */
function arrayLiteral(values: readonly (string | number)[]): string {
  return `{${values.map((v) => (typeof v === 'number' ? String(v) : `"${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`)).join(',')}}`;
}

// --- main ------------------------------------------------------------------------------

function clusterScript(): string {
  for (const up of ['../../', '../../../']) {
    const p = fileURLToPath(new URL(`${up}scripts/pg-cluster.sh`, import.meta.url));
    if (existsSync(p)) return p;
  }
  throw new Error('scripts/pg-cluster.sh not found');
}

async function main(): Promise<void> {
  const url = flag('--url');
  let dir: string | undefined;
  let conn: Conn;
  if (url) {
    conn = { connectionString: url };
  } else {
    dir = mkdtempSync(join('/tmp', 'sluice-pg-spike-'));
    execFileSync('bash', [clusterScript(), 'start', dir, '5432'], { stdio: ['ignore', 'ignore', 'inherit'] });
    conn = { host: dir, port: 5432, user: 'sluice', database: 'postgres' };
  }
  try {
    const c = await connect(conn);
    const { rows } = await c.query<{ v: string; fsync: string; sc: string; wsm: string; sb: string }>(
      `SELECT version() AS v, current_setting('fsync') AS fsync, current_setting('synchronous_commit') AS sc,
              current_setting('wal_sync_method') AS wsm, current_setting('shared_buffers') AS sb`,
    );
    await c.query(SCHEMA);
    await c.end();
    const info = rows[0]!;
    console.log(`# PostgreSQL spike, ${new Date().toISOString()}`);
    console.log(`${info.v.split(',')[0]}; fsync=${info.fsync}, synchronous_commit=${info.sc}, wal_sync_method=${info.wsm}, shared_buffers=${info.sb}`);
    console.log(`node ${process.version}, pg ${pgVersion()}, ${os.cpus().length} cpus (${os.cpus()[0]?.model ?? '?'}), load average ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);
    console.log(`connection: ${dir ? `unix socket in ${dir} (throwaway cluster)` : 'given --url'}; payload ${PAYLOAD.length} bytes`);
    const sections: [string, (c: Conn) => Promise<void>][] = [
      ['commit', commitCost],
      ['insert', batchInsert],
      ['claim', claimAndComplete],
      ['notify', notifyLatency],
      ['notify-contention', notifyContention],
      ['shapes', proposedShapes],
      ['flush', (c) => flushShapes(c)],
      ['flush-net', flushShapesOverNetwork],
    ];
    for (const [name, run] of sections) if (!ONLY || ONLY.includes(name)) await run(conn);
    console.log(`\nload average at the end: ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  } finally {
    if (dir) {
      execFileSync('bash', [clusterScript(), 'stop', dir], { stdio: 'inherit' });
      rmSync(dir, { recursive: true, force: true });
    }
  }
}

function pgVersion(): string {
  try {
    return (JSON.parse(execFileSync('npm', ['ls', 'pg', '--json', '--depth=0'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })) as { dependencies?: { pg?: { version?: string } } }).dependencies?.pg?.version ?? '?';
  } catch {
    return '?';
  }
}

await main();
