import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startTestBroker, type TestBroker } from '../../../test/helpers/broker.js';
import { Admin, FailedPreconditionError, InvalidArgumentError, NonRetryableError, NotFoundError, Producer, Worker, type JobInfo } from '../src/index.js';
import { collectUntil } from './helpers.js';

let b: TestBroker;
let admin: Admin;
let producer: Producer;
beforeEach(async () => {
  b = await startTestBroker();
  admin = new Admin({ address: b.running.address });
  producer = new Producer({ address: b.running.address });
});
afterEach(async () => {
  admin.close();
  await producer.close();
  await b.close();
});

async function all<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

/** Runs a worker that dead-letters every job of `queue` until `count` failed. */
async function killAll(queue: string, count: number): Promise<void> {
  const w = new Worker({ address: b.running.address, queues: [queue], concurrency: 5, shutdownSignals: [], handler: () => {
    throw new NonRetryableError('poison');
  } });
  void w.run();
  await collectUntil(w, 'failed', (items) => items.length >= count);
  await w.close();
}

describe('Admin: jobs and dead letters', () => {
  it('iterates jobs newest first across pages, with filters', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 7; i++) ids.push((await producer.enqueue('listed', { i }, { type: i % 2 ? 'odd' : 'even', groupKey: `g${i % 3}` })).id);
    await producer.enqueue('other', {});

    const listed = await all(admin.listJobs<{ i: number }>({ queue: 'listed', pageSize: 3 }));
    expect(listed.map((j) => j.id)).toEqual([...ids].reverse());
    expect(listed[0]).toMatchObject({ queue: 'listed', state: 'pending', payload: { i: 6 } });
    expect((await all(admin.listJobs({ queue: 'listed', type: 'odd', pageSize: 2 }))).map((j) => j.payload)).toEqual([{ i: 5 }, { i: 3 }, { i: 1 }]);
    expect((await all(admin.listJobs({ groupKey: 'g0' }))).length).toBe(3);
    expect((await all(admin.listJobs({ state: 'pending' }))).length).toBe(8);
    expect(await all(admin.listJobs({ state: 'dead' }))).toEqual([]);

    // Breaking out early fetches no more pages and leaves nothing open.
    let seen = 0;
    for await (const _ of admin.listJobs({ pageSize: 2 })) if (++seen === 3) break;
    expect(seen).toBe(3);
    await expect(all(admin.listJobs({ queue: 'bad name!' }))).rejects.toBeInstanceOf(InvalidArgumentError);
  });

  it('lists, replays and purges dead letters by ids, queue or everything', async () => {
    const a = await Promise.all([1, 2, 3].map((n) => producer.enqueue('dlq-a', { n })));
    const other = await producer.enqueue('dlq-b', { n: 4 });
    await killAll('dlq-a', 3);
    await killAll('dlq-b', 1);

    const dead: JobInfo[] = await all(admin.listDeadLetters({ queue: 'dlq-a', pageSize: 2 }));
    expect(dead.map((j) => j.id).sort()).toEqual(a.map((j) => j.id).sort());
    expect(dead[0]!.errors[0]).toMatchObject({ attempt: 1, message: 'poison', nonRetryable: true });
    expect((await all(admin.listDeadLetters())).length).toBe(4);

    // Replay one by id: back to pending with attempts reset.
    expect(await admin.replayDeadLetters({ ids: [a[0]!.id] })).toBe(1);
    expect(await producer.getJob(a[0]!.id)).toMatchObject({ state: 'pending', attempt: 0 });
    await expect(admin.replayDeadLetters({ ids: [a[0]!.id] })).rejects.toBeInstanceOf(FailedPreconditionError);
    await expect(admin.replayDeadLetters({ ids: ['01900000-0000-7000-8000-000000000000'] })).rejects.toBeInstanceOf(NotFoundError);
    // A selection must say what it selects.
    await expect(admin.purgeDeadLetters({})).rejects.toBeInstanceOf(InvalidArgumentError);

    expect(await admin.purgeDeadLetters({ queue: 'dlq-a' })).toBe(2);
    expect((await all(admin.listDeadLetters())).map((j) => j.id)).toEqual([other.id]);
    expect(await admin.replayDeadLetters({ all: true })).toBe(1);
    expect(await all(admin.listDeadLetters())).toEqual([]);
  });

  it('returns a job\'s history and writes a backup', async () => {
    const { id } = await producer.enqueue('hist-admin', { n: 1 }, { metadata: { correlation_id: 'c-1' } });
    const w = new Worker({ address: b.running.address, queues: ['hist-admin'], workerId: 'admin-w', shutdownSignals: [], handler: () => 'ok' });
    void w.run();
    await collectUntil(w, 'completed', (items) => items.length >= 1);
    await w.close();
    const history = await admin.jobHistory(id);
    expect(history.map((e) => [e.kind, e.attempt, e.workerId])).toEqual([
      ['enqueued', 0, ''],
      ['delivered', 1, 'admin-w'],
      ['acked', 1, 'admin-w'],
    ]);
    await expect(admin.jobHistory('01890000-0000-7000-8000-000000000000')).rejects.toBeInstanceOf(NotFoundError);

    const path = join(b.dir, 'admin-backup.db');
    const backup = await admin.backup(path);
    expect(backup).toMatchObject({ path });
    expect(backup.bytes).toBeGreaterThan(0);
    await expect(admin.backup('relative.db')).rejects.toBeInstanceOf(InvalidArgumentError);
  });
});
