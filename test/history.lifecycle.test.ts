import { status } from '@grpc/grpc-js';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { JobState } from '../clients/typescript/src/gen/sluice/v1/job.js';
import { startTestBroker, type TestBroker } from './helpers/broker.js';
import { expectStatus } from './helpers/expect-status.js';

let b: TestBroker;
beforeEach(async () => {
  b = await startTestBroker();
});
afterEach(async () => {
  await b.close();
});

describe('job history', () => {
  it('records delivered, heartbeat, nacked, promoted, expired, dead, replayed and acked, in order, with worker ids, leases and attempts', async () => {
    const { id } = await b.api.enqueue({ queue: 'hist', payload: { x: 1 }, maxAttempts: 2, leaseTimeoutMs: 300 });

    // Attempt 1 on worker A: a heartbeat, then a retryable nack.
    const a = b.api.consumer({ queues: ['hist'], workerId: 'worker-a' }, 1);
    const [d1] = await a.waitForDeliveries(1);
    a.extend(d1!, 60_000, { step: 1 });
    await a.until(() => a.settled.length >= 1, 'extend result');
    a.nack(d1!, 'boom', { retryAfterMs: 20 });
    await a.waitForSettled(2);
    expect(a.settled[1]).toMatchObject({ code: status.OK, state: JobState.JOB_STATE_SCHEDULED });

    // Attempt 2 on worker B, after the retry is promoted: never settled, so the lease expires and the job dies.
    const bw = b.api.consumer({ queues: ['hist'], workerId: 'worker-b' }, 1);
    const [d2] = await bw.waitForDeliveries(1);
    expect(d2).toMatchObject({ jobId: id, attempt: 2 });
    await bw.until(() => bw.revoked.length >= 1, 'lease expiry');
    expect((await b.api.getJob(id)).state).toBe(JobState.JOB_STATE_DEAD);

    // Replayed, then completed on worker C.
    expect(await b.api.replayDeadLetters({ ids: [id] })).toBe(1);
    const c = b.api.consumer({ queues: ['hist'], workerId: 'worker-c' }, 1);
    const [d3] = await c.waitForDeliveries(1);
    expect(d3).toMatchObject({ jobId: id, attempt: 1 });
    c.ack(d3!, { done: true });
    await c.waitForSettled(1);

    const history = await b.api.jobHistory(id);
    expect(history.map((e) => [e.kind, e.attempt, e.workerId])).toEqual([
      ['enqueued', 0, ''],
      ['delivered', 1, 'worker-a'],
      ['extended', 1, 'worker-a'],
      ['nacked', 1, 'worker-a'],
      ['promoted', 1, ''],
      ['delivered', 2, 'worker-b'],
      ['expired', 2, 'worker-b'],
      ['dead', 2, ''],
      ['replayed', 0, ''],
      ['delivered', 1, 'worker-c'],
      ['acked', 1, 'worker-c'],
    ]);
    const byKind = (kind: string, n = 0) => history.filter((e) => e.kind === kind)[n]!;
    expect(byKind('delivered', 0).leaseId).toBe(d1!.leaseId);
    expect(byKind('nacked').leaseId).toBe(d1!.leaseId);
    expect(byKind('nacked').error).toBe('boom');
    expect(byKind('nacked').detail).toMatch(/^retry at \d{4}-/);
    expect(byKind('delivered', 1).leaseId).toBe(d2!.leaseId);
    expect(byKind('expired').error).toMatch(/lease expired/);
    expect(byKind('delivered', 2).leaseId).toBe(d3!.leaseId);
    expect(byKind('acked').leaseId).toBe(d3!.leaseId);
    // Oldest first: times never go backwards.
    const times = history.map((e) => e.at!.getTime());
    expect([...times].sort((x, y) => x - y)).toEqual(times);
    a.cancel();
    bw.cancel();
    c.cancel();
  });

  it('shows the attempt in progress, a release and a cancellation', async () => {
    const { id } = await b.api.enqueue({ queue: 'hist-2', payload: {} });
    const w = b.api.consumer({ queues: ['hist-2'], workerId: 'worker-r' }, 1);
    const [d1] = await w.waitForDeliveries(1);
    expect((await b.api.jobHistory(id)).map((e) => [e.kind, e.attempt, e.workerId, e.leaseId])).toEqual([
      ['enqueued', 0, '', ''],
      ['delivered', 1, 'worker-r', d1!.leaseId],
    ]);
    w.release(d1!, 'not now');
    await w.waitForSettled(1);
    await b.api.cancelJob(id, 'operator said so');
    expect((await b.api.jobHistory(id)).map((e) => [e.kind, e.attempt, e.error])).toEqual([
      ['enqueued', 0, ''],
      ['delivered', 1, ''],
      ['released', 1, 'not now'],
      ['cancelled', 0, 'operator said so'],
    ]);
    w.cancel();
  });

  it('answers NOT_FOUND for an unknown job and INVALID_ARGUMENT without an id', async () => {
    await expectStatus(b.api.jobHistory('01890000-0000-7000-8000-000000000000'), status.NOT_FOUND);
    await expectStatus(b.api.jobHistory(''), status.INVALID_ARGUMENT);
  });
});
