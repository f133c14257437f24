import { writeFileSync } from 'node:fs';
import { createServer, connect as netConnect, type Server as NetServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Server, ServerCredentials, status, type ClientDuplexStream, type ServerUnaryCall, type sendUnaryData } from '@grpc/grpc-js';
import { connect, type SluiceClients } from '../clients/typescript/src/connect.js';
import {
  EnqueueRequest,
  ProducerServiceService,
  type EnqueueBatchRequest,
  type EnqueueBatchResponse,
  type EnqueueStreamRequest,
  type EnqueueStreamResponse,
} from '../clients/typescript/src/gen/sluice/v1/producer.js';
import { InvalidArgumentError, PermissionDeniedError, Producer, UnavailableError } from '../clients/typescript/src/index.js';
import { createTokenLine } from '../src/auth/tokens.js';
import { parseGrant } from '../src/auth/grants.js';
import { MAX_OUTSTANDING_ITEMS_PER_STREAM } from '../src/grpc/enqueue-stream.js';
import type { Broker } from '../src/broker/broker.js';
import { startTestBroker, tempDir, type TestBroker } from './helpers/broker.js';
import { withTimeout } from './helpers/api.js';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function broker(overrides: Parameters<typeof startTestBroker>[0] = {}, dir?: string): Promise<TestBroker> {
  const b = await startTestBroker(overrides, dir ? { dir } : {});
  cleanups.push(() => b.close());
  return b;
}

function producer(address: string, token?: string): Producer {
  const p = new Producer({ address, token });
  cleanups.push(() => p.close());
  return p;
}

/** A raw EnqueueStream with its responses by seq. */
function rawStream(clients: SluiceClients) {
  const call: ClientDuplexStream<EnqueueStreamRequest, EnqueueStreamResponse> = clients.producer.enqueueStream(clients.metadata);
  const waiting = new Map<number, (r: EnqueueStreamResponse) => void>();
  const early = new Map<number, EnqueueStreamResponse>();
  let received = 0;
  call.on('data', (r: EnqueueStreamResponse) => {
    received++;
    const w = waiting.get(r.seq);
    if (w) w(r);
    else early.set(r.seq, r);
  });
  call.on('error', () => undefined);
  cleanups.push(() => call.cancel());
  return {
    call,
    get received() {
      return received;
    },
    send(seq: number, jobs: Partial<EnqueueRequest>[]) {
      call.write({ seq, jobs: jobs.map((j) => EnqueueRequest.fromPartial(j)) });
    },
    answer(seq: number): Promise<EnqueueStreamResponse> {
      const got = early.get(seq);
      if (got) return Promise.resolve(got);
      return withTimeout(new Promise((resolve) => waiting.set(seq, resolve)), 20_000, `the answer to seq ${seq}`);
    },
  };
}

const job = (queue: string, n: number): Partial<EnqueueRequest> => ({ queue, payloadJson: Buffer.from(JSON.stringify({ n })) });

/** Holds the broker's fsyncs of the log (the real fsync runs on release): answers wait, commits go on. */
function holdFsync(b: Broker): { release(): void } {
  const sync = (b as unknown as { walSync: { sync(done: (e: Error | null) => void): void } }).walSync;
  const original = sync.sync.bind(sync);
  const held: (() => void)[] = [];
  sync.sync = (done) => void held.push(() => original(done));
  const release = () => {
    sync.sync = original;
    for (const h of held.splice(0)) h();
  };
  cleanups.push(release);
  return { release };
}

const committed = (b: TestBroker, queue: string) =>
  (b.running.broker.db.prepare('SELECT count(*) AS n FROM jobs WHERE queue = ?').get(queue) as { n: number }).n;

describe('EnqueueStream', () => {
  it('answers each request by its seq with one result per job, a bad item failing alone, and the stream goes on', async () => {
    const b = await broker();
    const s = rawStream(b.clients);
    s.send(7, [job('s1', 1), { queue: 's1', payloadJson: Buffer.from('{not json') }, job('s1', 3)]);
    s.send(8, [job('s1', 4), { queue: 'bad queue!', payloadJson: Buffer.from('{}') }]);
    const [a, c] = await Promise.all([s.answer(7), s.answer(8)]);
    expect(a.results.map((r) => r.error?.code ?? 0)).toEqual([0, status.INVALID_ARGUMENT, 0]);
    expect(a.results[1]!.error!.message).toContain('payload_json is not valid JSON');
    expect(c.results.map((r) => r.error?.code ?? 0)).toEqual([0, status.INVALID_ARGUMENT]);
    // Answered only once durable: the jobs are stored, with their payloads.
    expect((await b.running.broker.reads.getJob(a.results[2]!.id)).payload).toBe('{"n":3}');
    expect((await b.running.broker.reads.getJob(c.results[0]!.id)).state).toBe('pending');
    // The stream survived the bad items.
    s.send(9, [job('s1', 5)]);
    expect((await s.answer(9)).results[0]!.id).not.toBe('');
    expect(committed(b, 's1')).toBe(4);
  });

  it('answers a request over --max-batch-size with an error per item, without ending the stream', async () => {
    const b = await broker({ maxBatchSize: 2 });
    const s = rawStream(b.clients);
    s.send(1, [job('s2', 1), job('s2', 2), job('s2', 3)]);
    const r = await s.answer(1);
    expect(r.results.map((x) => x.error?.code)).toEqual([status.INVALID_ARGUMENT, status.INVALID_ARGUMENT, status.INVALID_ARGUMENT]);
    expect(r.results[0]!.error!.message).toContain('--max-batch-size');
    s.send(2, [job('s2', 4)]);
    expect((await s.answer(2)).results[0]!.error).toBeUndefined();
  });

  it('answers only after the fsync, and stops reading a stream with too many items waiting for it', async () => {
    const b = await broker();
    const hold = holdFsync(b.running.broker);
    const s = rawStream(b.clients);
    const per = 500;
    const messages = Math.ceil((2 * MAX_OUTSTANDING_ITEMS_PER_STREAM) / per);
    for (let m = 0; m < messages; m++) s.send(m, Array.from({ length: per }, (_, i) => job('bp', m * per + i)));
    // Committed (visible) but not durable: no answer yet. The broker reads up to the bound...
    await expect.poll(() => committed(b, 'bp'), { timeout: 30_000 }).toBeGreaterThanOrEqual(MAX_OUTSTANDING_ITEMS_PER_STREAM);
    // ...and no further, however many turns its event loop makes (each read answers at once).
    for (let i = 0; i < 20; i++) await b.api.getQueue('bp');
    const bound = MAX_OUTSTANDING_ITEMS_PER_STREAM + per;
    expect(committed(b, 'bp')).toBeLessThan(bound);
    expect(s.received).toBe(0);
    hold.release();
    const last = await s.answer(messages - 1);
    expect(last.results).toHaveLength(per);
    expect(committed(b, 'bp')).toBe(messages * per);
  });

  it('refuses items on queues the token may not produce to, one by one', async () => {
    const dir = tempDir();
    const { token, line } = createTokenLine('emailer', [parseGrant('produce:email.*')]);
    writeFileSync(join(dir, 'auth'), `${line}\n`);
    const b = await broker({ authFile: join(dir, 'auth') }, dir);
    const clients = connect({ address: b.running.address, token });
    cleanups.push(() => clients.close());
    const s = rawStream(clients);
    s.send(1, [job('email.a', 1), job('sms.b', 2), job('email.c', 3)]);
    const r = await s.answer(1);
    expect(r.results.map((x) => x.error?.code ?? 0)).toEqual([0, status.PERMISSION_DENIED, 0]);
    expect(r.results[1]!.error!.message).toContain('sms.b');
    expect(committed(b, 'sms.b')).toBe(0);
    expect(committed(b, 'email.a') + committed(b, 'email.c')).toBe(2);

    // The Producer on the stream: each call gets its own outcome.
    const p = producer(b.running.address, token);
    await p.enqueue('email.warm', {});
    const [ok, refused] = await Promise.allSettled([p.enqueue('email.x', { n: 1 }), p.enqueue('sms.x', { n: 2 })]);
    expect(p.enqueueStreamCount).toBe(1);
    expect(ok.status).toBe('fulfilled');
    expect((refused as PromiseRejectedResult).reason).toBeInstanceOf(PermissionDeniedError);
  });
});

describe('Producer on EnqueueStream', () => {
  it('coalesces concurrent enqueue() calls on one stream, each with its own outcome', async () => {
    const b = await broker();
    const p = producer(b.running.address);
    await p.enqueue('ps', { warm: true });
    const calls = Array.from({ length: 300 }, (_, i) => (i === 150 ? p.enqueue('ps', { n: i }, { leaseTimeout: 1 }) : p.enqueue('ps', { n: i })));
    const results = await Promise.allSettled(calls);
    expect(results.filter((r) => r.status === 'rejected')).toHaveLength(1);
    expect((results[150] as PromiseRejectedResult).reason).toBeInstanceOf(InvalidArgumentError);
    expect(p.enqueueStreamCount).toBe(1);
    expect(committed(b, 'ps')).toBe(300);
  });

  it('splits jobs waiting together into batches of at least splitMin while batch slots are free', async () => {
    const b = await broker();
    const p = new Producer({ address: b.running.address, batching: { splitMin: 25, maxInFlight: 4 } });
    cleanups.push(() => p.close());
    await p.enqueue('split', { warm: true });
    const before = p.batchRpcCount;
    await Promise.all(Array.from({ length: 50 }, (_, i) => p.enqueue('split', { n: i })));
    expect(p.batchRpcCount - before).toBe(2); // two halves of 25
    const mid = p.batchRpcCount;
    await Promise.all(Array.from({ length: 49 }, (_, i) => p.enqueue('split', { n: i })));
    expect(p.batchRpcCount - mid).toBe(1); // under 2 x splitMin: one batch
    expect(committed(b, 'split')).toBe(100);
  });

  it('falls back to EnqueueBatch against a broker without EnqueueStream, enqueueing each job once', async () => {
    const b = await broker();
    // An older broker: ProducerService without EnqueueStream (grpc-js answers UNIMPLEMENTED),
    // whose EnqueueBatch is the real broker's.
    const old = new Server();
    old.addService(ProducerServiceService, {
      enqueueBatch(call: ServerUnaryCall<EnqueueBatchRequest, EnqueueBatchResponse>, cb: sendUnaryData<EnqueueBatchResponse>) {
        b.clients.producer.enqueueBatch(call.request, (error, response) => cb(error, response));
      },
    });
    const port = await new Promise<number>((resolve, reject) =>
      old.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (e, port) => (e ? reject(e) : resolve(port))),
    );
    cleanups.push(() => new Promise<void>((resolve) => old.tryShutdown(() => resolve())));
    const p = producer(`127.0.0.1:${port}`);
    await p.enqueue('fb', { warm: true });
    const results = await Promise.all(Array.from({ length: 100 }, (_, i) => p.enqueue('fb', { n: i })));
    const more = await Promise.all(Array.from({ length: 100 }, (_, i) => p.enqueue('fb', { n: 100 + i })));
    expect(new Set([...results, ...more].map((r) => r.id)).size).toBe(200);
    expect(p.enqueueStreamCount).toBe(1); // tried once, then EnqueueBatch for good
    expect(committed(b, 'fb')).toBe(201);
  });

  it('fails the jobs outstanding on a lost stream with UnavailableError and sends none of them again', async () => {
    const b = await broker();
    // A TCP relay between producer and broker, so the connection can be cut.
    const [host, port] = b.running.address.split(':') as [string, string];
    const sockets = new Set<Socket>();
    const relay: NetServer = createServer((client) => {
      const upstream = netConnect(Number(port), host);
      sockets.add(client).add(upstream);
      client.pipe(upstream).pipe(client);
      const gone = () => (client.destroy(), upstream.destroy());
      client.on('error', gone).on('close', gone);
      upstream.on('error', gone).on('close', gone);
    });
    await new Promise<void>((resolve) => relay.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => new Promise<void>((resolve) => relay.close(() => resolve())));
    cleanups.push(() => sockets.forEach((s) => s.destroy()));
    const p = producer(`127.0.0.1:${(relay.address() as { port: number }).port}`);
    await p.enqueue('lost', { warm: true });

    const hold = holdFsync(b.running.broker);
    const calls = Array.from({ length: 10 }, (_, i) => p.enqueue('lost', { n: i }));
    const settled = Promise.allSettled(calls);
    // Committed, waiting for the (held) fsync: then the connection breaks.
    await expect.poll(() => committed(b, 'lost'), { timeout: 20_000 }).toBe(11);
    for (const s of sockets) s.destroy();
    const results = await settled;
    for (const r of results) expect((r as PromiseRejectedResult).reason).toBeInstanceOf(UnavailableError);
    hold.release();
    // The producer carries on (the first call waits for the new connection, the next opens a
    // new stream); nothing was sent twice.
    await p.enqueue('lost', { after: 1 });
    await p.enqueue('lost', { after: 2 });
    expect(p.enqueueStreamCount).toBe(2);
    expect(committed(b, 'lost')).toBe(13);
  });
});
