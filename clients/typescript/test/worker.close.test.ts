import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startTestBroker, type TestBroker } from '../../../test/helpers/broker.js';
import { Producer, Worker, WorkerClosingError } from '../src/index.js';
import { collectUntil, gate, killChildWorkers, startChildWorker } from './helpers.js';

let b: TestBroker;
let producer: Producer;
beforeEach(async () => {
  b = await startTestBroker();
  producer = new Producer({ address: b.running.address });
});
afterEach(async () => {
  await killChildWorkers();
  await producer.close();
  await b.close();
});

describe('Worker.close()', () => {
  it('lets in-flight handlers finish and acks them, and takes no new work', async () => {
    const ids = await b.api.enqueueMany('work', 6);
    const release = gate();
    const worker = new Worker({
      address: b.running.address,
      queues: ['work'],
      concurrency: 3,
      shutdownSignals: [],
      handler: async () => {
        await release.promise;
        return 'finished';
      },
    });
    const run = worker.run();
    await collectUntil(worker, 'active', (items) => items.length >= 3);
    const closing = worker.close({ timeoutMs: 10_000 });
    expect(worker.state).toBe('closing');
    release.open();
    await closing;
    await run;
    expect(worker.state).toBe('closed');

    const jobs = await Promise.all(ids.map((id) => producer.getJob(id)));
    const completed = jobs.filter((j) => j.state === 'completed');
    expect(completed).toHaveLength(3);
    expect(completed.every((j) => j.result === 'finished' && j.attempt === 1)).toBe(true);
    // The other three were never started: pending, no attempt used.
    expect(jobs.filter((j) => j.state === 'pending' && j.attempt === 0)).toHaveLength(3);
  });

  it('aborts handlers still running at the timeout and hands their jobs back for redelivery', async () => {
    const [id] = await b.api.enqueueMany('work', 1);
    const reasons: unknown[] = [];
    const worker = new Worker({
      address: b.running.address,
      queues: ['work'],
      shutdownSignals: [],
      handler: (job) =>
        new Promise((_, reject) =>
          job.signal.addEventListener('abort', () => {
            reasons.push(job.signal.reason);
            reject(job.signal.reason);
          }),
        ),
    });
    void worker.run();
    await collectUntil(worker, 'active', (items) => items.length >= 1);
    await worker.close({ timeoutMs: 100 });
    expect(reasons).toHaveLength(1);
    expect(reasons[0]).toBeInstanceOf(WorkerClosingError);
    expect((reasons[0] as WorkerClosingError).kind).toBe('worker-closing');

    // Given back at once, without spending the attempt; the next worker gets it.
    expect(await producer.getJob(id!)).toMatchObject({ state: 'pending', attempt: 0 });
    const next = new Worker({ address: b.running.address, queues: ['work'], shutdownSignals: [], handler: (job) => `attempt ${job.attempt}` });
    void next.run();
    await collectUntil(next, 'completed', (items) => items.length >= 1);
    await next.close();
    expect(await producer.getJob(id!)).toMatchObject({ state: 'completed', result: 'attempt 1' });
  });

  it('drains on SIGTERM in its own process and exits 0 with every started job acked', async () => {
    const ids = await b.api.enqueueMany('work', 4);
    const child = startChildWorker({ SLUICE_ADDRESS: b.running.address, QUEUE: 'work', CONCURRENCY: '2', HANDLER_MS: '300' });
    await child.waitFor((e) => e.event === 'active', 'first job active');
    child.process.kill('SIGTERM');
    const exit = await child.exited;
    expect(exit).toEqual({ code: 0, signal: null });
    const started = child.events.filter((e) => e.event === 'active').map((e) => e.id);
    const completed = child.events.filter((e) => e.event === 'completed').map((e) => e.id);
    expect(completed.sort()).toEqual(started.sort());
    expect(child.events.at(-1)).toEqual({ event: 'closed' });
    const jobs = await Promise.all(ids.map((id) => producer.getJob(id)));
    for (const job of jobs) {
      if (started.includes(job.id)) expect(job.state).toBe('completed');
      else expect(job).toMatchObject({ state: 'pending', attempt: 0 });
    }
  });
});
