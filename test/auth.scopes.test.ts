import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client, credentials, Metadata, status } from '@grpc/grpc-js';
import { createTokenLine } from '../src/auth/tokens.js';
import { parseGrant } from '../src/auth/grants.js';
import { connect, type SluiceClients } from '../clients/typescript/src/connect.js';
import { Admin, PermissionDeniedError, Producer, UnauthenticatedError, Worker } from '../clients/typescript/src/index.js';
import { startTestBroker, tempDir, type TestBroker } from './helpers/broker.js';
import { Api } from './helpers/api.js';
import { runCli } from './helpers/cli.js';
import { expectStatus, expectStreamStatus } from './helpers/expect-status.js';

/** Tokens by name, each with the grants written into the auth file. */
const GRANTS: Record<string, string[]> = {
  root: ['produce', 'consume', 'admin'],
  producer: ['produce'],
  consumer: ['consume'],
  reader: ['read'],
  admin: ['admin'],
  producerEmail: ['produce:email.*'],
  consumerEmail: ['consume:email.*'],
  readerEmail: ['read:email.*'],
  adminEmail: ['admin:email.*'],
};

let b: TestBroker;
const tokens: Record<string, string> = {};
const opened: SluiceClients[] = [];

function apiFor(token: string | undefined, extra: { metadata?: Record<string, string> } = {}): Api {
  const clients = connect({ address: b.running.address, token, ...extra });
  opened.push(clients);
  return new Api(clients);
}
const as = (name: string) => apiFor(tokens[name]);

beforeAll(async () => {
  const dir = tempDir();
  const lines = Object.entries(GRANTS).map(([name, grants]) => {
    const { token, line } = createTokenLine(name, grants.map(parseGrant));
    tokens[name] = token;
    return line;
  });
  const authFile = join(dir, 'auth');
  writeFileSync(authFile, `# test tokens\n${lines.join('\n')}\n`);
  b = await startTestBroker({ authFile }, { dir });
  const root = as('root');
  await root.enqueue({ queue: 'email.welcome', payload: { n: 1 } });
  await root.enqueue({ queue: 'sms.alerts', payload: { n: 2 } });
});

afterAll(async () => {
  for (const c of opened) c.close();
  await b?.close();
});

/** One RPC of each class, against a queue every limited token may use. */
const CLASSES = {
  produce: (api: Api) => api.enqueue({ queue: 'email.welcome', payload: { x: 1 } }),
  consume: async (api: Api) => {
    const c = api.consumer({ queues: ['email.welcome'] });
    try {
      await c.until(() => c.subscribed !== undefined || c.ended, 'the subscription or the end of the stream');
      if (!c.subscribed) {
        const s = await c.status;
        throw Object.assign(new Error(s.details), s);
      }
    } finally {
      c.cancel();
    }
  },
  read: (api: Api) => api.listJobs({ queue: 'email.welcome' }),
  admin: (api: Api) => api.resumeQueue('email.welcome'),
} as const;

const ALLOWED: Record<string, (keyof typeof CLASSES)[]> = {
  root: ['produce', 'consume', 'read', 'admin'],
  producer: ['produce'],
  consumer: ['consume'],
  reader: ['read'],
  admin: ['read', 'admin'],
  producerEmail: ['produce'],
  consumerEmail: ['consume'],
  readerEmail: ['read'],
  adminEmail: ['read', 'admin'],
};

describe('scopes x RPC classes', () => {
  for (const [name, allowed] of Object.entries(ALLOWED)) {
    for (const cls of Object.keys(CLASSES) as (keyof typeof CLASSES)[]) {
      const ok = allowed.includes(cls);
      it(`${name} ${ok ? 'may' : 'may not'} ${cls}`, async () => {
        const call = CLASSES[cls](as(name));
        if (ok) await call;
        else await expectStatus(call, status.PERMISSION_DENIED, name, cls === 'read' ? 'read' : cls);
      });
    }
  }
});

describe('missing, unknown and malformed credentials', () => {
  it('answers UNAUTHENTICATED without a token, saying how to send one', async () => {
    await expectStatus(apiFor(undefined).listQueues(), status.UNAUTHENTICATED, 'authorization: Bearer');
    await expectStatus(apiFor(undefined).enqueue({ queue: 'email.x', payload: {} }), status.UNAUTHENTICATED);
  });
  it('answers UNAUTHENTICATED for an unknown token and a non-Bearer header', async () => {
    await expectStatus(apiFor('slu_not-a-real-token').listQueues(), status.UNAUTHENTICATED, 'unknown');
    await expectStatus(apiFor(undefined, { metadata: { authorization: `Basic ${tokens.root}` } }).listQueues(), status.UNAUTHENTICATED, 'Bearer');
  });
  it('ends a Consume stream without a token with UNAUTHENTICATED', async () => {
    const c = apiFor(undefined).consumer({ queues: ['email.welcome'] });
    await expectStreamStatus(c, status.UNAUTHENTICATED);
  });
  it('keeps health and reflection open', async () => {
    const client = new Client(b.running.address, credentials.createInsecure());
    try {
      const reply = await new Promise<Buffer>((resolve, reject) =>
        client.makeUnaryRequest('/grpc.health.v1.Health/Check', (b: Buffer) => b, (b: Buffer) => b, Buffer.alloc(0), new Metadata(), (e, r) => (e ? reject(e) : resolve(r!))),
      );
      expect([...reply]).toEqual([0x08, 0x01]); // status: SERVING
      const names = await reflectionServices(client);
      expect(names).toContain('sluice.v1.ProducerService');
    } finally {
      client.close();
    }
  });
});

describe('queue patterns', () => {
  it('lets produce:email.* enqueue to email.* only, whole batches included', async () => {
    const api = as('producerEmail');
    await api.enqueue({ queue: 'email.reset', payload: {} });
    await expectStatus(api.enqueue({ queue: 'sms.alerts', payload: {} }), status.PERMISSION_DENIED, 'sms.alerts', 'produce:email.*');
    await expectStatus(api.enqueueBatch([{ queue: 'email.a', payload: {} }, { queue: 'emailx', payload: {} }], false), status.PERMISSION_DENIED, 'emailx');
    const { results } = await api.enqueueBatch([{ queue: 'email.a', payload: {} }, { queue: 'email.b.c', payload: {} }], true);
    expect(results.every((r) => r.id)).toBe(true);
  });

  it('checks a Consume subscription against the token queues', async () => {
    const api = as('consumerEmail');
    const denied = api.consumer({ queues: ['email.welcome', 'sms.alerts'] });
    await expectStreamStatus(denied, status.PERMISSION_DENIED, 'sms.alerts');
    const c = api.consumer({ queues: ['email.welcome'] }, 10);
    try {
      const [d] = await c.waitForDeliveries(1);
      expect(d!.queue).toBe('email.welcome');
      c.ack(d!);
      await c.waitForSettled(1);
      expect(c.settled[0]!.code).toBe(0);
    } finally {
      c.cancel();
    }
  });

  it('shows a limited read token only its queues and its jobs', async () => {
    const api = as('readerEmail');
    const queues = (await api.listQueues()).map((q) => q.name);
    expect(queues.length).toBeGreaterThan(0);
    expect(queues.every((q) => q.startsWith('email.'))).toBe(true);
    expect((await as('reader').listQueues()).map((q) => q.name)).toContain('sms.alerts');

    // A listing across queues must name the queue; another tenant's queue is refused.
    await expectStatus(api.listJobs({}), status.PERMISSION_DENIED, 'name the queue');
    await expectStatus(api.listJobs({ queue: 'sms.alerts' }), status.PERMISSION_DENIED, 'sms.alerts');
    await expectStatus(api.getQueue('sms.alerts'), status.PERMISSION_DENIED);
    const mine = await api.listJobs({ queue: 'email.welcome' });
    expect(mine.jobs.length).toBeGreaterThan(0);

    // A job by id on a queue the token cannot read looks exactly like a missing job.
    const sms = (await as('reader').listJobs({ queue: 'sms.alerts' })).jobs[0]!;
    await expectStatus(api.getJob(sms.id), status.NOT_FOUND, `job ${sms.id} not found`);
    await expectStatus(api.getJob('0190a1b2-c3d4-7e5f-8000-000000000000'), status.NOT_FOUND);
    expect((await api.getJob(mine.jobs[0]!.id)).queue).toBe('email.welcome');
    // produce:email.* may read (and cancel) its own queue's jobs by id, not others'.
    await expectStatus(as('producerEmail').cancelJob(sms.id), status.NOT_FOUND);
  });

  it('limits admin:email.* to its queues; dead-letter filters must name one', async () => {
    const api = as('adminEmail');
    await api.pauseQueue('email.welcome');
    await api.resumeQueue('email.welcome');
    await expectStatus(api.pauseQueue('sms.alerts'), status.PERMISSION_DENIED, 'sms.alerts');
    await expectStatus(api.purgeDeadLetters({ all: true }), status.PERMISSION_DENIED, 'name the queue');
    expect(await api.purgeDeadLetters({ queue: 'email.welcome' })).toBe(0);
    await expectStatus(api.replayDeadLetters({ queue: 'sms.alerts' }), status.PERMISSION_DENIED);
  });

});

describe('@sluice/client with a token', () => {
  it('Producer and Worker work with their scopes and fail with typed errors without them', async () => {
    const producer = new Producer({ address: b.running.address, token: tokens.producerEmail });
    const noToken = new Producer({ address: b.running.address, callTimeoutMs: 5000 });
    const worker = new Worker({ address: b.running.address, token: tokens.consumerEmail, queues: ['email.client'], shutdownSignals: [], handler: (job) => ({ echoed: job.payload }) });
    const wrong = new Worker({ address: b.running.address, token: tokens.producer, queues: ['email.client'], shutdownSignals: [], handler: () => undefined });
    try {
      await expect(noToken.enqueue('email.client', { a: 1 })).rejects.toBeInstanceOf(UnauthenticatedError);
      await expect(producer.enqueue('sms.client', { a: 1 })).rejects.toBeInstanceOf(PermissionDeniedError);
      await expect(wrong.run()).rejects.toBeInstanceOf(PermissionDeniedError);
      const done = new Promise<string>((resolve) => worker.on('completed', (job: { id: string }) => resolve(job.id)));
      void worker.run();
      const { id } = await producer.enqueue('email.client', { a: 1 });
      expect(await done).toBe(id);
      expect(await producer.getJob(id)).toMatchObject({ state: 'completed', result: { echoed: { a: 1 } } });
    } finally {
      await worker.close({ timeoutMs: 1000 });
      await wrong.close({ timeoutMs: 1000 });
      await producer.close();
      await noToken.close();
    }
  });
});

describe('@sluice/client Admin with a token', () => {
  it('lists only what a limited token may read, and refuses other queues with PermissionDeniedError', async () => {
    const reader = new Admin({ address: b.running.address, token: tokens.readerEmail });
    const admin = new Admin({ address: b.running.address, token: tokens.adminEmail });
    try {
      const names = (await reader.listQueues()).map((q) => q.name);
      expect(names).toContain('email.welcome');
      expect(names).not.toContain('sms.alerts');
      await expect(reader.pauseQueue('email.welcome')).rejects.toBeInstanceOf(PermissionDeniedError);
      await admin.pauseQueue('email.welcome');
      await admin.resumeQueue('email.welcome');
      await expect(admin.pauseQueue('sms.alerts')).rejects.toBeInstanceOf(PermissionDeniedError);
    } finally {
      reader.close();
      admin.close();
    }
  });
});

describe('the sluice CLI with a token', () => {
  it('sends --token / SLUICE_TOKEN and reports refusals with their status', async () => {
    const address = b.running.address;
    const listed = await runCli(['queues', '--json'], { address, env: { SLUICE_TOKEN: tokens.readerEmail! } });
    expect(listed.code, listed.stderr).toBe(0);
    expect(listed.stdout).toContain('email.welcome');
    expect(listed.stdout).not.toContain('sms.alerts');

    const anonymous = await runCli(['queues'], { address });
    expect(anonymous.code).toBe(1);
    expect(anonymous.stderr).toMatch(/UNAUTHENTICATED/);

    const denied = await runCli(['enqueue', 'sms.alerts', '{}', '--token', tokens.producerEmail!], { address });
    expect(denied.code).toBe(1);
    expect(denied.stderr).toMatch(/PERMISSION_DENIED: producerEmail may not call Enqueue on queue "sms.alerts"/);
    const ok = await runCli(['enqueue', 'email.cli', '{}', '--token', tokens.producerEmail!], { address });
    expect(ok.code, ok.stderr).toBe(0);
  });
});

/** Lists services over reflection v1 (raw bytes: list_services = field 7, a string). */
async function reflectionServices(client: Client): Promise<string> {
  return new Promise((resolve, reject) => {
    const call = client.makeBidiStreamRequest('/grpc.reflection.v1.ServerReflection/ServerReflectionInfo', (b: Buffer) => b, (b: Buffer) => b, new Metadata());
    let text = '';
    call.on('data', (b: Buffer) => {
      text += b.toString('latin1');
      call.end();
    });
    call.on('error', reject);
    call.on('end', () => resolve(text));
    call.write(Buffer.from([0x3a, 0x01, 0x2a])); // list_services: "*"
  });
}

describe('nothing public (--public-endpoints none)', () => {
  it('asks for a token on gRPC health and on /healthz; authorizes HTTP with the same header', async () => {
    const dir = tempDir();
    const reader = createTokenLine('reader', [parseGrant('read:email.*')]);
    const authFile = join(dir, 'auth');
    writeFileSync(authFile, `${reader.line}\n`);
    const closed = await startTestBroker({ authFile, publicEndpoints: [], httpAddress: '127.0.0.1:0' }, { dir });
    const client = new Client(closed.running.address, credentials.createInsecure());
    const check = (md: Metadata) =>
      new Promise<Buffer>((resolve, reject) =>
        client.makeUnaryRequest('/grpc.health.v1.Health/Check', (x: Buffer) => x, (x: Buffer) => x, Buffer.alloc(0), md, (e, r) => (e ? reject(e) : resolve(r!))),
      );
    try {
      await expectStatus(check(new Metadata()), status.UNAUTHENTICATED);
      const md = new Metadata();
      md.set('authorization', `Bearer ${reader.token}`);
      expect([...(await check(md))]).toEqual([0x08, 0x01]);

      const url = `http://127.0.0.1:${closed.running.httpPort}/healthz`;
      const anonymous = await fetch(url);
      expect(anonymous.status).toBe(401);
      expect(anonymous.headers.get('www-authenticate')).toMatch(/^Bearer/);
      expect(((await anonymous.json()) as { error: { code: string } }).error.code).toBe('UNAUTHENTICATED');
      expect((await fetch(url, { headers: { authorization: 'Bearer slu_wrong' } })).status).toBe(401);
      expect((await fetch(url, { headers: { authorization: `Bearer ${reader.token}` } })).status).toBe(200);

      // The function other HTTP routes call: scope and queue, 403 when the token lacks them.
      const http = closed.running.security.http;
      const req = (token?: string) => ({ headers: token ? { authorization: `Bearer ${token}` } : {}, socket: {} }) as never;
      expect(http.authorize(req(reader.token), 'read', 'email.x').name).toBe('reader');
      expect(() => http.authorize(req(reader.token), 'read', 'sms')).toThrow(/lacks the read scope on queue "sms"/);
      expect(() => http.authorize(req(reader.token), 'read')).toThrow(/every queue/);
      expect(http.authorizeAny(req(reader.token), 'read').allows('read', 'email.y')).toBe(true);
      expect(() => http.authorizeAny(req(reader.token), 'admin')).toThrow(/admin/);
      expect(() => http.authorize(req(), 'read', 'email.x')).toThrow(/missing credentials/);
    } finally {
      client.close();
      await closed.close();
    }
  });
});
