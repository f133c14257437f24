import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestBroker, type TestBroker } from './helpers/broker.js';

let b: TestBroker;
let base: string;

beforeAll(async () => {
  b = await startTestBroker({ httpAddress: '127.0.0.1:0' });
  base = `http://127.0.0.1:${b.running.httpPort}`;
});
afterAll(async () => {
  await b.close();
});

describe('dashboard files', () => {
  it('serves index.html at / and at every view URL (shareable links), never cached', async () => {
    for (const path of ['/', '/queues/email', '/jobs/01a2-xyz', '/dead-letters?queue=email', '/workers', '/schedules', '/schedules/sch_0f8c2a4e-5d1b-4c3a-9e7f-2b6d8a1c3e5f']) {
      const res = await fetch(base + path);
      expect(res.status, path).toBe(200);
      expect(res.headers.get('content-type')).toBe('text/html; charset=utf-8');
      expect(res.headers.get('cache-control')).toBe('no-cache');
      expect(await res.text()).toContain('<div id="app">');
    }
  });

  it('serves the hashed assets it names with their types, gzip and a one-year immutable cache', async () => {
    const html = await (await fetch(base + '/')).text();
    const js = /src="(\/assets\/app-[A-Z0-9]+\.js)"/.exec(html)?.[1];
    const css = /href="(\/assets\/app-[A-Z0-9]+\.css)"/.exec(html)?.[1];
    expect(js && css).toBeTruthy();
    const script = await fetch(base + js!, { headers: { 'accept-encoding': 'gzip' } });
    expect(script.status).toBe(200);
    expect(script.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
    expect(script.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
    expect(script.headers.get('content-encoding')).toBe('gzip');
    expect((await fetch(base + css!)).headers.get('content-type')).toBe('text/css; charset=utf-8');
    expect((await fetch(base + '/favicon.svg')).headers.get('content-type')).toBe('image/svg+xml');
  });

  it('answers 404 for a missing asset instead of the page, and sends a strict CSP with no framing', async () => {
    expect((await fetch(base + '/assets/app-MISSING.js')).status).toBe(404);
    expect((await fetch(base + '/nope.png')).status).toBe(404);
    const res = await fetch(base + '/');
    expect(res.headers.get('content-security-policy')).toContain("script-src 'self'");
    expect(res.headers.get('content-security-policy')).toContain("frame-ancestors 'none'");
    expect(res.headers.get('x-frame-options')).toBe('DENY');
    expect((await fetch(base + '/', { method: 'POST' })).status).toBe(405);
  });

  it('keeps /healthz', async () => {
    expect(((await (await fetch(base + '/healthz')).json()) as { status: string }).status).toBe('SERVING');
  });
});
