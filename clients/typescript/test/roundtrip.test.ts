import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startTestBroker, type TestBroker } from '../../../test/helpers/broker.js';
import { InvalidArgumentError, NonRetryableError, Producer, Worker, type Job, type JobTypes } from '../src/index.js';
import { collectUntil } from './helpers.js';

interface Jobs {
  email: JobTypes<{ welcome: { to: string }; reset: { to: string; token: string } }>;
  pdf: { reportId: number };
}

let b: TestBroker;
let producer: Producer<Jobs>;
const workers: Worker<Jobs, any>[] = [];
beforeEach(async () => {
  b = await startTestBroker();
  producer = new Producer<Jobs>({ address: b.running.address });
});
afterEach(async () => {
  await Promise.all(workers.splice(0).map((w) => w.close({ timeoutMs: 1000 })));
  await producer.close();
  await b.close();
});

function worker<Q extends keyof Jobs & string>(options: ConstructorParameters<typeof Worker<Jobs, Q>>[0]): Worker<Jobs, Q> {
  const w = new Worker<Jobs, Q>({ address: b.running.address, shutdownSignals: [], reconnect: { initialMs: 20, maxMs: 200 }, ...options });
  workers.push(w);
  void w.run();
  return w;
}

describe('Producer and Worker round trip', () => {
  it('enqueues typed jobs and runs them through typed handlers by job type, storing results', async () => {
    const welcome = await producer.enqueue('email', { to: 'a@b.c' }, { type: 'welcome', metadata: { trace: 't1' } });
    const reset = await producer.enqueue('email', { to: 'x@y.z', token: 'tok' }, { type: 'reset' });
    expect(welcome.state).toBe('pending');
    const seen: string[] = [];
    const w = worker({
      queues: ['email'],
      concurrency: 2,
      handlers: {
        welcome: (job) => {
          seen.push(`welcome:${job.payload.to}:${job.metadata.trace}`);
          return { sent: job.payload.to };
        },
        reset: (job) => {
          seen.push(`reset:${job.payload.token}`);
          return { sent: job.payload.to };
        },
      },
    });
    const completed = await collectUntil(w, 'completed', (items) => items.length >= 2);
    expect(completed.map(([job]) => (job as Job<Jobs, 'email'>).id).sort()).toEqual([welcome.id, reset.id].sort());
    expect(seen.sort()).toEqual(['reset:tok', 'welcome:a@b.c:t1']);
    const stored = await producer.getJob(welcome.id);
    expect(stored).toMatchObject({ state: 'completed', result: { sent: 'a@b.c' }, attempt: 1, type: 'welcome' });
  });

  it('rejects a payload that does not match the queue type at compile time', () => {
    // @ts-expect-error reportId must be a number
    const bad = () => producer.enqueue('pdf', { reportId: 'x' });
    // @ts-expect-error the reset type needs a token
    const bad2 = () => producer.enqueue('email', { to: 'a' }, { type: 'reset' });
    // @ts-expect-error unknown queue
    const bad3 = () => producer.enqueue('nope', {});
    expect([bad, bad2, bad3]).toHaveLength(3);
  });

  it('retries a handler that throws twice and completes it on attempt 3', async () => {
    const { id } = await producer.enqueue('pdf', { reportId: 7 }, { maxAttempts: 5, backoff: { initialMs: 10, maxMs: 20, jitter: 0 } });
    const attempts: number[] = [];
    const w = worker({
      queues: ['pdf'],
      handler: (job) => {
        attempts.push(job.attempt);
        if (job.attempt < 3) throw new Error(`flaky ${job.attempt}`);
        return 'done';
      },
    });
    const failed = collectUntil(w, 'failed', (items) => items.length >= 2);
    await collectUntil(w, 'completed', (items) => items.length >= 1);
    expect(attempts).toEqual([1, 2, 3]);
    expect((await failed).map(([, error, state]) => [(error as Error).message, state])).toEqual([
      ['flaky 1', 'scheduled'],
      ['flaky 2', 'scheduled'],
    ]);
    const job = await producer.getJob(id);
    expect(job).toMatchObject({ state: 'completed', attempt: 3, result: 'done' });
    expect(job.errors.map((e) => e.message)).toEqual(['flaky 1', 'flaky 2']);
  });

  it('dead-letters at once on NonRetryableError', async () => {
    const { id } = await producer.enqueue('pdf', { reportId: 1 }, { maxAttempts: 10 });
    const w = worker({
      queues: ['pdf'],
      handler: () => {
        throw new NonRetryableError('report does not exist');
      },
    });
    const [[, error, state] = []] = await collectUntil(w, 'failed', (items) => items.length >= 1);
    expect(state).toBe('dead');
    expect((error as Error).message).toBe('report does not exist');
    expect(await producer.getJob(id)).toMatchObject({ state: 'dead', attempt: 1, lastError: 'report does not exist' });
  });

  it('respects priorities: a high job enqueued after low ones runs first', async () => {
    await producer.enqueueBatch([
      { queue: 'pdf', payload: { reportId: 1 }, options: { priority: 'low' } },
      { queue: 'pdf', payload: { reportId: 2 }, options: { priority: 'low' } },
      { queue: 'pdf', payload: { reportId: 3 }, options: { priority: 'high' } },
      { queue: 'pdf', payload: { reportId: 4 }, options: { priority: 'critical' } },
    ]);
    const order: number[] = [];
    const w = worker({ queues: ['pdf'], concurrency: 1, handler: (job) => void order.push(job.payload.reportId) });
    await collectUntil(w, 'completed', (items) => items.length >= 4);
    expect(order).toEqual([4, 3, 1, 2]);
  });

  it('shows progress through watch and getJob, and ends the watch on completion', async () => {
    const { id } = await producer.enqueue('pdf', { reportId: 9 });
    const events: { state: string; progress: unknown; result: unknown }[] = [];
    const watching = (async () => {
      for await (const e of producer.watch(id)) events.push({ state: e.state, progress: e.progress, result: e.result });
    })();
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const progressed: unknown[] = [];
    worker({
      queues: ['pdf'],
      handler: async (job) => {
        await job.progress({ pct: 50 });
        progressed.push((await producer.getJob(job.id)).progress);
        await gate;
        return { pages: 3 };
      },
    });
    await expect.poll(() => progressed.length).toBe(1);
    expect(progressed[0]).toEqual({ pct: 50 });
    release();
    await watching;
    expect(events[0]!.state).toBe('pending');
    expect(events).toContainEqual({ state: 'active', progress: { pct: 50 }, result: null });
    expect(events.at(-1)).toMatchObject({ state: 'completed', result: { pages: 3 } });
  });

  it('rejects an invalid job with its own typed error while the rest of its batch succeeds', async () => {
    const calls = Array.from({ length: 1000 }, (_, i) =>
      i === 500 ? producer.enqueue('pdf', { reportId: i }, { leaseTimeout: 1 }) : producer.enqueue('pdf', { reportId: i }),
    );
    const results = await Promise.allSettled(calls);
    const rejected = results.filter((r) => r.status === 'rejected');
    expect(rejected).toHaveLength(1);
    expect(results[500]!.status).toBe('rejected');
    expect((results[500] as PromiseRejectedResult).reason).toBeInstanceOf(InvalidArgumentError);
    expect(new Set(results.flatMap((r) => (r.status === 'fulfilled' ? [r.value.id] : []))).size).toBe(999);
    expect(producer.batchRpcCount).toBeLessThanOrEqual(10);
    const queue = await b.api.getQueue('pdf');
    expect(queue.counts?.pending).toBe(999);
  });

  it('rejects run() with a typed error when the broker refuses the subscription, instead of retrying forever', async () => {
    const w = new Worker<Jobs, any>({ address: b.running.address, queues: ['not a valid queue!'], shutdownSignals: [], handler: () => undefined });
    w.on('error', () => undefined);
    await expect(w.run()).rejects.toBeInstanceOf(InvalidArgumentError);
    expect(w.state).toBe('closed');
  });

  it('splits coalesced enqueues by payload bytes so big payloads stay under message limits', async () => {
    const small = new Producer<Jobs>({ address: b.running.address, batching: { maxBatchBytes: 10_000 } });
    const big = 'x'.repeat(3_000);
    const results = await Promise.all(Array.from({ length: 10 }, (_, i) => small.enqueue('email', { to: big, name: String(i) } as never, { type: 'welcome' })));
    expect(results).toHaveLength(10);
    // 3 KB payloads, 10 KB per batch: 4 RPCs at least (3 + 3 + 3 + 1).
    expect(small.batchRpcCount).toBeGreaterThanOrEqual(4);
    await small.close();
  });
});
