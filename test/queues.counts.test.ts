import Database from 'better-sqlite3';
import { join } from 'node:path';
import { rmSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { JobState } from '../clients/typescript/src/gen/sluice/v1/job.js';
import type { QueueCounts } from '../clients/typescript/src/gen/sluice/v1/admin.js';
import { MIGRATIONS, SCHEMA_VERSION } from '../src/store/migrations.js';
import { startTestBroker, tempDir, type TestBroker } from './helpers/broker.js';
import { TestClock } from './helpers/clock.js';

let b: TestBroker | undefined;
const dirs: string[] = [];
afterEach(async () => {
  await b?.close();
  b = undefined;
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

const STATES = ['scheduled', 'pending', 'active', 'completed', 'dead', 'cancelled'] as const;

/** Counts straight from the jobs table, through a second connection to the broker's file. */
function countedInTable(dataFile: string): Map<string, QueueCounts> {
  const db = new Database(dataFile, { readonly: true });
  try {
    const out = new Map<string, QueueCounts>();
    const rows = db.prepare(`SELECT queue, state, count(*) AS n FROM jobs GROUP BY queue, state`).all() as {
      queue: string;
      state: (typeof STATES)[number];
      n: number;
    }[];
    for (const { queue, state, n } of rows) {
      let c = out.get(queue);
      if (!c) out.set(queue, (c = { scheduled: 0, pending: 0, active: 0, completed: 0, dead: 0, cancelled: 0 }));
      c[state] = n;
    }
    return out;
  } finally {
    db.close();
  }
}

/** ListQueues and GetQueue report exactly what a scan of the jobs table counts. */
async function expectCountsMatchTable(broker: TestBroker, expected: Record<string, Partial<QueueCounts>>): Promise<void> {
  const table = countedInTable(broker.dataFile);
  const listed = new Map((await broker.api.listQueues()).map((q) => [q.name, q.counts]));
  for (const [queue, counts] of table) {
    expect(listed.get(queue), `ListQueues counts of ${queue}`).toEqual(counts);
    expect((await broker.api.getQueue(queue)).counts, `GetQueue counts of ${queue}`).toEqual(counts);
  }
  for (const [queue, counts] of Object.entries(expected)) expect(table.get(queue), `jobs of ${queue}`).toMatchObject(counts);
}

describe('queue counts', () => {
  it('match the jobs table through every transition: enqueue, delay, claim, ack, retry, dead, release, stream loss, cancel, replay, purge', async () => {
    // The delayed job is promoted when the test moves the clock, never by a race with it.
    const clock = new TestClock();
    b = await startTestBroker({}, { clock });
    const broker = b;
    const q = 'counts';
    const [j1, j2, j3, j4, j5] = await broker.api.enqueueMany(q, 5);
    const later = (await broker.api.enqueue({ queue: q, payload: {}, delayMs: 600_000 })).id;
    const soon = (await broker.api.enqueue({ queue: q, payload: {}, delayMs: 150 })).id;
    await broker.api.enqueue({ queue: 'counts-other', payload: {} });
    await expectCountsMatchTable(broker, { [q]: { pending: 5, scheduled: 2 }, 'counts-other': { pending: 1 } });

    await broker.api.cancelJob(later, 'from scheduled');
    await broker.api.cancelJob(j5!, 'from pending');
    await expectCountsMatchTable(broker, { [q]: { pending: 4, scheduled: 1, cancelled: 2 } });

    const worker = broker.api.consumer({ queues: [q] }, 4);
    const got = await worker.waitForDeliveries(4);
    expect(got.map((d) => d.jobId)).toEqual([j1, j2, j3, j4]);
    await expectCountsMatchTable(broker, { [q]: { pending: 0, active: 4 } });

    const [d1, d2, d3, d4] = got;
    worker.ack(d1!, { ok: true });
    worker.nack(d2!, 'try later', { retryAfterMs: 600_000 });
    worker.nack(d3!, 'poison', { nonRetryable: true });
    worker.release(d4!);
    await worker.waitForSettled(4);
    await expectCountsMatchTable(broker, { [q]: { active: 0, completed: 1, scheduled: 2, dead: 1, pending: 1, cancelled: 2 } });

    // The released job and the delayed one (promoted by the timer) come back; one is cancelled
    // while active, the other is lost with the stream.
    clock.advance(150);
    worker.credit(2);
    const [again, promoted] = await worker.waitForDeliveries(6).then((ds) => ds.slice(4));
    expect(new Set([again!.jobId, promoted!.jobId])).toEqual(new Set([j4, soon]));
    await expectCountsMatchTable(broker, { [q]: { active: 2, scheduled: 1 } });
    await broker.api.cancelJob(again!.jobId, 'from active');
    worker.cancel();
    await worker.status;
    await expect.poll(async () => (await broker.api.getJob(promoted!.jobId)).state).toBe(JobState.JOB_STATE_PENDING);
    await expectCountsMatchTable(broker, { [q]: { active: 0, pending: 1, cancelled: 3 } });

    expect(await broker.api.replayDeadLetters({ ids: [j3!] })).toBe(1);
    await expectCountsMatchTable(broker, { [q]: { dead: 0, pending: 2 } });
    const second = broker.api.consumer({ queues: [q], types: [] }, 2);
    const ds = await second.waitForDeliveries(2);
    for (const d of ds) second.nack(d, 'poison again', { nonRetryable: true });
    await second.waitForSettled(2);
    await expectCountsMatchTable(broker, { [q]: { pending: 0, dead: 2 } });
    expect(await broker.api.purgeDeadLetters({ queue: q })).toBe(2);
    await expectCountsMatchTable(broker, { [q]: { dead: 0, completed: 1, scheduled: 1, cancelled: 3 } });
    second.cancel();
  });

  it('are built from the existing jobs when a database of schema 1 is opened', async () => {
    const dir = tempDir();
    dirs.push(dir);
    const dataFile = join(dir, 'sluice.db');
    const old = new Database(dataFile);
    old.pragma('journal_mode = WAL');
    old.exec(MIGRATIONS[0]!);
    old.pragma('user_version = 1');
    const insert = old.prepare(`INSERT INTO jobs (queue, state, priority, payload, run_at, max_attempts, lease_timeout_ms,
      lease_id, lease_expires_at, created_at, updated_at) VALUES (?, ?, 3, '{}', ?, 3, 30000, NULL, NULL, 1, 1)`);
    const seeded: [string, (typeof STATES)[number], number][] = [
      ['old-a', 'pending', 3],
      ['old-a', 'completed', 2],
      ['old-a', 'dead', 1],
      ['old-b', 'scheduled', 2],
    ];
    for (const [queue, state, n] of seeded) for (let i = 0; i < n; i++) insert.run(queue, state, Date.now() + 600_000);
    old.exec(`INSERT INTO queues (name, created_at) VALUES ('old-a', 1), ('old-b', 1)`);
    old.close();

    b = await startTestBroker({}, { dir });
    const db = new Database(dataFile, { readonly: true });
    expect(db.pragma('user_version', { simple: true })).toBe(SCHEMA_VERSION);
    db.close();
    await expectCountsMatchTable(b, {
      'old-a': { pending: 3, completed: 2, dead: 1 },
      'old-b': { scheduled: 2 },
    });
    await b.api.enqueue({ queue: 'old-b', payload: {} });
    await expectCountsMatchTable(b, { 'old-b': { scheduled: 2, pending: 1 } });
  });
});
