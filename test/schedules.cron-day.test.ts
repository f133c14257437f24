/**
 * Acceptance 1: an injected clock runs schedules through simulated days (no real waiting):
 * a `*\/5 * * * *` schedule fires exactly 288 times a day at the expected times, and a
 * Europe/Berlin `30 2 * * *` schedule fires once per day across both DST changes.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { startTestBroker, type TestBroker } from './helpers/broker.js';
import { ManualClock } from './helpers/manual-clock.js';
import { ScheduleApi, fireTimeOf, jobsOf, runClockUntil } from './helpers/schedules.js';

let b: TestBroker | undefined;
afterEach(async () => {
  await b?.close();
  b = undefined;
});

const iso = (t: number) => new Date(t).toISOString();

describe('cron schedules on an injected clock', () => {
  it('*/5 * * * * across a simulated day: exactly 288 jobs at the expected fire times', async () => {
    const dayStart = Date.parse('2026-06-01T00:00:00.000Z');
    const clock = new ManualClock(dayStart - 1);
    b = await startTestBroker({ synchronous: 'OFF' }, { clock });
    const api = new ScheduleApi(b.clients);
    const created = await api.create({ spec: { name: 'every-5', cron: '*/5 * * * *', job: { queue: 'reports', payload: { kind: 'usage' } }, historyLimit: 1000 } });
    expect(created.nextFireAt!.toISOString()).toBe(iso(dayStart));

    await runClockUntil(clock, b.running.broker, dayStart + 24 * 3600_000 - 1);

    const jobs = await jobsOf(b.running.broker, 'reports');
    const expected = Array.from({ length: 288 }, (_, i) => iso(dayStart + i * 5 * 60_000));
    expect(jobs.map(fireTimeOf)).toEqual(expected);
    // Each job was created at its fire time (the clock stood at the timer's time).
    expect(jobs.map((j) => iso(j.created_at))).toEqual(expected);
    for (const j of jobs) {
      const meta = JSON.parse(j.metadata!) as Record<string, string>;
      expect(meta['sluice.schedule_id']).toBe(created.id);
      expect(meta['sluice.fire_kind']).toBe('scheduled');
      expect(JSON.parse(j.payload)).toEqual({ kind: 'usage' });
    }
    const runs = await api.runs('every-5');
    expect(runs).toHaveLength(288);
    expect(runs.every((r) => !r.skipped)).toBe(true);
    expect(runs.map((r) => r.jobId)).toEqual(jobs.map((j) => j.id));
    const after = await api.get({ name: 'every-5', upcomingCount: 3 });
    expect(after.lastFireAt!.toISOString()).toBe(expected[287]);
    expect(after.upcoming.map((d) => d.toISOString())).toEqual([iso(dayStart + 86_400_000), iso(dayStart + 86_400_000 + 300_000), iso(dayStart + 86_400_000 + 600_000)]);
  });

  it('Europe/Berlin 30 2 * * * fires once per day across spring-forward and fall-back', async () => {
    // 2026: clocks go forward on 29 March (02:00 -> 03:00) and back on 25 October (03:00 -> 02:00).
    const clock = new ManualClock(Date.parse('2026-03-26T12:00:00Z'));
    b = await startTestBroker({ synchronous: 'OFF' }, { clock });
    const api = new ScheduleApi(b.clients);
    await api.create({ spec: { name: 'berlin', cron: '30 2 * * *', timezone: 'Europe/Berlin', job: { queue: 'berlin' } } });
    await runClockUntil(clock, b.running.broker, Date.parse('2026-04-01T00:00:00Z'));
    expect((await jobsOf(b.running.broker, 'berlin')).map(fireTimeOf)).toEqual([
      '2026-03-27T01:30:00.000Z', // 02:30 CET
      '2026-03-28T01:30:00.000Z',
      '2026-03-29T01:00:00.000Z', // 02:30 does not exist that day: once, at 03:00 CEST
      '2026-03-30T00:30:00.000Z', // 02:30 CEST
      '2026-03-31T00:30:00.000Z',
    ]);
  });

  it('Europe/Berlin 30 2 * * * fires once (not twice) on the fall-back day', async () => {
    const clock = new ManualClock(Date.parse('2026-10-22T12:00:00Z'));
    b = await startTestBroker({ synchronous: 'OFF' }, { clock });
    const api = new ScheduleApi(b.clients);
    await api.create({ spec: { name: 'berlin', cron: '30 2 * * *', timezone: 'Europe/Berlin', job: { queue: 'berlin' } } });
    await runClockUntil(clock, b.running.broker, Date.parse('2026-10-28T00:00:00Z'));
    expect((await jobsOf(b.running.broker, 'berlin')).map(fireTimeOf)).toEqual([
      '2026-10-23T00:30:00.000Z', // 02:30 CEST
      '2026-10-24T00:30:00.000Z',
      '2026-10-25T00:30:00.000Z', // 02:30 happens twice that day: once, at the first
      '2026-10-26T01:30:00.000Z', // 02:30 CET
      '2026-10-27T01:30:00.000Z',
    ]);
  });
});
