import { describe, expect, it } from 'vitest';
import { JobState } from '../clients/typescript/src/gen/sluice/v1/job.js';
import type { JobEvent } from '../clients/typescript/src/gen/sluice/v1/producer.js';
import { brokerPerTestOnTestClock } from './helpers/broker.js';
import { TestClock } from './helpers/clock.js';
import { recordReceiveTimes } from './helpers/timing.js';
import { withTimeout } from './helpers/api.js';

// The broker's time is a TestClock: a delayed job becomes due when the test moves the clock,
// so no assertion races a real timer, however busy the machine is.
const fx = brokerPerTestOnTestClock();

/** Real latency allowed between the clock reaching run_at and the delivery arriving: a bound, never a sync point. */
const PROMPT_MS = 1500;

describe('delayed jobs (delay_ms, run_at)', () => {
  it('keeps delayed jobs scheduled until run_at, delivers ready work first, then delivers them promptly', async () => {
    // The worker is connected first, with room for everything: only run_at holds jobs back.
    const worker = fx.broker.api.consumer({ queues: ['later'] }, 4);
    const received = recordReceiveTimes(worker);
    await worker.until(() => worker.subscribed !== undefined, 'subscribed');

    const enqueuedAt = fx.clock.now();
    const delayed = await fx.broker.api.enqueue({ queue: 'later', payload: { kind: 'delay' }, delayMs: 700 });
    const runAtWanted = new Date(enqueuedAt + 1000);
    const timed = await fx.broker.api.enqueue({ queue: 'later', payload: { kind: 'run_at' }, runAt: runAtWanted });
    const ready = await fx.broker.api.enqueue({ queue: 'later', payload: { kind: 'now' } });

    expect(delayed.state).toBe(JobState.JOB_STATE_SCHEDULED);
    expect(timed.state).toBe(JobState.JOB_STATE_SCHEDULED);
    expect(ready.state).toBe(JobState.JOB_STATE_PENDING);

    // run_at is recorded: now + delay_ms for the delayed job, exactly the requested time otherwise.
    const delayedJob = await fx.broker.api.getJob(delayed.id);
    const delayedRunAt = delayedJob.runAt!.getTime();
    expect(delayedRunAt).toBe(enqueuedAt + 700);
    expect(delayedRunAt - delayedJob.createdAt!.getTime()).toBe(700);
    const timedRunAt = (await fx.broker.api.getJob(timed.id)).runAt!.getTime();
    expect(timedRunAt).toBe(runAtWanted.getTime());

    // The ready job, enqueued after the delayed ones, goes first.
    expect((await worker.waitForDeliveries(1))[0]!.jobId).toBe(ready.id);

    // 1 ms before run_at nothing is due. A job enqueued now is a sync point: had the timer
    // promoted the delayed job, it (older) would be delivered before this one.
    fx.clock.advanceTo(delayedRunAt - 1);
    const sentinel = await fx.broker.api.enqueue({ queue: 'later', payload: { kind: 'sentinel' } });
    expect((await worker.waitForDeliveries(2))[1]!.jobId).toBe(sentinel.id);
    expect((await fx.broker.api.getJob(delayed.id)).state).toBe(JobState.JOB_STATE_SCHEDULED);

    // At run_at each one is delivered, promptly after the clock got there (timer-driven, no polling loop).
    for (const [id, runAt, n] of [
      [delayed.id, delayedRunAt, 3],
      [timed.id, timedRunAt, 4],
    ] as const) {
      const movedAt = Date.now();
      fx.clock.advanceTo(runAt);
      const d = (await worker.waitForDeliveries(n))[n - 1]!;
      expect(d.jobId).toBe(id);
      expect(received.get(`${id}#1`)! - movedAt).toBeLessThan(PROMPT_MS);
      // The broker's own record agrees: the attempt started at run_at, not before.
      const job = await fx.broker.api.getJob(id);
      expect(job.state).toBe(JobState.JOB_STATE_ACTIVE);
      expect(job.startedAt!.getTime()).toBeGreaterThanOrEqual(runAt);
      expect(job.attempt).toBe(1);
    }
    expect(worker.deliveries).toHaveLength(4);
    worker.cancel();
  });

  it('moves a scheduled job to pending at run_at by itself, with no worker connected', async () => {
    const { id, state } = await fx.broker.api.enqueue({ queue: 'nobody', payload: {}, delayMs: 300 });
    expect(state).toBe(JobState.JOB_STATE_SCHEDULED);
    const runAt = (await fx.broker.api.getJob(id)).runAt!.getTime();

    const events: { event: JobEvent; receivedAt: number }[] = [];
    const call = fx.broker.clients.producer.watchJob({ id });
    let notify = () => {};
    call.on('data', (event: JobEvent) => {
      events.push({ event, receivedAt: Date.now() });
      notify();
    });
    call.on('error', () => {});
    const eventCount = (n: number) =>
      withTimeout(
        new Promise<void>((resolve) => {
          notify = () => events.length >= n && resolve();
          notify();
        }),
        10_000,
        `${n} WatchJob events`,
      );
    try {
      await eventCount(1);
      expect(events[0]!.event.state).toBe(JobState.JOB_STATE_SCHEDULED);
      const movedAt = Date.now();
      fx.clock.advance(300);
      await eventCount(2);
      const pending = events[1]!;
      expect(pending.event.state).toBe(JobState.JOB_STATE_PENDING);
      expect(pending.event.at!.getTime()).toBe(runAt);
      expect(pending.receivedAt - movedAt).toBeLessThan(PROMPT_MS);
    } finally {
      call.cancel();
    }

    const job = await fx.broker.api.getJob(id);
    expect(job.state).toBe(JobState.JOB_STATE_PENDING);
    expect(job.attempt).toBe(0);
    const q = await fx.broker.api.getQueue('nobody');
    expect(q.counts).toMatchObject({ scheduled: 0, pending: 1 });
  });

  it('treats a run_at in the past as ready now', async () => {
    const { id, state } = await fx.broker.api.enqueue({ queue: 'past', payload: {}, runAt: new Date(fx.clock.now() - 60_000) });
    expect(state).toBe(JobState.JOB_STATE_PENDING);
    const worker = fx.broker.api.consumer({ queues: ['past'] }, 1);
    const [d] = await worker.waitForDeliveries(1);
    expect(d!.jobId).toBe(id);
    worker.cancel();
  });
});
