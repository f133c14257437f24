import { createServer } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { startTestBroker, type TestBroker } from '../../../test/helpers/broker.js';
import { Admin, Producer, UnavailableError, Worker } from '../src/index.js';
import { collectUntil } from './helpers.js';

/** A port nothing listens on (taken from the OS, then released). */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

const cleanups: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe('an unreachable broker', () => {
  it('is reported early by the Producer and Admin, with its address and why, instead of after the 30 s call timeout', async () => {
    const address = `127.0.0.1:${await freePort()}`;
    const producer = new Producer({ address, connectTimeoutMs: 300 });
    const admin = new Admin({ address, connectTimeoutMs: 300 });
    cleanups.push(() => producer.close(), () => admin.close());
    const started = Date.now();
    const error = await producer.enqueue('email', {}).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(UnavailableError);
    expect((error as Error).message).toBe(`no Sluice broker at ${address} (connection refused); is it running? (\`npm start\` in the Sluice repository starts one)`);
    // A bound, not a sync point: far below the 30 s the call would otherwise wait.
    expect(Date.now() - started).toBeLessThan(15_000);
    await expect(producer.getJob('x')).rejects.toThrow(/no Sluice broker at/);
    await expect(admin.listQueues()).rejects.toBeInstanceOf(UnavailableError);
  });

  it('is reported by the Worker early (error event, logger), which keeps trying and runs jobs once a broker starts there', async () => {
    const port = await freePort();
    const address = `127.0.0.1:${port}`;
    const warnings: string[] = [];
    const log = { info: () => undefined, warn: (_f: Record<string, unknown>, m: string) => warnings.push(m) };
    const worker = new Worker({ address, queues: ['work'], shutdownSignals: [], logger: log, handler: () => 'ran' });
    cleanups.push(() => worker.close({ timeoutMs: 500 }));
    const errors = collectUntil(worker, 'error', (items) => items.length >= 1);
    void worker.run();
    const [[error]] = (await errors) as [[Error]];
    expect(error).toBeInstanceOf(UnavailableError);
    expect(error.message).toMatch(new RegExp(`^no Sluice broker at ${address} \\(connection refused\\).*the worker keeps trying`));
    expect(warnings).toEqual([error.message]);
    expect(worker.state).toBe('connecting');

    let b: TestBroker | undefined;
    cleanups.push(() => b?.close());
    b = await startTestBroker({ grpcAddress: address });
    const completed = collectUntil(worker, 'completed', (items) => items.length >= 1, 30_000);
    const producer = new Producer({ address });
    cleanups.push(() => producer.close());
    await producer.enqueue('work', {});
    await completed;
    expect(worker.state).toBe('running');
  });

  it('is waited for when it was reached before (a restart): a call made while it is down succeeds once it is back', async () => {
    const port = await freePort();
    const address = `127.0.0.1:${port}`;
    let b: TestBroker | undefined = await startTestBroker({ grpcAddress: address });
    cleanups.push(() => b?.close());
    const producer = new Producer({ address, connectTimeoutMs: 100 });
    cleanups.push(() => producer.close());
    await producer.enqueue('work', { n: 1 });
    await b.close();
    const reach = (producer as unknown as { clients: { reachability: { failing: boolean; ready: boolean } } }).clients.reachability;
    // The client has seen the connection go (a call started before would die with it).
    await expect.poll(() => reach.ready, { timeout: 10_000 }).toBe(false);

    const during = producer.enqueue('work', { n: 2 });
    let settled = false;
    during.then(() => (settled = true), () => (settled = true));
    // Down for longer than connectTimeoutMs: the channel has failed to connect at least once.
    await expect.poll(() => reach.failing, { timeout: 10_000 }).toBe(true);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(settled).toBe(false);
    b = await startTestBroker({ grpcAddress: address });
    const { id } = await during;
    expect((await producer.getJob(id)).payload).toEqual({ n: 2 });
  });
});
