import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { JobState } from '../clients/typescript/src/gen/sluice/v1/job.js';
import { startTestBroker, type TestBroker } from './helpers/broker.js';
import { TestClock } from './helpers/clock.js';

let b: TestBroker;
let clock: TestClock;
beforeEach(async () => {
  clock = new TestClock();
  b = await startTestBroker({ defaultMaxAttempts: 25, defaultLeaseTimeoutMs: 30_000 }, { clock });
});
afterEach(async () => {
  await b.close();
});

describe('queue defaults (UpdateQueue)', () => {
  it('apply to the unfinished jobs that did not set their own, already queued or running; never to jobs that did, or finished ones', async () => {
    const q = 'defaults';
    const finished = (await b.api.enqueue({ queue: q, payload: 'finished' })).id;
    const inherits = (await b.api.enqueue({ queue: q, payload: 'inherits' })).id;
    const own = (await b.api.enqueue({ queue: q, payload: 'own', maxAttempts: 2, leaseTimeoutMs: 5_000 })).id;
    const later = (await b.api.enqueue({ queue: q, payload: 'scheduled', delayMs: 600_000 })).id;
    const w = b.api.consumer({ queues: [q] }, 1);
    const [d1] = await w.waitForDeliveries(1);
    expect(d1!.jobId).toBe(finished);
    w.ack(d1!, undefined, 1);
    const [, d] = await w.waitForDeliveries(2);
    expect(d!.jobId).toBe(inherits);
    expect(d).toMatchObject({ maxAttempts: 25, leaseTimeoutMs: 30_000 });
    // Its first attempt fails: it waits for its retry (scheduled), `own` stays pending.
    w.nack(d!, 'first try failed', { retryAfterMs: 600_000 });
    await w.waitForSettled(2);
    const finishedBefore = await b.api.getJob(finished);

    const queue = await b.api.updateQueue({ queue: q, maxAttempts: 3, leaseTimeoutMs: 1_000 });
    expect(queue).toMatchObject({ maxAttempts: 3, leaseTimeoutMs: 1_000 });
    for (const id of [inherits, later]) expect(await b.api.getJob(id), id).toMatchObject({ maxAttempts: 3, leaseTimeoutMs: 1_000 });
    expect(await b.api.getJob(own)).toMatchObject({ maxAttempts: 2, leaseTimeoutMs: 5_000 });
    const finishedAfter = await b.api.getJob(finished);
    expect(finishedAfter).toMatchObject({ state: JobState.JOB_STATE_COMPLETED, maxAttempts: finishedBefore.maxAttempts, leaseTimeoutMs: finishedBefore.leaseTimeoutMs });
    // A job enqueued now takes them too.
    expect(await b.api.getJob((await b.api.enqueue({ queue: q, payload: 'new' })).id)).toMatchObject({ maxAttempts: 3, leaseTimeoutMs: 1_000 });

    // The retried job is delivered with the new values and dies after 3 attempts, not 25.
    clock.advance(600_000);
    w.credit(1);
    const again = (await w.waitForDeliveries(3))[2]!;
    expect(again).toMatchObject({ jobId: inherits, attempt: 2, maxAttempts: 3, leaseTimeoutMs: 1_000 });
    w.nack(again, 'second try failed', { retryAfterMs: 1 });
    await w.until(() => w.settled.some((s) => s.leaseId === again.leaseId), 'the second nack');
    clock.advance(1);
    w.credit(1);
    await w.until(() => w.deliveries.some((x) => x.jobId === inherits && x.attempt === 3), 'attempt 3');
    const third = w.deliveries.find((x) => x.jobId === inherits && x.attempt === 3)!;
    w.nack(third, 'third try failed', { retryAfterMs: 1 });
    await w.until(() => w.settled.some((s) => s.leaseId === third.leaseId), 'the last nack');
    expect((await b.api.getJob(inherits)).state).toBe(JobState.JOB_STATE_DEAD);
    w.cancel();
  });
});
