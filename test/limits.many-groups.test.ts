import { afterEach, describe, expect, it } from 'vitest';
import type { ConsumeResponse } from '../clients/typescript/src/gen/sluice/v1/worker.js';
import type { QueueLimiter } from '../src/broker/queue-limiter.js';
import { startTestBroker, type TestBroker } from './helpers/broker.js';
import { setLimits } from './helpers/limits.js';

let b: TestBroker | undefined;
afterEach(async () => {
  await b?.close();
  b = undefined;
});

describe('100,000 distinct group keys', () => {
  it('are dispatched with state only for the groups in flight (bounded memory, no scan of all groups per flush)', async () => {
    b = await startTestBroker();
    const api = b.api;
    const N = 100_000;
    const CREDIT = 200;
    await setLimits(api, 'many', { groupConcurrency: 1, groupRate: { count: 1, intervalMs: 10, burst: 1 } });
    for (let i = 0; i < N; i += 1000) {
      await api.enqueueBatch(Array.from({ length: 1000 }, (_, k) => ({ queue: 'many', payload: {}, groupKey: `tenant-${i + k}` })), false);
    }
    // The limiter is internal; reading it is the point of this test (what it keeps per group).
    const limiter = (b.running.broker as unknown as { limits: { get(q: string): QueueLimiter } }).limits.get('many');
    const heapBefore = process.memoryUsage().heapUsed;
    const seen = new Set<string>();
    let peakSlots = 0;
    let peakBuckets = 0;
    const consumer = api.consumer({ queues: ['many'] }, CREDIT);
    await new Promise<void>((resolve, reject) => {
      consumer.call.on('data', (m: ConsumeResponse) => {
        peakSlots = Math.max(peakSlots, limiter.groupSlots!.keys);
        peakBuckets = Math.max(peakBuckets, limiter.groupBuckets.size);
        for (const d of m.deliveries) seen.add(d.groupKey);
        if (m.deliveries.length > 0) consumer.send({ acks: m.deliveries.map((d) => ({ jobId: d.jobId, leaseId: d.leaseId })), credit: m.deliveries.length });
        if (seen.size === N) resolve();
      });
      consumer.call.on('error', reject);
    });
    const heapGrowthMb = (process.memoryUsage().heapUsed - heapBefore) / 2 ** 20;
    console.log(`100k groups: peak group slots ${peakSlots}, peak group buckets ${peakBuckets}, heap growth ${heapGrowthMb.toFixed(1)} MB (test process incl. client)`);
    consumer.cancel();
    expect(seen.size).toBe(N);
    // Slots exist only for jobs in flight (at most the stream's credit).
    expect(peakSlots).toBeLessThanOrEqual(CREDIT);
    // Buckets only for groups that started a job in the last few ms (full buckets are dropped).
    expect(peakBuckets).toBeLessThan(N / 4);
    expect(limiter.groupSlots!.keys).toBeLessThanOrEqual(CREDIT);
  }, 180_000);
});
