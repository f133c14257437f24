import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { JobState } from '../clients/typescript/src/gen/sluice/v1/job.js';
import { SettleResult_Kind } from '../clients/typescript/src/gen/sluice/v1/worker.js';
import { startTestBroker, type TestBroker } from './helpers/broker.js';

let b: TestBroker;
beforeEach(async () => {
  b = await startTestBroker();
});
afterEach(async () => {
  await b.close();
});

describe('a closing worker: stop and release', () => {
  it('stop drops unused credit, is confirmed, and later credit delivers nothing on that stream', async () => {
    const ids = await b.api.enqueueMany('mail', 5);
    const w = b.api.consumer({ queues: ['mail'] }, 2);
    const delivered = await w.waitForDeliveries(2);
    w.send({ stop: true, credit: 3 });
    await w.until(() => w.stopped, 'stopped confirmation');

    // Settles are still accepted after stop.
    w.ack(delivered[0]!);
    await w.waitForSettled(1);
    expect(w.settled[0]).toMatchObject({ code: 0, state: JobState.JOB_STATE_COMPLETED });

    // A second stream takes the remaining work; the stopped one gets none of it.
    const other = b.api.consumer({ queues: ['mail'] }, 10);
    await other.waitForDeliveries(3);
    expect(w.deliveries).toHaveLength(2);
    expect(new Set([...w.deliveries, ...other.deliveries].map((d) => d.jobId))).toEqual(new Set(ids.slice(0, 5)));
    w.cancel();
    other.cancel();
  });

  it('release hands a job back at once without counting the attempt', async () => {
    const [id] = await b.api.enqueueMany('mail', 1);
    const w = b.api.consumer({ queues: ['mail'] }, 1);
    const [d] = await w.waitForDeliveries(1);
    expect(d!.attempt).toBe(1);
    w.release(d!, 'worker closing');
    const [r] = await w.waitForSettled(1);
    expect(r).toMatchObject({ jobId: id, kind: SettleResult_Kind.KIND_RELEASE, code: 0, state: JobState.JOB_STATE_PENDING });

    const job = await b.api.getJob(id!);
    expect(job).toMatchObject({ state: JobState.JOB_STATE_PENDING, attempt: 0, errors: [] });

    // Redelivered (here to the same stream once it grants credit again) as attempt 1 again.
    w.credit(1);
    const [again] = (await w.waitForDeliveries(2)).slice(1);
    expect(again).toMatchObject({ jobId: id, attempt: 1 });
    expect(again!.leaseId).not.toBe(d!.leaseId);

    // The old lease is fenced.
    w.release(d!);
    await w.waitForSettled(2);
    expect(w.settled[1]).toMatchObject({ kind: SettleResult_Kind.KIND_RELEASE, code: 9 });
    w.cancel();
  });
});
