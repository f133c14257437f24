import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startTestBroker, type TestBroker } from './helpers/broker.js';
import { AckingWorkers, enqueueJobs, setLimits } from './helpers/limits.js';

let b: TestBroker;
beforeEach(async () => {
  b = await startTestBroker();
});
afterEach(async () => {
  await b.close();
});

/** When the broker leased the job (its clock): the lease deadline minus the lease timeout. */
const leasedAt = (s: { d: { deadline?: Date; leaseTimeoutMs: number } }) => s.d.deadline!.getTime() - s.d.leaseTimeoutMs;

/** Most starts in any window of `windowMs` (sliding over the start times). */
function maxInWindow(times: number[], windowMs: number): number {
  const t = [...times].sort((x, y) => x - y);
  let best = 0;
  for (let i = 0, j = 0; i < t.length; i++) {
    while (t[i]! - t[j]! >= windowMs) j++;
    best = Math.max(best, i - j + 1);
  }
  return best;
}

describe('rate limits', () => {
  it('queue limit 50/s with burst 10: 500 jobs complete at 50 +- 10 per second, and a queue without limits is not slowed (acceptance 1)', async () => {
    await setLimits(b.api, 'rated', { rate: { count: 50, intervalMs: 1000, burst: 10 } });
    await enqueueJobs(b.api, Array.from({ length: 500 }, (_, i) => ({ queue: 'rated', payload: { i } })));
    await enqueueJobs(b.api, Array.from({ length: 400 }, (_, i) => ({ queue: 'free', payload: { i } })));

    // One subscription to both queues, with far more credit than the rate needs.
    const workers = new AckingWorkers(b.api, { queues: ['rated', 'free'] }, { streams: 2, credit: 50 });
    const rated = () => workers.startedOf((d) => d.queue === 'rated');
    const free = () => workers.startedOf((d) => d.queue === 'free');
    await workers.until(() => free().length === 400, 'the 400 unlimited jobs', 60_000);
    const ratedWhenFreeDone = rated().length;
    await workers.until(() => rated().length === 500, 'the 500 rate-limited jobs', 60_000);
    workers.close();

    const times = rated().map(leasedAt);
    const seconds = (Math.max(...times) - Math.min(...times)) / 1000;
    // The first 10 go at once (burst), the other 490 at 50/s: 9.8 s.
    const rate = 490 / seconds;
    expect(rate).toBeGreaterThan(40);
    expect(rate).toBeLessThan(60);
    // The bucket's guarantee, window by window: never more than burst + rate x window.
    expect(maxInWindow(times, 1000)).toBeLessThanOrEqual(10 + 50 + 1);
    // The unlimited queue is not held to the limited one's pace: its 400 jobs (8 s at 50/s)
    // finished while the limited queue had started well under 400 (a loaded machine runs
    // ~300 unlimited jobs/s in this test, one ack message per job).
    expect(ratedWhenFreeDone).toBeLessThan(300);
  }, 90_000);

  it('group limit: group A at 5/s with 200 ready does not hold back group B, whose 20 jobs all start within the first second (acceptance 2)', async () => {
    await setLimits(b.api, 'tenants', { groupRates: { A: { count: 5, intervalMs: 1000, burst: 5 } } });
    await enqueueJobs(b.api, Array.from({ length: 200 }, (_, i) => ({ queue: 'tenants', payload: { i }, groupKey: 'A' })));
    await enqueueJobs(b.api, Array.from({ length: 20 }, (_, i) => ({ queue: 'tenants', payload: { i }, groupKey: 'B' })));

    const workers = new AckingWorkers(b.api, { queues: ['tenants'] }, { streams: 2, credit: 20 });
    const ofGroup = (g: string) => workers.startedOf((d) => d.groupKey === g);
    await workers.until(() => ofGroup('B').length === 20, "group B's 20 jobs");
    const first = workers.started[0]!.at;
    const bDone = Math.max(...ofGroup('B').map((s) => s.at)) - first;
    expect(bDone).toBeLessThan(1000);
    // A keeps its rate meanwhile: 5 at once, then 5 per second.
    await workers.until(() => ofGroup('A').length >= 25, 'group A to reach 25 starts', 30_000);
    workers.close();
    const a = ofGroup('A').map(leasedAt);
    const aSeconds = (a[24]! - a[0]!) / 1000;
    expect(20 / aSeconds).toBeGreaterThan(3.5);
    expect(20 / aSeconds).toBeLessThan(6.5);
    expect(maxInWindow(a, 1000)).toBeLessThanOrEqual(5 + 5 + 1);
  }, 60_000);
});
