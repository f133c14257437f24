import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { JobState, Priority } from '../clients/typescript/src/gen/sluice/v1/job.js';
import type { Queue } from '../clients/typescript/src/gen/sluice/v1/admin.js';
import { status } from '@grpc/grpc-js';
import { startTestBroker, type TestBroker } from './helpers/broker.js';
import { expectStatus } from './helpers/expect-status.js';

let b: TestBroker;
beforeEach(async () => {
  b = await startTestBroker();
});
afterEach(async () => {
  await b.close();
});

describe('pause and resume', () => {
  it('keeps accepting jobs for a paused queue but delivers none until it is resumed', async () => {
    // No job was enqueued to it yet: pausing creates it only when asked to.
    const paused = await b.api.pauseQueue('pa', true);
    expect(paused).toMatchObject({ name: 'pa', paused: true });

    // One stream subscribed to both queues, with plenty of credit. It is told at once that
    // one of them is paused (in the same message as `subscribed`).
    const worker = b.api.consumer({ queues: ['pa', 'pb'], workerId: 'both' }, 10);
    await worker.until(() => worker.subscribed !== undefined, 'subscribed');
    expect(worker.queueNotices).toEqual([{ queue: 'pa', paused: true }]);

    // The paused queue's jobs are accepted, come first and outrank the other queue's...
    const a1 = await b.api.enqueue({ queue: 'pa', payload: 'a1', priority: Priority.PRIORITY_CRITICAL });
    const a2 = await b.api.enqueue({ queue: 'pa', payload: 'a2', priority: Priority.PRIORITY_CRITICAL });
    expect(a1.state).toBe(JobState.JOB_STATE_PENDING);
    expect(a2.state).toBe(JobState.JOB_STATE_PENDING);
    const b1 = await b.api.enqueue({ queue: 'pb', payload: 'b1', priority: Priority.PRIORITY_LOW });

    // ...yet only the unpaused queue's job is delivered: B's delivery proves the stream had
    // credit and the dispatcher ran after A's jobs were committed.
    await worker.waitForDeliveries(1);
    const b2 = await b.api.enqueue({ queue: 'pb', payload: 'b2', priority: Priority.PRIORITY_LOW });
    await worker.waitForDeliveries(2);
    expect(worker.deliveries.map((d) => d.jobId)).toEqual([b1.id, b2.id]);
    expect(worker.deliveries.every((d) => d.queue === 'pb')).toBe(true);
    expect((await b.api.getJob(a1.id)).state).toBe(JobState.JOB_STATE_PENDING);
    expect((await b.api.getJob(a2.id)).state).toBe(JobState.JOB_STATE_PENDING);
    const [w] = (await b.api.listWorkers()).workers;
    expect(w).toMatchObject({ workerId: 'both', credit: 8 });
    expect((await b.api.getQueue('pa')).counts).toMatchObject({ pending: 2, active: 0 });

    const resumed = await b.api.resumeQueue('pa');
    expect(resumed).toMatchObject({ name: 'pa', paused: false });
    const all = await worker.waitForDeliveries(4);
    await worker.until(() => worker.queueNotices.length >= 2, 'the resume notice');
    expect(worker.queueNotices).toEqual([
      { queue: 'pa', paused: true },
      { queue: 'pa', paused: false },
    ]);
    expect(all.slice(2).map((d) => d.jobId)).toEqual([a1.id, a2.id]);
    expect((await b.api.getQueue('pa')).counts).toMatchObject({ pending: 0, active: 2 });
    worker.cancel();
  });

  it('lets active jobs of a paused queue finish, and delivers nothing new from it', async () => {
    const first = await b.api.enqueue({ queue: 'busy', payload: 1 });
    const worker = b.api.consumer({ queues: ['busy', 'busy-probe'] }, 1);
    const [d] = await worker.waitForDeliveries(1);
    expect(d!.jobId).toBe(first.id);

    await b.api.pauseQueue('busy');
    // A stream subscribed to the queue hears about the pause.
    await worker.until(() => worker.queueNotices.length >= 1, 'the pause notice');
    expect(worker.queueNotices).toEqual([{ queue: 'busy', paused: true }]);
    const second = await b.api.enqueue({ queue: 'busy', payload: 2 });
    // The lease taken before the pause is still good.
    worker.ack(d!, undefined, 1);
    const [s] = await worker.waitForSettled(1);
    expect(s).toMatchObject({ code: 0, state: JobState.JOB_STATE_COMPLETED });

    // The credit just granted goes to the probe queue, not the paused one.
    const probe = await b.api.enqueue({ queue: 'busy-probe', payload: 3 });
    const [, next] = await worker.waitForDeliveries(2);
    expect(next!.jobId).toBe(probe.id);
    expect((await b.api.getJob(second.id)).state).toBe(JobState.JOB_STATE_PENDING);
    worker.cancel();
  });

  it('shows the paused flag and per-state counts in ListQueues and GetQueue', async () => {
    const q = 'counted';
    // One job in every state.
    await b.api.enqueue({ queue: q, payload: 'scheduled', delayMs: 60_000 });
    const toComplete = await b.api.enqueue({ queue: q, payload: 'complete' });
    const toKill = await b.api.enqueue({ queue: q, payload: 'kill' });
    const toHold = await b.api.enqueue({ queue: q, payload: 'hold' });
    const worker = b.api.consumer({ queues: [q] }, 3);
    const delivered = await worker.waitForDeliveries(3);
    const byId = new Map(delivered.map((d) => [d.jobId, d]));
    worker.ack(byId.get(toComplete.id)!);
    worker.nack(byId.get(toKill.id)!, 'bad', { nonRetryable: true });
    await worker.waitForSettled(2);
    expect(byId.has(toHold.id)).toBe(true);
    const toCancel = await b.api.enqueue({ queue: q, payload: 'cancel' });
    await b.api.cancelJob(toCancel.id, 'not needed');
    await b.api.enqueue({ queue: q, payload: 'pending' });
    await b.api.enqueue({ queue: 'other', payload: 'elsewhere' });

    const expectedCounts = { scheduled: 1, pending: 1, active: 1, completed: 1, dead: 1, cancelled: 1 };
    const check = (queue: Queue | undefined, pausedFlag: boolean) => {
      expect(queue).toBeDefined();
      expect(queue!.name).toBe(q);
      expect(queue!.paused).toBe(pausedFlag);
      expect(queue!.counts).toEqual(expectedCounts);
      expect(queue!.consumers).toBe(1);
    };

    check(await b.api.getQueue(q), false);
    check((await b.api.listQueues()).find((x) => x.name === q), false);

    const pausedInfo = await b.api.pauseQueue(q);
    check(pausedInfo, true);
    check(await b.api.getQueue(q), true);
    const listed = await b.api.listQueues();
    check(listed.find((x) => x.name === q), true);
    expect(listed.find((x) => x.name === 'other')).toMatchObject({ paused: false, counts: { pending: 1 } });

    // Pausing twice is harmless; resuming clears the flag.
    check(await b.api.pauseQueue(q), true);
    const resumedInfo = await b.api.resumeQueue(q);
    expect(resumedInfo.paused).toBe(false);
    expect((await b.api.listQueues()).find((x) => x.name === q)!.paused).toBe(false);
    worker.cancel();
  });

  it('answers NOT_FOUND for pausing, resuming or updating an unknown queue, and creates it only when asked', async () => {
    await b.api.enqueue({ queue: 'email', payload: {} });
    // A typo does not create a paused queue.
    await expectStatus(b.api.pauseQueue('emial'), status.NOT_FOUND, 'emial', 'create_if_missing');
    await expectStatus(b.api.resumeQueue('emial'), status.NOT_FOUND, 'emial');
    await expectStatus(b.api.updateQueue({ queue: 'emial', maxAttempts: 3 }), status.NOT_FOUND, 'emial', 'create_if_missing');
    await expectStatus(b.api.getQueue('emial'), status.NOT_FOUND, 'emial');
    expect((await b.api.listQueues()).map((q) => q.name)).toEqual(['email']);

    // An existing queue needs no flag; create_if_missing makes a new one.
    expect(await b.api.pauseQueue('email')).toMatchObject({ name: 'email', paused: true });
    expect(await b.api.updateQueue({ queue: 'fresh', maxAttempts: 7, createIfMissing: true })).toMatchObject({ name: 'fresh', maxAttempts: 7, paused: false });
    expect(await b.api.pauseQueue('frozen', true)).toMatchObject({ name: 'frozen', paused: true });
    expect((await b.api.listQueues()).map((q) => q.name)).toEqual(['email', 'fresh', 'frozen']);
  });
});
