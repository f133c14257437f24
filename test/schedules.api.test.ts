/**
 * Acceptance 5 and 6: pause/resume, delete, trigger-now and upsert-by-name over gRPC and
 * through the client's Schedules class; bad input gets a clear status and stores nothing.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { status } from '@grpc/grpc-js';
import { startTestBroker, type TestBroker } from './helpers/broker.js';
import { ManualClock } from './helpers/manual-clock.js';
import { ScheduleApi, fireTimeOf, jobsOf, runClockUntil } from './helpers/schedules.js';
import { Schedules } from '../clients/typescript/src/schedules.js';
import { Admin } from '../clients/typescript/src/admin.js';
import { AlreadyExistsError, InvalidArgumentError, NotFoundError } from '../clients/typescript/src/errors.js';
import { ScheduleRunKind } from '../clients/typescript/src/gen/sluice/v1/schedule.js';

let b: TestBroker;
let clock: ManualClock;
let api: ScheduleApi;
const at = (s: string) => Date.parse(s);

beforeEach(async () => {
  clock = new ManualClock(at('2026-06-01T09:59:30Z'));
  b = await startTestBroker({}, { clock });
  api = new ScheduleApi(b.clients);
});
afterEach(async () => {
  await b.close();
});

describe('ScheduleService over gRPC', () => {
  it('pause stops fires, resume starts again at the next future fire time', async () => {
    await api.create({ spec: { name: 'hourly', cron: '@hourly', job: { queue: 'h' } } });
    const paused = await api.pause('hourly');
    expect(paused.paused).toBe(true);
    await runClockUntil(clock, b.running.broker, at('2026-06-01T11:30:00Z'));
    expect(await jobsOf(b.running.broker, 'h')).toHaveLength(0);
    const resumed = await api.resume('hourly');
    expect(resumed.paused).toBe(false);
    expect(resumed.nextFireAt!.toISOString()).toBe('2026-06-01T12:00:00.000Z');
    await runClockUntil(clock, b.running.broker, at('2026-06-01T12:00:30Z'));
    expect((await jobsOf(b.running.broker, 'h')).map(fireTimeOf)).toEqual(['2026-06-01T12:00:00.000Z']);
    // Fire times passed while paused are not in the history either.
    expect((await api.runs('hourly')).map((r) => r.fireTime!.toISOString())).toEqual(['2026-06-01T12:00:00.000Z']);
  });

  it('trigger runs now (recorded as manual), delete removes schedule and history but not jobs', async () => {
    const s = await api.create({ spec: { name: 'manual', cron: '0 2 * * *', job: { queue: 'm', payload: { x: 1 } } } });
    const run = await api.trigger('manual');
    expect(run.kind).toBe(ScheduleRunKind.SCHEDULE_RUN_KIND_MANUAL);
    expect(run.skipped).toBe(false);
    expect(run.fireTime!.getTime()).toBe(clock.now());
    const job = await b.api.getJob(run.jobId);
    expect(job.metadata['sluice.fire_kind']).toBe('manual');
    expect(job.metadata['sluice.schedule_id']).toBe(s.id);
    await api.delete('manual');
    await expect(api.get({ name: 'manual' })).rejects.toMatchObject({ code: status.NOT_FOUND });
    await expect(api.runs('manual')).rejects.toMatchObject({ code: status.NOT_FOUND });
    expect((await b.api.getJob(run.jobId)).queue).toBe('m');
    await expect(api.delete('manual')).rejects.toMatchObject({ code: status.NOT_FOUND });
  });

  it('upsert twice with the same name: one schedule, updated; paused stays paused', async () => {
    const first = await api.upsert({ spec: { name: 'inv', cron: '0 2 * * *', timezone: 'Europe/Berlin', job: { queue: 'billing' } } });
    expect(first.created).toBe(true);
    await api.pause('inv');
    const second = await api.upsert({ spec: { name: 'inv', cron: '0 3 * * *', timezone: 'Europe/Berlin', job: { queue: 'billing', payload: { v: 2 } } } });
    expect(second.created).toBe(false);
    expect(second.schedule!.id).toBe(first.schedule!.id);
    expect(second.schedule!.spec!.cron).toBe('0 3 * * *');
    expect(second.schedule!.spec!.job!.payload).toEqual({ v: 2 });
    expect(second.schedule!.paused).toBe(true);
    expect(second.schedule!.nextFireAt!.toISOString()).toBe('2026-06-02T01:00:00.000Z'); // 03:00 CEST
    const again = await api.upsert({ spec: { name: 'inv', cron: '0 3 * * *', timezone: 'Europe/Berlin', job: { queue: 'billing', payload: { v: 2 } } } });
    expect(again.schedule!.updatedAt!.getTime()).toBe(second.schedule!.updatedAt!.getTime());
    expect((await api.list()).map((s) => s.spec!.name)).toEqual(['inv']);
  });

  it('update changes only the fields in update_mask; get previews the next fire times', async () => {
    await api.create({ spec: { name: 'u', cron: '0 * * * *', job: { queue: 'u', payload: { a: 1 } } } });
    const updated = await api.update({ name: 'u', spec: { cron: '30 * * * *' }, updateMask: ['cron'] });
    expect(updated.spec!.cron).toBe('30 * * * *');
    expect(updated.spec!.job!.payload).toEqual({ a: 1 });
    const got = await api.get({ name: 'u', upcomingCount: 3 });
    expect(got.upcoming.map((d) => d.toISOString())).toEqual(['2026-06-01T10:30:00.000Z', '2026-06-01T11:30:00.000Z', '2026-06-01T12:30:00.000Z']);
    await expect(api.update({ name: 'u', spec: {}, updateMask: ['nope'] })).rejects.toMatchObject({ code: status.INVALID_ARGUMENT });
  });
});

describe('bad input: clear statuses, nothing stored', () => {
  const cases: [string, Record<string, unknown>, RegExp][] = [
    ['malformed cron', { cron: '61 * * * *' }, /^cron "61 \* \* \* \*" is not a valid cron expression: Invalid value for minute: 61/],
    ['too few cron fields', { cron: '* * *' }, /^cron .* is not a valid cron expression/],
    ['a cron that never fires', { cron: '0 0 31 2 *' }, /^cron .* never fires/],
    ['unknown time zone', { timezone: 'Mars/Olympus_Mons' }, /^timezone "Mars\/Olympus_Mons" is not an IANA time zone/],
    ['empty queue', { job: { queue: '' } }, /^job: queue is required/],
    ['payload not JSON', { job: { queue: 'q', payloadJson: Buffer.from('{nope') } }, /^job: payload_json is not valid JSON/],
    ['no job', { job: undefined }, /^job is required/],
    ['a bad name', { name: 'has space' }, /^name "has space" is invalid/],
    ['run_at on the template', { job: { queue: 'q', runAt: new Date() } }, /^job.run_at cannot be set/],
  ];
  for (const [what, change, message] of cases) {
    it(`${what} -> INVALID_ARGUMENT naming the field`, async () => {
      const spec = { name: 'bad', cron: '0 2 * * *', job: { queue: 'q' }, ...change };
      const error = await api.create({ spec }).then(
        () => undefined,
        (e: { code: number; details: string }) => e,
      );
      expect(error?.code).toBe(status.INVALID_ARGUMENT);
      expect(error?.details).toMatch(message);
      await expect(api.upsert({ spec })).rejects.toMatchObject({ code: status.INVALID_ARGUMENT });
      expect(await api.list()).toEqual([]);
    });
  }

  it('duplicate name on create -> ALREADY_EXISTS, the first schedule unchanged', async () => {
    await api.create({ spec: { name: 'dup', cron: '0 2 * * *', job: { queue: 'q' } } });
    await expect(api.create({ spec: { name: 'dup', cron: '0 5 * * *', job: { queue: 'other' } } })).rejects.toMatchObject({ code: status.ALREADY_EXISTS });
    const all = await api.list();
    expect(all.map((s) => [s.spec!.name, s.spec!.cron, s.spec!.job!.queue])).toEqual([['dup', '0 2 * * *', 'q']]);
    expect(await b.running.broker.reads.listJobs({}, 10)).toEqual([]);
  });

  it('a schedule reference needs an id or a name', async () => {
    await expect(api.get({})).rejects.toMatchObject({ code: status.INVALID_ARGUMENT });
    await expect(api.get({ id: 'sch_nope' })).rejects.toMatchObject({ code: status.NOT_FOUND });
  });
});

describe('client Schedules class', () => {
  it('create, upsert, update, pause, resume, trigger, runs, list and delete', async () => {
    const schedules = new Schedules({ address: b.running.address });
    try {
      const invoices = await schedules.upsert('invoices', {
        cron: '0 2 * * *',
        timezone: 'Europe/Berlin',
        queue: 'billing',
        payload: { task: 'generate-invoices' },
        job: { type: 'invoice.generate', priority: 'high', maxAttempts: 5 },
        catchUp: 'once',
        overlap: 'skip',
      });
      expect(invoices.created).toBe(true);
      expect(invoices.schedule.nextFireAt!.toISOString()).toBe('2026-06-02T00:00:00.000Z'); // 02:00 CEST
      expect(invoices.schedule.job).toMatchObject({ type: 'invoice.generate', priority: 'high', maxAttempts: 5 });
      expect(invoices.schedule.catchUp).toBe('once');
      expect(invoices.schedule.overlap).toBe('skip');
      const again = await schedules.upsert('invoices', { cron: '0 2 * * *', timezone: 'Europe/Berlin', queue: 'billing', payload: { task: 'generate-invoices' }, job: { type: 'invoice.generate', priority: 'high', maxAttempts: 5 }, catchUp: 'once', overlap: 'skip' });
      expect(again.created).toBe(false);
      expect(again.schedule.id).toBe(invoices.schedule.id);

      await expect(schedules.create('invoices', { cron: '0 2 * * *', queue: 'billing' })).rejects.toBeInstanceOf(AlreadyExistsError);
      await expect(schedules.create('broken', { cron: 'every day', queue: 'billing' })).rejects.toBeInstanceOf(InvalidArgumentError);

      const updated = await schedules.update('invoices', { payload: { task: 'generate-invoices', dryRun: true } });
      expect(updated.payload).toEqual({ task: 'generate-invoices', dryRun: true });
      expect(updated.job.type).toBe('invoice.generate');
      expect(updated.cron).toBe('0 2 * * *');

      expect((await schedules.pause('invoices')).paused).toBe(true);
      expect((await schedules.resume({ id: invoices.schedule.id })).paused).toBe(false);

      const run = await schedules.trigger('invoices');
      expect(run.kind).toBe('manual');
      expect(run.jobState).toBe('pending');
      const { runs } = await schedules.runs('invoices');
      expect(runs.map((r) => r.jobId)).toEqual([run.jobId]);

      const got = await schedules.get('invoices', { upcoming: 2 });
      expect(got.upcoming.map((d) => d.toISOString())).toEqual(['2026-06-02T00:00:00.000Z', '2026-06-03T00:00:00.000Z']);
      expect((await schedules.list()).schedules.map((s) => s.name)).toEqual(['invoices']);

      // The operators' Admin class reaches the same schedules.
      const admin = new Admin({ address: b.running.address });
      try {
        expect((await admin.schedules.get('invoices')).id).toBe(invoices.schedule.id);
      } finally {
        admin.close();
      }

      await schedules.delete('invoices');
      await expect(schedules.get('invoices')).rejects.toBeInstanceOf(NotFoundError);
    } finally {
      schedules.close();
    }
  });
});
