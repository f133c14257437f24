/**
 * `sluice schedules | schedule …` through the compiled binary against a real broker
 * (`npm run build` first when running this file alone).
 */
import { describe, expect, it } from 'vitest';
import { cliTestBroker, parseJson, type CliResult } from './helpers/cli.js';

// One broker for the file; `sluice` runs the compiled CLI against it.
const cli = cliTestBroker();
const sluice = cli.sluice;

const ok = (r: CliResult) => {
  expect(r.code, `exit code; stderr: ${r.stderr}`).toBe(0);
  return r;
};

interface ScheduleJson {
  id: string;
  name: string;
  cron: string;
  timezone: string;
  paused: boolean;
  queue: string;
  payload: unknown;
  catchUp: string;
  overlap: string;
  nextFireAt: string | null;
  upcoming: string[];
}

describe('sluice schedules and schedule create|upsert|show|runs|trigger|pause|resume|delete', () => {
  it('manages a schedule end to end, in text and --json, as the broker then reports', async () => {
    const created = ok(await sluice('schedule', 'create', 'cli-invoices', '--cron', '0 2 * * *', '--timezone', 'Europe/Berlin', '--queue', 'billing', '--payload', '{"task":"invoices"}', '--catch-up', 'once', '--overlap', 'skip'));
    expect(created.stdout).toMatch(/^created cli-invoices\n\nschedule\s+cli-invoices\n/);
    expect(created.stdout).toMatch(/cron\s+0 2 \* \* \* \(Europe\/Berlin\)/);

    const dup = await sluice('schedule', 'create', 'cli-invoices', '--cron', '0 2 * * *', '--queue', 'billing');
    expect(dup.code).toBe(1);
    expect(dup.stderr).toMatch(/ALREADY_EXISTS/);

    const upserted = parseJson<{ created: boolean; schedule: ScheduleJson }>(ok(await sluice('schedule', 'upsert', 'cli-invoices', '--cron', '0 3 * * *', '--timezone', 'Europe/Berlin', '--queue', 'billing', '--json')));
    expect(upserted.created).toBe(false);
    expect(upserted.schedule).toMatchObject({ name: 'cli-invoices', cron: '0 3 * * *', timezone: 'Europe/Berlin', queue: 'billing', payload: {}, catchUp: 'skip', overlap: 'allow', paused: false });

    const shown = parseJson<ScheduleJson>(ok(await sluice('schedule', 'show', 'cli-invoices', '--upcoming', '3', '--json')));
    expect(shown.upcoming).toHaveLength(3);
    expect(shown.nextFireAt).toBe(shown.upcoming[0]);

    const list = ok(await sluice('schedules'));
    expect(list.stdout.split('\n')[0]).toMatch(/^SCHEDULE\s+CRON\s+TIMEZONE\s+QUEUE\s+STATUS\s+NEXT FIRE\s+LAST FIRE$/);
    expect(list.stdout).toMatch(/cli-invoices\s+0 3 \* \* \*\s+Europe\/Berlin\s+billing\s+active/);

    expect(ok(await sluice('schedule', 'pause', 'cli-invoices')).stdout).toMatch(/^paused cli-invoices\n[\s\S]*status\s+paused/);
    expect(parseJson<ScheduleJson>(ok(await sluice('schedule', 'resume', 'cli-invoices', '--json'))).paused).toBe(false);

    const jobId = ok(await sluice('schedule', 'trigger', 'cli-invoices')).stdout.trim();
    expect((await cli.broker.api.getJob(jobId)).metadata['sluice.fire_kind']).toBe('manual');
    const runs = parseJson<{ runs: { jobId: string; kind: string; jobState: string }[] }>(ok(await sluice('schedule', 'runs', 'cli-invoices', '--json')));
    expect(runs.runs).toEqual([expect.objectContaining({ jobId, kind: 'manual', jobState: 'pending' })]);
    expect(ok(await sluice('schedule', 'runs', 'cli-invoices')).stdout).toMatch(/^FIRE TIME\s+KIND\s+OUTCOME\s+JOB\s+ATTEMPT\s+DURATION\s+NOTE\n\S+\s+manual\s+pending\s+/);

    expect(ok(await sluice('schedule', 'delete', 'cli-invoices')).stdout).toBe('deleted cli-invoices\n');
    const gone = await sluice('schedule', 'show', 'cli-invoices');
    expect(gone.code).toBe(1);
    expect(gone.stderr).toMatch(/NOT_FOUND/);
  });

  it('bad input: a bad cron is the broker\'s INVALID_ARGUMENT (exit 1); a bad flag value is a usage error (exit 2)', async () => {
    const badCron = await sluice('schedule', 'create', 'cli-bad', '--cron', '61 * * * *', '--queue', 'q');
    expect(badCron.code).toBe(1);
    expect(badCron.stderr).toMatch(/INVALID_ARGUMENT.*cron "61 \* \* \* \*" is not a valid cron expression/);
    const badPolicy = await sluice('schedule', 'create', 'cli-bad', '--cron', '@daily', '--queue', 'q', '--catch-up', 'sometimes');
    expect(badPolicy.code).toBe(2);
    const missing = await sluice('schedule', 'create', 'cli-bad', '--queue', 'q');
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/--cron/);
    expect(parseJson<{ schedules: unknown[] }>(ok(await sluice('schedules', '--json'))).schedules).toEqual([]);
  });
});
