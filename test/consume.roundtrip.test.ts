import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { JobState } from '../clients/typescript/src/gen/sluice/v1/job.js';
import { startTestBroker, type TestBroker } from './helpers/broker.js';

let b: TestBroker;
beforeEach(async () => {
  b = await startTestBroker();
});
afterEach(async () => {
  await b.close();
});

describe('enqueue -> consume -> ack', () => {
  it('delivers a job with its payload and metadata and stores the result on ack', async () => {
    const { id, state } = await b.api.enqueue({ queue: 'email', type: 'email.send', payload: { to: 'a@b.c', n: [1, 2] }, metadata: { traceparent: 't-1' } });
    expect(state).toBe(JobState.JOB_STATE_PENDING);
    const worker = b.api.consumer({ queues: ['email'], workerId: 'w1' }, 1);
    const [d] = await worker.waitForDeliveries(1);
    expect(d).toMatchObject({ jobId: id, queue: 'email', type: 'email.send', attempt: 1, payload: { to: 'a@b.c', n: [1, 2] }, metadata: { traceparent: 't-1' } });
    expect(d!.leaseId).not.toBe('');
    expect(d!.deadline!.getTime()).toBeGreaterThan(Date.now());

    expect((await b.api.getJob(id)).state).toBe(JobState.JOB_STATE_ACTIVE);
    worker.ack(d!, { sent: true });
    const [settled] = await worker.waitForSettled(1);
    expect(settled).toMatchObject({ jobId: id, code: 0, state: JobState.JOB_STATE_COMPLETED });
    const job = await b.api.getJob(id);
    expect(job.state).toBe(JobState.JOB_STATE_COMPLETED);
    expect(job.result).toEqual({ sent: true });
    expect(job.finishedAt).toBeDefined();
    worker.end();
    expect((await worker.status).code).toBe(0);
  });

  it('delivers raw JSON payloads to streams that ask for them', async () => {
    const { id } = await b.api.enqueue({ queue: 'raw', payloadJson: Buffer.from('{"big":12345678901234567890}') });
    const worker = b.api.consumer({ queues: ['raw'], rawJsonPayloads: true }, 1);
    const [d] = await worker.waitForDeliveries(1);
    expect(d!.jobId).toBe(id);
    expect(d!.payload).toBeUndefined();
    expect(Buffer.from(d!.payloadJson).toString()).toBe('{"big":12345678901234567890}');
    worker.cancel();
  });
});
