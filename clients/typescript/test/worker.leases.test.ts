import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startTestBroker, type TestBroker } from '../../../test/helpers/broker.js';
import { JobCancelledError, LeaseLostError, Producer, Worker, type Job, type JobMap, type WorkerOptions } from '../src/index.js';
import { TestClock } from '../../../test/helpers/clock.js';
import { collectUntil, gate } from './helpers.js';

// The broker's leases expire only when the test moves its clock; the worker's heartbeats run on
// real time. So "heartbeats keep the job alive" means: each time one arrived, the test moved the
// broker's time 2/3 of a lease further, which would have expired the job without it.
let b: TestBroker;
let clock: TestClock;
let producer: Producer;
const workers: Worker[] = [];
beforeEach(async () => {
  clock = new TestClock();
  b = await startTestBroker({}, { clock });
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

/**
 * `rounds` times: moves the broker's clock by `stepMs`, then waits until each job's lease was
 * renewed by a heartbeat sent after the move (deadline = the broker's time + its lease). A job
 * without heartbeats would expire as soon as the steps add up to its lease timeout.
 */
async function outliveLeases(jobs: () => { job: Job; leaseMs: number }[], stepMs: number, rounds: number): Promise<void> {
  for (let i = 0; i < rounds; i++) {
    clock.advance(stepMs);
    const now = clock.now();
    await expect
      .poll(() => jobs().every(({ job, leaseMs }) => job.signal.aborted || job.deadline.getTime() >= now + leaseMs), { timeout: 10_000, interval: 5 })
      .toBe(true);
  }
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
        // Four lease timeouts of broker time; heartbeats every 200 ms (real) renew the lease.
        await outliveLeases(() => [{ job, leaseMs: 400 }], 250, 7);
        if (job.signal.aborted) throw job.signal.reason;
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
    const running: { job: Job; leaseMs: number }[] = [];
    const release = gate();
    const w = start({
      concurrency: 2,
      handler: async (job) => {
        job.signal.addEventListener('abort', () => aborted.push(job.signal.reason));
        running.push({ job, leaseMs: job.id === short.id ? 300 : 700 });
        await release.promise;
        if (job.signal.aborted) throw job.signal.reason;
        return job.id;
      },
    });
    await expect.poll(() => running.length).toBe(2);
    // 200 ms steps: under either lease, so each job only has to beat once per step.
    await outliveLeases(() => running, 200, 6);
    release.open();
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
    const abortedOnce = collectUntil(w, 'aborted', (items) => items.length >= 1);
    await collectUntil(w, 'active', (items) => items.length >= 1);
    clock.advance(150);
    const [[, reason] = []] = await abortedOnce;
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
