import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { JobState } from '../clients/typescript/src/gen/sluice/v1/job.js';
import { startTestBroker, type TestBroker } from './helpers/broker.js';
import { recordReceiveTimes, watchUntil } from './helpers/timing.js';

let b: TestBroker;
beforeEach(async () => {
  b = await startTestBroker();
});
afterEach(async () => {
  await b.close();
});

/** Latency allowed between run_at and the delivery arriving: a bound, never a sync point. */
const PROMPT_MS = 1500;

describe('delayed jobs (delay_ms, run_at)', () => {
  it('keeps delayed jobs scheduled until run_at, delivers ready work first, then delivers them promptly', async () => {
    // The worker is connected first, with room for everything: only run_at holds jobs back.
    const worker = b.api.consumer({ queues: ['later'] }, 3);
    const received = recordReceiveTimes(worker);
    await worker.until(() => worker.subscribed !== undefined, 'subscribed');

    const beforeEnqueue = Date.now();
    const delayed = await b.api.enqueue({ queue: 'later', payload: { kind: 'delay' }, delayMs: 700 });
    const runAtWanted = new Date(Date.now() + 1000);
    const timed = await b.api.enqueue({ queue: 'later', payload: { kind: 'run_at' }, runAt: runAtWanted });
    const ready = await b.api.enqueue({ queue: 'later', payload: { kind: 'now' } });

    expect(delayed.state).toBe(JobState.JOB_STATE_SCHEDULED);
    expect(timed.state).toBe(JobState.JOB_STATE_SCHEDULED);
    expect(ready.state).toBe(JobState.JOB_STATE_PENDING);

    // run_at is recorded: now + delay_ms for the delayed job, exactly the requested time otherwise.
    const delayedJob = await b.api.getJob(delayed.id);
    const delayedRunAt = delayedJob.runAt!.getTime();
    expect(delayedRunAt - delayedJob.createdAt!.getTime()).toBe(700);
    expect(delayedRunAt).toBeGreaterThanOrEqual(beforeEnqueue + 700);
    const timedRunAt = (await b.api.getJob(timed.id)).runAt!.getTime();
    expect(timedRunAt).toBe(runAtWanted.getTime());

    const deliveries = await worker.waitForDeliveries(3, 10_000);
    // The ready job, enqueued after the delayed ones, went first; then by run_at.
    expect(deliveries.map((d) => d.jobId)).toEqual([ready.id, delayed.id, timed.id]);

    for (const [id, runAt] of [
      [delayed.id, delayedRunAt],
      [timed.id, timedRunAt],
    ] as const) {
      const at = received.get(`${id}#1`)!;
      // Not before run_at (recorded times, not a sleep) ...
      expect(at).toBeGreaterThanOrEqual(runAt);
      // ... and promptly after it (timer-driven, no polling loop).
      expect(at - runAt).toBeLessThan(PROMPT_MS);
      // The broker's own record agrees: the attempt started at or after run_at.
      const job = await b.api.getJob(id);
      expect(job.state).toBe(JobState.JOB_STATE_ACTIVE);
      expect(job.startedAt!.getTime()).toBeGreaterThanOrEqual(runAt);
      expect(job.attempt).toBe(1);
    }
    worker.cancel();
  });

  it('moves a scheduled job to pending at run_at by itself, with no worker connected', async () => {
    const { id, state } = await b.api.enqueue({ queue: 'nobody', payload: {}, delayMs: 300 });
    expect(state).toBe(JobState.JOB_STATE_SCHEDULED);
    const runAt = (await b.api.getJob(id)).runAt!.getTime();

    const events = await watchUntil(b.clients, id, (e) => e.state === JobState.JOB_STATE_PENDING);
    expect(events[0]!.event.state).toBe(JobState.JOB_STATE_SCHEDULED);
    const pending = events[events.length - 1]!;
    expect(pending.event.at!.getTime()).toBeGreaterThanOrEqual(runAt);
    expect(pending.receivedAt - runAt).toBeLessThan(PROMPT_MS);

    const job = await b.api.getJob(id);
    expect(job.state).toBe(JobState.JOB_STATE_PENDING);
    expect(job.attempt).toBe(0);
    const q = await b.api.getQueue('nobody');
    expect(q.counts).toMatchObject({ scheduled: 0, pending: 1 });
  });

  it('treats a run_at in the past as ready now', async () => {
    const { id, state } = await b.api.enqueue({ queue: 'past', payload: {}, runAt: new Date(Date.now() - 60_000) });
    expect(state).toBe(JobState.JOB_STATE_PENDING);
    const worker = b.api.consumer({ queues: ['past'] }, 1);
    const [d] = await worker.waitForDeliveries(1);
    expect(d!.jobId).toBe(id);
    worker.cancel();
  });
});
