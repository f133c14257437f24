import { describe, expect, it } from 'vitest';
import { JobState } from '../clients/typescript/src/gen/sluice/v1/job.js';
import { brokerPerTestOnTestClock } from './helpers/broker.js';

const fx = brokerPerTestOnTestClock();

describe('WatchJob on a finished job', () => {
  it("shows a completed job without the error of an earlier failed attempt (the history keeps it)", async () => {
    const { id } = await fx.broker.api.enqueue({ queue: 'w', payload: {} });
    const worker = fx.broker.api.consumer({ queues: ['w'] }, 1);
    const [first] = await worker.waitForDeliveries(1);
    worker.nack(first!, 'flaky upstream', { retryAfterMs: 1000, credit: 1 });
    await worker.waitForSettled(1);
    fx.clock.advance(1000);
    const [, second] = await worker.waitForDeliveries(2);
    worker.ack(second!, 'fine', 1);
    await worker.waitForSettled(2);

    const events = await fx.broker.api.watchJob(id);
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ state: JobState.JOB_STATE_COMPLETED, attempt: 2, result: 'fine', error: '' });
    const job = await fx.broker.api.getJob(id);
    expect(job.errors.map((e) => e.message)).toEqual(['flaky upstream']);

    // A dead job's event still carries the error that killed it.
    const { id: doomed } = await fx.broker.api.enqueue({ queue: 'w', payload: {} });
    const [, , d] = await worker.waitForDeliveries(3);
    worker.nack(d!, 'poison', { nonRetryable: true });
    await worker.waitForSettled(3);
    expect((await fx.broker.api.watchJob(doomed))[0]).toMatchObject({ state: JobState.JOB_STATE_DEAD, error: 'poison' });
    worker.cancel();
  });
});
