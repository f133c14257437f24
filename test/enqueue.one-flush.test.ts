import { afterEach, describe, expect, it } from 'vitest';
import type { EnqueueInput, EnqueueOutcome } from '../src/broker/broker.js';
import { startTestBroker, type TestBroker } from './helpers/broker.js';

/**
 * Several Enqueue requests planned into one flush (broker.ts planEnqueue, group-commit.ts
 * command ops): the store runs their inserts after every plan, so what one request will insert
 * must count for the admission of the next, and a job the store will deduplicate must not take
 * room. The requests go to the broker in one tick, so they share a flush (checked).
 */
let b: TestBroker | undefined;
afterEach(async () => {
  await b?.close();
  b = undefined;
});

function job(queue: string, n: number, extra: Partial<EnqueueInput> = {}): EnqueueInput {
  return {
    queue, type: 'default', payload: JSON.stringify({ n }), priority: 2, delayMs: 0, runAt: undefined, maxAttempts: undefined,
    retry: undefined, leaseTimeoutMs: undefined, metadata: undefined, dedupKey: undefined, groupKey: undefined, ...extra,
  };
}

/** Sends every request in one tick and checks they were committed by one flush. */
async function inOneFlush(t: TestBroker, requests: { jobs: EnqueueInput[]; atomic: boolean }[]): Promise<PromiseSettledResult<EnqueueOutcome[]>[]> {
  const broker = t.running.broker;
  const before = broker.commits.stats.commits;
  const settled = await Promise.allSettled(requests.map((r) => broker.enqueue(r.jobs, r.atomic)));
  expect(broker.commits.stats.commits - before).toBe(1);
  return settled;
}

function errorCodes(outcomes: EnqueueOutcome[]): (string | undefined)[] {
  return outcomes.map((o) => ('error' in o ? o.error.code : undefined));
}

describe('enqueue requests that share a flush', () => {
  it('count against max_queued together: three requests of 4 jobs fill a cap of 10 and no more', async () => {
    b = await startTestBroker();
    await b.api.updateQueue({ queue: 'capped', maxQueued: 10, createIfMissing: true });
    const batch = (k: number) => ({ jobs: [0, 1, 2, 3].map((n) => job('capped', k * 10 + n)), atomic: false });
    const [r1, r2, r3] = await inOneFlush(b, [batch(1), batch(2), batch(3)]);
    expect(errorCodes((r1 as PromiseFulfilledResult<EnqueueOutcome[]>).value)).toEqual([undefined, undefined, undefined, undefined]);
    expect(errorCodes((r2 as PromiseFulfilledResult<EnqueueOutcome[]>).value)).toEqual([undefined, undefined, undefined, undefined]);
    expect(errorCodes((r3 as PromiseFulfilledResult<EnqueueOutcome[]>).value)).toEqual([undefined, undefined, 'RESOURCE_EXHAUSTED', 'RESOURCE_EXHAUSTED']);
    const info = await b.running.broker.reads.getQueue('capped');
    expect(info.counts.pending).toBe(10);
  });

  it('an atomic request refused by the cap leaves room for the requests after it in the same flush', async () => {
    b = await startTestBroker();
    await b.api.updateQueue({ queue: 'capped', maxQueued: 3, createIfMissing: true });
    const [big, small] = (await inOneFlush(b, [
      { jobs: [1, 2, 3, 4].map((n) => job('capped', n)), atomic: true },
      { jobs: [5, 6, 7].map((n) => job('capped', n)), atomic: false },
    ])) as [PromiseSettledResult<EnqueueOutcome[]>, PromiseSettledResult<EnqueueOutcome[]>];
    expect(big.status).toBe('rejected');
    expect((big as PromiseRejectedResult).reason).toMatchObject({ code: 'RESOURCE_EXHAUSTED' });
    expect(errorCodes((small as PromiseFulfilledResult<EnqueueOutcome[]>).value)).toEqual([undefined, undefined, undefined]);
    expect((await b.running.broker.reads.getQueue('capped')).counts.pending).toBe(3);
  });

  it('a job deduplicated against a job of an earlier request in the flush takes no room under the cap', async () => {
    b = await startTestBroker();
    await b.api.updateQueue({ queue: 'capped', maxQueued: 2, createIfMissing: true });
    const [first, second] = await inOneFlush(b, [
      { jobs: [job('capped', 1, { dedupKey: 'k' })], atomic: false },
      { jobs: [job('capped', 2, { dedupKey: 'k' }), job('capped', 3)], atomic: false },
    ]);
    const [a] = (first as PromiseFulfilledResult<EnqueueOutcome[]>).value;
    const [dup, other] = (second as PromiseFulfilledResult<EnqueueOutcome[]>).value;
    expect(a).toMatchObject({ deduplicated: false });
    expect(dup).toMatchObject({ deduplicated: true, id: (a as { id: string }).id });
    expect(other).toMatchObject({ deduplicated: false }); // the second slot was still free
    expect((await b.running.broker.reads.getQueue('capped')).counts.pending).toBe(2);
  });

  it('a job deduplicated against a stored job is answered even when the queue is full', async () => {
    b = await startTestBroker();
    await b.api.updateQueue({ queue: 'capped', maxQueued: 1, createIfMissing: true });
    const [held] = await b.running.broker.enqueue([job('capped', 1, { dedupKey: 'k' })], false);
    const [again, refused] = await b.running.broker.enqueue([job('capped', 2, { dedupKey: 'k' }), job('capped', 3)], false);
    expect(again).toMatchObject({ deduplicated: true, id: (held as { id: string }).id });
    expect(refused).toMatchObject({ error: { code: 'RESOURCE_EXHAUSTED' } });
  });
});
