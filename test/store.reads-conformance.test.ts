/**
 * StoreReads conformance: the same read cases against each backend, on the same data.
 *
 * The fixture is written to a real SQLite store through its own write paths (JobStore,
 * ScheduleStore: enqueue, claim, ack, nack, extend, release, cancel, promote, retention's
 * delete, queue admin, schedules and their runs). Its rows, read back, are the neutral fixture:
 * the expected answers are computed from them in plain JS (the oracles below), and where
 * PostgreSQL is required they are copied into a migrated PostgreSQL schema
 * (test/helpers/pg-seed.ts, test-only until the PostgreSQL writes exist), so both stores hold
 * identical rows by construction. Each case then asserts SQLite == expected, PostgreSQL ==
 * expected, and PostgreSQL == SQLite (strictly: same keys, same types, same order).
 *
 * The data is chosen to find dialect differences: text ordering (upper case, '_', non-ASCII),
 * JSON text with whitespace and escapes, epoch-ms values past 2^31, NULLs in every nullable
 * column read, ids that cannot name a stored row, keyset paging to the last page.
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import pg from 'pg';
import { JobState } from '../src/domain/job-state.js';
import { formatJobId } from '../src/domain/job-id.js';
import { closeDatabase, openDatabase, type Db } from '../src/store/database.js';
import { JobStore } from '../src/store/job-store.js';
import { migratePostgres } from '../src/store/postgres/migrations.js';
import { PostgresReads } from '../src/store/postgres/pg-reads.js';
import { queryRows } from '../src/store/postgres/sql.js';
import { ScheduleStore } from '../src/store/schedule-store.js';
import { SqliteReads } from '../src/store/sqlite-reads.js';
import type { StoreReads } from '../src/store/store-reads.js';
import type { JobFilter, JobRow, NewJob, RunRow, ScheduleRow } from '../src/store/types.js';
import { tempDir } from './helpers/broker.js';
import { dumpPostgres, dumpSqlite, seedPostgres, type TableDump } from './helpers/pg-seed.js';
import { postgresRequired, sharedPostgres } from './helpers/postgres.js';

// --- the fixture, written through the SQLite store's write paths -------------------------

const T0 = 1_764_000_000_000;
const DAY = 86_400_000;

function newJob(over: Partial<NewJob>): NewJob {
  return {
    queue: 'alpha', type: 'email', payload: '{"n":1}', metadata: null, priority: 2, runAt: T0, maxAttempts: 3, retry: null,
    leaseTimeoutMs: 30_000, dedupKey: null, groupKey: null, inherits: 0, ...over,
  };
}

/**
 * Queue names (valid at the edges: ASCII letters, digits, _ . : -) whose byte order differs from
 * a natural-language collation's; group keys and errors carry non-ASCII text.
 */
const QUEUES = ['alpha', 'Alpha', 'beta', 'a_under', 'B-side', 'zeta'];

function writeFixture(jobs: JobStore, schedules: ScheduleStore): void {
  for (const q of QUEUES) jobs.ensureQueue(q, T0);
  const alpha = jobs.insertMany(
    [
      newJob({ priority: 1, groupKey: 'g1', payload: '{ "spaced" : [1, 2] ,"k":"v" }' }),
      newJob({ priority: 2, groupKey: 'g2', type: 'sms', metadata: '{"trace":"t-1"}' }),
      newJob({ priority: 3, groupKey: 'g1', payload: '{"esc":"\\u0000\\n\\"q\\"","emoji":"😀"}' }),
      newJob({ priority: 4, groupKey: null, maxAttempts: 1 }),
      newJob({ priority: 2, groupKey: '', maxAttempts: 1, inherits: 3 }),
      newJob({ priority: 2, groupKey: 'G1', maxAttempts: 1, type: 'sms' }),
      newJob({ priority: 3, groupKey: 'é', maxAttempts: 1 }),
      newJob({ priority: 1, groupKey: 'g2', retry: '{"backoff":"fixed","delayMs":1000}' }),
      newJob({ priority: 4, groupKey: 'g1', payload: '[]' }),
      newJob({ priority: 2, groupKey: null, type: 'sms' }),
      newJob({ priority: 3, groupKey: 'g1' }),
      newJob({ priority: 2, groupKey: 'g2', inherits: 1 }),
      newJob({ priority: 3, groupKey: 'g1', runAt: T0 + 5_000_000 }),
      newJob({ priority: 2, groupKey: 'g2', runAt: T0 + 5_000_000, type: 'sms' }),
      newJob({ priority: 2, groupKey: null, runAt: T0 + 5_000_001 }),
      newJob({ queue: 'beta', priority: 4 }),
      newJob({ queue: 'beta', priority: 1, leaseTimeoutMs: 2_147_483_647 }),
      newJob({ queue: 'beta', priority: 4, payload: '"just a string"' }),
      newJob({ queue: 'beta', priority: 2 }),
      newJob({ queue: 'Alpha', priority: 3 }),
      newJob({ queue: 'B-side', priority: 2, groupKey: 'ü', maxAttempts: 1 }),
      newJob({ queue: 'B-side', priority: 2, groupKey: 'ü', payload: '{"ü":"ö"}' }),
      newJob({ queue: 'a_under', priority: 2 }),
      newJob({ queue: 'a_under', priority: 2 }),
    ],
    [...Array(12).fill(JobState.Pending), ...Array(3).fill(JobState.Scheduled), ...Array(9).fill(JobState.Pending)],
    T0,
  );
  const [a1, a2, a3, a4, a5, a6, a7, a8, a9, , , , s1, , , , b2, , , , e1, , u1, u2] = alpha;
  const d1 = jobs.insert(newJob({ dedupKey: 'order-1', groupKey: 'g2' }), JobState.Pending, T0 + 1);
  jobs.insert(newJob({ queue: 'beta', dedupKey: 'order-1', runAt: T0 + 7_000_000 }), JobState.Scheduled, T0 + 1);

  const seqOf = (id: string) => Number.parseInt(id.slice(-12), 16);
  const leases = new Map<string, string>();
  const claim = (ids: string[], prefix: string, worker: string, now: number) => {
    for (const c of jobs.claim(ids.map(seqOf), prefix, worker, now)) leases.set(c.id, c.lease_id);
  };
  claim([a1!, a2!, a3!, a4!], 'b0.1.', 'w-1', T0 + 100);
  claim([u1!, u2!], 'b0.2.', 'w-2', T0 + 100);
  claim([e1!, b2!, d1], 'b0.3.', 'w-3', T0 + 100);
  claim([a5!, a6!, a7!, a8!], 'b0.4.', 'w-1', T0 + 150);

  jobs.completeMany(
    [
      { id: a1!, leaseId: leases.get(a1!)!, result: '{"ok": true}' },
      { id: u1!, leaseId: leases.get(u1!)!, result: null },
      { id: u2!, leaseId: leases.get(u2!)!, result: '"done"' },
    ],
    T0 + 200,
  );
  jobs.extend(a2!, leases.get(a2!)!, 0, '{"pct":50}', T0 + 300);
  const fail = (id: string, state: 'scheduled' | 'dead', message: string, now: number, runAt = now) =>
    jobs.fail(id, leases.get(id)!, { state, runAt, error: { attempt: 1, message, at: now, nonRetryable: false } }, now);
  fail(a3!, 'scheduled', 'boom', T0 + 400, T0 + 9_000_000);
  fail(a4!, 'dead', 'boom', T0 + 500);
  fail(a5!, 'dead', 'timeout', T0 + 600);
  fail(a6!, 'dead', 'boom', T0 + 700);
  fail(a7!, 'dead', 'timeout', T0 + 800);
  fail(e1!, 'dead', 'ünïcode “error”', T0 + 900);
  jobs.release(a8!, leases.get(a8!)!, 'stream lost', true, T0 + 1000);
  jobs.release(b2!, leases.get(b2!)!, 'shutdown', false, T0 + 1000);
  jobs.release(d1, leases.get(d1)!, 'lease expired', true, T0 + 1050, 'expired');
  jobs.cancel(a9!, 'not needed', T0 + 1100);
  jobs.cancel(s1!, null, T0 + 1100);
  jobs.promoteDue(T0 + 5_000_000, 1);

  jobs.setQueuePaused('beta', true);
  jobs.updateQueueDefaults('alpha', { maxAttempts: 5, retry: '{"backoff":"exponential"}', leaseTimeoutMs: 60_000, maxQueued: 1000 });
  jobs.setQueueRetention('alpha', 40 * DAY, 500);
  jobs.limits.setQueueLimits('alpha', '{"concurrency":{"limit":2}}');

  const schedule = (id: string, name: string, over: Partial<ScheduleRow> = {}): ScheduleRow => ({
    id, name, cron: '0 3 * * *', timezone: 'Europe/Berlin', template: '{ "queue": "alpha", "payload": {"x": 1} }', paused: 0,
    start_at: null, end_at: null, catch_up: 'skip', catch_up_limit: 100, overlap: 'allow', history_limit: 100,
    next_fire_at: T0 + DAY, last_fire_at: null, created_at: T0, updated_at: T0, ...over,
  });
  schedules.insert(schedule('sch-1', 'nightly', { last_fire_at: T0 - DAY }));
  schedules.insert(schedule('sch-2', 'Nightly', { catch_up: 'all', overlap: 'skip', start_at: T0, end_at: T0 + 365 * DAY }));
  schedules.insert(schedule('sch-3', 'a_z', { timezone: 'UTC', overlap: 'queue_one', history_limit: 100_000 }));
  schedules.insert(schedule('sch-4', 'b', { next_fire_at: null }));
  schedules.insert(schedule('sch-5', 'ab', { catch_up: 'once', catch_up_limit: 10_000 }));
  schedules.insert(schedule('sch-6', 'B.2'));
  schedules.setPaused('sch-4', true, null, T0 + 10);
  const keyOf = (id: string) => ({ jobSeq: seqOf(id), jobCreatedAt: T0 });
  const run = (scheduleId: string, fireTime: number, over: Partial<Parameters<ScheduleStore['insertRun']>[0]>, now: number) =>
    schedules.insertRun({ scheduleId, fireTime, kind: 'scheduled', outcome: 'enqueued', reason: null, jobSeq: null, jobCreatedAt: null, ...over }, now);
  run('sch-1', T0 - 3 * DAY, keyOf(alpha[9]!), T0);
  run('sch-1', T0 - 2 * DAY, { outcome: 'skipped', reason: 'overlap' }, T0);
  run('sch-1', T0 - DAY, keyOf(u2!), T0);
  run('sch-1', T0 + 5, { kind: 'manual', ...keyOf(alpha[10]!) }, T0 + 5);
  run('sch-1', T0 + 6, { kind: 'manual', ...keyOf(a4!) }, T0 + 6);
  run('sch-2', T0 - DAY, keyOf(a3!), T0);
  run('sch-3', T0 - DAY, { outcome: 'skipped', reason: 'catch-up limit' }, T0);
  // Retention deletes a run's job: the run stays, its job columns read as NULL.
  jobs.deleteJobs([seqOf(u2!)]);
}

// --- oracles: the expected answers, from the fixture rows in plain JS ---------------------

type Rows = { jobs: JobRow[]; queues: { name: string }[]; schedules: ScheduleRow[]; runs: RunRow[] };

/** SQLite's BINARY order (and PostgreSQL's "C"): UTF-8 bytes. */
const byBytes = (a: string, b: string) => Buffer.compare(Buffer.from(a), Buffer.from(b));
const queuedBefore = (j: JobRow, priority: number, seq: number) => j.priority > priority || (j.priority === priority && j.seq < seq);
const pending = (rows: Rows, queue: string) => rows.jobs.filter((j) => j.queue === queue && j.state === 'pending');

function fixtureRows(dump: TableDump): Rows {
  const jobs = (dump.jobs as unknown as JobRow[]).map((j) => ({ ...j, id: formatJobId(j.seq, j.created_at) }));
  const runs = (dump.schedule_runs as unknown as RunRow[]).map((r) => {
    const j = jobs.find((x) => x.seq === r.job_seq && x.created_at === r.job_created_at);
    return {
      ...r, job_state: j?.state ?? null, job_attempt: j?.attempt ?? null, job_started_at: j?.started_at ?? null,
      job_finished_at: j?.finished_at ?? null, job_last_error: j?.last_error ?? null,
    };
  });
  return { jobs, queues: dump.queues as { name: string }[], schedules: dump.schedules as unknown as ScheduleRow[], runs };
}

const oracle = {
  listJobs(rows: Rows, f: JobFilter, limit: number, beforeSeq?: number): JobRow[] {
    return rows.jobs
      .filter((j) => (!f.queue || j.queue === f.queue) && (!f.state || j.state === f.state) && (!f.type || j.type === f.type))
      .filter((j) => (!f.groupKey || j.group_key === f.groupKey) && (beforeSeq === undefined || j.seq < beforeSeq))
      .sort((a, b) => b.seq - a.seq)
      .slice(0, limit);
  },
  counts(rows: Rows, queue?: string) {
    const n = new Map<string, number>();
    for (const j of rows.jobs) if (queue === undefined || j.queue === queue) n.set(`${j.queue}\n${j.state}`, (n.get(`${j.queue}\n${j.state}`) ?? 0) + 1);
    return [...n].map(([k, count]) => ({ queue: k.split('\n')[0]!, state: k.split('\n')[1]!, n: count }))
      .sort((a, b) => byBytes(a.queue, b.queue) || byBytes(a.state, b.state));
  },
  head(rows: Rows, queue: string): JobRow | undefined {
    return pending(rows, queue).sort((a, b) => b.priority - a.priority || a.seq - b.seq)[0];
  },
  deadLetters(rows: Rows, queue: string | undefined, limit: number) {
    const groups = new Map<string, { message: string; n: number; last_at: number }>();
    for (const j of rows.jobs.filter((x) => x.state === 'dead' && (!queue || x.queue === queue))) {
      const message = j.last_error ?? '';
      const g = groups.get(message) ?? { message, n: 0, last_at: 0 };
      g.n += 1;
      g.last_at = Math.max(g.last_at, j.finished_at!);
      groups.set(message, g);
    }
    return [...groups.values()].sort((a, b) => b.n - a.n || b.last_at - a.last_at).slice(0, limit);
  },
};

// --- the cases: each read with the arguments that matter, and its expected answer ----------

interface ReadCase {
  name: string;
  read: (r: StoreReads) => Promise<unknown>;
  expected: unknown;
}

const UNKNOWN_IDS = [
  formatJobId(999_999, T0),
  'not-an-id',
  '',
  // A seq beyond 2^53 (ids carry up to 62 bits): no stored row can have it.
  `${formatJobId(1, T0).slice(0, 19)}bfff-ffffffffffff`,
];

function cases(rows: Rows): ReadCase[] {
  const out: ReadCase[] = [];
  const add = (name: string, read: ReadCase['read'], expected: unknown) => out.push({ name, read, expected });

  for (const j of rows.jobs) {
    add(`getJob ${j.queue}/${j.seq}`, (r) => r.getJob(j.id), j);
    add(`stateAndLease ${j.seq}`, (r) => r.stateAndLease(j.id), { state: j.state, lease_id: j.lease_id });
    // The same seq with another creation time is another (unknown) job.
    add(`getJob ${j.seq} created at another time`, (r) => r.getJob(formatJobId(j.seq, j.created_at + 1)), undefined);
  }
  for (const id of UNKNOWN_IDS) {
    add(`getJob unknown ${id}`, (r) => r.getJob(id), undefined);
    add(`stateAndLease unknown ${id}`, (r) => r.stateAndLease(id), undefined);
  }

  const filters: JobFilter[] = [
    {}, { queue: 'alpha' }, { queue: 'Alpha' }, { queue: 'nope' }, { queue: '' }, { type: 'sms' }, { groupKey: 'g1' }, { groupKey: '' },
    { queue: 'alpha', state: 'pending' }, { queue: 'alpha', groupKey: 'g2', type: 'email' }, { queue: 'B-side', groupKey: 'ü' },
    ...Object.values(JobState).map((state) => ({ state })),
  ];
  for (const f of filters) {
    const all = oracle.listJobs(rows, f, 1000);
    add(`listJobs ${JSON.stringify(f)}`, (r) => r.listJobs(f, 1000), all);
    add(`listJobs ${JSON.stringify(f)} limit 0`, (r) => r.listJobs(f, 0), []);
    // Every page of 3 by the keyset cursor, through the empty page after the last.
    add(
      `listJobs ${JSON.stringify(f)} paged by 3`,
      async (r) => {
        const pages: JobRow[][] = [];
        let before: number | undefined;
        for (;;) {
          const page = await r.listJobs(f, 3, before);
          pages.push(page);
          if (page.length === 0) return pages;
          before = page[page.length - 1]!.seq;
        }
      },
      [...Array.from({ length: Math.ceil(all.length / 3) }, (_, i) => all.slice(i * 3, i * 3 + 3)), []],
    );
  }

  add('countsByQueueAndState', (r) => r.countsByQueueAndState(), oracle.counts(rows));
  for (const q of [...QUEUES, 'nope']) {
    add(`countsForQueue ${q}`, (r) => r.countsForQueue(q), oracle.counts(rows, q).map(({ state, n }) => ({ state, n })));
    add(`oldestPendingRunAt ${q}`, (r) => r.oldestPendingRunAt(q), pending(rows, q).length ? Math.min(...pending(rows, q).map((j) => j.run_at)) : undefined);
  }
  add(
    'pendingHeads',
    (r) => r.pendingHeads(),
    rows.queues.map((q) => ({ queue: q.name, head: oracle.head(rows, q.name) })).filter((h) => h.head).map((h) => ({ queue: h.queue, run_at: h.head!.run_at })),
  );
  for (const [queue, limit] of [[undefined, 10], [undefined, 1], ['alpha', 10], ['B-side', 10], ['nope', 10]] as const) {
    add(`deadLetterSummary ${queue} ${limit}`, (r) => r.deadLetterSummary(queue, limit), oracle.deadLetters(rows, queue, limit));
  }

  for (const j of rows.jobs.filter((x) => x.state === 'pending')) {
    const ahead = pending(rows, j.queue).filter((x) => queuedBefore(x, j.priority, j.seq)).length;
    add(`readyAhead ${j.seq}`, (r) => r.readyAhead(j.queue, j.priority, j.seq, 100), ahead);
    add(`readyAhead ${j.seq} capped at 2`, (r) => r.readyAhead(j.queue, j.priority, j.seq, 2), Math.min(ahead, 2));
    if (j.group_key !== null) {
      const g = j.group_key;
      const inGroup = pending(rows, j.queue).filter((x) => x.group_key === g && queuedBefore(x, j.priority, j.seq)).length;
      add(`groupAhead ${j.seq}`, (r) => r.groupAhead(j.queue, g, j.priority, j.seq, 100), inGroup);
      add(`groupAhead ${j.seq} capped at 1`, (r) => r.groupAhead(j.queue, g, j.priority, j.seq, 1), Math.min(inGroup, 1));
    }
  }
  const groups = new Set(rows.jobs.filter((j) => j.group_key !== null).map((j) => `${j.queue}\n${j.group_key}`));
  for (const [queue, groupKey] of [...[...groups].map((k) => k.split('\n') as [string, string]), ['alpha', 'none'] as [string, string]]) {
    const retrying = rows.jobs
      .filter((j) => j.state === 'scheduled' && j.queue === queue && j.group_key === groupKey && j.attempt > 0)
      .sort((a, b) => a.seq - b.seq)[0];
    add(`retryingInGroup ${queue} ${groupKey}`, (r) => r.retryingInGroup(queue, groupKey), retrying && { seq: retrying.seq, created_at: retrying.created_at, run_at: retrying.run_at });
  }

  for (const s of rows.schedules) {
    add(`getSchedule ${s.id}`, (r) => r.getSchedule(s.id), s);
    add(`getScheduleByName ${s.name}`, (r) => r.getScheduleByName(s.name), s);
  }
  add('getSchedule unknown', (r) => r.getSchedule('nope'), undefined);
  add('getScheduleByName is exact (case)', (r) => r.getScheduleByName('NIGHTLY'), undefined);
  const byName = [...rows.schedules].sort((a, b) => byBytes(a.name, b.name));
  add('listSchedules', (r) => r.listSchedules(100), byName);
  add('listSchedules after "a_z", 2', (r) => r.listSchedules(2, 'a_z'), byName.filter((s) => byBytes(s.name, 'a_z') > 0).slice(0, 2));
  add('listSchedules after the last name', (r) => r.listSchedules(10, 'nightly'), []);
  for (const s of rows.schedules) {
    const runs = rows.runs.filter((x) => x.schedule_id === s.id).sort((a, b) => b.seq - a.seq);
    add(`listScheduleRuns ${s.id}`, (r) => r.listScheduleRuns(s.id, 100), runs);
    if (runs.length > 1) add(`listScheduleRuns ${s.id} before ${runs[0]!.seq}, 2`, (r) => r.listScheduleRuns(s.id, 2, runs[0]!.seq), runs.slice(1, 3));
  }
  for (const run of rows.runs) add(`getScheduleRun ${run.seq}`, (r) => r.getScheduleRun(run.seq), run);
  add('getScheduleRun unknown', (r) => r.getScheduleRun(999_999), undefined);
  add('getScheduleRun of a fractional seq', (r) => r.getScheduleRun(1.5), undefined);
  return out;
}

// --- the backends ----------------------------------------------------------------------

// Cases are built at collection time (test names come from the data), so the fixture is too.
const dir = tempDir();
const dataFile = join(dir, 'sluice.db');
const sqliteDb: Db = openDatabase(dataFile, 'NORMAL').db;
const jobStore = new JobStore(sqliteDb);
const scheduleStore = new ScheduleStore(sqliteDb);
sqliteDb.transaction(() => writeFixture(jobStore, scheduleStore))();
const dump: TableDump = dumpSqlite(sqliteDb);
const rows = fixtureRows(dump);
const allCases = cases(rows);
const sqlite: StoreReads = new SqliteReads(jobStore, scheduleStore, dataFile);

afterAll(() => {
  closeDatabase(sqliteDb);
  rmSync(dir, { recursive: true, force: true });
});

test('the fixture covers what the cases are meant to find', () => {
  const states = new Set(rows.jobs.map((j) => j.state));
  expect([...states].sort()).toEqual([...Object.values(JobState)].sort());
  // Ordering by bytes differs from a natural-language collation for these names.
  expect(rows.schedules.map((s) => s.name).sort(byBytes)).toEqual(['B.2', 'Nightly', 'a_z', 'ab', 'b', 'nightly']);
  expect(rows.queues.map((q) => q.name)).toEqual(['Alpha', 'B-side', 'a_under', 'alpha', 'beta', 'zeta']);
  // Values past 32 bits, runs whose job is gone, retrying and dead jobs, dead-letter groups without ties.
  expect(rows.queues.find((q) => q.name === 'alpha')).toMatchObject({ retention_max_age_ms: 40 * DAY });
  expect(rows.runs.some((r) => r.job_seq !== null && r.job_state === null)).toBe(true);
  expect(rows.jobs.some((j) => j.state === 'scheduled' && j.attempt > 0 && j.group_key !== null)).toBe(true);
  const dead = oracle.deadLetters(rows, undefined, 100);
  expect(dead.map((d) => d.message)).toEqual(['timeout', 'boom', 'ünïcode “error”']);
  expect(new Set(dead.map((d) => `${d.n}/${d.last_at}`)).size).toBe(dead.length);
  expect(allCases.length).toBeGreaterThan(200);
});

describe('SQLite', () => {
  test.each(allCases.map((c) => [c.name, c] as const))('%s', async (_, c) => {
    expect(await c.read(sqlite)).toStrictEqual(c.expected);
  });

  test('an unknown job state in a filter is refused', async () => {
    await expect(sqlite.listJobs({ state: 'lost' as JobState }, 10)).rejects.toThrow(/unknown job state lost/);
  });

  test('storeSizes: the database file and its log', async () => {
    const sizes = await sqlite.storeSizes();
    expect(sizes.db).toBeGreaterThan(0);
    expect(sizes.wal).toBeGreaterThanOrEqual(0);
  });
});

if (postgresRequired()) {
  describe('PostgreSQL', () => {
    const SCHEMA = 'sluice_reads';
    let url: string;
    let client: pg.Client;
    let pool: pg.Pool;
    let postgres: StoreReads;

    beforeAll(async () => {
      // The database's default collation is a natural-language one (ICU en-US), not the test
      // cluster's C: the schema's own COLLATE "C" must be what gives SQLite's byte order.
      const cluster = await sharedPostgres();
      const name = `reads_${process.pid}_${Date.now() % 1e6}`;
      const admin = await cluster.connect();
      try {
        await admin.query(`CREATE DATABASE ${name} TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C'`);
      } finally {
        await admin.end();
      }
      url = cluster.urlFor(name);
      client = new pg.Client({ connectionString: url });
      await client.connect();
      const [premise] = await queryRows<{ sorted: string[] }>(client, `SELECT array_agg(n ORDER BY n) AS sorted FROM unnest($1::text[]) AS n`, [
        ['B.2', 'Nightly', 'a_z', 'ab', 'b', 'nightly'],
      ]);
      expect(premise!.sorted).not.toEqual(['B.2', 'Nightly', 'a_z', 'ab', 'b', 'nightly']);
      await migratePostgres(client, { schema: SCHEMA });
      await seedPostgres(client, SCHEMA, dump);
      // The reads go through a pool whose connections' search_path does not name the schema:
      // PostgresReads must qualify every table itself.
      pool = new pg.Pool({ connectionString: url, max: 4 });
      postgres = new PostgresReads(pool, { schema: SCHEMA });
    });

    afterAll(async () => {
      await pool?.end();
      await client?.end();
    });

    test('holds exactly the fixture rows, and its triggers counted them as SQLite did', async () => {
      expect(await dumpPostgres(client, SCHEMA)).toStrictEqual(dump);
      const pgQueue = await queryRows(client, `SELECT queue, state, n FROM ${SCHEMA}.queue_counts WHERE n > 0 ORDER BY queue, state`);
      const pgGroup = await queryRows(client, `SELECT queue, group_key, n FROM ${SCHEMA}.group_counts ORDER BY queue, group_key`);
      expect(pgQueue).toStrictEqual(sqliteDb.prepare(`SELECT queue, state, n FROM queue_counts WHERE n > 0 ORDER BY queue, state`).all());
      expect(pgGroup).toStrictEqual(sqliteDb.prepare(`SELECT queue, group_key, n FROM group_counts ORDER BY queue, group_key`).all());
    });

    test.each(allCases.map((c) => [c.name, c] as const))('%s', async (_, c) => {
      const [fromPostgres, fromSqlite] = await Promise.all([c.read(postgres), c.read(sqlite)]);
      expect(fromPostgres).toStrictEqual(c.expected);
      expect(fromPostgres).toStrictEqual(fromSqlite);
    });

    test('storeSizes: the database size, no log of its own', async () => {
      const sizes = await postgres.storeSizes();
      expect(sizes.db).toBeGreaterThan(0);
      expect(sizes.wal).toBe(0);
    });

    test('an unknown job state in a filter is refused, as on SQLite', async () => {
      const bad = { state: 'lost' as JobState };
      await expect(sqlite.listJobs(bad, 10)).rejects.toThrow(/unknown job state lost/);
      await expect(postgres.listJobs(bad, 10)).rejects.toThrow(/unknown job state lost/);
    });

    test('without a schema option the connection search_path decides', async () => {
      const onPath = new pg.Pool({ connectionString: url, max: 1, options: `-c search_path=${SCHEMA}` });
      try {
        const reads = new PostgresReads(onPath);
        expect(await reads.countsByQueueAndState()).toStrictEqual(oracle.counts(rows));
      } finally {
        await onPath.end();
      }
    });
  });
}
