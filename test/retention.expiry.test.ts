import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { JobState } from '../clients/typescript/src/gen/sluice/v1/job.js';
import type { Clock } from '../src/domain/clock.js';
import { startTestBroker, type TestBroker } from './helpers/broker.js';

const DAY = 24 * 3_600_000;

/** Time moves only when the test says so. */
class TestClock implements Clock {
  constructor(public t = Date.now()) {}
  now(): number {
    return this.t;
  }
  advance(ms: number): void {
    this.t += ms;
  }
}

let b: TestBroker | undefined;
afterEach(async () => {
  await b?.close();
  b = undefined;
});

/** Enqueues n jobs to `queue` and settles them all: ack, non-retryable nack (dead) or cancel. */
async function finishJobs(broker: TestBroker, queue: string, n: number, how: 'ack' | 'dead' | 'cancel'): Promise<string[]> {
  const ids = await broker.api.enqueueMany(queue, n);
  if (how === 'cancel') {
    for (const id of ids) await broker.api.cancelJob(id, 'test');
    return ids;
  }
  const w = broker.api.consumer({ queues: [queue] }, n);
  const ds = await w.waitForDeliveries(n);
  if (how === 'ack') w.send({ acks: ds.map((d) => ({ jobId: d.jobId, leaseId: d.leaseId })) });
  else w.send({ nacks: ds.map((d) => ({ jobId: d.jobId, leaseId: d.leaseId, error: 'poison', nonRetryable: true, retryAfterMs: 0 })) });
  await w.waitForSettled(n);
  w.cancel();
  await w.status;
  return ids;
}

/** Jobs per state straight from the table, through a second connection. */
function tableCounts(dataFile: string, queue: string): Record<string, number> {
  const db = new Database(dataFile, { readonly: true });
  try {
    const rows = db.prepare(`SELECT state, count(*) AS n FROM jobs WHERE queue = ? GROUP BY state`).all(queue) as { state: string; n: number }[];
    return Object.fromEntries(rows.map((r) => [r.state, r.n]));
  } finally {
    db.close();
  }
}

describe('retention', () => {
  it('deletes completed and cancelled jobs past the age limit in small batches, never dead or unfinished ones, and keeps the counts right', async () => {
    const clock = new TestClock();
    b = await startTestBroker({ retentionIntervalMs: 0, retentionBatchSize: 10 }, { clock });
    const completed = await finishJobs(b, 'ret', 30, 'ack');
    const cancelled = await finishJobs(b, 'ret', 5, 'cancel');
    const dead = await finishJobs(b, 'ret', 5, 'dead');
    const waiting = (await b.api.enqueue({ queue: 'ret', payload: {}, delayMs: 20 * DAY /* delay_ms is at most ~24.8 days (int32 ms) */ })).id;

    // Six days later nothing has expired (default: 7 days).
    clock.advance(6 * DAY);
    expect(await b.running.broker.retention.runPass()).toMatchObject({ deleted: 0 });
    // Jobs finished now are younger than the others: they stay after the first ones expire.
    const fresh = await finishJobs(b, 'ret', 3, 'ack');

    clock.advance(1 * DAY + 1);
    const pass = await b.running.broker.retention.runPass();
    expect(pass.deleted).toBe(35);
    expect(pass.batches).toBeGreaterThanOrEqual(4); // 10 rows per transaction
    expect(pass.longestBatchMs).toBeGreaterThan(0);

    for (const id of [...completed, ...cancelled]) await expect(b.api.getJob(id)).rejects.toMatchObject({ code: 5 });
    for (const id of dead) expect((await b.api.getJob(id)).state).toBe(JobState.JOB_STATE_DEAD);
    for (const id of fresh) expect((await b.api.getJob(id)).state).toBe(JobState.JOB_STATE_COMPLETED);
    expect((await b.api.getJob(waiting)).state).toBe(JobState.JOB_STATE_SCHEDULED);
    const counts = (await b.api.getQueue('ret')).counts;
    expect(counts).toEqual({ scheduled: 1, pending: 0, active: 0, completed: 3, dead: 5, cancelled: 0 });
    expect(tableCounts(b.dataFile, 'ret')).toEqual({ scheduled: 1, completed: 3, dead: 5 });

    // Far in the future: the rest of the completed jobs go, dead jobs never do.
    clock.advance(365 * DAY);
    expect((await b.running.broker.retention.runPass()).deleted).toBe(3);
    expect((await b.api.getQueue('ret')).counts).toMatchObject({ completed: 0, dead: 5 });
  });

  it('keeps at most the count limit of a queue (oldest deleted first), with per-queue settings over the broker default', async () => {
    const clock = new TestClock();
    b = await startTestBroker({ retentionIntervalMs: 0, retentionBatchSize: 7, retentionMaxAgeMs: 0, retentionMaxCount: 20 }, { clock });
    const capped = await finishJobs(b, 'ret-cap', 25, 'ack');
    const small = await finishJobs(b, 'ret-small', 12, 'ack');
    const unlimited = await finishJobs(b, 'ret-unlimited', 25, 'ack');
    await b.api.updateQueue({ queue: 'ret-small', retentionMaxCount: 4 });
    const q = await b.api.updateQueue({ queue: 'ret-unlimited', retentionMaxCount: 0 });
    expect(q).toMatchObject({ retentionMaxCount: 0, retentionMaxAgeMs: 0 });
    expect((await b.api.getQueue('ret-small')).retentionMaxCount).toBe(4);

    const pass = await b.running.broker.retention.runPass();
    expect(pass.deleted).toBe(5 + 8);
    expect((await b.api.getQueue('ret-cap')).counts?.completed).toBe(20);
    expect((await b.api.getQueue('ret-small')).counts?.completed).toBe(4);
    expect((await b.api.getQueue('ret-unlimited')).counts?.completed).toBe(25);
    // The oldest went first.
    for (const id of capped.slice(0, 5)) await expect(b.api.getJob(id)).rejects.toMatchObject({ code: 5 });
    for (const id of capped.slice(5)) expect((await b.api.getJob(id)).state).toBe(JobState.JOB_STATE_COMPLETED);
    for (const id of small.slice(8)) expect((await b.api.getJob(id)).state).toBe(JobState.JOB_STATE_COMPLETED);
    expect(unlimited).toHaveLength(25);
    // Nothing more to do.
    expect((await b.running.broker.retention.runPass()).deleted).toBe(0);
  });

  it('deletes a job together with its history', async () => {
    const clock = new TestClock();
    b = await startTestBroker({ retentionIntervalMs: 0, retentionMaxAgeMs: 1000 }, { clock });
    const [id] = await finishJobs(b, 'ret-hist', 1, 'ack');
    expect((await b.api.jobHistory(id!)).map((e) => e.kind)).toEqual(['enqueued', 'delivered', 'acked']);
    clock.advance(1001);
    expect((await b.running.broker.retention.runPass()).deleted).toBe(1);
    await expect(b.api.jobHistory(id!)).rejects.toMatchObject({ code: 5 });
  });
});
