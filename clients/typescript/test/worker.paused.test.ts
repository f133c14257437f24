import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startTestBroker, type TestBroker } from '../../../test/helpers/broker.js';
import { Admin, Producer, Worker } from '../src/index.js';
import { collectUntil } from './helpers.js';

let b: TestBroker;
let admin: Admin;
let producer: Producer;
let worker: Worker<any, any> | undefined;
beforeEach(async () => {
  b = await startTestBroker();
  admin = new Admin({ address: b.running.address });
  producer = new Producer({ address: b.running.address });
});
afterEach(async () => {
  await worker?.close({ timeoutMs: 500 });
  admin.close();
  await producer.close();
  await b.close();
});

describe('Worker and paused queues', () => {
  it('says a subscribed queue is paused (on connect and when it happens) and resumed, through events and its logger', async () => {
    await producer.enqueue('email', { to: 'a@b.c' });
    await admin.pauseQueue('email');
    const lines: string[] = [];
    const log = (fields: Record<string, unknown>, message: string) => lines.push(`${JSON.stringify(fields)} ${message}`);
    worker = new Worker({ address: b.running.address, queues: ['email', 'pdf'], shutdownSignals: [], logger: { info: log, warn: log }, handler: () => 'done' });
    const paused = collectUntil(worker, 'paused', (items) => items.length >= 1);
    void worker.run();
    expect(await paused).toEqual([['email']]);
    expect([...worker.pausedQueues]).toEqual(['email']);
    expect(lines).toContain('{"queue":"email"} queue email is paused: no jobs from it until it is resumed');

    const resumed = collectUntil(worker, 'resumed', (items) => items.length >= 1);
    const completed = collectUntil(worker, 'completed', (items) => items.length >= 1);
    await admin.resumeQueue('email');
    expect(await resumed).toEqual([['email']]);
    await completed;
    expect(worker.pausedQueues.size).toBe(0);

    const pausedAgain = collectUntil(worker, 'paused', (items) => items.length >= 2);
    await admin.pauseQueue('pdf', { createIfMissing: true });
    await admin.pauseQueue('email');
    expect((await pausedAgain).map(([q]) => q)).toEqual(['pdf', 'email']);
    expect(lines.at(-1)).toMatch(/every subscribed queue is paused/);
  });
});
