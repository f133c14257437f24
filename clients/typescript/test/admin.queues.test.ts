import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startTestBroker, type TestBroker } from '../../../test/helpers/broker.js';
import { Admin, FailedPreconditionError, InvalidArgumentError, NotFoundError, Producer, Worker } from '../src/index.js';
import { collectUntil, gate } from './helpers.js';

let b: TestBroker;
let admin: Admin;
let producer: Producer;
const workers: Worker<any, any>[] = [];
beforeEach(async () => {
  b = await startTestBroker();
  admin = new Admin({ address: b.running.address });
  producer = new Producer({ address: b.running.address });
});
afterEach(async () => {
  await Promise.all(workers.splice(0).map((w) => w.close({ timeoutMs: 500 })));
  admin.close();
  await producer.close();
  await b.close();
});

describe('Admin: queues', () => {
  it('lists and gets queues with counts and defaults, pauses, resumes and updates them', async () => {
    await producer.enqueue('email', { to: 'a@b.c' });
    await producer.enqueue('email', { to: 'd@e.f' }, { delay: 600_000 });
    await producer.enqueue('pdf', { id: 1 });

    const queues = await admin.listQueues();
    expect(queues.map((q) => q.name)).toEqual(['email', 'pdf']);
    expect(queues[0]).toEqual({
      name: 'email',
      paused: false,
      counts: { scheduled: 1, pending: 1, active: 0, completed: 0, dead: 0, cancelled: 0 },
      maxAttempts: undefined,
      retry: undefined,
      leaseTimeoutMs: undefined,
      consumers: 0,
      retentionMaxAgeMs: 7 * 24 * 3_600_000,
      retentionMaxCount: 0,
    });

    expect(await admin.pauseQueue('email')).toMatchObject({ name: 'email', paused: true });
    expect((await admin.getQueue('email')).paused).toBe(true);
    expect(await admin.resumeQueue('email')).toMatchObject({ paused: false });

    const updated = await admin.updateQueue('email', { maxAttempts: 4, retry: { initialMs: 500, jitter: 0 }, leaseTimeoutMs: 10_000 });
    expect(updated).toMatchObject({ maxAttempts: 4, retry: { initialMs: 500, jitter: 0 }, leaseTimeoutMs: 10_000 });
    // Fields left out keep their value.
    expect(await admin.updateQueue('email', { retry: { multiplier: 3 } })).toMatchObject({ maxAttempts: 4, retry: { initialMs: 500, jitter: 0, multiplier: 3 }, leaseTimeoutMs: 10_000 });
  });

  it('maps the broker errors to typed errors: unknown queues, bad names, deleting a queue with work left', async () => {
    await expect(admin.getQueue('nope')).rejects.toBeInstanceOf(NotFoundError);
    await expect(admin.pauseQueue('nope')).rejects.toThrow(/create_if_missing/);
    await expect(admin.resumeQueue('nope')).rejects.toBeInstanceOf(NotFoundError);
    await expect(admin.updateQueue('nope', { maxAttempts: 2 })).rejects.toBeInstanceOf(NotFoundError);
    await expect(admin.getQueue('not valid!')).rejects.toBeInstanceOf(InvalidArgumentError);
    expect(await admin.listQueues()).toEqual([]);

    expect(await admin.pauseQueue('made', { createIfMissing: true })).toMatchObject({ name: 'made', paused: true });
    expect(await admin.updateQueue('tuned', { maxAttempts: 2 }, { createIfMissing: true })).toMatchObject({ name: 'tuned', maxAttempts: 2 });

    await producer.enqueue('made', {});
    const refused = await admin.deleteQueue('made').catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(FailedPreconditionError);
    expect((refused as Error).message).toMatch(/1 pending/);
    await admin.deleteQueue('tuned');
    await expect(admin.deleteQueue('tuned')).rejects.toBeInstanceOf(NotFoundError);
    expect((await admin.listQueues()).map((q) => q.name)).toEqual(['made']);
  });

  it('lists connected workers with their in-flight jobs', async () => {
    const { id } = await producer.enqueue('work', {});
    const running = gate();
    const w = new Worker({ address: b.running.address, queues: ['work'], workerId: 'w-1', labels: { zone: 'a' }, shutdownSignals: [], handler: () => running.promise });
    workers.push(w);
    void w.run();
    await collectUntil(w, 'active', (items) => items.length >= 1);
    const [info] = await admin.listWorkers();
    expect(info).toMatchObject({ workerId: 'w-1', queues: ['work'], labels: { zone: 'a' }, activeJobIds: [id] });
    expect(info!.connectedAt).toBeInstanceOf(Date);
    expect((await admin.getQueue('work')).consumers).toBe(1);
    running.open();
  });
});
