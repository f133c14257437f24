import { describe, expect, it } from 'vitest';
import { status } from '@grpc/grpc-js';
import { JobState } from '../clients/typescript/src/gen/sluice/v1/job.js';
import { Revoke_Reason, SettleResult_Kind, type ConsumeResponse } from '../clients/typescript/src/gen/sluice/v1/worker.js';
import { brokerPerTestOnTestClock } from './helpers/broker.js';
import type { TestConsumer } from './helpers/api.js';

// Leases expire when the test moves the broker's clock: no assertion races a real timer.
const fx = brokerPerTestOnTestClock();

/** Records the broker's time (the TestClock) when each delivery and revoke reached the test. */
function arrivalTimes(c: TestConsumer): { deliveries: Map<string, number>; revokes: Map<string, number> } {
  const t = { deliveries: new Map<string, number>(), revokes: new Map<string, number>() };
  c.call.on('data', (m: ConsumeResponse) => {
    const now = fx.clock.now();
    for (const d of m.deliveries) t.deliveries.set(d.leaseId, now);
    for (const r of m.revoked) t.revokes.set(r.leaseId, now);
  });
  return t;
}

/** Acks every delivery as soon as it arrives. */
function ackOnDelivery(c: TestConsumer, result: unknown = 'ok'): void {
  c.call.on('data', (m: ConsumeResponse) => {
    if (m.deliveries.length > 0) c.send({ acks: m.deliveries.map((d) => ({ jobId: d.jobId, leaseId: d.leaseId, result })) });
  });
}

const LONG_LEASE_MS = 60_000;

describe('lease expiry', () => {
  it('redelivers a job whose lease expired, with the next attempt, and revokes the old lease', async () => {
    const { id } = await fx.broker.api.enqueue({ queue: 'exp', payload: {}, leaseTimeoutMs: 300 });
    const first = fx.broker.api.consumer({ queues: ['exp'], workerId: 'first' }, 1);
    const firstTimes = arrivalTimes(first);
    const [d1] = await first.waitForDeliveries(1);
    expect(d1).toMatchObject({ jobId: id, attempt: 1, leaseTimeoutMs: 300 });

    const second = fx.broker.api.consumer({ queues: ['exp'], workerId: 'second' }, 1);
    const secondTimes = arrivalTimes(second);
    ackOnDelivery(second, 'second');
    await second.until(() => second.subscribed !== undefined, 'subscribed');
    // 1 ms before the deadline the lease holds: a later write is a sync point for the timer.
    fx.clock.advanceTo(d1!.deadline!.getTime() - 1);
    await fx.broker.api.enqueue({ queue: 'exp-sentinel', payload: {} });
    expect((await fx.broker.api.getJob(id)).state).toBe(JobState.JOB_STATE_ACTIVE);
    expect(second.deliveries).toHaveLength(0);
    fx.clock.advance(1);
    const [d2] = await second.waitForDeliveries(1);
    expect(d2).toMatchObject({ jobId: id, attempt: 2 });
    expect(d2!.leaseId).not.toBe(d1!.leaseId);
    await first.until(() => first.revoked.length >= 1, 'revoke');
    expect(first.revoked).toEqual([{ jobId: id, leaseId: d1!.leaseId, reason: Revoke_Reason.REASON_LEASE_EXPIRED }]);
    // Neither the revoke nor the redelivery came before the first lease's deadline.
    expect(firstTimes.revokes.get(d1!.leaseId)!).toBeGreaterThanOrEqual(d1!.deadline!.getTime());
    expect(secondTimes.deliveries.get(d2!.leaseId)!).toBeGreaterThanOrEqual(d1!.deadline!.getTime());

    await second.waitForSettled(1);
    expect(second.settled[0]).toMatchObject({ code: status.OK, state: JobState.JOB_STATE_COMPLETED });
    const job = await fx.broker.api.getJob(id);
    expect(job).toMatchObject({ state: JobState.JOB_STATE_COMPLETED, attempt: 2, result: 'second' });
    expect(job.errors).toHaveLength(1);
    expect(job.errors[0]).toMatchObject({ attempt: 1, nonRetryable: false });
    expect(job.errors[0]!.message).toMatch(/lease expired/);
    expect(job.errors[0]!.at!.getTime()).toBeGreaterThanOrEqual(d1!.deadline!.getTime());

    // The expired lease no longer counts against the first stream.
    const view = (await fx.broker.api.listWorkers()).workers.find((w) => w.workerId === 'first')!;
    expect(view.activeJobIds).toEqual([]);
    expect(first.deliveries).toHaveLength(1);
    first.cancel();
    second.cancel();
  });

  it('a job whose lease expires on every attempt ends dead after max_attempts', async () => {
    const { id } = await fx.broker.api.enqueue({ queue: 'hang', payload: {}, leaseTimeoutMs: 100, maxAttempts: 3 });
    const watched = fx.broker.api.watchJob(id);
    const w = fx.broker.api.consumer({ queues: ['hang'], workerId: 'hanging' }, 1);
    // A worker that never finishes anything but keeps asking for more work; each attempt's
    // lease runs out because the test moves the clock past it.
    w.call.on('data', (m: ConsumeResponse) => {
      if (m.revoked.length > 0) w.credit(m.revoked.length);
      if (m.deliveries.length > 0) fx.clock.advance(100);
    });
    const events = await watched; // ends at the terminal state
    expect(events.at(-1)).toMatchObject({ state: JobState.JOB_STATE_DEAD, attempt: 3 });

    await w.until(() => w.revoked.length >= 3, '3 revokes');
    expect(w.deliveries.map((d) => d.attempt)).toEqual([1, 2, 3]);
    expect(w.deliveries.every((d) => d.jobId === id && d.maxAttempts === 3)).toBe(true);
    expect(w.revoked.map((r) => r.reason)).toEqual([
      Revoke_Reason.REASON_LEASE_EXPIRED,
      Revoke_Reason.REASON_LEASE_EXPIRED,
      Revoke_Reason.REASON_LEASE_EXPIRED,
    ]);
    expect(w.revoked.map((r) => r.leaseId)).toEqual(w.deliveries.map((d) => d.leaseId));

    const job = await fx.broker.api.getJob(id);
    expect(job.state).toBe(JobState.JOB_STATE_DEAD);
    expect(job.attempt).toBe(3);
    expect(job.finishedAt).toBeDefined();
    expect(job.errors.map((e) => e.attempt)).toEqual([1, 2, 3]);
    for (const e of job.errors) expect(e.message).toMatch(/lease expired/);
    expect(job.lastError).toMatch(/lease expired/);
    // It is a dead letter now, not work: nothing is pending or active.
    const dead = await fx.broker.api.listDeadLetters({ queue: 'hang' });
    expect(dead.jobs.map((j) => j.id)).toEqual([id]);
    expect((await fx.broker.api.getQueue('hang')).counts).toMatchObject({ pending: 0, active: 0, dead: 1 });
    w.cancel();
  });
});

describe('stream loss', () => {
  for (const how of ['cancelled', 'half-closed'] as const) {
    it(`redelivers the jobs of a ${how} stream at once, long before their leases expire`, async () => {
      const ids = (await fx.broker.api.enqueueBatch([1, 2, 3].map((n) => ({ queue: 'lost', payload: { n }, leaseTimeoutMs: LONG_LEASE_MS })), true)).results.map((r) => r.id);
      const doomed = fx.broker.api.consumer({ queues: ['lost'], workerId: 'doomed' }, 3);
      const held = await doomed.waitForDeliveries(3);
      expect(new Set(held.map((d) => d.jobId))).toEqual(new Set(ids));
      const earliestDeadline = Math.min(...held.map((d) => d.deadline!.getTime()));
      expect(earliestDeadline).toBeGreaterThan(Date.now() + LONG_LEASE_MS / 2);

      const heir = fx.broker.api.consumer({ queues: ['lost'], workerId: 'heir' }, 3);
      const heirTimes = arrivalTimes(heir);
      ackOnDelivery(heir, 'heir');
      await heir.until(() => heir.subscribed !== undefined, 'subscribed');
      expect(heir.deliveries).toHaveLength(0);

      if (how === 'cancelled') {
        doomed.cancel();
        expect((await doomed.status).code).toBe(status.CANCELLED);
      } else {
        doomed.end();
        expect((await doomed.status).code).toBe(status.OK);
      }
      const again = await heir.waitForDeliveries(3, 5000);
      expect(new Set(again.map((d) => d.jobId))).toEqual(new Set(ids));
      for (const d of again) {
        expect(d.attempt).toBe(2);
        // Stream loss, not expiry: the redelivery came well before the old leases would end.
        expect(heirTimes.deliveries.get(d.leaseId)!).toBeLessThan(earliestDeadline);
      }
      await heir.waitForSettled(3);
      expect(heir.settled.every((s) => s.code === status.OK)).toBe(true);
      for (const id of ids) {
        const job = await fx.broker.api.getJob(id);
        expect(job).toMatchObject({ state: JobState.JOB_STATE_COMPLETED, attempt: 2, result: 'heir' });
        expect(job.errors).toHaveLength(1);
        expect(job.errors[0]!.attempt).toBe(1);
        expect(job.errors[0]!.message).toMatch(/worker stream closed/);
        expect(job.errors[0]!.message).not.toMatch(/lease expired/);
      }
      expect((await fx.broker.api.listWorkers()).workers.map((w) => w.workerId)).toEqual(['heir']);
      heir.cancel();
    });
  }
});

describe('heartbeats', () => {
  it('keep a long job alive past its lease timeout and record progress', async () => {
    const LEASE_MS = 300;
    const BEATS = 12;
    const { id } = await fx.broker.api.enqueue({ queue: 'long', payload: {}, leaseTimeoutMs: LEASE_MS });
    const w = fx.broker.api.consumer({ queues: ['long'], workerId: 'long' }, 1);
    const [d] = await w.waitForDeliveries(1);
    expect(d!.leaseTimeoutMs).toBe(LEASE_MS);
    const extendResults = () => w.settled.filter((s) => s.kind === SettleResult_Kind.KIND_EXTEND);

    // Between two heartbeats the clock moves 2/3 of a lease: without them the lease would
    // have expired after the second step.
    let previous = d!.deadline!.getTime();
    for (let beat = 1; beat <= BEATS; beat++) {
      fx.clock.advance((LEASE_MS * 2) / 3);
      const sentAt = fx.clock.now();
      w.extend(d!, 0, { step: beat });
      await w.until(() => extendResults().length >= beat, `heartbeat ${beat} confirmed`);
      const s = extendResults()[beat - 1]!;
      expect(s).toMatchObject({ jobId: id, leaseId: d!.leaseId, code: status.OK, state: JobState.JOB_STATE_ACTIVE });
      // Each heartbeat pushed the deadline one lease timeout past the moment it was handled.
      expect(s.deadline!.getTime()).toBe(sentAt + LEASE_MS);
      expect(s.deadline!.getTime()).toBeGreaterThan(previous);
      previous = s.deadline!.getTime();
      if (beat === BEATS / 2) {
        // Progress is visible while the job runs.
        const running = await fx.broker.api.getJob(id);
        expect(running).toMatchObject({ state: JobState.JOB_STATE_ACTIVE, attempt: 1, progress: { step: beat } });
      }
    }
    // The job outlived its original lease by far.
    expect(fx.clock.now()).toBeGreaterThan(d!.deadline!.getTime() + LEASE_MS * 5);

    w.ack(d!, 'finished');
    await w.until(() => w.settled.some((s) => s.kind === SettleResult_Kind.KIND_ACK), 'ack result');
    expect(w.settled.find((s) => s.kind === SettleResult_Kind.KIND_ACK)).toMatchObject({ code: status.OK, state: JobState.JOB_STATE_COMPLETED });
    const job = await fx.broker.api.getJob(id);
    expect(job).toMatchObject({ state: JobState.JOB_STATE_COMPLETED, attempt: 1, result: 'finished', progress: { step: BEATS }, errors: [] });
    expect(w.deliveries).toHaveLength(1);
    expect(w.revoked).toHaveLength(0);
    w.cancel();
  });

  it('a lease without heartbeats expires once the clock passes its deadline', async () => {
    const { id } = await fx.broker.api.enqueue({ queue: 'quiet', payload: {}, leaseTimeoutMs: 300 });
    const w = fx.broker.api.consumer({ queues: ['quiet'], workerId: 'quiet' }, 1);
    const [d] = await w.waitForDeliveries(1);
    fx.clock.advance(200);
    w.extend(d!, 0);
    await w.waitForSettled(1);
    fx.clock.advance(299);
    await fx.broker.api.enqueue({ queue: 'quiet-sentinel', payload: {} });
    expect(w.revoked).toHaveLength(0);
    fx.clock.advance(1);
    await w.until(() => w.revoked.length >= 1, 'revoke');
    expect(w.revoked[0]).toMatchObject({ jobId: id, leaseId: d!.leaseId, reason: Revoke_Reason.REASON_LEASE_EXPIRED });
    w.cancel();
  });
});

describe('cancelling an active job', () => {
  it('revokes its lease on the stream and refuses a later ack', async () => {
    const { id } = await fx.broker.api.enqueue({ queue: 'cancel', payload: {}, leaseTimeoutMs: LONG_LEASE_MS });
    const w = fx.broker.api.consumer({ queues: ['cancel'], workerId: 'c' }, 1);
    const [d] = await w.waitForDeliveries(1);
    const cancelled = await fx.broker.api.cancelJob(id, 'no longer needed');
    expect(cancelled.state).toBe(JobState.JOB_STATE_CANCELLED);

    await w.until(() => w.revoked.length >= 1, 'revoke');
    expect(w.revoked).toEqual([{ jobId: id, leaseId: d!.leaseId, reason: Revoke_Reason.REASON_CANCELLED }]);
    const view = (await fx.broker.api.listWorkers()).workers.find((x) => x.workerId === 'c')!;
    expect(view.activeJobIds).toEqual([]);

    w.ack(d!, 'too late');
    w.extend(d!, 0, { step: 99 });
    await w.waitForSettled(2);
    for (const s of w.settled) {
      expect(s).toMatchObject({ jobId: id, leaseId: d!.leaseId, code: status.FAILED_PRECONDITION, state: JobState.JOB_STATE_CANCELLED });
      expect(s.message).toMatch(/cancelled/);
    }
    const job = await fx.broker.api.getJob(id);
    expect(job.state).toBe(JobState.JOB_STATE_CANCELLED);
    expect(job.result).toBeUndefined();
    expect(job.progress).toBeUndefined();
    expect(job.attempt).toBe(1);
    w.cancel();
  });
});
