import { afterEach, describe, expect, it } from 'vitest';
import { status } from '@grpc/grpc-js';
import { startTestBroker, tempDir, type TestBroker } from './helpers/broker.js';
import { expectStatus } from './helpers/expect-status.js';
import { AckingWorkers, enqueueJobs, setLimits } from './helpers/limits.js';

let brokers: TestBroker[] = [];
afterEach(async () => {
  for (const b of brokers) await b.close();
  brokers = [];
});
async function start(dir?: string): Promise<TestBroker> {
  const b = await startTestBroker({}, dir ? { dir } : {});
  brokers.push(b);
  return b;
}

describe('queue limits as settings (acceptance 8)', () => {
  it('are shown by GetQueue and ListQueues and survive a restart, stored with the queue', async () => {
    const dir = tempDir();
    let b = await start(dir);
    await b.api.enqueue({ queue: 'stored', payload: {} });
    const set = await setLimits(b.api, 'stored', {
      rate: { count: 50, intervalMs: 1000, burst: 10 },
      groupRate: { count: 10, intervalMs: 60_000 },
      groupRates: { vip: { count: 100, intervalMs: 60_000, burst: 5 } },
      concurrency: 8,
      groupConcurrency: 1,
      groupWeights: { big: 3 },
      agingMs: 30_000,
    });
    const expected = {
      rate: { count: 50, intervalMs: 1000, burst: 10 },
      groupRate: { count: 10, intervalMs: 60_000, burst: 10 }, // burst 0 = count
      groupRates: { vip: { count: 100, intervalMs: 60_000, burst: 5 } },
      concurrency: 8,
      groupConcurrency: 1,
      fairGroups: false,
      groupWeights: { big: 3 },
      agingMs: 30_000,
      retryOvertake: false,
    };
    expect(set.limits).toEqual(expected);
    expect((await b.api.getQueue('stored')).limits).toEqual(expected);
    await b.close();

    b = await start(dir);
    expect((await b.api.getQueue('stored')).limits).toEqual(expected);
    expect((await b.api.listQueues()).find((q) => q.name === 'stored')?.limits).toEqual(expected);
    // Other settings are kept when only limits change, and limits when only others change.
    await b.api.updateQueue({ queue: 'stored', maxAttempts: 7 });
    expect((await b.api.getQueue('stored')).limits).toEqual(expected);
    // {} clears them all.
    expect((await setLimits(b.api, 'stored', {})).limits).toBeUndefined();
    expect((await b.api.getQueue('stored')).maxAttempts).toBe(7);
  });

  it('reject zero or negative rates, absurd intervals and bad caps with INVALID_ARGUMENT, changing nothing', async () => {
    const b = await start();
    await setLimits(b.api, 'strict', { concurrency: 2 });
    const bad: [Parameters<typeof setLimits>[2], string][] = [
      [{ rate: { count: 0, intervalMs: 1000 } }, 'limits.rate.count'],
      [{ rate: { count: -3, intervalMs: 1000 } }, 'limits.rate.count'],
      [{ groupRate: { count: 5, intervalMs: 0 } }, 'limits.group_rate.interval_ms'],
      [{ groupRate: { count: 5, intervalMs: -1000 } }, 'interval_ms'],
      [{ rate: { count: 5, intervalMs: 2_000_000_000 } }, 'interval_ms'],
      [{ rate: { count: 5, intervalMs: 5 } }, 'interval_ms'],
      [{ rate: { count: 5, intervalMs: 1000, burst: -1 } }, 'burst'],
      [{ rate: {} }, 'limits.rate'],
      [{ concurrency: -1 }, 'limits.concurrency'],
      [{ groupConcurrency: -5 }, 'limits.group_concurrency'],
      [{ agingMs: -10 }, 'aging_ms'],
      [{ groupWeights: { a: 0 } }, 'group_weights'],
      [{ groupRates: { a: { count: 0, intervalMs: 1000 } } }, 'group_rates'],
    ];
    for (const [limits, field] of bad) await expectStatus(setLimits(b.api, 'strict', limits), status.INVALID_ARGUMENT, field);
    expect((await b.api.getQueue('strict')).limits?.concurrency).toBe(2);
  });

  it('apply to jobs already queued, with and without a group key', async () => {
    const b = await start();
    // Queued before the queue has any limit: keyed jobs and jobs without a key.
    const keyed = await enqueueJobs(b.api, Array.from({ length: 12 }, (_, i) => ({ queue: 'late', payload: { i }, groupKey: 'k' })));
    const plain = await enqueueJobs(b.api, Array.from({ length: 6 }, (_, i) => ({ queue: 'late', payload: { p: i } })));
    await setLimits(b.api, 'late', { groupConcurrency: 1 });

    let activeK = 0;
    let maxK = 0;
    const workers = new AckingWorkers(b.api, { queues: ['late'] }, {
      streams: 2,
      credit: 5,
      hold: async (d) => {
        if (d.groupKey !== 'k') return 'ack';
        maxK = Math.max(maxK, ++activeK);
        await new Promise((r) => setImmediate(r));
        activeK--;
        return 'ack';
      },
    });
    await workers.until(() => workers.started.length === 18, 'all 18 jobs');
    workers.close();
    expect(maxK).toBe(1);
    expect(workers.startedOf((d) => d.groupKey === 'k').map((s) => s.d.jobId)).toEqual(keyed);
    // Jobs without a key are their own group (key '') and are delivered too, in order.
    expect(workers.startedOf((d) => d.groupKey === '').map((s) => s.d.jobId)).toEqual(plain);
  });
});
