import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startTestBroker, type TestBroker } from '../../../test/helpers/broker.js';
import { Producer, Worker } from '../src/index.js';
import { collectUntil, gate } from './helpers.js';

let b: TestBroker;
let producer: Producer;
let worker: Worker | undefined;
beforeEach(async () => {
  b = await startTestBroker();
  producer = new Producer({ address: b.running.address });
});
afterEach(async () => {
  await worker?.close({ timeoutMs: 1000 });
  worker = undefined;
  await producer.close();
  await b.close();
});

describe('Worker concurrency', () => {
  it('runs exactly N handlers at once while work is queued, refilling each freed slot', async () => {
    const N = 5;
    const total = 40;
    await b.api.enqueueMany('work', total);
    const gates = new Map<string, { open(): void }>();
    let running = 0;
    let maxRunning = 0;
    const started: string[] = [];
    worker = new Worker({
      address: b.running.address,
      queues: ['work'],
      concurrency: N,
      shutdownSignals: [],
      handler: async (job) => {
        running++;
        maxRunning = Math.max(maxRunning, running);
        const g = gate<void>();
        gates.set(job.id, g);
        started.push(job.id);
        await g.promise;
        running--;
      },
    });
    void worker.run();

    // All N slots fill without any job finishing...
    await expect.poll(() => started.length).toBe(N);
    // ...and each finished job frees exactly one slot that is refilled while work remains.
    for (let done = 0; done < total; done++) {
      expect(running).toBe(Math.min(N, total - done));
      gates.get(started[done]!)!.open();
      const expectedStarted = Math.min(total, N + done + 1);
      await expect.poll(() => started.length).toBe(expectedStarted);
    }
    await expect.poll(() => running).toBe(0);
    expect(maxRunning).toBe(N);
    expect(new Set(started).size).toBe(total);
  });

  it('never exceeds N with many short jobs and completes them all', async () => {
    const N = 8;
    const total = 600;
    await producer.enqueueBatch(Array.from({ length: total }, (_, i) => ({ queue: 'short', payload: { i } })));
    let running = 0;
    let maxRunning = 0;
    worker = new Worker({
      address: b.running.address,
      queues: ['short'],
      concurrency: N,
      shutdownSignals: [],
      handler: async () => {
        running++;
        maxRunning = Math.max(maxRunning, running);
        await new Promise((resolve) => setTimeout(resolve, 1));
        running--;
      },
    });
    void worker.run();
    await collectUntil(worker, 'completed', (items) => items.length >= total, 30_000);
    expect(maxRunning).toBe(N);
    expect((await b.api.getQueue('short')).counts).toMatchObject({ completed: total, pending: 0, active: 0 });
  });

  it('with prefetch holds extra jobs ready but still runs at most N, and hands held jobs back on close', async () => {
    const ids = await b.api.enqueueMany('held', 10);
    const release = gate<void>();
    let running = 0;
    let maxRunning = 0;
    worker = new Worker({
      address: b.running.address,
      queues: ['held'],
      concurrency: 2,
      prefetch: 3,
      shutdownSignals: [],
      handler: async () => {
        running++;
        maxRunning = Math.max(maxRunning, running);
        await release.promise;
        running--;
      },
    });
    void worker.run();
    // 2 running + 3 held = 5 leased; the other 5 stay pending.
    await expect.poll(async () => (await b.api.getQueue('held')).counts?.active).toBe(5);
    expect(running).toBe(2);
    const closing = worker.close({ timeoutMs: 5_000 });
    release.open();
    await closing;
    worker = undefined;
    expect(maxRunning).toBe(2);
    const jobs = await Promise.all(ids.map((id) => producer.getJob(id)));
    expect(jobs.filter((j) => j.state === 'completed').length).toBeGreaterThanOrEqual(2);
    // Held jobs never started: back to pending without an attempt spent.
    expect(jobs.filter((j) => j.state !== 'completed').every((j) => j.state === 'pending' && j.attempt === 0)).toBe(true);
    expect(jobs.filter((j) => j.state === 'completed').every((j) => j.attempt === 1)).toBe(true);
  });
});
