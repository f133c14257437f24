import { afterEach, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { rmSync } from 'node:fs';
import { startTestBroker, tempDir, type TestBroker } from '../../../test/helpers/broker.js';
import { killChildBrokers, startChildBroker } from '../../../test/helpers/child-broker.js';
import { LeaseLostError, Producer, Worker, type JobAbortedError } from '../src/index.js';
import { collectUntil, gate, killChildWorkers, startChildWorker } from './helpers.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  await killChildWorkers();
  for (const c of cleanups.splice(0).reverse()) await c();
  await killChildBrokers();
});

describe('Worker failover', () => {
  it('redelivers the job of a SIGKILLed worker process to another worker at once, not after the lease timeout', async () => {
    const b: TestBroker = await startTestBroker();
    cleanups.push(() => b.close());
    const producer = new Producer({ address: b.running.address });
    cleanups.push(() => producer.close());
    const { id } = await producer.enqueue('work', { n: 1 }, { leaseTimeout: 120_000 });

    const doomed = startChildWorker({ SLUICE_ADDRESS: b.running.address, QUEUE: 'work' });
    await doomed.waitFor((e) => e.event === 'active' && e.id === id, 'job active on the doomed worker');

    const survivor = new Worker({ address: b.running.address, queues: ['work'], shutdownSignals: [], handler: (job) => ({ attempt: job.attempt }) });
    cleanups.push(() => survivor.close());
    void survivor.run();
    await collectUntil(survivor, 'ready', (items) => items.length >= 1);
    const completed = collectUntil(survivor, 'completed', (items) => items.length >= 1, 10_000);
    const killedAt = Date.now();
    doomed.process.kill('SIGKILL');
    await completed;
    // Stream loss, not the 120 s lease timeout, brought it back.
    expect(Date.now() - killedAt).toBeLessThan(10_000);
    expect(await producer.getJob(id)).toMatchObject({ state: 'completed', attempt: 2, result: { attempt: 2 } });
  });

  it('survives a broker SIGKILL and restart: reconnects itself, loses nothing, never settles with a stale lease', async () => {
    const dir = tempDir();
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const dataFile = join(dir, 'sluice.db');
    let broker = await startChildBroker({ dataFile, http: false });
    const address = broker.address;

    const total = 300;
    const producer = new Producer({ address });
    cleanups.push(() => producer.close());
    await producer.enqueueBatch(Array.from({ length: total }, (_, i) => ({ queue: 'work', payload: { i }, options: { maxAttempts: 10 } })));

    // Handlers run 2 ms; two of the first jobs block until the broker is gone.
    const blocked = gate();
    let blockers = 0;
    const completions = new Map<string, number>();
    const aborts: JobAbortedError[] = [];
    const errors: Error[] = [];
    const worker = new Worker({
      address,
      queues: ['work'],
      concurrency: 8,
      shutdownSignals: [],
      reconnect: { initialMs: 50, maxMs: 300 },
      handler: async (job) => {
        if (blockers < 2 && job.attempt === 1) {
          blockers++;
          await Promise.race([blocked.promise, new Promise((resolve) => job.signal.addEventListener('abort', resolve))]);
          return 'late';
        }
        await new Promise((resolve) => setTimeout(resolve, 2));
        return 'ok';
      },
    });
    cleanups.push(() => worker.close({ timeoutMs: 1000 }));
    worker.on('completed', (job) => completions.set(job.id, (completions.get(job.id) ?? 0) + 1));
    worker.on('aborted', (_job, reason) => aborts.push(reason));
    worker.on('error', (e) => errors.push(e));
    void worker.run();
    await collectUntil(worker, 'completed', (items) => items.length >= 50, 20_000);

    broker.kill('SIGKILL');
    await broker.exited;
    await expect.poll(() => worker.state).toBe('reconnecting');
    blocked.open();
    // The blocked handlers' leases died with the stream: their signals fired with LeaseLostError.
    await expect.poll(() => aborts.length).toBeGreaterThanOrEqual(2);
    expect(aborts.every((a) => a instanceof LeaseLostError)).toBe(true);

    // A producer call made while the broker is down waits for it instead of failing.
    const lateEnqueue = producer.enqueue('work', { late: true });
    const port = address.split(':').pop();
    broker = await startChildBroker({ dataFile, http: false, args: ['--grpc-address', `127.0.0.1:${port}`] });
    const late = await lateEnqueue;
    const stats = await waitForAllCompleted(broker.api, total + 1);
    expect(stats.counts).toMatchObject({ completed: total + 1, pending: 0, active: 0, scheduled: 0, dead: 0 });
    expect((await producer.getJob(late.id)).state).toBe('completed');
    expect(worker.state).toBe('running');
    // No stale-lease refusals: nothing was settled twice or with an old lease.
    expect(errors.filter((e) => (e as { code?: number }).code === 9)).toEqual([]);
    expect([...completions.values()].every((n) => n === 1)).toBe(true);
  });
});

/** Polls queue counts until every job completed; right after a restart the channel may still be reconnecting. */
async function waitForAllCompleted(api: Awaited<ReturnType<typeof startChildBroker>>['api'], total: number) {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const queue = await api.getQueue('work').catch((e: { code?: number }) => {
      if (e.code === 14) return undefined; // UNAVAILABLE: not connected yet
      throw e;
    });
    if ((queue && (queue.counts?.completed ?? 0) >= total) || Date.now() > deadline) return queue!;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
