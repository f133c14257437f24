/**
 * The HTTP API's schedule routes and a job's history and explanation: the same operations as
 * ScheduleService, AdminService/GetJobHistory and ProducerService/ExplainJob (checked against
 * their gRPC answers), with the API's status codes. Time is a ManualClock: fire times are exact.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestBroker, type TestBroker } from './helpers/broker.js';
import { ManualClock } from './helpers/manual-clock.js';
import { ScheduleApi } from './helpers/schedules.js';
import { HttpApi } from './helpers/api.js';

let b: TestBroker;
let clock: ManualClock;
let grpc: ScheduleApi;
let http: HttpApi;
const START = '2026-06-01T09:59:30.000Z';
let hourlyId: string;
let nightlyId: string;

beforeAll(async () => {
  clock = new ManualClock(Date.parse(START));
  b = await startTestBroker({ httpAddress: '127.0.0.1:0' }, { clock });
  grpc = new ScheduleApi(b.clients);
  http = new HttpApi(`http://127.0.0.1:${b.running.httpPort}`);
  hourlyId = (await grpc.create({ spec: { name: 'hourly', cron: '@hourly', job: { queue: 'reports', type: 'rollup', payload: { span: 'hour' } } } })).id;
  nightlyId = (await grpc.create({ spec: { name: 'nightly', cron: '0 2 * * *', timezone: 'Europe/Berlin', job: { queue: 'billing' } }, paused: true })).id;
});
afterAll(async () => {
  await b?.close();
});

describe('HTTP API: schedules', () => {
  it('lists schedules by name with cron, zone, paused flag and next fire times; pages with limit and cursor', async () => {
    const list = await http.get('/schedules');
    expect(list.status).toBe(200);
    expect(list.body.schedules.map((s: { name: string }) => s.name)).toEqual(['hourly', 'nightly']);
    const [hourly, nightly] = list.body.schedules;
    expect(hourly).toMatchObject({
      id: hourlyId,
      cron: '@hourly',
      timezone: 'UTC',
      paused: false,
      nextFireAt: '2026-06-01T10:00:00.000Z',
      upcoming: ['2026-06-01T10:00:00.000Z', '2026-06-01T11:00:00.000Z', '2026-06-01T12:00:00.000Z'],
      catchUp: 'skip',
      overlap: 'allow',
      job: { queue: 'reports', type: 'rollup', payload: { span: 'hour' } },
      recentRuns: [],
    });
    expect(nightly).toMatchObject({ id: nightlyId, timezone: 'Europe/Berlin', paused: true, nextFireAt: '2026-06-02T00:00:00.000Z' });
    expect(list.body.nextCursor).toBeNull();

    const first = await http.get('/schedules?limit=1');
    expect(first.body.schedules.map((s: { name: string }) => s.name)).toEqual(['hourly']);
    const second = await http.get(`/schedules?limit=1&cursor=${first.body.nextCursor}`);
    expect(second.body.schedules.map((s: { name: string }) => s.name)).toEqual(['nightly']);

    expect((await http.get('/schedules?limit=5000')).body.error.message).toMatch(/limit must be 1..1000/);
    expect((await http.get('/schedules?cursor=bm9wZQ')).body.error.message).toMatch(/cursor is not a token returned by this API/);
    expect((await http.get('/schedules?paused=true')).status).toBe(400);
  });

  it('one schedule: the next fire times as GetSchedule previews them (5 by default, ?upcoming=N up to 100)', async () => {
    const one = await http.get(`/schedules/${hourlyId}`);
    expect(one.status).toBe(200);
    const wire = await grpc.get({ id: hourlyId });
    expect(one.body.upcoming).toEqual(wire.upcoming.map((d) => d.toISOString()));
    expect(one.body.upcoming).toHaveLength(5);
    expect((await http.get(`/schedules/${hourlyId}?upcoming=2`)).body.upcoming).toEqual(['2026-06-01T10:00:00.000Z', '2026-06-01T11:00:00.000Z']);
    const tooMany = await http.get(`/schedules/${hourlyId}?upcoming=101`);
    expect(tooMany.status).toBe(400);
    expect(tooMany.body.error.message).toBe('upcoming must be 0..100, got 101');
    const unknown = await http.get('/schedules/sch_no-such-schedule');
    expect(unknown.status).toBe(404);
    expect(unknown.body.error).toEqual({ code: 'NOT_FOUND', message: 'schedule sch_no-such-schedule not found' });
    expect((await http.get('/schedules/sch_no-such-schedule/runs')).status).toBe(404);
  });

  it('trigger runs now (a manual run with its job), shown in the run history, paged newest first', async () => {
    const run = await http.post(`/schedules/${hourlyId}/trigger`);
    expect(run.status).toBe(200);
    expect(run.body).toMatchObject({ scheduleId: hourlyId, kind: 'manual', skipped: false, fireTime: START, jobState: 'pending', attempt: 0, durationMs: null });
    const job = await http.get(`/jobs/${run.body.jobId}`);
    expect(job.body).toMatchObject({ queue: 'reports', type: 'rollup', payload: { span: 'hour' }, metadata: { 'sluice.schedule_id': hourlyId, 'sluice.fire_kind': 'manual' } });
    // The same run as ListScheduleRuns answers it.
    const [wire] = await grpc.runs('hourly');
    expect(wire!.jobId).toBe(run.body.jobId);
    expect(wire!.seq).toBe(run.body.seq);

    await http.post(`/schedules/${hourlyId}/trigger`, {});
    await http.post(`/schedules/${hourlyId}/trigger`);
    const page1 = await http.get(`/schedules/${hourlyId}/runs?limit=2`);
    expect(page1.body.runs).toHaveLength(2);
    expect(page1.body.runs[0].seq).toBeGreaterThan(page1.body.runs[1].seq);
    const page2 = await http.get(`/schedules/${hourlyId}/runs?limit=2&cursor=${page1.body.nextCursor}`);
    expect(page2.body.runs.map((r: { seq: number }) => r.seq)).toEqual([run.body.seq]);
    const one = await http.get(`/schedules/${hourlyId}`);
    expect(one.body.recentRuns.map((r: { seq: number }) => r.seq)).toEqual([...page1.body.runs, ...page2.body.runs].map((r: { seq: number }) => r.seq));
    // A paused schedule can still be triggered, as TriggerSchedule allows.
    expect((await http.post(`/schedules/${nightlyId}/trigger`)).body.kind).toBe('manual');
  });

  it('pause and resume: the flag and the next fire time change as over gRPC', async () => {
    const paused = await http.post(`/schedules/${hourlyId}/pause`);
    expect(paused.status).toBe(200);
    expect(paused.body).toMatchObject({ id: hourlyId, paused: true });
    expect((await grpc.get({ id: hourlyId })).paused).toBe(true);
    expect((await http.post(`/schedules/${hourlyId}/pause`)).body.paused).toBe(true); // again: no change, no error
    clock.set(Date.parse('2026-06-01T10:30:00Z'));
    const resumed = await http.post(`/schedules/${hourlyId}/resume`, {});
    // Resuming starts at the next future fire time: 10:00 passed while paused.
    expect(resumed.body).toMatchObject({ paused: false, nextFireAt: '2026-06-01T11:00:00.000Z' });
    expect((await grpc.get({ id: hourlyId })).nextFireAt!.toISOString()).toBe('2026-06-01T11:00:00.000Z');
  });

  it('refuses: unknown schedule 404, a body field 400, a body that is not JSON 400, no CSRF header 403, GET 405', async () => {
    for (const action of ['pause', 'resume', 'trigger']) {
      const res = await http.post(`/schedules/sch_gone/${action}`);
      expect(res.status).toBe(404);
      expect(res.body.error.code).toBe('NOT_FOUND');
    }
    const field = await http.post(`/schedules/${nightlyId}/resume`, { paused: false });
    expect(field.status).toBe(400);
    expect(field.body.error.message).toMatch(/unknown field "paused" \(this call takes no body fields\)/);
    expect((await http.post(`/schedules/${nightlyId}/resume`, '{"x":')).body.error.message).toMatch(/not valid JSON/);
    const csrf = await http.post(`/schedules/${nightlyId}/resume`, undefined, { csrf: false });
    expect(csrf.status).toBe(403);
    expect(csrf.body.error.code).toBe('CSRF_HEADER_MISSING');
    const get = await http.get(`/schedules/${nightlyId}/trigger`);
    expect(get.status).toBe(405);
    expect(get.headers.get('allow')).toBe('POST');
    // Nothing of that changed the schedule.
    expect((await grpc.get({ id: nightlyId })).paused).toBe(true);
  });
});

describe('HTTP API: a job’s history and explanation', () => {
  it('a delayed job: enqueued, and "scheduled until" its run time', async () => {
    const { id } = await b.api.enqueue({ queue: 'later', payload: {}, delayMs: 3_600_000 });
    const history = await http.get(`/jobs/${id}/history`);
    expect(history.status).toBe(200);
    expect(history.body.entries).toEqual([{ at: new Date(clock.now()).toISOString(), kind: 'enqueued', attempt: 0, workerId: '', leaseId: '', error: '', detail: 'scheduled for later' }]);
    const explain = await http.get(`/jobs/${id}/explain`);
    expect(explain.status).toBe(200);
    const runAt = new Date(clock.now() + 3_600_000).toISOString();
    expect(explain.body).toMatchObject({ id, state: 'scheduled' });
    expect(explain.body.reasons.map((r: { code: string }) => r.code)).toEqual(['scheduled', 'no_worker']);
    expect(explain.body.reasons[0]).toEqual({ code: 'scheduled', message: `scheduled until ${runAt}`, at: runAt, attempt: 0, maxAttempts: 25, lastError: '' });
    expect(explain.body.summary).toContain(runAt);
  });

  it('a job that failed once: its attempt in the history, with worker and error, as GetJobHistory answers', async () => {
    const { id } = await b.api.enqueue({ queue: 'flaky', payload: {} });
    const worker = b.api.consumer({ queues: ['flaky'], workerId: 'w-flaky' }, 1);
    const [d] = await worker.waitForDeliveries(1);
    worker.nack(d!, 'connection reset', { retryAfterMs: 60_000 });
    await worker.waitForSettled(1);
    worker.end();
    await worker.status;
    const history = await http.get(`/jobs/${id}/history`);
    expect(history.body.entries.map((e: { kind: string }) => e.kind)).toEqual(['enqueued', 'delivered', 'nacked']);
    expect(history.body.entries[2]).toMatchObject({ attempt: 1, workerId: 'w-flaky', error: 'connection reset', detail: expect.stringMatching(/^retry at /) });
    const wire = await b.api.jobHistory(id);
    expect(history.body.entries.map((e: { kind: string; at: string }) => [e.kind, e.at])).toEqual(wire.map((e) => [e.kind, e.at!.toISOString()]));
    expect((await http.get(`/jobs/${id}/explain`)).body.reasons[0]).toMatchObject({ code: 'scheduled', attempt: 1, lastError: 'connection reset' });
  });

  it('unknown job 404, unknown query parameter 400', async () => {
    for (const path of ['/jobs/0000000000000-nope/history', '/jobs/0000000000000-nope/explain']) {
      const res = await http.get(path);
      expect(res.status).toBe(404);
      expect(res.body.error.code).toBe('NOT_FOUND');
    }
    const { id } = await b.api.enqueue({ queue: 'later', payload: {} });
    expect((await http.get(`/jobs/${id}/history?limit=5`)).status).toBe(400);
    expect((await http.get(`/jobs/${id}/explain?verbose=1`)).status).toBe(400);
  });
});
