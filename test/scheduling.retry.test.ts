import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { JobState } from '../clients/typescript/src/gen/sluice/v1/job.js';
import { SettleResult_Kind } from '../clients/typescript/src/gen/sluice/v1/worker.js';
import type { TestConsumer } from './helpers/api.js';
import { startTestBroker, type TestBroker } from './helpers/broker.js';
import { recordReceiveTimes } from './helpers/timing.js';

let b: TestBroker;
beforeEach(async () => {
  b = await startTestBroker();
});
afterEach(async () => {
  await b.close();
});

/** Latency allowed between a retry's run_at and its redelivery arriving (a bound only). */
const PROMPT_MS = 1500;

/** Waits for the n-th nack/ack settle result (1-based count) on a stream. */
async function settledAt(worker: TestConsumer, n: number) {
  return (await worker.waitForSettled(n))[n - 1]!;
}

describe('retry with exponential backoff and jitter', () => {
  it('retries a failing job with growing, jittered delays and dead-letters it after max_attempts', async () => {
    const policy = { initialMs: 100, multiplier: 2, maxMs: 2000, jitter: 0.3 };
    const { id } = await b.api.enqueue({ queue: 'flaky', payload: { x: 1 }, maxAttempts: 4, retry: policy });
    const worker = b.api.consumer({ queues: ['flaky'] }, 1);
    const received = recordReceiveTimes(worker);

    /** Scheduled backoff (run_at - failure time) chosen by the broker after each failed attempt 1..3. */
    const scheduled: number[] = [];
    for (let attempt = 1; attempt <= 4; attempt++) {
      const d = (await worker.waitForDeliveries(attempt))[attempt - 1]!;
      expect(d.jobId).toBe(id);
      expect(d.attempt).toBe(attempt);
      expect(d.maxAttempts).toBe(4);

      if (attempt > 1) {
        // The redelivery came from the timer: not before run_at, and promptly after.
        const prev = await b.api.getJob(id);
        const failedAt = prev.errors[attempt - 2]!.at!.getTime();
        const runAt = prev.runAt!.getTime();
        const gotAt = received.get(`${id}#${attempt}`)!;
        expect(gotAt).toBeGreaterThanOrEqual(runAt);
        expect(gotAt - failedAt).toBeGreaterThanOrEqual(scheduled[attempt - 2]!);
        expect(gotAt - runAt).toBeLessThan(PROMPT_MS);
      }

      // Fail the attempt, granting credit for the retry in the same message.
      worker.nack(d, `boom #${attempt}`, { credit: 1 });
      const s = await settledAt(worker, attempt);
      expect(s).toMatchObject({ jobId: id, kind: SettleResult_Kind.KIND_NACK, code: 0 });

      // Read the decision right after the settle, before the next nack can change run_at.
      const job = await b.api.getJob(id);
      expect(job.errors).toHaveLength(attempt);
      expect(job.lastError).toBe(`boom #${attempt}`);
      if (attempt < 4) {
        expect(s.state).toBe(JobState.JOB_STATE_SCHEDULED);
        scheduled.push(job.runAt!.getTime() - job.errors[attempt - 1]!.at!.getTime());
      } else {
        expect(s.state).toBe(JobState.JOB_STATE_DEAD);
      }
    }

    // Each delay is base * multiplier^(n-1), spread by at most +/-30% (rounding allows 1 ms).
    const bases = [100, 200, 400];
    scheduled.forEach((delay, i) => {
      expect(delay, `retry ${i + 1} delay`).toBeGreaterThanOrEqual(Math.floor(bases[i]! * 0.7) - 1);
      expect(delay, `retry ${i + 1} delay`).toBeLessThanOrEqual(Math.ceil(bases[i]! * 1.3) + 1);
    });
    // The jitter ranges do not overlap, so the delays strictly grow.
    expect(scheduled[0]!).toBeLessThan(scheduled[1]!);
    expect(scheduled[1]!).toBeLessThan(scheduled[2]!);
    // Jitter is really applied: not every delay is exactly the base (chance ~1e-6 otherwise).
    expect(scheduled.some((delay, i) => delay !== bases[i])).toBe(true);

    const dead = await b.api.getJob(id);
    expect(dead.state).toBe(JobState.JOB_STATE_DEAD);
    expect(dead.attempt).toBe(4);
    expect(dead.lastError).toBe('boom #4');
    expect(dead.finishedAt).toBeDefined();
    expect(dead.errors.map((e) => [e.attempt, e.message, e.nonRetryable])).toEqual([
      [1, 'boom #1', false],
      [2, 'boom #2', false],
      [3, 'boom #3', false],
      [4, 'boom #4', false],
    ]);
    const times = dead.errors.map((e) => e.at!.getTime());
    expect([...times].sort((x, y) => x - y)).toEqual(times);
    expect(dead.payload).toEqual({ x: 1 });

    const dlq = await b.api.listDeadLetters({ queue: 'flaky' });
    expect(dlq.jobs.map((j) => j.id)).toEqual([id]);
    expect(dlq.jobs[0]!.errors).toHaveLength(4);
    // No fifth delivery: the dead job stays dead even though the stream has credit.
    expect(worker.deliveries).toHaveLength(4);
    worker.cancel();
  });

  it('sends a non-retryable failure straight to the dead letter queue after attempt 1', async () => {
    const { id } = await b.api.enqueue({ queue: 'fatal', payload: {}, maxAttempts: 5, retry: { initialMs: 10, multiplier: 1, maxMs: 10, jitter: 0 } });
    const worker = b.api.consumer({ queues: ['fatal'] }, 1);
    const [d] = await worker.waitForDeliveries(1);
    worker.nack(d!, 'invalid address', { nonRetryable: true, credit: 1 });
    const s = await settledAt(worker, 1);
    expect(s).toMatchObject({ code: 0, state: JobState.JOB_STATE_DEAD });

    const job = await b.api.getJob(id);
    expect(job.state).toBe(JobState.JOB_STATE_DEAD);
    expect(job.attempt).toBe(1);
    expect(job.lastError).toBe('invalid address');
    expect(job.errors).toHaveLength(1);
    expect(job.errors[0]).toMatchObject({ attempt: 1, message: 'invalid address', nonRetryable: true });
    expect((await b.api.listDeadLetters({ queue: 'fatal' })).jobs.map((j) => j.id)).toEqual([id]);
    expect(worker.deliveries).toHaveLength(1);
    worker.cancel();
  });

  it('applies the queue retry policy (UpdateQueue) to jobs that set none, and a job policy over it', async () => {
    const q = await b.api.updateQueue({ queue: 'policy', maxAttempts: 3, retry: { initialMs: 50, multiplier: 3, maxMs: 1000, jitter: 0 }, createIfMissing: true });
    expect(q.retry).toEqual({ initialMs: 50, multiplier: 3, maxMs: 1000, jitter: 0 });
    expect(q.maxAttempts).toBe(3);

    const plain = (await b.api.enqueue({ queue: 'policy', payload: 'queue policy' })).id;
    const own = (await b.api.enqueue({ queue: 'policy', payload: 'own policy', retry: { initialMs: 300, multiplier: 1, maxMs: 300, jitter: 0 } })).id;
    const plainJob = await b.api.getJob(plain);
    expect(plainJob.retry).toBeUndefined();
    expect(plainJob.maxAttempts).toBe(3);

    const worker = b.api.consumer({ queues: ['policy'] }, 2);
    await worker.waitForDeliveries(2);
    const delays = new Map<string, number[]>([
      [plain, []],
      [own, []],
    ]);
    // Nack every attempt until both jobs are dead: plain after 3 (queue default), own after 3 too.
    let handled = 0;
    let settles = 0;
    while (handled < 6) {
      await worker.waitForDeliveries(handled + 1);
      const d = worker.deliveries[handled++]!;
      worker.nack(d, `fail ${d.attempt}`, { credit: 1 });
      const s = await settledAt(worker, ++settles);
      expect(s.code).toBe(0);
      const job = await b.api.getJob(d.jobId);
      if (s.state === JobState.JOB_STATE_SCHEDULED) {
        delays.get(d.jobId)!.push(job.runAt!.getTime() - job.errors[job.errors.length - 1]!.at!.getTime());
      } else {
        expect(s.state).toBe(JobState.JOB_STATE_DEAD);
        expect(job.attempt).toBe(3);
      }
    }
    // Queue policy, no jitter: 50, then 50 * 3.
    expect(delays.get(plain)).toEqual([50, 150]);
    // The job's own policy wins over the queue's.
    expect(delays.get(own)).toEqual([300, 300]);
    worker.cancel();
  });

  it('lets a nack choose its own retry delay with retry_after_ms', async () => {
    const { id } = await b.api.enqueue({ queue: 'after', payload: {}, maxAttempts: 3, retry: { initialMs: 100, multiplier: 2, maxMs: 2000, jitter: 0.3 } });
    const worker = b.api.consumer({ queues: ['after'] }, 1);
    const received = recordReceiveTimes(worker);
    const [d] = await worker.waitForDeliveries(1);
    worker.nack(d!, 'rate limited upstream', { retryAfterMs: 250, credit: 1 });
    expect(await settledAt(worker, 1)).toMatchObject({ code: 0, state: JobState.JOB_STATE_SCHEDULED });

    const job = await b.api.getJob(id);
    const failedAt = job.errors[0]!.at!.getTime();
    const runAt = job.runAt!.getTime();
    // Exactly the requested delay: no policy, no jitter.
    expect(runAt - failedAt).toBe(250);

    const [, again] = await worker.waitForDeliveries(2);
    expect(again).toMatchObject({ jobId: id, attempt: 2 });
    const gotAt = received.get(`${id}#2`)!;
    expect(gotAt).toBeGreaterThanOrEqual(runAt);
    expect(gotAt - runAt).toBeLessThan(PROMPT_MS);
    worker.ack(again!);
    expect(await settledAt(worker, 2)).toMatchObject({ code: 0, state: JobState.JOB_STATE_COMPLETED });
    worker.cancel();
  });
});
