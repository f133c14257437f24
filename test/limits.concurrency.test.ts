import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Delivery } from '../clients/typescript/src/gen/sluice/v1/worker.js';
import { startTestBroker, type TestBroker } from './helpers/broker.js';
import { AckingWorkers, enqueueJobs, setLimits } from './helpers/limits.js';

let b: TestBroker;
beforeEach(async () => {
  b = await startTestBroker();
});
afterEach(async () => {
  await b.close();
});

const turn = () => new Promise<void>((r) => setImmediate(r));

describe('concurrency limits', () => {
  it('group concurrency 1: 100 jobs of one key run one at a time in FIFO order across 3 streams, through a failure and its retry, while other keys run in parallel (acceptance 3)', async () => {
    await setLimits(b.api, 'ledger', { groupConcurrency: 1 });
    const jobs: { queue: string; payload: unknown; groupKey: string }[] = [];
    for (let i = 0; i < 100; i++) {
      jobs.push({ queue: 'ledger', payload: { i }, groupKey: 'acct-1' });
      if (i % 5 === 0) jobs.push({ queue: 'ledger', payload: { i }, groupKey: `acct-${2 + (i % 3)}` });
    }
    const ids = await enqueueJobs(b.api, jobs);
    const key1 = ids.filter((_, i) => jobs[i]!.groupKey === 'acct-1');

    const active = new Map<string, number>();
    let maxKey1 = 0;
    let overlapWithKey1 = 0;
    let failed = false;
    const workers = new AckingWorkers(b.api, { queues: ['ledger'] }, {
      streams: 3,
      credit: 4,
      hold: async (d: Delivery) => {
        const n = (active.get(d.groupKey) ?? 0) + 1;
        active.set(d.groupKey, n);
        if (d.groupKey === 'acct-1') maxKey1 = Math.max(maxKey1, n);
        else if ((active.get('acct-1') ?? 0) > 0) overlapWithKey1++;
        await turn();
        await turn();
        active.set(d.groupKey, active.get(d.groupKey)! - 1);
        // The 30th job of acct-1 fails once: its retry must still run before the 31st.
        if (d.jobId === key1[29] && !failed) {
          failed = true;
          return 'nack';
        }
        return 'ack';
      },
    });
    await workers.until(() => workers.startedOf((d) => d.groupKey === 'acct-1').length === 101, '100 acct-1 jobs and one retry', 60_000);
    await workers.until(() => workers.started.length === ids.length + 1, 'every job');
    workers.close();

    const order = workers.startedOf((d) => d.groupKey === 'acct-1').map((s) => s.d.jobId);
    expect(order).toEqual([...key1.slice(0, 30), key1[29], ...key1.slice(30)]);
    expect(maxKey1).toBe(1);
    // The retry came as attempt 2 of the same job.
    expect(workers.startedOf((d) => d.jobId === key1[29]).map((s) => s.d.attempt)).toEqual([1, 2]);
    // Other keys were not serialised behind acct-1.
    expect(overlapWithKey1).toBeGreaterThan(0);
    // Three streams took part (the key's jobs are not pinned to one stream).
    expect(new Set(workers.startedOf((d) => d.groupKey === 'acct-1').map((s) => s.worker)).size).toBeGreaterThan(1);
  }, 90_000);

  it('queue concurrency 3 across 4 streams with 40 credits: never more than 3 active, checked under load (acceptance 4)', async () => {
    await setLimits(b.api, 'capped', { concurrency: 3 });
    await enqueueJobs(b.api, Array.from({ length: 300 }, (_, i) => ({ queue: 'capped', payload: { i } })));
    let active = 0;
    let max = 0;
    let atCap = 0;
    const workers = new AckingWorkers(b.api, { queues: ['capped'] }, {
      streams: 4,
      credit: 10,
      hold: async () => {
        // Counted from delivery to the ack being sent: the broker frees the slot only after
        // it has the ack, so its own count is never below this one.
        active++;
        max = Math.max(max, active);
        if (active === 3) atCap++;
        await turn();
        active--;
        return 'ack';
      },
    });
    await workers.until(() => workers.started.length === 300, 'all 300 jobs', 60_000);
    workers.close();
    expect(max).toBe(3);
    expect(atCap).toBeGreaterThan(10);
    expect(new Set(workers.started.map((s) => s.worker)).size).toBe(4);
  }, 90_000);
});
