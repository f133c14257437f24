import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTokenLine } from '../src/auth/tokens.js';
import { parseGrant } from '../src/auth/grants.js';
import { connect } from '../clients/typescript/src/connect.js';
import { Api } from './helpers/api.js';
import { ScheduleApi } from './helpers/schedules.js';
import { startTestBroker, tempDir, type TestBroker } from './helpers/broker.js';

const GRANTS: Record<string, string[]> = { root: ['produce', 'consume', 'admin'], reader: ['read'], readerEmail: ['read:email.*'], admin: ['admin'], producer: ['produce'], producerEmail: ['produce:email.*'] };
const tokens: Record<string, string> = {};
let b: TestBroker;
let base: string;
let smsJob: string;
let scheduleId: string;

beforeAll(async () => {
  const dir = tempDir();
  const lines = Object.entries(GRANTS).map(([name, grants]) => {
    const { token, line } = createTokenLine(name, grants.map(parseGrant));
    tokens[name] = token;
    return line;
  });
  const authFile = join(dir, 'auth');
  writeFileSync(authFile, `${lines.join('\n')}\n`, { mode: 0o600 });
  b = await startTestBroker({ authFile, httpAddress: '127.0.0.1:0' }, { dir });
  base = `http://127.0.0.1:${b.running.httpPort}`;
  const clients = connect({ address: b.running.address, token: tokens.root });
  const root = new Api(clients);
  await root.enqueue({ queue: 'email.welcome', payload: { n: 1 } });
  smsJob = (await root.enqueue({ queue: 'sms', payload: { n: 2 } })).id;
  scheduleId = (await new ScheduleApi(clients).create({ spec: { name: 'digest', cron: '0 7 * * *', job: { queue: 'email.digest' } } })).id;
  clients.close();
});
afterAll(async () => {
  await b?.close();
});

const get = (path: string, who?: string) => fetch(base + path, { headers: who ? { authorization: `Bearer ${tokens[who]}` } : {} });
const post = (path: string, who?: string) =>
  fetch(base + path, { method: 'POST', headers: { 'x-sluice-csrf': '1', ...(who ? { authorization: `Bearer ${tokens[who]}` } : {}) } });

describe('HTTP API with tokens required', () => {
  it('answers 401 with a Bearer challenge without a token, before saying whether a job exists', async () => {
    const res = await get('/api/v1/queues');
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toBe('Bearer realm="sluice"');
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('UNAUTHENTICATED');
    expect((await get('/api/v1/jobs/0000-unknown')).status).toBe(401);
    expect((await get(`/api/v1/jobs/${smsJob}`)).status).toBe(401);
    expect((await get('/api/v1/events')).status).toBe(401);
    expect((await post('/api/v1/queues/sms/pause')).status).toBe(401);
    const wrong = await fetch(base + '/api/v1/queues', { headers: { authorization: 'Bearer not-a-token' } });
    expect(wrong.status).toBe(401);
  });

  it('serves the page itself without a token (it asks for one when the API answers 401)', async () => {
    expect((await fetch(base + '/')).status).toBe(200);
    expect((await fetch(base + '/queues/sms')).status).toBe(200);
  });

  it('applies the scopes of gRPC: read reads, admin changes, a queue pattern limits both', async () => {
    expect((await get('/api/v1/queues', 'reader')).status).toBe(200);
    expect((await get(`/api/v1/jobs/${smsJob}`, 'reader')).status).toBe(200);
    expect((await post('/api/v1/queues/sms/pause', 'reader')).status).toBe(403);
    expect((await post('/api/v1/queues/sms/pause', 'admin')).status).toBe(200);
    expect((await post('/api/v1/queues/sms/resume', 'admin')).status).toBe(200);
    // Cancel is the producer's, as CancelJob is.
    expect((await get(`/api/v1/jobs/${smsJob}`, 'producer')).status).toBe(200);

    expect((await get('/api/v1/jobs?queue=email.welcome', 'readerEmail')).status).toBe(200);
    const all = await get('/api/v1/jobs', 'readerEmail');
    expect(all.status).toBe(403);
    expect(((await all.json()) as { error: { message: string } }).error.message).toMatch(/lacks the read scope on every queue/);
    expect((await get('/api/v1/jobs?queue=sms', 'readerEmail')).status).toBe(403);
    // A job on a queue the token cannot see is NOT_FOUND, answered exactly like an unknown id
    // (as over gRPC), so ids of other queues' jobs cannot be probed.
    const hidden = await get(`/api/v1/jobs/${smsJob}`, 'readerEmail');
    const unknown = await get('/api/v1/jobs/0000-unknown', 'readerEmail');
    expect([hidden.status, unknown.status]).toEqual([404, 404]);
    const message = async (r: Response) => ((await r.json()) as { error: { message: string } }).error.message;
    expect((await message(hidden)).replace(smsJob, 'ID')).toBe((await message(unknown)).replace('0000-unknown', 'ID'));
    expect((await post(`/api/v1/jobs/${smsJob}/cancel`, 'producerEmail')).status).toBe(404);
    const events = await get('/api/v1/events', 'reader');
    expect(events.status).toBe(200);
    await events.body?.cancel();
  });

  it('schedules like ScheduleService: reads need read on every queue, pause/resume/trigger admin on every queue', async () => {
    expect((await get('/api/v1/schedules')).status).toBe(401);
    expect((await post('/api/v1/schedules/sch_unknown/pause')).status).toBe(401);
    expect((await get('/api/v1/schedules', 'reader')).status).toBe(200);
    expect((await get(`/api/v1/schedules/${scheduleId}`, 'reader')).status).toBe(200);
    expect((await get(`/api/v1/schedules/${scheduleId}/runs`, 'reader')).status).toBe(200);
    // A token limited to queue patterns cannot read schedules (their jobs go to any queue), as over gRPC.
    expect((await get('/api/v1/schedules', 'readerEmail')).status).toBe(403);
    expect((await get('/api/v1/schedules', 'producer')).status).toBe(403);
    expect((await post(`/api/v1/schedules/${scheduleId}/pause`, 'reader')).status).toBe(403);
    expect((await post(`/api/v1/schedules/${scheduleId}/trigger`, 'producer')).status).toBe(403);
    expect((await post(`/api/v1/schedules/${scheduleId}/pause`, 'admin')).status).toBe(200);
    expect((await post(`/api/v1/schedules/${scheduleId}/resume`, 'admin')).status).toBe(200);
    expect((await post(`/api/v1/schedules/${scheduleId}/trigger`, 'admin')).status).toBe(200);
    expect((await post('/api/v1/schedules/sch_unknown/trigger', 'admin')).status).toBe(404);
  });

  it('a job’s history needs read (as GetJobHistory), its explanation read or produce (as ExplainJob)', async () => {
    expect((await get(`/api/v1/jobs/${smsJob}/history`)).status).toBe(401);
    expect((await get(`/api/v1/jobs/${smsJob}/explain`)).status).toBe(401);
    expect((await get('/api/v1/jobs/0000-unknown/history')).status).toBe(401);
    expect((await get(`/api/v1/jobs/${smsJob}/history`, 'reader')).status).toBe(200);
    expect((await get(`/api/v1/jobs/${smsJob}/history`, 'producer')).status).toBe(403);
    expect((await get(`/api/v1/jobs/${smsJob}/explain`, 'producer')).status).toBe(200);
    expect((await get(`/api/v1/jobs/${smsJob}/explain`, 'reader')).status).toBe(200);
    // The scope on some queues but not this job's: NOT_FOUND, as for a job that does not exist.
    expect((await get(`/api/v1/jobs/${smsJob}/history`, 'readerEmail')).status).toBe(404);
    expect((await get(`/api/v1/jobs/${smsJob}/explain`, 'readerEmail')).status).toBe(404);
  });
});
