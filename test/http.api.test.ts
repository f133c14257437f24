import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { JobState } from '../clients/typescript/src/gen/sluice/v1/job.js';
import { startTestBroker, type TestBroker } from './helpers/broker.js';

let b: TestBroker;
let base: string;
const CSRF = { 'x-sluice-csrf': '1' };
const JSON_POST = { ...CSRF, 'content-type': 'application/json' };

beforeAll(async () => {
  b = await startTestBroker({ httpAddress: '127.0.0.1:0' });
  base = `http://127.0.0.1:${b.running.httpPort}/api/v1`;
});
afterAll(async () => {
  await b.close();
});

async function call(path: string, init: RequestInit = {}): Promise<{ status: number; body: any; headers: Headers }> {
  const res = await fetch(base + path, init);
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined, headers: res.headers };
}

const post = (path: string, body?: unknown, headers: Record<string, string> = JSON_POST) =>
  call(path, { method: 'POST', headers, body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body) });

/** Kills `n` jobs of `queue` with non-retryable nacks (error `boom <i % 2>`). */
async function deadJobs(queue: string, n: number): Promise<string[]> {
  const ids = [];
  for (let i = 0; i < n; i++) ids.push((await b.api.enqueue({ queue, type: 'send', payload: { i } })).id);
  const worker = b.api.consumer({ queues: [queue] }, n);
  const deliveries = await worker.waitForDeliveries(n);
  worker.send({ nacks: deliveries.map((d) => ({ jobId: d.jobId, leaseId: d.leaseId, error: `boom ${(d.payload as { i: number }).i % 2}`, nonRetryable: true })) });
  const settled = await worker.waitForSettled(n);
  expect(settled.every((s) => s.state === JobState.JOB_STATE_DEAD)).toBe(true);
  worker.end();
  await worker.status;
  return ids;
}

describe('HTTP JSON API: errors', () => {
  it('answers 404 with a JSON message for an unknown job, queue and endpoint', async () => {
    const job = await call('/jobs/0000000000000-nope');
    expect(job.status).toBe(404);
    expect(job.body.error).toMatchObject({ code: 'NOT_FOUND', message: expect.stringContaining('not found') });
    expect(job.headers.get('content-type')).toBe('application/json; charset=utf-8');
    expect((await call('/queues/no-such-queue')).status).toBe(404);
    expect((await post('/queues/no-such-queue/pause')).status).toBe(404);
    expect((await call('/nothing-here')).status).toBe(404);
    expect((await post('/jobs/0000000000000-nope/cancel', {})).status).toBe(404);
  });

  it('answers 400 for a bad filter: unknown state, bad queue name, bad limit, bad cursor, unknown parameter', async () => {
    const state = await call('/jobs?state=running');
    expect(state.status).toBe(400);
    expect(state.body.error.message).toMatch(/not a job state: use one of scheduled, pending/);
    expect((await call('/jobs?queue=%20bad%20name')).status).toBe(400);
    expect((await call('/jobs?limit=5000')).body.error.message).toMatch(/limit must be 1..1000/);
    expect((await call('/jobs?limit=-1')).status).toBe(400);
    expect((await call('/jobs?cursor=not-a-cursor')).body.error.message).toMatch(/cursor is not a token/);
    const typo = await call('/jobs?status=dead');
    expect(typo.status).toBe(400);
    expect(typo.body.error.message).toMatch(/unknown query parameter "status"/);
    expect((await call('/dead-letters?queue=*')).status).toBe(400);
  });

  it('answers 400 for a body that is not JSON or not an object, 415 for a non-JSON body, 413 for a huge one', async () => {
    const bad = await post('/dead-letters/replay', '{"all": tru');
    expect(bad.status).toBe(400);
    expect(bad.body.error.message).toMatch(/not valid JSON/);
    expect((await post('/dead-letters/replay', '[1,2]')).body.error.message).toMatch(/must be a JSON object/);
    expect((await post('/dead-letters/replay', { ids: 'x' })).body.error.message).toMatch(/ids must be an array of strings/);
    expect((await post('/dead-letters/replay', { everything: true })).body.error.message).toMatch(/unknown field "everything"/);
    expect((await post('/dead-letters/replay', { all: true }, { ...CSRF, 'content-type': 'text/plain' })).status).toBe(415);
    const huge = await post('/dead-letters/replay', { ids: Array.from({ length: 20_000 }, (_, i) => `id-${i}-padding`) });
    expect(huge.status).toBe(413);
  });

  it('refuses a state-changing call without the CSRF header (403), cross-site (403) or by GET (405)', async () => {
    await b.api.enqueue({ queue: 'csrf', payload: {} });
    const missing = await post('/queues/csrf/pause', undefined, {});
    expect(missing.status).toBe(403);
    expect(missing.body.error).toMatchObject({ code: 'CSRF_HEADER_MISSING', message: expect.stringContaining('x-sluice-csrf: 1') });
    expect((await post('/queues/csrf/pause', undefined, { ...CSRF, origin: 'https://evil.example' })).body.error.code).toBe('CROSS_SITE');
    expect((await post('/queues/csrf/pause', undefined, { ...CSRF, 'sec-fetch-site': 'cross-site' })).body.error.code).toBe('CROSS_SITE');
    const get = await call('/queues/csrf/pause');
    expect(get.status).toBe(405);
    expect(get.headers.get('allow')).toBe('POST');
    expect((await b.api.getQueue('csrf')).paused).toBe(false);
  });

  it('refuses a Host that is not loopback while listening on loopback (DNS rebinding)', async () => {
    const { request } = await import('node:http');
    const status = await new Promise<number>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port: b.running.httpPort, path: '/api/v1/queues', headers: { host: 'attacker.example:80' } }, (res) => {
        res.resume();
        resolve(res.statusCode!);
      });
      req.on('error', reject);
      req.end();
    });
    expect(status).toBe(421);
  });

  it('answers 409 for a transition the job cannot make, as gRPC answers FAILED_PRECONDITION', async () => {
    const [id] = await deadJobs('conflict', 1);
    const res = await post(`/jobs/${id}/cancel`, { reason: 'too late' });
    expect(res.status).toBe(409);
    expect(res.body.error).toMatchObject({ code: 'FAILED_PRECONDITION', message: expect.stringContaining('is dead and cannot be cancelled') });
  });
});

describe('HTTP JSON API: reads and actions', () => {
  it('pages through jobs newest first with limit and cursor, filtered by queue, state, type and group', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 7; i++) ids.push((await b.api.enqueue({ queue: 'paging', type: i % 2 ? 'odd' : 'even', groupKey: `g${i % 3}`, payload: { i } })).id);
    const seen: string[] = [];
    let cursor: string | null = '';
    let pages = 0;
    while (cursor !== null) {
      const res = await call(`/jobs?queue=paging&state=pending&limit=3${cursor ? `&cursor=${cursor}` : ''}`);
      expect(res.status).toBe(200);
      seen.push(...res.body.jobs.map((j: { id: string }) => j.id));
      cursor = res.body.nextCursor;
      pages++;
    }
    expect(seen).toEqual([...ids].reverse());
    expect(pages).toBe(3);
    const odd = await call('/jobs?queue=paging&type=odd');
    expect(odd.body.jobs.map((j: { id: string }) => j.id)).toEqual([ids[5], ids[3], ids[1]]);
    const group = await call('/jobs?queue=paging&group=g0');
    expect(group.body.jobs.map((j: { id: string }) => j.id)).toEqual([ids[6], ids[3], ids[0]]);
    // Listings leave out payloads; the job itself has everything.
    expect(odd.body.jobs[0].payload).toBeUndefined();
    const one = await call(`/jobs/${ids[2]}`);
    expect(one.body).toMatchObject({ id: ids[2], queue: 'paging', type: 'even', state: 'pending', payload: { i: 2 }, groupKey: 'g2', errors: [] });
    expect(one.body.createdAt).toMatch(/^\d{4}-\d\d-\d\dT/);
  });

  it('lists queues with counts and settings in force; pause and resume', async () => {
    await b.api.enqueue({ queue: 'settings', payload: {} });
    await b.api.updateQueue({ queue: 'settings', maxAttempts: 3 });
    const list = await call('/queues');
    const q = list.body.queues.find((x: { name: string }) => x.name === 'settings');
    expect(q).toMatchObject({ paused: false, counts: { pending: 1 }, settings: { maxAttempts: 3, leaseTimeoutMs: 30_000 }, overrides: ['maxAttempts'] });
    expect(Date.parse(q.pendingSince)).toBeLessThanOrEqual(Date.now());
    expect((await post('/queues/settings/pause')).body.paused).toBe(true);
    expect((await b.api.getQueue('settings')).paused).toBe(true);
    expect((await post('/queues/settings/resume', {})).body.paused).toBe(false);
  });

  it('dead letters: grouped errors, replay by ids and purge by queue', async () => {
    const ids = await deadJobs('dlq', 5);
    const list = await call('/dead-letters?queue=dlq&limit=2');
    expect(list.body.jobs).toHaveLength(2);
    expect(list.body.nextCursor).not.toBeNull();
    expect(list.body.errors).toEqual([
      { message: 'boom 0', count: 3, lastAt: expect.any(String) },
      { message: 'boom 1', count: 2, lastAt: expect.any(String) },
    ]);
    expect((await post('/dead-letters/replay', { ids: [ids[0]] })).body).toEqual({ replayed: 1 });
    expect((await b.api.getJob(ids[0]!)).state).toBe(JobState.JOB_STATE_PENDING);
    expect((await post('/dead-letters/replay', { ids: [ids[0]] })).status).toBe(409);
    expect((await post('/dead-letters/purge', { queue: 'dlq' })).body).toEqual({ purged: 4 });
    expect((await call('/dead-letters?queue=dlq')).body).toMatchObject({ jobs: [], errors: [], nextCursor: null });
  });

  it('cancels a job with a reason', async () => {
    const { id } = await b.api.enqueue({ queue: 'cancel', payload: {} });
    const res = await post(`/jobs/${id}/cancel`, { reason: 'not needed' });
    expect(res.body).toMatchObject({ id, state: 'cancelled', lastError: 'not needed' });
  });

  it('shows workers with their in-flight jobs, and throughput per second', async () => {
    const { id } = await b.api.enqueue({ queue: 'busy', payload: {} });
    const worker = b.api.consumer({ queues: ['busy'], workerId: 'w-1' }, 2);
    const [d] = await worker.waitForDeliveries(1);
    const workers = await call('/workers');
    expect(workers.body.workers).toEqual([expect.objectContaining({ workerId: 'w-1', queues: ['busy'], credit: 1, inFlight: [id] })]);
    worker.ack(d!);
    await worker.waitForSettled(1);
    const t = await call('/throughput');
    expect(t.body.completed).toHaveLength(900);
    expect(t.body.completed.reduce((a: number, n: number) => a + n, 0)).toBeGreaterThanOrEqual(1);
    worker.cancel();
  });

  it('streams counts as Server-Sent Events, and a watched job’s changes', async () => {
    const { id } = await b.api.enqueue({ queue: 'live', payload: {} });
    const controller = new AbortController();
    const res = await fetch(`${base}/events?job=${id}`, { signal: controller.signal });
    expect(res.headers.get('content-type')).toBe('text/event-stream; charset=utf-8');
    const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
    let text = '';
    const until = async (pattern: RegExp) => {
      while (!pattern.test(text)) {
        const { value, done } = await reader.read();
        if (done) throw new Error(`stream ended before ${pattern}: ${text}`);
        text += value;
      }
    };
    await until(/event: counts\ndata: .*"name":"live".*\n\n/);
    await b.api.cancelJob(id, 'stop');
    await until(/event: job\ndata: \{"id":"[^"]+","state":"cancelled"/);
    controller.abort();
    expect((await call('/events?job=0000000000000-nope')).status).toBe(404);
  });
});
