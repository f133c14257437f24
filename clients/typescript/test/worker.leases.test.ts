import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startTestBroker, type TestBroker } from '../../../test/helpers/broker.js';
import { JobCancelledError, LeaseLostError, Producer, Worker, type Job, type JobMap, type WorkerOptions } from '../src/index.js';
import { collectUntil } from './helpers.js';

let b: TestBroker;
let producer: Producer;
const workers: Worker[] = [];
beforeEach(async () => {
  b = await startTestBroker();
  producer = new Producer({ address: b.running.address });
});
afterEach(async () => {
  await Promise.all(workers.splice(0).map((w) => w.close({ timeoutMs: 500 })));
  await producer.close();
  await b.close();
});

function start(options: Partial<WorkerOptions<JobMap, string>>): Worker {
  const w = new Worker({ address: b.running.address, queues: ['work'], shutdownSignals: [], handler: () => undefined, ...options });
  workers.push(w);
  void w.run();
  return w;
}

/** Resolves with the handler's abort reason once its signal fires. */
function untilAborted(job: Job): Promise<never> {
  return new Promise((_, reject) => job.signal.addEventListener('abort', () => reject(job.signal.reason), { once: true }));
}

describe('Worker leases', () => {
  it('heartbeats keep a job alive well past its lease timeout', async () => {
    const { id } = await producer.enqueue('work', {}, { leaseTimeout: 400 });
    const aborted: unknown[] = [];
    const w = start({
      handler: async (job) => {
        job.signal.addEventListener('abort', () => aborted.push(job.signal.reason));
        // Run for 4 lease timeouts; heartbeats every 200 ms renew the lease.
        await new Promise((resolve) => setTimeout(resolve, 1600));
        return 'survived';
      },
    });
    await collectUntil(w, 'completed', (items) => items.length >= 1);
    expect(aborted).toEqual([]);
    expect(await producer.getJob(id)).toMatchObject({ state: 'completed', attempt: 1, result: 'survived' });
  });

  it('keeps jobs with different lease timeouts alive together, each on its own heartbeat period', async () => {
    const short = await producer.enqueue('work', { n: 1 }, { leaseTimeout: 300 });
    const long = await producer.enqueue('work', { n: 2 }, { leaseTimeout: 700 });
    const aborted: unknown[] = [];
    const w = start({
      concurrency: 2,
      handler: async (job) => {
        job.signal.addEventListener('abort', () => aborted.push(job.signal.reason));
        await new Promise((resolve) => setTimeout(resolve, 1500));
        return job.id;
      },
    });
    await collectUntil(w, 'completed', (items) => items.length >= 2);
    expect(aborted).toEqual([]);
    for (const { id } of [short, long]) expect(await producer.getJob(id)).toMatchObject({ state: 'completed', attempt: 1, result: id });
  });

  it('lets a handler destructure its controls: progress, extendLease, signal and deadline act on its own job', async () => {
    const { id } = await producer.enqueue('work', {}, { leaseTimeout: 5_000 });
    const seen: { before: number; after: number; aborted: boolean }[] = [];
    const w = start({
      handler: async ({ id: jobId, progress, extendLease, signal, deadline }) => {
        await progress({ step: 1, of: jobId });
        const extended = await extendLease(60_000);
        seen.push({ before: deadline.getTime(), after: extended.getTime(), aborted: signal.aborted });
        return 'done';
      },
    });
    await collectUntil(w, 'completed', (items) => items.length >= 1);
    expect(seen).toHaveLength(1);
    expect(seen[0]!.after).toBeGreaterThan(seen[0]!.before + 50_000);
    expect(seen[0]!.aborted).toBe(false);
    expect(await producer.getJob(id)).toMatchObject({ state: 'completed', progress: { step: 1, of: id }, result: 'done' });
  });

  it('gives a handler that reads its signal only after losing the job a signal already aborted with the reason', async () => {
    const { id } = await producer.enqueue('work', {});
    let lost!: () => void;
    const lostSeen = new Promise<void>((resolve) => (lost = resolve));
    let seen: { aborted: boolean; reason: unknown } | undefined;
    const w = start({
      handler: async (job) => {
        await lostSeen;
        seen = { aborted: job.signal.aborted, reason: job.signal.reason };
      },
    });
    w.on('aborted', () => lost());
    await collectUntil(w, 'active', (items) => items.length >= 1);
    await producer.cancel(id, 'not needed');
    await expect.poll(() => seen).toBeDefined();
    expect(seen!.aborted).toBe(true);
    expect(seen!.reason).toBeInstanceOf(JobCancelledError);
  });

  it('aborts a handler that outlives its lease without heartbeats with "lease lost", and the job runs again', async () => {
    const { id } = await producer.enqueue('work', {}, { leaseTimeout: 150, maxAttempts: 3 });
    const reasons: unknown[] = [];
    const w = start({
      heartbeat: false,
      handler: async (job) => {
        if (job.attempt > 1) return 'second attempt';
        try {
          return await untilAborted(job);
        } catch (reason) {
          reasons.push(reason);
          throw reason;
        }
      },
    });
    const [[, reason] = []] = await collectUntil(w, 'aborted', (items) => items.length >= 1);
    expect(reason).toBeInstanceOf(LeaseLostError);
    expect((reason as LeaseLostError).kind).toBe('lease-lost');
    await collectUntil(w, 'completed', (items) => items.length >= 1);
    expect(reasons).toHaveLength(1);
    expect(await producer.getJob(id)).toMatchObject({ state: 'completed', attempt: 2, result: 'second attempt' });
  });

  it('aborts a running handler with JobCancelledError when the job is cancelled', async () => {
    const { id } = await producer.enqueue('work', {});
    const w = start({ handler: (job) => untilAborted(job) });
    await collectUntil(w, 'active', (items) => items.length >= 1);
    const aborted = collectUntil(w, 'aborted', (items) => items.length >= 1);
    await producer.cancel(id, 'customer left');
    const [[, reason] = []] = await aborted;
    expect(reason).toBeInstanceOf(JobCancelledError);
    expect(await producer.getJob(id)).toMatchObject({ state: 'cancelled' });
  });

  it('extendLease moves the deadline and progress is recorded', async () => {
    const { id } = await producer.enqueue('work', {}, { leaseTimeout: 1000 });
    const w = start({
      heartbeat: false,
      handler: async (job) => {
        const before = job.deadline.getTime();
        const after = await job.extendLease(60_000);
        await job.progress({ step: 1 });
        return { grew: after.getTime() - before > 30_000 };
      },
    });
    await collectUntil(w, 'completed', (items) => items.length >= 1);
    expect(await producer.getJob(id)).toMatchObject({ state: 'completed', result: { grew: true }, progress: { step: 1 } });
  });
});
