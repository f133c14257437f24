import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startTestBroker, type TestBroker } from '../../../test/helpers/broker.js';
import { TestClock } from '../../../test/helpers/clock.js';
import { Producer, RetryAfterError, Worker } from '../src/index.js';
import { collectUntil } from './helpers.js';

// The broker runs on a TestClock: the retry comes when the test moves time, not after a sleep.
let b: TestBroker;
let clock: TestClock;
let producer: Producer;
let worker: Worker<any, any> | undefined;
beforeEach(async () => {
  clock = new TestClock();
  b = await startTestBroker({}, { clock });
  producer = new Producer({ address: b.running.address });
});
afterEach(async () => {
  await worker?.close({ timeoutMs: 500 });
  await producer.close();
  await b.close();
});

describe('RetryAfterError', () => {
  it('retries the job after exactly the delay the handler asked for, ignoring the backoff policy', async () => {
    const { id } = await producer.enqueue('mail', {}, { maxAttempts: 3, backoff: { initialMs: 10, jitter: 0.5 } });
    worker = new Worker({
      address: b.running.address,
      queues: ['mail'],
      shutdownSignals: [],
      handler: (job) => {
        if (job.attempt === 1) throw new RetryAfterError(90_000, 'provider said 429, Retry-After: 90');
        return 'sent';
      },
    });
    const failed = collectUntil(worker, 'failed', (items) => items.length >= 1);
    void worker.run();
    const [[, error, state]] = (await failed) as [[unknown, Error, string]];
    expect(error).toBeInstanceOf(RetryAfterError);
    expect(state).toBe('scheduled');

    const waiting = await producer.getJob(id);
    expect(waiting).toMatchObject({ state: 'scheduled', attempt: 1 });
    expect(waiting.errors[0]).toMatchObject({ attempt: 1, message: 'provider said 429, Retry-After: 90' });
    expect(waiting.runAt!.getTime() - waiting.errors[0]!.at!.getTime()).toBe(90_000);

    const completed = collectUntil(worker, 'completed', (items) => items.length >= 1);
    clock.advance(90_000);
    await completed;
    expect(await producer.getJob(id)).toMatchObject({ state: 'completed', attempt: 2, result: 'sent' });
  });

  it('refuses a delay that is not a positive number', () => {
    expect(() => new RetryAfterError(0)).toThrow(RangeError);
    expect(() => new RetryAfterError(Number.NaN)).toThrow(RangeError);
  });
});
