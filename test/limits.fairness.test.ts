import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Priority } from '../clients/typescript/src/gen/sluice/v1/job.js';
import type { Delivery } from '../clients/typescript/src/gen/sluice/v1/worker.js';
import { TestClock } from './helpers/clock.js';
import { startTestBroker, type TestBroker } from './helpers/broker.js';
import { AckingWorkers, enqueueJobs, setLimits } from './helpers/limits.js';

let b: TestBroker | undefined;
afterEach(async () => {
  await b?.close();
  b = undefined;
});

describe('fairness between groups (acceptance 5)', () => {
  const tenants = 'BCDEFGHIJK'.split('');
  const CREDIT = 10;
  // Round-robin: one A job per lap of the 10 small tenants, 10 laps for their 10 jobs each,
  // plus what was already claimed for the streams' credit when they arrived.
  const BOUND = 10 + 2 * CREDIT;

  it(`every job of tenants B-K starts before tenant A (20,000 queued first) gets more than ${BOUND} further deliveries`, async () => {
    b = await startTestBroker();
    const api = b.api;
    await setLimits(api, 'saas', { fairGroups: true });
    await enqueueJobs(api, Array.from({ length: 20_000 }, (_, i) => ({ queue: 'saas', payload: { i }, groupKey: 'A' })));
    const workers = new AckingWorkers(api, { queues: ['saas'] }, { streams: 2, credit: CREDIT / 2 });
    await workers.until(() => workers.started.length >= 200, 'A to be running');

    const small = tenants.flatMap((t) => Array.from({ length: 10 }, (_, i) => ({ queue: 'saas', payload: { t, i }, groupKey: t })));
    await api.enqueueBatch(small, true);
    const aBefore = workers.startedOf((d) => d.groupKey === 'A').length;
    const isSmall = (d: Delivery) => d.groupKey !== 'A';
    await workers.until(() => workers.startedOf(isSmall).length === 100, 'the 100 small-tenant jobs');
    const lastSmall = workers.started.findLastIndex((s) => isSmall(s.d));
    const aUntilLastSmall = workers.started.slice(0, lastSmall + 1).filter((s) => s.d.groupKey === 'A').length;
    workers.close();
    expect(aUntilLastSmall - aBefore).toBeLessThanOrEqual(BOUND);
    // FIFO inside each tenant.
    for (const t of tenants) {
      expect(workers.startedOf((d) => d.groupKey === t).map((s) => (s.d.payload as { i: number }).i)).toEqual([...Array(10).keys()]);
    }
  }, 90_000);

  it('weights: a group with weight 3 gets three jobs per turn', async () => {
    b = await startTestBroker();
    await setLimits(b.api, 'weighted', { groupWeights: { heavy: 3 } });
    await enqueueJobs(b.api, [
      ...Array.from({ length: 30 }, (_, i) => ({ queue: 'weighted', payload: { i }, groupKey: 'heavy' })),
      ...Array.from({ length: 30 }, (_, i) => ({ queue: 'weighted', payload: { i }, groupKey: 'light' })),
    ]);
    const w = b.api.consumer({ queues: ['weighted'] }, 0);
    await w.until(() => w.subscribed !== undefined, 'subscribed');
    w.credit(40);
    const ds = await w.waitForDeliveries(40);
    const heavy = ds.filter((d) => d.groupKey === 'heavy').length;
    expect(heavy).toBe(30);
    expect(ds.length - heavy).toBe(10);
    w.cancel();
  });
});

describe('starvation guard: aging (acceptance 6)', () => {
  it('a low job completes under a continuous stream of high jobs that keeps the worker busy, within 3 aging periods (+2 deliveries)', async () => {
    // Injected clock: each delivery moves time by 50 ms, so aging is exact in deliveries.
    const clock = new TestClock();
    b = await startTestBroker({}, { clock });
    const api = b.api;
    const AGING_MS = 200;
    const STEP_MS = 50;
    await setLimits(api, 'busy', { agingMs: AGING_MS });
    // A backlog of 5 high jobs, kept at 5: each finished job is replaced by a new high one.
    await enqueueJobs(api, Array.from({ length: 5 }, (_, i) => ({ queue: 'busy', payload: { i }, priority: Priority.PRIORITY_HIGH })));
    const low = (await api.enqueue({ queue: 'busy', payload: { low: true }, priority: Priority.PRIORITY_LOW })).id;
    const lowAt = clock.now();
    let highs = 0;
    let lowDeliveredAt: number | undefined;
    const workers = new AckingWorkers(api, { queues: ['busy'] }, {
      credit: 1,
      hold: async (d) => {
        if (d.jobId === low) lowDeliveredAt = clock.now();
        clock.advance(STEP_MS);
        if (lowDeliveredAt === undefined) await api.enqueue({ queue: 'busy', payload: { more: highs++ }, priority: Priority.PRIORITY_HIGH });
        return 'ack';
      },
    });
    await workers.until(() => lowDeliveredAt !== undefined, 'the low job', 60_000);
    workers.close();
    // low -> normal -> high -> critical: 3 periods; it then goes first.
    expect(lowDeliveredAt! - lowAt).toBeLessThanOrEqual(3 * AGING_MS + 2 * STEP_MS);
    expect(lowDeliveredAt! - lowAt).toBeGreaterThanOrEqual(2 * AGING_MS);
    // The high backlog was still there: the low job overtook it, it did not wait it out.
    expect((await api.getQueue('busy')).counts?.pending).toBeGreaterThanOrEqual(4);
    // Every high job it overtook was enqueued after it (aging keeps FIFO inside a level).
    expect(highs).toBeGreaterThan(8);
  }, 90_000);

  it('without aging the same low job is not delivered while high jobs keep coming (the guard is what moves it)', async () => {
    const clock = new TestClock();
    b = await startTestBroker({}, { clock });
    const api = b.api;
    await enqueueJobs(api, Array.from({ length: 5 }, (_, i) => ({ queue: 'busy2', payload: { i }, priority: Priority.PRIORITY_HIGH })));
    const low = (await api.enqueue({ queue: 'busy2', payload: { low: true }, priority: Priority.PRIORITY_LOW })).id;
    const workers: AckingWorkers = new AckingWorkers(api, { queues: ['busy2'] }, {
      credit: 1,
      hold: async () => {
        clock.advance(50);
        if (workers.started.length < 40) await api.enqueue({ queue: 'busy2', payload: {}, priority: Priority.PRIORITY_HIGH });
        return 'ack';
      },
    });
    await workers.until(() => workers.started.length >= 40, '40 deliveries');
    workers.close();
    expect(workers.started.some((s) => s.d.jobId === low)).toBe(false);
  }, 60_000);
});
