/**
 * Acceptance 3: the broker is down across three fire times. catch_up=skip creates no job,
 * once creates one (for the latest), all creates three; the run history records each. Also:
 * a forward clock jump is handled the same way, and a restart inside the misfire grace still
 * runs the fire that was due.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { rmSync } from 'node:fs';
import { startTestBroker, tempDir, type TestBroker } from './helpers/broker.js';
import { ManualClock } from './helpers/manual-clock.js';
import { ScheduleApi, fireTimeOf, jobsOf, runClockUntil } from './helpers/schedules.js';
import { CatchUpPolicy } from '../clients/typescript/src/gen/sluice/v1/schedule.js';

const dirs: string[] = [];
let b: TestBroker | undefined;
afterEach(async () => {
  await b?.close();
  b = undefined;
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const at = (s: string) => Date.parse(s);
const iso = (t: number) => new Date(t).toISOString();

describe('catch-up after downtime', () => {
  it('down across 10:05, 10:10 and 10:15: skip creates none, once the latest, all three; history says so', async () => {
    const dir = tempDir();
    dirs.push(dir);
    const clock = new ManualClock(at('2026-06-01T10:01:00Z'));
    b = await startTestBroker({}, { clock, dir });
    const api = new ScheduleApi(b.clients);
    for (const [name, catchUp] of [
      ['skip', CatchUpPolicy.CATCH_UP_POLICY_SKIP],
      ['once', CatchUpPolicy.CATCH_UP_POLICY_ONCE],
      ['all', CatchUpPolicy.CATCH_UP_POLICY_ALL],
    ] as const) {
      await api.create({ spec: { name, cron: '*/5 * * * *', catchUp, job: { queue: `q-${name}` } } });
    }
    await b.close();

    clock.set(at('2026-06-01T10:17:00Z')); // 10:15 is two minutes old: past the 60 s grace
    b = await startTestBroker({}, { clock, dir });
    await b.running.broker.schedules.idle();
    const broker = b.running.broker;
    const api2 = new ScheduleApi(b.clients);

    expect(await jobsOf(broker, 'q-skip')).toHaveLength(0);
    expect((await jobsOf(broker, 'q-once')).map(fireTimeOf)).toEqual(['2026-06-01T10:15:00.000Z']);
    expect((await jobsOf(broker, 'q-all')).map(fireTimeOf)).toEqual(['2026-06-01T10:05:00.000Z', '2026-06-01T10:10:00.000Z', '2026-06-01T10:15:00.000Z']);

    const history = async (name: string) =>
      (await api2.runs(name)).map((r) => ({ fire: r.fireTime!.toISOString(), skipped: r.skipped, job: r.jobId !== '', reason: r.reason }));
    const skip = await history('skip');
    expect(skip.map((r) => [r.fire, r.skipped])).toEqual([
      ['2026-06-01T10:05:00.000Z', true],
      ['2026-06-01T10:10:00.000Z', true],
      ['2026-06-01T10:15:00.000Z', true],
    ]);
    expect(skip[0]!.reason).toMatch(/missed .*catch_up=skip/);
    const once = await history('once');
    expect(once.map((r) => [r.fire, r.skipped, r.job])).toEqual([
      ['2026-06-01T10:05:00.000Z', true, false],
      ['2026-06-01T10:10:00.000Z', true, false],
      ['2026-06-01T10:15:00.000Z', false, true],
    ]);
    const all = await history('all');
    expect(all.map((r) => [r.fire, r.skipped, r.job])).toEqual([
      ['2026-06-01T10:05:00.000Z', false, true],
      ['2026-06-01T10:10:00.000Z', false, true],
      ['2026-06-01T10:15:00.000Z', false, true],
    ]);
    // Every schedule resumes at the next future fire time.
    for (const s of await api2.list()) expect(s.nextFireAt!.toISOString()).toBe('2026-06-01T10:20:00.000Z');

    // And carries on normally afterwards: one more fire each.
    await runClockUntil(clock, broker, at('2026-06-01T10:20:30Z'));
    expect((await jobsOf(broker, 'q-skip')).map(fireTimeOf)).toEqual(['2026-06-01T10:20:00.000Z']);
    expect(await jobsOf(broker, 'q-all')).toHaveLength(4);
  });

  it('a restart inside the misfire grace runs the fire that was due, whatever the policy', async () => {
    const dir = tempDir();
    dirs.push(dir);
    const clock = new ManualClock(at('2026-06-01T10:01:00Z'));
    b = await startTestBroker({}, { clock, dir });
    await new ScheduleApi(b.clients).create({ spec: { name: 'skip', cron: '*/5 * * * *', job: { queue: 'q' } } });
    await b.close();
    clock.set(at('2026-06-01T10:05:20Z'));
    b = await startTestBroker({}, { clock, dir });
    await b.running.broker.schedules.idle();
    expect((await jobsOf(b.running.broker, 'q')).map(fireTimeOf)).toEqual(['2026-06-01T10:05:00.000Z']);
  });

  it('catch_up=all runs at most catch_up_limit fires (the latest) and records the rest', async () => {
    const clock = new ManualClock(at('2026-06-01T10:00:00.500Z'));
    b = await startTestBroker({}, { clock });
    const api = new ScheduleApi(b.clients);
    await api.create({ spec: { name: 'secs', cron: '* * * * * *', catchUp: CatchUpPolicy.CATCH_UP_POLICY_ALL, catchUpLimit: 5, job: { queue: 'q' } } });
    // A forward wall-clock jump of an hour, noticed at the next wake-up.
    await runClockUntil(clock, b.running.broker, at('2026-06-01T10:00:01.000Z'));
    clock.set(at('2026-06-01T11:00:00.200Z'));
    await runClockUntil(clock, b.running.broker, at('2026-06-01T11:00:00.200Z') + 60_000);
    const jobs = (await jobsOf(b.running.broker, 'q')).map(fireTimeOf);
    expect(jobs.slice(0, 6)).toEqual([
      '2026-06-01T10:00:01.000Z',
      iso(at('2026-06-01T10:59:56Z')),
      iso(at('2026-06-01T10:59:57Z')),
      iso(at('2026-06-01T10:59:58Z')),
      iso(at('2026-06-01T10:59:59Z')),
      iso(at('2026-06-01T11:00:00Z')),
    ]);
    const runs = await api.runs('secs');
    const dropped = runs.find((r) => r.skipped)!;
    expect(dropped.fireTime!.toISOString()).toBe('2026-06-01T10:00:02.000Z');
    expect(dropped.reason).toMatch(/catch_up_limit 5/);
    // Fire times are unique in the history.
    const times = runs.map((r) => r.fireTime!.getTime());
    expect(new Set(times).size).toBe(times.length);
  });
});
