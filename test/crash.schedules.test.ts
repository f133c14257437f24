/**
 * Acceptance 2: crash safety of cron fires. A broker child process is SIGKILLed again and
 * again while an every-second schedule (catch_up=all) fires, at random points, and once by
 * the test hook SLUICE_TEST_CRASH_AT_FIRE, which kills the broker after a fire's job row is
 * inserted and before the schedule is advanced. After each restart on the same file: the
 * schedule's jobs have unique fire times, no second of the covered range is missing, and the
 * run history agrees with the jobs.
 *
 * Runs the compiled broker: `npm test` builds first; run `npm run build` before running this
 * file alone.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Job } from '../clients/typescript/src/gen/sluice/v1/job.js';
import { CatchUpPolicy, type ScheduleRun } from '../clients/typescript/src/gen/sluice/v1/schedule.js';
import { withTimeout, type Api } from './helpers/api.js';
import { tempDir } from './helpers/broker.js';
import { killChildBrokers, startChildBroker, type ChildBroker } from './helpers/child-broker.js';
import { ScheduleApi } from './helpers/schedules.js';

let dir: string | undefined;
afterEach(async () => {
  await killChildBrokers();
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});

async function listAll(api: Api, queue: string): Promise<Job[]> {
  const jobs: Job[] = [];
  let pageToken = '';
  do {
    const page = await api.listJobs({ queue, pageSize: 1000, pageToken });
    jobs.push(...page.jobs);
    pageToken = page.nextPageToken;
  } while (pageToken);
  return jobs;
}

/** Resolves once the schedule has at least `n` runs (checked every 50 ms: a condition, not a delay). */
async function runsAtLeast(api: ScheduleApi, n: number, timeoutMs = 10_000): Promise<ScheduleRun[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const runs = await api.runs('tick');
    if (runs.length >= n) return runs;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${n} runs (have ${runs.length})`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * The invariants, checked on a running broker. It keeps firing while we read: runs are read
 * first and jobs after, so jobs of fires later than the last run read are left out (a fire
 * writes its job and its run in one transaction, in fire-time order).
 */
async function check(child: ChildBroker): Promise<{ runs: number; first: number; last: number }> {
  const runs = await new ScheduleApi(child.clients).runs('tick');
  const lastRead = Math.max(...runs.map((r) => r.fireTime!.getTime()));
  const jobs = (await listAll(child.api, 'tick')).filter((j) => Date.parse(j.metadata['sluice.fire_time']!) <= lastRead);
  expect(runs.filter((r) => r.skipped), 'catch_up=all never skips').toEqual([]);
  const times = runs.map((r) => r.fireTime!.getTime()).sort((a, b) => a - b);
  expect(new Set(times).size, 'one run per fire time').toBe(times.length);
  for (let i = 1; i < times.length; i++) {
    if (times[i]! - times[i - 1]! !== 1000) throw new Error(`fire times missing between ${new Date(times[i - 1]!).toISOString()} and ${new Date(times[i]!).toISOString()}`);
  }
  const jobFires = jobs.map((j) => j.metadata['sluice.fire_time']!);
  expect(new Set(jobFires).size, 'one job per fire time').toBe(jobs.length);
  expect(jobs.length, 'a job for every run, and no job without one').toBe(runs.length);
  const byJob = new Map(jobs.map((j) => [j.id, j]));
  for (const r of runs) {
    const job = byJob.get(r.jobId);
    expect(job, `job ${r.jobId} of the run at ${r.fireTime!.toISOString()}`).toBeDefined();
    expect(job!.metadata['sluice.fire_time']).toBe(r.fireTime!.toISOString());
  }
  return { runs: runs.length, first: times[0]!, last: times[times.length - 1]! };
}

describe('cron fires under SIGKILL', () => {
  it('every-second schedule: unique fire times, none missing, history agrees with jobs after each crash', async () => {
    dir = tempDir('sluice-crash-cron-');
    const dataFile = join(dir, 'sluice.db');
    let child = await startChildBroker({ dataFile, http: false });
    await new ScheduleApi(child.clients).create({
      spec: { name: 'tick', cron: '* * * * * *', catchUp: CatchUpPolicy.CATCH_UP_POLICY_ALL, catchUpLimit: 1000, historyLimit: 100_000, job: { queue: 'tick', payload: { n: 1 } } },
    });
    let runs = (await runsAtLeast(new ScheduleApi(child.clients), 1)).length;
    let hookFired = 0;

    for (let cycle = 0; cycle < 4; cycle++) {
      // Kill at a random point once this broker has fired at least once more.
      runs = (await runsAtLeast(new ScheduleApi(child.clients), runs + 1)).length;
      await new Promise((r) => setTimeout(r, Math.floor(Math.random() * 1200)));
      child.kill('SIGKILL');
      await child.exited;

      if (cycle === 1 || cycle === 3) {
        // The hook: the broker kills itself between a fire's job insert and the schedule update
        // (at its first scheduled fire: the catch-up of the seconds it was down, or the next tick).
        let hooked: ChildBroker | undefined;
        try {
          hooked = await startChildBroker({ dataFile, http: false, env: { SLUICE_TEST_CRASH_AT_FIRE: '1' } });
          const exit = await withTimeout(hooked.exited, 15_000, 'the broker to kill itself at its first fire');
          expect(exit.signal).toBe('SIGKILL');
        } catch (error) {
          // It died while starting (catch-up runs before the listener is up): the same crash.
          if (!hooked) expect((error as Error).message).toMatch(/signal SIGKILL/);
          else throw error;
        }
        hookFired++;
      }

      child = await startChildBroker({ dataFile, http: false });
      const state = await check(child);
      expect(state.runs).toBeGreaterThanOrEqual(runs);
      runs = state.runs;
    }

    expect(hookFired).toBe(2);
    // The covered range spans the whole test (several seconds of fires, across 6 crashes).
    const final = await check(child);
    expect(final.last - final.first).toBeGreaterThanOrEqual(5000);
    await child.close();
    // A bound, not a sync point: ten broker processes start one after the other, which takes
    // a few seconds each on a machine whose cores are saturated (npm run test:stress).
  }, 300_000);
});
