import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Worker } from '../clients/typescript/src/worker.js';
import type { Job } from '../clients/typescript/src/job-context.js';
import { HELD_PER_SLOT } from '../clients/typescript/src/auto-prefetch.js';
import { startTestBroker, type TestBroker } from './helpers/broker.js';
import { withTimeout } from './helpers/api.js';

let b: TestBroker;
const workers: Worker[] = [];
beforeEach(async () => {
  b = await startTestBroker();
});
afterEach(async () => {
  for (const w of workers.splice(0)) await w.close({ timeoutMs: 0 });
  await b.close();
});

async function enqueue(queue: string, payloads: unknown[]): Promise<string[]> {
  const res = await b.api.enqueueBatch(payloads.map((payload) => ({ queue, payload })), true);
  return res.results.map((r) => {
    expect(r.error).toBeUndefined();
    return r.id;
  });
}

function startWorker(workerId: string, queue: string, concurrency: number, handler: (job: Job) => unknown): Worker {
  const w = new Worker({ address: b.running.address, queues: [queue], workerId, concurrency, shutdownSignals: [], handler });
  w.on('error', (e) => errors.push(`${workerId}: ${e.message}`));
  workers.push(w);
  void w.run();
  return w;
}
let errors: string[] = [];
beforeEach(() => {
  errors = [];
});

/** Resolves once `check` holds; checked on each of the worker's events and every 5 ms (state that changes without an event). */
function until(check: () => boolean, what: string, timeoutMs = 20_000): Promise<void> {
  return withTimeout(
    new Promise<void>((resolve) => {
      const tick = () => (check() ? resolve() : void setTimeout(tick, 5));
      tick();
    }),
    timeoutMs,
    what,
  );
}

describe('worker prefetch by default (auto)', () => {
  it('holds jobs beyond concurrency for short handlers but never runs more than concurrency at once', async () => {
    const TOTAL = 1000;
    await enqueue('fast', Array.from({ length: TOTAL }, (_, i) => ({ i })));
    let maxActive = 0;
    let maxHeld = 0;
    let done = 0;
    const w = startWorker('fast', 'fast', 4, () => {
      maxActive = Math.max(maxActive, w.activeCount);
      maxHeld = Math.max(maxHeld, w.heldCount);
    });
    w.on('completed', () => done++);
    expect(w.prefetch).toBe('auto');
    await until(() => done === TOTAL, `${TOTAL} jobs completed`);
    expect(maxActive).toBeLessThanOrEqual(4);
    expect(maxActive).toBe(4);
    // Held jobs (leased, waiting for a slot): at most HELD_PER_SLOT per slot.
    expect(maxHeld).toBeGreaterThan(0);
    expect(maxHeld).toBeLessThanOrEqual(4 * HELD_PER_SLOT);
    expect(errors).toEqual([]);
  });

  it('holds nothing before a handler has finished: a worker whose first jobs are slow leaves the rest to other workers', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const slow = startWorker('slow', 'q', 2, () => gate);
    await enqueue('q', Array.from({ length: 10 }, (_, i) => ({ i })));
    await until(() => slow.activeCount === 2, 'the slow worker runs two jobs');
    let fastDone = 0;
    startWorker('fast', 'q', 2, () => {}).on('completed', () => fastDone++);
    await until(() => fastDone === 8, 'the fast worker completes the other 8 jobs');
    expect(slow.heldCount).toBe(0);
    release();
  });

  it('hands held jobs back when its handlers become slow, so another worker runs them (attempt refunded)', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const slow = startWorker('slow', 'q', 2, (job) => ((job.payload as { slow: boolean }).slow ? gate : undefined));
    let warmDone = 0;
    slow.on('completed', () => warmDone++);
    // Short jobs first: the worker learns its handlers are short and holds jobs.
    await enqueue('q', Array.from({ length: 40 }, () => ({ slow: false })));
    await until(() => warmDone === 40, 'the warm-up jobs completed');
    const slowIds = await enqueue('q', Array.from({ length: 10 }, () => ({ slow: true })));
    // 2 run; the other 8 are held (up to HELD_PER_SLOT per slot) or still queued.
    const held = Math.min(8, 2 * HELD_PER_SLOT);
    await until(() => slow.activeCount === 2 && slow.heldCount === held, `two slow jobs running and ${held} held`);

    const seenByFast: Job[] = [];
    const fast = startWorker('fast', 'q', 2, (job) => void seenByFast.push(job));
    await until(() => seenByFast.length === 8, 'the fast worker runs the undelivered jobs and those handed back');
    expect(slow.heldCount).toBe(0);
    expect(slow.activeCount).toBe(2);
    expect(new Set(seenByFast.map((j) => j.id)).size).toBe(8);
    for (const j of seenByFast) {
      expect(slowIds).toContain(j.id);
      expect(j.attempt).toBe(1); // a held job given back unrun does not use up an attempt
    }
    // Holding stays off while the handlers are slow: nothing more is hoarded.
    await enqueue('q', [{ slow: false }, { slow: false }]);
    await until(() => seenByFast.length === 10, 'the fast worker runs the next jobs too');
    expect(slow.heldCount).toBe(0);
    release();
    await until(() => fast.activeCount === 0 && slow.activeCount === 0, 'all handlers finished');
    expect(errors).toEqual([]);
  });
});
