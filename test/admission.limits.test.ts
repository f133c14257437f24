import { afterEach, describe, expect, it } from 'vitest';
import { status, type ServiceError } from '@grpc/grpc-js';
import { JobState } from '../clients/typescript/src/gen/sluice/v1/job.js';
import { Producer } from '../clients/typescript/src/producer.js';
import { ResourceExhaustedError } from '../clients/typescript/src/errors.js';
import { startTestBroker, type TestBroker } from './helpers/broker.js';
import { expectStatus } from './helpers/expect-status.js';
import { setLimits } from './helpers/limits.js';
import Database from 'better-sqlite3';

let b: TestBroker | undefined;
afterEach(async () => {
  await b?.close();
  b = undefined;
});

const RETRY_MS = 100;

function retryAfter(error: ServiceError): number {
  return Number(error.metadata.get('retry-after-ms')[0]);
}

describe('admission control', () => {
  it('a queue at max_queued refuses Enqueue with RESOURCE_EXHAUSTED and a retry hint; acks keep working', async () => {
    b = await startTestBroker({ admissionRetryAfterMs: RETRY_MS });
    const queue = await b.api.updateQueue({ queue: 'capped', maxQueued: 2, createIfMissing: true });
    expect(queue.maxQueued).toBe(2);
    await b.api.enqueue({ queue: 'capped', payload: { n: 1 } });
    await b.api.enqueue({ queue: 'capped', payload: { n: 2 }, delayMs: 60_000 }); // scheduled counts too
    const refused = await expectStatus(b.api.enqueue({ queue: 'capped', payload: { n: 3 } }), status.RESOURCE_EXHAUSTED, 'capped', 'max_queued 2');
    expect(retryAfter(refused)).toBe(RETRY_MS);
    expect(refused.metadata.get('grpc-status-details-bin')).toHaveLength(1);
    // Batches: atomic fails as a whole, non-atomic item by item with the hint.
    await expectStatus(b.api.enqueueBatch([{ queue: 'capped', payload: {} }], true), status.RESOURCE_EXHAUSTED, 'max_queued');
    const { results } = await b.api.enqueueBatch([{ queue: 'capped', payload: {} }, { queue: 'other', payload: {} }], false);
    expect(results[0]!.error).toMatchObject({ code: status.RESOURCE_EXHAUSTED, retryAfterMs: RETRY_MS });
    expect(results[1]!.error).toBeUndefined();

    // Workers drain the queue meanwhile; once one job is taken there is room again.
    const c = b.api.consumer({ queues: ['capped'] }, 1);
    const [d] = await c.waitForDeliveries(1);
    c.ack(d!);
    expect((await c.waitForSettled(1))[0]!.code).toBe(status.OK);
    await b.api.enqueue({ queue: 'capped', payload: { n: 3 } });
    // 0 removes the cap.
    expect((await b.api.updateQueue({ queue: 'capped', maxQueued: 0 })).maxQueued).toBe(0);
    await b.api.enqueue({ queue: 'capped', payload: { n: 4 } });
    c.end();
  });

  it('a group at max_queued_per_group is refused while other groups of the queue are not', async () => {
    b = await startTestBroker({ admissionRetryAfterMs: RETRY_MS, maxQueuedPerGroup: 2 });
    await b.api.enqueue({ queue: 'groups', groupKey: 'tenant-a', payload: {} });
    await b.api.enqueue({ queue: 'groups', groupKey: 'tenant-a', payload: {} });
    const refused = await expectStatus(b.api.enqueue({ queue: 'groups', groupKey: 'tenant-a', payload: {} }), status.RESOURCE_EXHAUSTED, 'tenant-a', 'max_queued_per_group 2');
    expect(retryAfter(refused)).toBe(RETRY_MS);
    await b.api.enqueue({ queue: 'groups', groupKey: 'tenant-b', payload: {} });
    await b.api.enqueue({ queue: 'groups', payload: {} }); // no group key: no group cap
    // One atomic batch cannot slip past the cap either.
    await expectStatus(
      b.api.enqueueBatch([{ queue: 'groups', groupKey: 'tenant-c', payload: {} }, { queue: 'groups', groupKey: 'tenant-c', payload: {} }, { queue: 'groups', groupKey: 'tenant-c', payload: {} }], true),
      status.RESOURCE_EXHAUSTED,
      'tenant-c',
    );
    // Taking a job of the group makes room (the count follows state changes).
    const c = b.api.consumer({ queues: ['groups'] }, 10);
    await c.waitForDeliveries(4);
    await b.api.enqueue({ queue: 'groups', groupKey: 'tenant-a', payload: {} });
    await b.api.enqueue({ queue: 'groups', groupKey: 'tenant-a', payload: {} });
    c.cancel();
  });

  it('group counts follow jobs moved into the group \'\' when their queue gains a group policy (migration 8)', async () => {
    b = await startTestBroker();
    for (let i = 0; i < 3; i++) await b.api.enqueue({ queue: 'rekey', payload: { i } });
    await b.api.enqueue({ queue: 'rekey', payload: {}, delayMs: 60_000 });
    await b.api.enqueue({ queue: 'rekey', groupKey: 'tenant-a', payload: {} });
    await setLimits(b.api, 'rekey', { groupConcurrency: 1 });
    await b.api.enqueue({ queue: 'rekey', payload: {} }); // joins '' at insert
    const scan = `SELECT group_key, count(*) AS n FROM jobs WHERE queue = 'rekey' AND state IN ('pending','scheduled') GROUP BY group_key ORDER BY group_key`;
    const kept = `SELECT group_key, n FROM group_counts WHERE queue = 'rekey' ORDER BY group_key`;
    const db = new Database(b.dataFile, { readonly: true });
    try {
      expect(db.prepare(scan).all()).toEqual([{ group_key: '', n: 5 }, { group_key: 'tenant-a', n: 1 }]);
      expect(db.prepare(kept).all()).toEqual(db.prepare(scan).all());
    } finally {
      db.close();
    }
  });

  it('the disk guard refuses enqueues but not acks, cancels or admin deletes', async () => {
    b = await startTestBroker({ admissionRetryAfterMs: RETRY_MS });
    const { id } = await b.api.enqueue({ queue: 'disk', payload: {} });
    const { id: other } = await b.api.enqueue({ queue: 'disk', payload: {}, delayMs: 60_000 });
    const admission = b.running.broker.admission;
    admission.configure({ maxDatabaseBytes: 1 });
    await admission.refreshDisk();
    const refused = await expectStatus(b.api.enqueue({ queue: 'disk', payload: {} }), status.RESOURCE_EXHAUSTED, '--max-database-bytes');
    expect(retryAfter(refused)).toBe(RETRY_MS);
    const c = b.api.consumer({ queues: ['disk'] }, 1);
    const [d] = await c.waitForDeliveries(1);
    expect(d!.jobId).toBe(id);
    c.ack(d!);
    expect((await c.waitForSettled(1))[0]!.code).toBe(status.OK);
    expect((await b.api.cancelJob(other)).state).toBe(JobState.JOB_STATE_CANCELLED);
    c.end();

    admission.configure({ maxDatabaseBytes: 0, minFreeDiskBytes: Number.MAX_SAFE_INTEGER });
    await admission.refreshDisk();
    await expectStatus(b.api.enqueue({ queue: 'disk', payload: {} }), status.RESOURCE_EXHAUSTED, '--min-free-disk-bytes');
  });

  it('the Producer waits out the hint and succeeds once there is room, within its call timeout', async () => {
    b = await startTestBroker({ admissionRetryAfterMs: RETRY_MS });
    await b.api.updateQueue({ queue: 'backoff', maxQueued: 1, createIfMissing: true });
    const producer = new Producer({ address: b.running.address, callTimeoutMs: 20_000 });
    try {
      await producer.enqueue('backoff', { n: 1 });
      // Refused now; retried every RETRY_MS until a worker takes the first job.
      const second = producer.enqueue('backoff', { n: 2 });
      const batch = producer.enqueueBatch([{ queue: 'backoff', payload: { n: 3 } }]);
      await new Promise((r) => setTimeout(r, 3 * RETRY_MS));
      const c = b.api.consumer({ queues: ['backoff'] }, 3);
      // Each queued job taken makes room for the next waiting one.
      const done = await c.waitForDeliveries(3, 15_000);
      expect(done).toHaveLength(3);
      expect((await second).id).toBeTruthy();
      expect((await batch)[0]!.id).toBeTruthy();
      c.end();

      // The disk guard with a hint longer than the call timeout: waiting it out would end past
      // the deadline, so the Producer rejects at once. (The timeout stays generous, so a loaded
      // machine cannot turn this into a DEADLINE_EXCEEDED.)
      const LONG_HINT_MS = 120_000;
      const short = new Producer({ address: b.running.address, callTimeoutMs: 20_000 });
      b.running.broker.admission.configure({ maxDatabaseBytes: 1, admissionRetryAfterMs: LONG_HINT_MS });
      await b.running.broker.admission.refreshDisk();
      const error = await short.enqueue('backoff', {}).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ResourceExhaustedError);
      expect((error as ResourceExhaustedError).retryAfterMs).toBe(LONG_HINT_MS);
      await short.close();
    } finally {
      await producer.close();
    }
  });
});
