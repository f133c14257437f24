import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { status } from '@grpc/grpc-js';
import { JobState } from '../clients/typescript/src/gen/sluice/v1/job.js';
import { startTestBroker, type TestBroker } from './helpers/broker.js';
import { expectStatus } from './helpers/expect-status.js';

let b: TestBroker;
beforeEach(async () => {
  b = await startTestBroker();
});
afterEach(async () => {
  await b.close();
});

describe('DeleteQueue', () => {
  it('deletes a queue whose jobs are all finished, with its settings and its completed and cancelled jobs', async () => {
    await b.api.updateQueue({ queue: 'old', maxAttempts: 9, createIfMissing: true });
    await b.api.pauseQueue('old');
    const [done, cancelled] = await b.api.enqueueMany('old', 2);
    await b.api.cancelJob(cancelled!, 'not needed');
    await b.api.resumeQueue('old');
    const w = b.api.consumer({ queues: ['old'] }, 1);
    const [d] = await w.waitForDeliveries(1);
    expect(d!.jobId).toBe(done);
    w.ack(d!);
    await w.waitForSettled(1);
    await b.api.enqueue({ queue: 'kept', payload: {} });

    await b.api.deleteQueue('old');
    expect((await b.api.listQueues()).map((q) => q.name)).toEqual(['kept']);
    await expectStatus(b.api.getQueue('old'), status.NOT_FOUND, 'old');
    await expectStatus(b.api.getJob(done!), status.NOT_FOUND);
    await expectStatus(b.api.getJob(cancelled!), status.NOT_FOUND);
    await expectStatus(b.api.deleteQueue('old'), status.NOT_FOUND, 'old');

    // Enqueueing again makes a new queue with the broker's defaults, not the deleted settings.
    const again = await b.api.enqueue({ queue: 'old', payload: {} });
    expect((await b.api.getJob(again.id)).maxAttempts).toBe(25);
    expect(await b.api.getQueue('old')).toMatchObject({ name: 'old', paused: false, maxAttempts: 0, counts: { pending: 1, completed: 0, cancelled: 0 } });
    w.cancel();
  });

  it('refuses (FAILED_PRECONDITION, naming the counts) while the queue has scheduled, pending, active or dead jobs, and changes nothing', async () => {
    const q = 'busy';
    await b.api.enqueue({ queue: q, payload: {}, delayMs: 600_000 });
    await b.api.enqueueMany(q, 2);
    await expectStatus(b.api.deleteQueue(q), status.FAILED_PRECONDITION, 'busy', '1 scheduled', '2 pending');

    const w = b.api.consumer({ queues: [q] }, 3);
    const ds = await w.waitForDeliveries(2);
    await expectStatus(b.api.deleteQueue(q), status.FAILED_PRECONDITION, '2 active');
    w.nack(ds[0]!, 'poison', { nonRetryable: true });
    w.ack(ds[1]!);
    await w.waitForSettled(2);
    const scheduled = (await b.api.listJobs({ queue: q, state: JobState.JOB_STATE_SCHEDULED })).jobs[0]!;
    await b.api.cancelJob(scheduled.id);
    // Dead letters are removed only by an explicit purge, never by deleting their queue.
    await expectStatus(b.api.deleteQueue(q), status.FAILED_PRECONDITION, '1 dead', 'purge');
    expect((await b.api.getQueue(q)).counts).toMatchObject({ dead: 1, completed: 1, cancelled: 1 });

    expect(await b.api.purgeDeadLetters({ queue: q })).toBe(1);
    await b.api.deleteQueue(q);
    await expectStatus(b.api.getQueue(q), status.NOT_FOUND);
    w.cancel();
  });

  it('rejects a bad queue name with INVALID_ARGUMENT', async () => {
    await expectStatus(b.api.deleteQueue('not a queue!'), status.INVALID_ARGUMENT, 'queue');
  });
});
