import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { JobState, Priority } from '../clients/typescript/src/gen/sluice/v1/job.js';
import type { Delivery } from '../clients/typescript/src/gen/sluice/v1/worker.js';
import type { TestConsumer } from './helpers/api.js';
import { startTestBroker, type TestBroker } from './helpers/broker.js';

let b: TestBroker;
beforeEach(async () => {
  b = await startTestBroker();
});
afterEach(async () => {
  await b.close();
});

const { PRIORITY_UNSPECIFIED: UNSPEC, PRIORITY_LOW: LOW, PRIORITY_NORMAL: NORMAL, PRIORITY_HIGH: HIGH, PRIORITY_CRITICAL: CRITICAL } = Priority;

/** The level a job actually runs at: unspecified means normal. */
const effective = (p: Priority): Priority => (p === UNSPEC ? NORMAL : p);

/**
 * Works one job at a time: waits for the next delivery, acks it and grants one credit in the
 * same message, `count` times. Returns the deliveries in arrival order.
 */
async function drainOneByOne(worker: TestConsumer, count: number, beforeAck?: (d: Delivery, i: number) => Promise<void>): Promise<Delivery[]> {
  for (let i = 0; i < count; i++) {
    const d = (await worker.waitForDeliveries(i + 1))[i]!;
    // Credit 1 at a time: never more than one job outstanding.
    expect(worker.deliveries.length).toBe(i + 1);
    await beforeAck?.(d, i);
    worker.ack(d, undefined, 1);
  }
  await worker.waitForSettled(count);
  return worker.deliveries.slice(0, count);
}

describe('priority scheduling', () => {
  it('delivers critical..low, FIFO inside each level, with unspecified priority running as normal', async () => {
    // Several jobs per level, interleaved, all enqueued before any worker subscribes.
    const levels: Priority[] = [LOW, NORMAL, HIGH, CRITICAL, UNSPEC, LOW, CRITICAL, HIGH, NORMAL, LOW, UNSPEC, HIGH, CRITICAL, NORMAL, LOW, HIGH, CRITICAL];
    const enqueued: { id: string; level: Priority; n: number }[] = [];
    for (const [n, level] of levels.entries()) {
      const req = level === UNSPEC ? { queue: 'prio', payload: { n } } : { queue: 'prio', payload: { n }, priority: level };
      const { id, state } = await b.api.enqueue(req);
      expect(state).toBe(JobState.JOB_STATE_PENDING);
      enqueued.push({ id, level, n });
    }

    // The default is stored as NORMAL.
    for (const e of enqueued.filter((e) => e.level === UNSPEC)) {
      expect((await b.api.getJob(e.id)).priority).toBe(NORMAL);
    }

    // Expected: highest level first; inside a level, enqueue order (a stable sort keeps it).
    const expected = [...enqueued].sort((x, y) => effective(y.level) - effective(x.level));
    expect(new Set(expected.map((e) => effective(e.level))).size).toBe(4);

    const worker = b.api.consumer({ queues: ['prio'], workerId: 'prio-1' }, 1);
    const deliveries = await drainOneByOne(worker, levels.length);

    expect(deliveries.map((d) => d.jobId)).toEqual(expected.map((e) => e.id));
    expect(deliveries.map((d) => d.priority)).toEqual(expected.map((e) => effective(e.level)));
    expect(deliveries.map((d) => (d.payload as { n: number }).n)).toEqual(expected.map((e) => e.n));
    expect(worker.settled.every((s) => s.code === 0 && s.state === JobState.JOB_STATE_COMPLETED)).toBe(true);
    worker.cancel();
  });

  it('lets a higher-priority job enqueued later overtake a waiting backlog', async () => {
    const low: string[] = [];
    for (let n = 0; n < 4; n++) low.push((await b.api.enqueue({ queue: 'overtake', payload: { n }, priority: LOW })).id);

    const worker = b.api.consumer({ queues: ['overtake'] }, 1);
    let urgent = '';
    const deliveries = await drainOneByOne(worker, 5, async (_d, i) => {
      // While the first low job is being worked on, an urgent one arrives.
      if (i === 0) urgent = (await b.api.enqueue({ queue: 'overtake', payload: { urgent: true }, priority: CRITICAL })).id;
    });
    expect(deliveries.map((d) => d.jobId)).toEqual([low[0], urgent, low[1], low[2], low[3]]);
    worker.cancel();
  });

  it('orders by priority, then enqueue order, across the queues of one subscription', async () => {
    const a1 = (await b.api.enqueue({ queue: 'mix-a', payload: 1, priority: NORMAL })).id;
    const b1 = (await b.api.enqueue({ queue: 'mix-b', payload: 2, priority: NORMAL })).id;
    const a2 = (await b.api.enqueue({ queue: 'mix-a', payload: 3, priority: HIGH })).id;
    const b2 = (await b.api.enqueue({ queue: 'mix-b', payload: 4, priority: LOW })).id;
    const b3 = (await b.api.enqueue({ queue: 'mix-b', payload: 5, priority: HIGH })).id;
    const a3 = (await b.api.enqueue({ queue: 'mix-a', payload: 6 })).id;

    const worker = b.api.consumer({ queues: ['mix-a', 'mix-b'] }, 1);
    const deliveries = await drainOneByOne(worker, 6);
    expect(deliveries.map((d) => d.jobId)).toEqual([a2, b3, a1, b1, a3, b2]);
    worker.cancel();
  });
});
