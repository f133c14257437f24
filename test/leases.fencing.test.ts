import { describe, expect, it } from 'vitest';
import { status } from '@grpc/grpc-js';
import { JobState } from '../clients/typescript/src/gen/sluice/v1/job.js';
import { Revoke_Reason, SettleResult_Kind, type ConsumeResponse, type Delivery } from '../clients/typescript/src/gen/sluice/v1/worker.js';
import { brokerPerTestOnTestClock } from './helpers/broker.js';
import type { TestConsumer } from './helpers/api.js';

// Leases expire when the test moves the broker's clock, never by a race with real time.
const fx = brokerPerTestOnTestClock();

const SHORT_LEASE_MS = 400;
const LONG_EXTEND_MS = 60_000;

/**
 * Makes `c` heartbeat every new delivery at once with a long extension, so a redelivered
 * job with a short lease stays with this stream while the test quotes the old lease.
 */
function extendOnDelivery(c: TestConsumer): void {
  c.call.on('data', (m: ConsumeResponse) => {
    if (m.deliveries.length === 0) return;
    c.send({ extends: m.deliveries.map((d) => ({ jobId: d.jobId, leaseId: d.leaseId, extendMs: LONG_EXTEND_MS })) });
  });
}

function staleSettles(c: TestConsumer, old: Delivery) {
  return c.settled.filter((s) => s.leaseId === old.leaseId && s.jobId === old.jobId && s.code !== 0);
}

describe('lease ids fence settles', () => {
  it('an expired lease cannot ack, nack or extend once the job runs under a new lease elsewhere', async () => {
    const { id } = await fx.broker.api.enqueue({ queue: 'fence', payload: { n: 1 }, leaseTimeoutMs: SHORT_LEASE_MS });
    const first = fx.broker.api.consumer({ queues: ['fence'], workerId: 'first' }, 1);
    const [old] = await first.waitForDeliveries(1);
    expect(old).toMatchObject({ jobId: id, attempt: 1 });

    // Subscribed only now, so it can only get the job as a redelivery after the lease expires.
    const second = fx.broker.api.consumer({ queues: ['fence'], workerId: 'second' }, 1);
    extendOnDelivery(second);
    await second.until(() => second.subscribed !== undefined, 'subscribed');
    fx.clock.advance(SHORT_LEASE_MS);
    const [fresh] = await second.waitForDeliveries(1);
    expect(fresh).toMatchObject({ jobId: id, attempt: 2 });
    expect(fresh!.leaseId).not.toBe(old!.leaseId);
    const [heartbeat] = await second.waitForSettled(1);
    expect(heartbeat).toMatchObject({ jobId: id, leaseId: fresh!.leaseId, kind: SettleResult_Kind.KIND_EXTEND, code: status.OK });
    await first.until(() => first.revoked.length >= 1, 'revoke of the first lease');
    expect(first.revoked[0]).toMatchObject({ jobId: id, leaseId: old!.leaseId, reason: Revoke_Reason.REASON_LEASE_EXPIRED });

    // The first worker, unaware, finishes with its old lease: ack, nack and extend all bounce.
    first.send({
      acks: [{ jobId: id, leaseId: old!.leaseId, result: { from: 'first' } }],
      nacks: [{ jobId: id, leaseId: old!.leaseId, error: 'boom from the stale worker' }],
      extends: [{ jobId: id, leaseId: old!.leaseId, extendMs: 5, progress: { stale: true } }],
    });
    await first.until(() => staleSettles(first, old!).length >= 3, 'three rejected settles');
    const rejected = staleSettles(first, old!);
    expect(rejected.map((s) => s.kind).sort()).toEqual([SettleResult_Kind.KIND_ACK, SettleResult_Kind.KIND_NACK, SettleResult_Kind.KIND_EXTEND]);
    for (const s of rejected) {
      expect(s.code).toBe(status.FAILED_PRECONDITION);
      expect(s.message).toMatch(/not current/);
      expect(s.message).toContain(old!.leaseId);
      expect(s.state).toBe(JobState.JOB_STATE_ACTIVE);
      expect(s.deadline).toBeUndefined();
    }

    // Nothing changed: still active under the new lease, attempt 2, no result, no progress,
    // no extra error entry, deadline as the current holder last set it.
    const job = await fx.broker.api.getJob(id);
    expect(job.state).toBe(JobState.JOB_STATE_ACTIVE);
    expect(job.attempt).toBe(2);
    expect(job.workerId).toBe('second');
    expect(job.result).toBeUndefined();
    expect(job.progress).toBeUndefined();
    expect(job.errors).toHaveLength(1);
    expect(job.errors[0]!.message).toMatch(/lease expired/);
    expect(job.leaseExpiresAt!.getTime()).toBe(heartbeat!.deadline!.getTime());

    // The current lease still works.
    second.ack(fresh!, { from: 'second' });
    await second.until(() => second.settled.some((s) => s.kind === SettleResult_Kind.KIND_ACK), 'ack result');
    expect(second.settled.find((s) => s.kind === SettleResult_Kind.KIND_ACK)).toMatchObject({
      jobId: id,
      leaseId: fresh!.leaseId,
      code: status.OK,
      state: JobState.JOB_STATE_COMPLETED,
    });
    const done = await fx.broker.api.getJob(id);
    expect(done.state).toBe(JobState.JOB_STATE_COMPLETED);
    expect(done.result).toEqual({ from: 'second' });
    expect(done.attempt).toBe(2);

    // And after completion the old lease is still refused, and the result stays.
    first.ack(old!, { from: 'first again' });
    await first.until(() => staleSettles(first, old!).length >= 4, 'fourth rejected settle');
    expect(staleSettles(first, old!)[3]).toMatchObject({ code: status.FAILED_PRECONDITION, state: JobState.JOB_STATE_COMPLETED });
    expect((await fx.broker.api.getJob(id)).result).toEqual({ from: 'second' });
    first.cancel();
    second.cancel();
  });

  it('an expired lease is refused even when the job was redelivered to the same stream', async () => {
    const { id } = await fx.broker.api.enqueue({ queue: 'same', payload: {}, leaseTimeoutMs: SHORT_LEASE_MS });
    const w = fx.broker.api.consumer({ queues: ['same'], workerId: 'w' }, 1);
    // Attempt 1 gets no heartbeat and expires; on the revoke the stream asks for more work and
    // heartbeats whatever arrives from attempt 2 on.
    w.call.on('data', (m: ConsumeResponse) => {
      if (m.revoked.length > 0) w.credit(m.revoked.length);
      const later = m.deliveries.filter((d) => d.attempt >= 2);
      if (later.length > 0) w.send({ extends: later.map((d) => ({ jobId: d.jobId, leaseId: d.leaseId, extendMs: LONG_EXTEND_MS })) });
    });
    const [old] = await w.waitForDeliveries(1);
    expect(old).toMatchObject({ jobId: id, attempt: 1 });
    fx.clock.advance(SHORT_LEASE_MS);
    const [, fresh] = await w.waitForDeliveries(2);
    expect(fresh).toMatchObject({ jobId: id, attempt: 2 });
    expect(fresh!.leaseId).not.toBe(old!.leaseId);
    expect(w.revoked[0]).toMatchObject({ jobId: id, leaseId: old!.leaseId, reason: Revoke_Reason.REASON_LEASE_EXPIRED });
    await w.waitForSettled(1);
    expect(w.settled[0]).toMatchObject({ leaseId: fresh!.leaseId, kind: SettleResult_Kind.KIND_EXTEND, code: status.OK });

    w.ack(old!);
    w.nack(old!, 'stale');
    w.extend(old!, 0, { stale: true });
    await w.until(() => staleSettles(w, old!).length >= 3, 'three rejected settles');
    for (const s of staleSettles(w, old!)) {
      expect(s.code).toBe(status.FAILED_PRECONDITION);
      expect(s.message).toMatch(/redelivered under a newer lease/);
    }
    const job = await fx.broker.api.getJob(id);
    expect(job).toMatchObject({ state: JobState.JOB_STATE_ACTIVE, attempt: 2, workerId: 'w' });
    expect(job.errors).toHaveLength(1);
    expect(job.progress).toBeUndefined();

    w.ack(fresh!);
    await w.until(() => w.settled.some((s) => s.kind === SettleResult_Kind.KIND_ACK && s.code === 0), 'ack');
    expect(w.settled.find((s) => s.kind === SettleResult_Kind.KIND_ACK && s.code === 0)!.leaseId).toBe(fresh!.leaseId);
    expect((await fx.broker.api.getJob(id)).state).toBe(JobState.JOB_STATE_COMPLETED);
    w.cancel();
  });

  it('a made-up lease id is refused and changes nothing', async () => {
    const { id } = await fx.broker.api.enqueue({ queue: 'madeup', payload: {} });
    const w = fx.broker.api.consumer({ queues: ['madeup'] }, 1);
    const [d] = await w.waitForDeliveries(1);
    const before = await fx.broker.api.getJob(id);
    const fake = { jobId: id, leaseId: 'not-a-real-lease' };

    w.send({
      acks: [{ ...fake, result: 'forged' }],
      nacks: [{ ...fake, error: 'forged failure', nonRetryable: true }],
      extends: [{ ...fake, extendMs: 1, progress: 'forged' }],
    });
    await w.waitForSettled(3);
    expect(w.settled.map((s) => s.kind).sort()).toEqual([SettleResult_Kind.KIND_ACK, SettleResult_Kind.KIND_NACK, SettleResult_Kind.KIND_EXTEND]);
    for (const s of w.settled) {
      expect(s).toMatchObject({ jobId: id, leaseId: 'not-a-real-lease', code: status.FAILED_PRECONDITION, state: JobState.JOB_STATE_ACTIVE });
      expect(s.message).toMatch(/lease not-a-real-lease is not current/);
    }
    const after = await fx.broker.api.getJob(id);
    expect(after.state).toBe(JobState.JOB_STATE_ACTIVE);
    expect(after.attempt).toBe(1);
    expect(after.errors).toEqual([]);
    expect(after.result).toBeUndefined();
    expect(after.progress).toBeUndefined();
    expect(after.leaseExpiresAt!.getTime()).toBe(before.leaseExpiresAt!.getTime());
    // The stream still holds the lease (a forged settle does not free its credit slot).
    const view = (await fx.broker.api.listWorkers()).workers[0]!;
    expect(view.activeJobIds).toEqual([id]);

    w.ack(d!, 'real');
    await w.waitForSettled(4);
    expect(w.settled[3]).toMatchObject({ leaseId: d!.leaseId, code: status.OK, state: JobState.JOB_STATE_COMPLETED });
    expect((await fx.broker.api.getJob(id)).result).toBe('real');
    w.cancel();
  });

  it('a second ack of the same lease is refused and keeps the first result', async () => {
    const { id } = await fx.broker.api.enqueue({ queue: 'twice', payload: {} });
    const w = fx.broker.api.consumer({ queues: ['twice'] }, 1);
    const [d] = await w.waitForDeliveries(1);
    w.ack(d!, 1);
    await w.waitForSettled(1);
    w.ack(d!, 2);
    w.nack(d!, 'late failure');
    await w.waitForSettled(3);
    expect(w.settled[0]).toMatchObject({ code: status.OK, state: JobState.JOB_STATE_COMPLETED });
    for (const s of w.settled.slice(1)) {
      expect(s).toMatchObject({ code: status.FAILED_PRECONDITION, state: JobState.JOB_STATE_COMPLETED });
      expect(s.message).toMatch(/completed/);
    }
    const job = await fx.broker.api.getJob(id);
    expect(job).toMatchObject({ state: JobState.JOB_STATE_COMPLETED, result: 1, attempt: 1, errors: [] });
    w.cancel();
  });

  it('settles for unknown jobs or without a lease id get NOT_FOUND / INVALID_ARGUMENT', async () => {
    const w = fx.broker.api.consumer({ queues: ['nothing'] }, 0);
    await w.until(() => w.subscribed !== undefined, 'subscribed');
    w.send({ acks: [{ jobId: '01900000-0000-7000-8000-000000000000', leaseId: 'x' }] });
    w.send({ acks: [{ jobId: 'some-job', leaseId: '' }] });
    await w.waitForSettled(2);
    const byCode = Object.fromEntries(w.settled.map((s) => [s.code, s]));
    expect(byCode[status.NOT_FOUND]?.message).toMatch(/not found/);
    expect(byCode[status.INVALID_ARGUMENT]?.message).toMatch(/lease_id/);
    // A bad settle is answered, not fatal: the stream stays open.
    expect(w.ended).toBe(false);
    w.end();
    expect((await w.status).code).toBe(status.OK);
  });
});
