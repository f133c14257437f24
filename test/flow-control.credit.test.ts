import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { status } from '@grpc/grpc-js';
import { JobState } from '../clients/typescript/src/gen/sluice/v1/job.js';
import type { ConsumeResponse, Delivery } from '../clients/typescript/src/gen/sluice/v1/worker.js';
import { startTestBroker, type TestBroker } from './helpers/broker.js';
import { withTimeout, type TestConsumer } from './helpers/api.js';

let b: TestBroker;
beforeEach(async () => {
  b = await startTestBroker();
});
afterEach(async () => {
  await b.close();
});

/** Enqueues `n` jobs through EnqueueBatch (in chunks the broker accepts) and returns their ids. */
async function enqueueMany(queue: string, n: number, chunk = 1000): Promise<string[]> {
  const ids: string[] = [];
  for (let start = 0; start < n; start += chunk) {
    const jobs = Array.from({ length: Math.min(chunk, n - start) }, (_, i) => ({ queue, payload: { i: start + i } }));
    const res = await b.api.enqueueBatch(jobs, true);
    for (const r of res.results) {
      expect(r.error).toBeUndefined();
      ids.push(r.id);
    }
  }
  return ids;
}

/** Calls `fn` with each message the stream receives, after TestConsumer has recorded it. */
function onMessage(c: TestConsumer, fn: (m: ConsumeResponse) => void): void {
  c.call.on('data', fn);
}

/** A worker that acks every delivery at once and grants one credit back per ack. */
function ackEagerly(c: TestConsumer): void {
  onMessage(c, (m) => {
    if (m.deliveries.length === 0) return;
    c.send({ acks: m.deliveries.map((d) => ({ jobId: d.jobId, leaseId: d.leaseId })), credit: m.deliveries.length });
  });
}

/** Resolves once `check` holds, re-checking whenever any of the streams receives a message. */
function untilAny(streams: TestConsumer[], check: () => boolean, what: string, timeoutMs = 30_000): Promise<void> {
  return withTimeout(
    new Promise<void>((resolve) => {
      if (check()) return resolve();
      const listener = () => {
        if (!check()) return;
        for (const s of streams) s.call.off('data', listener);
        resolve();
      };
      for (const s of streams) s.call.on('data', listener);
    }),
    timeoutMs,
    what,
  );
}

function okAcks(c: TestConsumer): number {
  return c.settled.filter((s) => s.kind === 1 && s.code === 0).length;
}

describe('credit-based flow control', () => {
  it('never has more unsettled jobs on a stream than the credit window, under load', async () => {
    const TOTAL = 2000;
    const WINDOW = 10;
    const ids = await enqueueMany('load', TOTAL);

    // Deterministic pseudo-random choices for the worker's behaviour.
    let seed = 42;
    const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);

    const worker = b.api.consumer({ queues: ['load'], workerId: 'bursty' }, WINDOW);
    let granted = WINDOW; // total credit ever granted
    let acksSent = 0;
    let held: Delivery[] = []; // delivered, not yet acked
    let peakUnsettled = 0;
    const violations: string[] = [];

    onMessage(worker, (m) => {
      const delivered = worker.deliveries.length;
      const confirmed = okAcks(worker);
      const unsettled = delivered - confirmed;
      peakUnsettled = Math.max(peakUnsettled, unsettled);
      // The broker never delivers more than the worker granted...
      if (delivered > granted) violations.push(`delivered ${delivered} > granted ${granted}`);
      // ...and since this worker re-grants only slots freed by confirmed settles,
      // unsettled jobs never exceed the window.
      if (unsettled > WINDOW) violations.push(`unsettled ${unsettled} > window ${WINDOW}`);
      for (const s of m.settled) if (s.code !== 0) violations.push(`settle failed: ${s.code} ${s.message}`);
      if (violations.length > 0 || confirmed >= TOTAL) return;

      held.push(...m.deliveries);
      // Ack a burst of the held jobs: sometimes none, sometimes some, sometimes all.
      const acksInFlight = acksSent - confirmed;
      let n = 0;
      const r = rand();
      if (r < 0.3) n = 0;
      else if (r < 0.6) n = Math.ceil(rand() * held.length);
      else n = held.length;
      // Never hold everything with nothing else coming back: that would stall the stream.
      if (n === 0 && acksInFlight === 0 && held.length > 0) n = 1;
      const acks = held.slice(0, n);
      held = held.slice(n);
      acksSent += acks.length;

      // Re-grant only slots freed by confirmed settles, and only in bursts.
      const freed = WINDOW - (granted - confirmed);
      const unused = granted - delivered;
      let credit = 0;
      if (freed > 0) {
        const burst = 1 + Math.floor(rand() * 6);
        const stalled = acksSent - confirmed === 0 && held.length === 0 && unused === 0;
        if (freed >= burst || stalled) credit = freed;
      }
      granted += credit;
      if (acks.length > 0 || credit > 0) {
        worker.send({ acks: acks.map((d) => ({ jobId: d.jobId, leaseId: d.leaseId })), credit });
      }
    });

    await worker.until(() => violations.length > 0 || okAcks(worker) >= TOTAL, `${TOTAL} acks`, 60_000);
    expect(violations).toEqual([]);
    expect(okAcks(worker)).toBe(TOTAL);
    expect(worker.deliveries.length).toBe(TOTAL);
    expect(new Set(worker.deliveries.map((d) => d.jobId)).size).toBe(TOTAL);
    expect(worker.deliveries.every((d) => d.attempt === 1)).toBe(true);
    expect(peakUnsettled).toBe(WINDOW); // the window was actually used
    const q = await b.api.getQueue('load');
    expect(q.counts).toMatchObject({ pending: 0, active: 0, completed: TOTAL });
    expect(new Set(worker.deliveries.map((d) => d.jobId))).toEqual(new Set(ids));
    worker.end();
    expect((await worker.status).code).toBe(status.OK);
  });

  it('a stream with zero credit gets nothing; credit granted later resumes delivery at once', async () => {
    const idle = b.api.consumer({ queues: ['held'], workerId: 'idle' }, 0);
    await idle.until(() => idle.subscribed !== undefined, 'subscribed');
    const heldIds = await enqueueMany('held', 5);

    // A job enqueued after the held ones, on another queue, reaches a stream with credit...
    const other = b.api.consumer({ queues: ['other'], workerId: 'other' }, 1);
    await other.until(() => other.subscribed !== undefined, 'subscribed');
    const { id: otherId } = await b.api.enqueue({ queue: 'other', payload: {} });
    const [od] = await other.waitForDeliveries(1);
    expect(od!.jobId).toBe(otherId);

    // ...while the zero-credit stream has received nothing and its jobs are still pending.
    expect(idle.deliveries).toHaveLength(0);
    for (const id of heldIds) expect((await b.api.getJob(id)).state).toBe(JobState.JOB_STATE_PENDING);
    const before = (await b.api.listWorkers()).workers.find((w) => w.workerId === 'idle')!;
    expect(before.credit).toBe(0);
    expect(before.activeJobIds).toEqual([]);

    idle.credit(3);
    const got = await idle.waitForDeliveries(3, 5000);
    expect(got.map((d) => d.jobId)).toEqual(heldIds.slice(0, 3)); // FIFO
    // Exactly 3: the broker shows the credit used up and the other two jobs still pending.
    const after = (await b.api.listWorkers()).workers.find((w) => w.workerId === 'idle')!;
    expect(after.credit).toBe(0);
    expect([...after.activeJobIds].sort()).toEqual(heldIds.slice(0, 3).sort());
    for (const id of heldIds.slice(3)) expect((await b.api.getJob(id)).state).toBe(JobState.JOB_STATE_PENDING);
    expect(idle.deliveries).toHaveLength(3);

    // Settling does not return credit: after acks the remaining jobs still wait.
    for (const d of got) idle.ack(d);
    await idle.waitForSettled(3);
    expect(idle.settled.every((s) => s.code === 0)).toBe(true);
    const settledView = (await b.api.listWorkers()).workers.find((w) => w.workerId === 'idle')!;
    expect(settledView.credit).toBe(0);
    expect(settledView.activeJobIds).toEqual([]);
    for (const id of heldIds.slice(3)) expect((await b.api.getJob(id)).state).toBe(JobState.JOB_STATE_PENDING);
    expect(idle.deliveries).toHaveLength(3);

    idle.credit(2);
    const rest = await idle.waitForDeliveries(5, 5000);
    expect(rest.slice(3).map((d) => d.jobId)).toEqual(heldIds.slice(3));
    idle.cancel();
    other.cancel();
  });

  it('two streams with credit share the work and no job is delivered twice', async () => {
    const a = b.api.consumer({ queues: ['shared'], workerId: 'a' }, 5);
    const c = b.api.consumer({ queues: ['shared'], workerId: 'c' }, 5);
    ackEagerly(a);
    ackEagerly(c);
    await a.until(() => a.subscribed !== undefined, 'a subscribed');
    await c.until(() => c.subscribed !== undefined, 'c subscribed');
    const ids = await enqueueMany('shared', 100);

    const total = () => okAcks(a) + okAcks(c);
    await untilAny([a, c], () => total() >= 100, `100 acks (have ${total()})`);
    expect(total()).toBe(100);
    const all = [...a.deliveries, ...c.deliveries].map((d) => d.jobId);
    expect(all).toHaveLength(100);
    expect(new Set(all)).toEqual(new Set(ids));
    expect(a.deliveries.length).toBeGreaterThanOrEqual(30);
    expect(c.deliveries.length).toBeGreaterThanOrEqual(30);
    expect((await b.api.getQueue('shared')).counts).toMatchObject({ pending: 0, active: 0, completed: 100 });
    a.cancel();
    c.cancel();
  });

  it('a stream subscribed to many queues gets every job, not only its first credit\'s worth', async () => {
    // 40 queues of 2 jobs each, enqueued before the stream subscribes with credit 5: one flush
    // peeks all 40 queues (80 jobs) but can claim only 5, and the queues it leaves jobs in must
    // stay eligible for the flushes that later credit triggers.
    const queues = Array.from({ length: 40 }, (_, i) => `many-${i}`);
    const ids: string[] = [];
    for (const q of queues) ids.push(...(await enqueueMany(q, 2)));
    const c = b.api.consumer({ queues, workerId: 'many' }, 5);
    ackEagerly(c);
    await c.until(() => okAcks(c) >= ids.length, `${ids.length} acks (have ${okAcks(c)})`);
    expect(new Set(c.deliveries.map((d) => d.jobId))).toEqual(new Set(ids));
    c.cancel();
  });

  it('streams subscribing with credit 5 each to 10 pending jobs get exactly 5 each', async () => {
    const ids = await enqueueMany('ten', 10);
    const a = b.api.consumer({ queues: ['ten'], workerId: 'a' }, 5);
    const c = b.api.consumer({ queues: ['ten'], workerId: 'c' }, 5);
    await a.waitForDeliveries(5);
    await c.waitForDeliveries(5);
    expect(a.deliveries).toHaveLength(5);
    expect(c.deliveries).toHaveLength(5);
    expect(new Set([...a.deliveries, ...c.deliveries].map((d) => d.jobId))).toEqual(new Set(ids));
    a.cancel();
    c.cancel();
  });

  it('splits ready jobs evenly among streams that all have more credit than work', async () => {
    // Both streams could take all 10; fairness means neither gets a second job while the
    // other, with free credit, has not had its share.
    const a = b.api.consumer({ queues: ['fair'], workerId: 'a' }, 10);
    const c = b.api.consumer({ queues: ['fair'], workerId: 'c' }, 10);
    await a.until(() => a.subscribed !== undefined, 'a subscribed');
    await c.until(() => c.subscribed !== undefined, 'c subscribed');
    const ids = await enqueueMany('fair', 10);
    await untilAny([a, c], () => a.deliveries.length + c.deliveries.length >= 10, '10 deliveries');
    expect(a.deliveries).toHaveLength(5);
    expect(c.deliveries).toHaveLength(5);
    expect(new Set([...a.deliveries, ...c.deliveries].map((d) => d.jobId))).toEqual(new Set(ids));
    a.cancel();
    c.cancel();
  });

  it('a slow stream holding its credit does not block a fast one', async () => {
    const slow = b.api.consumer({ queues: ['mixed'], workerId: 'slow' }, 2);
    const fast = b.api.consumer({ queues: ['mixed'], workerId: 'fast' }, 2);
    ackEagerly(fast);
    await slow.until(() => slow.subscribed !== undefined, 'slow subscribed');
    await fast.until(() => fast.subscribed !== undefined, 'fast subscribed');
    const ids = await enqueueMany('mixed', 50);

    await fast.until(() => okAcks(fast) >= 48, '48 acks from the fast stream', 30_000);
    // The slow stream never acked: it holds exactly its 2 credits' worth, nothing more.
    expect(slow.deliveries).toHaveLength(2);
    expect(fast.deliveries).toHaveLength(48);
    expect((await b.api.getQueue('mixed')).counts).toMatchObject({ pending: 0, active: 2, completed: 48 });
    const slowView = (await b.api.listWorkers()).workers.find((w) => w.workerId === 'slow')!;
    expect([...slowView.activeJobIds].sort()).toEqual(slow.deliveries.map((d) => d.jobId).sort());

    // When the slow stream goes away, its two jobs finish on the fast one.
    slow.end();
    await fast.until(() => okAcks(fast) >= 50, 'all 50 acked', 30_000);
    expect(new Set(fast.deliveries.map((d) => d.jobId))).toEqual(new Set(ids));
    expect((await b.api.getQueue('mixed')).counts).toMatchObject({ pending: 0, active: 0, completed: 50 });
    fast.cancel();
  });

  it('batches many deliveries into few messages when much work is ready', async () => {
    await enqueueMany('bulk', 500);
    const w = b.api.consumer({ queues: ['bulk'], workerId: 'bulk' }, 100);
    const got = await w.waitForDeliveries(100);
    const carrying = w.messages.filter((m) => m.deliveries.length > 0);
    expect(carrying.length).toBeLessThan(100);
    expect(Math.max(...carrying.map((m) => m.deliveries.length))).toBeGreaterThan(1);
    expect(new Set(got.map((d) => d.jobId)).size).toBe(100);

    // Acks sent in one message come back as batched settle confirmations too.
    w.send({ acks: got.map((d) => ({ jobId: d.jobId, leaseId: d.leaseId })) });
    await w.waitForSettled(100);
    const settling = w.messages.filter((m) => m.settled.length > 0);
    expect(settling.length).toBeLessThan(100);
    expect(w.settled.every((s) => s.code === 0)).toBe(true);
    // Credit counts jobs, not messages: exactly 100 delivered for 100 credit.
    expect(w.deliveries).toHaveLength(100);
    w.cancel();
  });
});

describe('credit limits', () => {
  it('ends a stream that grants more than its maximum credit with INVALID_ARGUMENT', async () => {
    await b.close();
    b = await startTestBroker({ maxCreditPerStream: 5 });
    const w = b.api.consumer({ queues: ['limited'] }, 3);
    await w.until(() => w.subscribed !== undefined, 'subscribed');
    expect(w.subscribed!.maxCredit).toBe(5);
    w.credit(3); // 3 + 3 > 5
    const s = await w.status;
    expect(s.code).toBe(status.INVALID_ARGUMENT);
    expect(s.details).toMatch(/maximum of 5/);
  });

  it('ends a stream that grants negative credit with INVALID_ARGUMENT', async () => {
    const w = b.api.consumer({ queues: ['neg'] }, 1);
    await w.until(() => w.subscribed !== undefined, 'subscribed');
    w.credit(-1);
    const s = await w.status;
    expect(s.code).toBe(status.INVALID_ARGUMENT);
    expect(s.details).toMatch(/credit/);
  });
});
