import { describe, expect, it } from 'vitest';
import { status } from '@grpc/grpc-js';
import { unary } from '../clients/typescript/src/connect.js';
import { ExplainReasonCode as C, type ExplainJobResponse, type ExplainReason } from '../clients/typescript/src/gen/sluice/v1/producer.js';
import { JobState } from '../clients/typescript/src/gen/sluice/v1/job.js';
import { Producer } from '../clients/typescript/src/producer.js';
import { brokerPerTestOnTestClock } from './helpers/broker.js';
import { expectStatus } from './helpers/expect-status.js';
import { setLimits } from './helpers/limits.js';

// Frozen time: every "until T" and "next token at T" below is exact.
const fx = brokerPerTestOnTestClock();

const explain = (id: string): Promise<ExplainJobResponse> => unary(fx.broker.clients.producer.explainJob, fx.broker.clients.producer, { id });
const reason = (e: ExplainJobResponse, code: C): ExplainReason => {
  const r = e.reasons.find((x) => x.code === code);
  if (!r) throw new Error(`no reason ${C[code]} in ${JSON.stringify(e.reasons.map((x) => C[x.code]))}: ${e.summary}`);
  return r;
};
const iso = (ms: number) => new Date(ms).toISOString();

describe('ExplainJob (acceptance 7)', () => {
  it('scheduled until T', async () => {
    const { id } = await fx.broker.api.enqueue({ queue: 'ex-sched', payload: {}, delayMs: 60_000 });
    const e = await explain(id);
    expect(e.state).toBe(JobState.JOB_STATE_SCHEDULED);
    expect(reason(e, C.EXPLAIN_REASON_CODE_SCHEDULED).at?.getTime()).toBe(fx.clock.now() + 60_000);
    expect(e.summary).toContain(`scheduled until ${iso(fx.clock.now() + 60_000)}`);
  });

  it('waiting behind N ready jobs of higher or equal priority, and no worker subscribed', async () => {
    const ids = [];
    for (let i = 0; i < 5; i++) ids.push((await fx.broker.api.enqueue({ queue: 'ex-behind', payload: { i } })).id);
    const e = await explain(ids[4]!);
    const r = reason(e, C.EXPLAIN_REASON_CODE_WAITING_BEHIND);
    expect(r.count).toBe(4);
    expect(r.countIsLowerBound).toBe(false);
    expect(reason(e, C.EXPLAIN_REASON_CODE_NO_WORKER).workerIds).toEqual([]);
    expect(e.summary).toMatch(/waiting behind 4 ready jobs of queue "ex-behind"/);
    expect(e.summary).toMatch(/no worker is subscribed to queue "ex-behind"/);
  });

  it('queue paused', async () => {
    const { id } = await fx.broker.api.enqueue({ queue: 'ex-paused', payload: {} });
    await fx.broker.api.pauseQueue('ex-paused');
    const e = await explain(id);
    reason(e, C.EXPLAIN_REASON_CODE_QUEUE_PAUSED);
    expect(e.summary).toContain('queue "ex-paused" is paused');
  });

  it('no worker subscribed to this queue and type, naming the workers subscribed with other types', async () => {
    const w = fx.broker.api.consumer({ queues: ['ex-types'], types: ['sms.send'], workerId: 'sms-worker' }, 5);
    await w.until(() => w.subscribed !== undefined, 'subscribed');
    const { id } = await fx.broker.api.enqueue({ queue: 'ex-types', type: 'email.send', payload: {} });
    const e = await explain(id);
    const r = reason(e, C.EXPLAIN_REASON_CODE_NO_WORKER);
    expect(r.workerIds).toEqual(['sms-worker']);
    expect(e.summary).toContain('no worker is subscribed to queue "ex-types" with type "email.send"; subscribed with other types: sms-worker (types sms.send)');
    w.cancel();
  });

  it('ready and first in line when a subscribed stream has no credit', async () => {
    const w = fx.broker.api.consumer({ queues: ['ex-ready'] }, 0);
    await w.until(() => w.subscribed !== undefined, 'subscribed');
    const { id } = await fx.broker.api.enqueue({ queue: 'ex-ready', payload: {} });
    const e = await explain(id);
    expect(e.reasons.map((r) => r.code)).toEqual([C.EXPLAIN_REASON_CODE_READY]);
    w.cancel();
  });

  it('leased to worker W until T (attempt a of m), then completed', async () => {
    const { id } = await fx.broker.api.enqueue({ queue: 'ex-leased', payload: {}, maxAttempts: 4, leaseTimeoutMs: 30_000 });
    const w = fx.broker.api.consumer({ queues: ['ex-leased'], workerId: 'w-7' }, 1);
    const [d] = await w.waitForDeliveries(1);
    const e = await explain(id);
    const r = reason(e, C.EXPLAIN_REASON_CODE_LEASED);
    expect(r.workerIds).toEqual(['w-7']);
    expect(r.at?.getTime()).toBe(fx.clock.now() + 30_000);
    expect([r.attempt, r.maxAttempts]).toEqual([1, 4]);
    expect(e.summary).toContain(`leased to worker w-7 until ${iso(fx.clock.now() + 30_000)} (attempt 1 of 4)`);
    w.ack(d!);
    await w.waitForSettled(1);
    const done = await explain(id);
    expect(done.state).toBe(JobState.JOB_STATE_COMPLETED);
    reason(done, C.EXPLAIN_REASON_CODE_COMPLETED);
    w.cancel();
  });

  it('dead and cancelled, with the last error; a retry in backoff shows the last error too', async () => {
    const dead = (await fx.broker.api.enqueue({ queue: 'ex-end', payload: {}, maxAttempts: 3 })).id;
    const w = fx.broker.api.consumer({ queues: ['ex-end'] }, 1);
    const [d1] = await w.waitForDeliveries(1);
    w.nack(d1!, 'smtp said 550', { retryAfterMs: 60_000 });
    await w.waitForSettled(1);
    const retry = await explain(dead);
    expect(reason(retry, C.EXPLAIN_REASON_CODE_SCHEDULED).lastError).toBe('smtp said 550');
    expect(retry.summary).toContain('retry 2 of 3 after a backoff (last error: smtp said 550)');
    await fx.broker.api.cancelJob(dead, 'operator gave up');
    const cancelled = await explain(dead);
    expect(reason(cancelled, C.EXPLAIN_REASON_CODE_CANCELLED).lastError).toBe('operator gave up');

    const poison = (await fx.broker.api.enqueue({ queue: 'ex-end', payload: {} })).id;
    w.credit(1);
    const [d2] = await w.waitForDeliveries(2).then((ds) => ds.slice(1));
    w.nack(d2!, 'bad payload', { nonRetryable: true });
    await w.waitForSettled(2);
    const e = await explain(poison);
    expect(e.state).toBe(JobState.JOB_STATE_DEAD);
    expect(reason(e, C.EXPLAIN_REASON_CODE_DEAD).lastError).toBe('bad payload');
    expect(e.summary).toContain('last error: bad payload');
    w.cancel();
  });

  it('rate limit of the queue, next token at T', async () => {
    await setLimits(fx.broker.api, 'ex-qrate', { rate: { count: 2, intervalMs: 60_000, burst: 1 } });
    const first = (await fx.broker.api.enqueue({ queue: 'ex-qrate', payload: {} })).id;
    const second = (await fx.broker.api.enqueue({ queue: 'ex-qrate', payload: {} })).id;
    const w = fx.broker.api.consumer({ queues: ['ex-qrate'] }, 5);
    const [d] = await w.waitForDeliveries(1);
    expect(d!.jobId).toBe(first);
    const e = await explain(second);
    const r = reason(e, C.EXPLAIN_REASON_CODE_QUEUE_RATE_LIMIT);
    expect(r.at?.getTime()).toBe(fx.clock.now() + 30_000);
    expect(e.summary).toContain(`rate limit of queue "ex-qrate" (2 per 60000 ms): next token at ${iso(fx.clock.now() + 30_000)}`);
    w.cancel();
  });

  it('rate limit of group K, next token at T', async () => {
    await setLimits(fx.broker.api, 'ex-grate', { groupRate: { count: 1, intervalMs: 10_000 } });
    await fx.broker.api.enqueue({ queue: 'ex-grate', payload: {}, groupKey: 'acme' });
    const second = (await fx.broker.api.enqueue({ queue: 'ex-grate', payload: {}, groupKey: 'acme' })).id;
    const other = (await fx.broker.api.enqueue({ queue: 'ex-grate', payload: {}, groupKey: 'zeta' })).id;
    const w = fx.broker.api.consumer({ queues: ['ex-grate'] }, 5);
    const ds = await w.waitForDeliveries(2);
    expect(ds.map((d) => d.groupKey).sort()).toEqual(['acme', 'zeta']);
    expect(ds.some((d) => d.jobId === other)).toBe(true);
    const e = await explain(second);
    const r = reason(e, C.EXPLAIN_REASON_CODE_GROUP_RATE_LIMIT);
    expect(r.groupKey).toBe('acme');
    expect(r.at?.getTime()).toBe(fx.clock.now() + 10_000);
    expect(e.summary).toContain(`rate limit of group "acme" (1 per 10000 ms): next token at ${iso(fx.clock.now() + 10_000)}`);
    w.cancel();
  });

  it('concurrency cap: n of n active for the queue', async () => {
    await setLimits(fx.broker.api, 'ex-qconc', { concurrency: 2 });
    const ids = [];
    for (let i = 0; i < 3; i++) ids.push((await fx.broker.api.enqueue({ queue: 'ex-qconc', payload: {} })).id);
    const w = fx.broker.api.consumer({ queues: ['ex-qconc'] }, 5);
    await w.waitForDeliveries(2);
    const e = await explain(ids[2]!);
    const r = reason(e, C.EXPLAIN_REASON_CODE_QUEUE_CONCURRENCY);
    expect([r.count, r.limit]).toEqual([2, 2]);
    expect(e.summary).toContain('concurrency cap: 2 of 2 jobs of queue "ex-qconc" are active');
    w.cancel();
  });

  it('concurrency cap: n of n active for group K, and per-key order behind a job in retry backoff', async () => {
    await setLimits(fx.broker.api, 'ex-gconc', { groupConcurrency: 1 });
    const first = (await fx.broker.api.enqueue({ queue: 'ex-gconc', payload: {}, groupKey: 'ledger-9' })).id;
    const second = (await fx.broker.api.enqueue({ queue: 'ex-gconc', payload: {}, groupKey: 'ledger-9' })).id;
    const w = fx.broker.api.consumer({ queues: ['ex-gconc'] }, 5);
    const [d] = await w.waitForDeliveries(1);
    expect(d!.jobId).toBe(first);
    const busy = await explain(second);
    const r = reason(busy, C.EXPLAIN_REASON_CODE_GROUP_CONCURRENCY);
    expect([r.count, r.limit, r.groupKey]).toEqual([1, 1, 'ledger-9']);
    expect(busy.summary).toContain('concurrency cap: 1 of 1 jobs of group "ledger-9" are active');

    w.nack(d!, 'locked', { retryAfterMs: 45_000 });
    await w.waitForSettled(1);
    const held = await explain(second);
    const o = reason(held, C.EXPLAIN_REASON_CODE_GROUP_ORDER);
    expect(o.at?.getTime()).toBe(fx.clock.now() + 45_000);
    expect(held.summary).toContain(`waiting for an earlier job of group "ledger-9" that is in retry backoff until ${iso(fx.clock.now() + 45_000)}`);
    expect(w.deliveries).toHaveLength(1);
    w.cancel();
  });

  it('answers NOT_FOUND for an unknown id and INVALID_ARGUMENT for none, and works through the Producer client', async () => {
    await expectStatus(explain('01J00000000000000000000000'), status.NOT_FOUND, 'not found');
    await expectStatus(explain(''), status.INVALID_ARGUMENT, 'id');
    const { id } = await fx.broker.api.enqueue({ queue: 'ex-client', payload: {}, delayMs: 5000 });
    const producer = new Producer({ address: fx.broker.running.address });
    try {
      const e = await producer.explain(id);
      expect(e.state).toBe('scheduled');
      expect(e.reasons[0]?.code).toBe('scheduled');
      expect(e.summary).toContain('is scheduled');
    } finally {
      await producer.close();
    }
  });
});
