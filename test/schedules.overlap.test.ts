/**
 * Acceptance 4: overlap=skip creates no job while the previous fire's job is still active,
 * and the history says why; overlap=allow creates it; queue_one keeps at most one waiting.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { startTestBroker, type TestBroker } from './helpers/broker.js';
import { ManualClock } from './helpers/manual-clock.js';
import { ScheduleApi, fireTimeOf, jobsOf, runClockUntil } from './helpers/schedules.js';
import { OverlapPolicy } from '../clients/typescript/src/gen/sluice/v1/schedule.js';
import { JobState } from '../clients/typescript/src/gen/sluice/v1/job.js';

let b: TestBroker | undefined;
afterEach(async () => {
  await b?.close();
  b = undefined;
});

const at = (s: string) => Date.parse(s);

describe('overlap policy', () => {
  it('skip: no job while the previous one is active (recorded with the reason); allow: a job regardless', async () => {
    const clock = new ManualClock(at('2026-06-01T10:00:30Z'));
    b = await startTestBroker({}, { clock });
    const api = new ScheduleApi(b.clients);
    await api.create({ spec: { name: 'skipper', cron: '* * * * *', overlap: OverlapPolicy.OVERLAP_POLICY_SKIP, job: { queue: 'skipq', leaseTimeoutMs: 3_600_000 } } });
    await api.create({ spec: { name: 'allower', cron: '* * * * *', overlap: OverlapPolicy.OVERLAP_POLICY_ALLOW, job: { queue: 'allowq', leaseTimeoutMs: 3_600_000 } } });

    await runClockUntil(clock, b.running.broker, at('2026-06-01T10:01:10Z'));
    // Lease both 10:01 jobs to a worker: they are active.
    const worker = b.api.consumer({ queues: ['skipq', 'allowq'], workerId: 'w1' }, 10);
    const [d1, d2] = await worker.waitForDeliveries(2);
    expect((await b.api.getJob(d1!.jobId)).state).toBe(JobState.JOB_STATE_ACTIVE);

    await runClockUntil(clock, b.running.broker, at('2026-06-01T10:02:10Z'));
    const broker = b.running.broker;
    expect((await jobsOf(broker, 'skipq')).map(fireTimeOf)).toEqual(['2026-06-01T10:01:00.000Z']);
    expect((await jobsOf(broker, 'allowq')).map(fireTimeOf)).toEqual(['2026-06-01T10:01:00.000Z', '2026-06-01T10:02:00.000Z']);
    const runs = await api.runs('skipper');
    expect(runs.map((r) => [r.fireTime!.toISOString(), r.skipped])).toEqual([
      ['2026-06-01T10:01:00.000Z', false],
      ['2026-06-01T10:02:00.000Z', true],
    ]);
    expect(runs[1]!.reason).toMatch(/^overlap=skip: job .* \(fire time 2026-06-01T10:01:00.000Z\) is still active$/);
    expect(runs[0]!.jobState).toBe(JobState.JOB_STATE_ACTIVE);

    // Once the job finishes, the next fire runs again; the history shows its outcome.
    const skipDelivery = [d1!, d2!].find((d) => d.queue === 'skipq')!;
    clock.set(at('2026-06-01T10:02:40Z'));
    worker.ack(skipDelivery, { ok: true });
    await worker.waitForSettled(1);
    await runClockUntil(clock, broker, at('2026-06-01T10:03:10Z'));
    expect((await jobsOf(broker, 'skipq')).map(fireTimeOf)).toEqual(['2026-06-01T10:01:00.000Z', '2026-06-01T10:03:00.000Z']);
    const first = (await api.runs('skipper'))[0]!;
    expect(first.jobState).toBe(JobState.JOB_STATE_COMPLETED);
    expect(first.finishedAt!.toISOString()).toBe('2026-06-01T10:02:40.000Z');
    expect(first.durationMs).toBe(at('2026-06-01T10:02:40Z') - first.startedAt!.getTime());
    worker.cancel();
  });

  it('queue_one: one job waits behind the running one, further fires are skipped', async () => {
    const clock = new ManualClock(at('2026-06-01T10:00:30Z'));
    b = await startTestBroker({}, { clock });
    const api = new ScheduleApi(b.clients);
    await api.create({ spec: { name: 'q1', cron: '* * * * *', overlap: OverlapPolicy.OVERLAP_POLICY_QUEUE_ONE, job: { queue: 'q1', leaseTimeoutMs: 3_600_000 } } });
    await runClockUntil(clock, b.running.broker, at('2026-06-01T10:01:10Z'));
    const worker = b.api.consumer({ queues: ['q1'], workerId: 'w1' }, 1);
    await worker.waitForDeliveries(1);
    await runClockUntil(clock, b.running.broker, at('2026-06-01T10:03:10Z'));
    const runs = await api.runs('q1');
    expect(runs.map((r) => [r.fireTime!.toISOString(), r.skipped])).toEqual([
      ['2026-06-01T10:01:00.000Z', false],
      ['2026-06-01T10:02:00.000Z', false],
      ['2026-06-01T10:03:00.000Z', true],
    ]);
    expect(runs[1]!.jobState).toBe(JobState.JOB_STATE_PENDING);
    expect(runs[2]!.reason).toMatch(/^overlap=queue_one: one run is already waiting/);
    worker.cancel();
  });
});
