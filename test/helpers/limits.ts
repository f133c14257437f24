import type { DeepPartial } from '../../clients/typescript/src/gen/sluice/v1/job.js';
import type { QueueLimits } from '../../clients/typescript/src/gen/sluice/v1/admin.js';
import type { Delivery } from '../../clients/typescript/src/gen/sluice/v1/worker.js';
import type { Api, TestConsumer } from './api.js';

/** Sets a queue's limits through AdminService/UpdateQueue (creating the queue if needed). */
export function setLimits(api: Api, queue: string, limits: DeepPartial<QueueLimits>) {
  return api.updateQueue({ queue, limits, createIfMissing: true });
}

/** One record per delivery, in arrival order, with the arrival time (ms, performance clock). */
export interface Started {
  d: Delivery;
  at: number;
  worker: number;
}

/**
 * Raw Consume streams that ack every delivery (after `hold`, if given) and grant one credit
 * back with each ack, so each stream keeps `credit` jobs outstanding while work is ready.
 */
export class AckingWorkers {
  readonly started: Started[] = [];
  readonly consumers: TestConsumer[] = [];
  private waiters: { check: () => boolean; resolve: () => void }[] = [];

  constructor(
    api: Api,
    subscribe: { queues: string[]; types?: string[]; workerId?: string },
    opts: { streams?: number; credit?: number; hold?: (d: Delivery, worker: number) => Promise<string> | string } = {},
  ) {
    const streams = opts.streams ?? 1;
    for (let w = 0; w < streams; w++) {
      const c = api.consumer({ ...subscribe, workerId: `${subscribe.workerId ?? 'worker'}-${w}` }, opts.credit ?? 10);
      c.call.on('data', (m: { deliveries: Delivery[] }) => {
        for (const d of m.deliveries) {
          this.started.push({ d, at: performance.now(), worker: w });
          this.poke();
          const settle = (how: string) => {
            if (how === 'ack') c.ack(d, undefined, 1);
            else c.nack(d, 'test failure', { retryAfterMs: 50, credit: 1 });
          };
          const h = opts.hold?.(d, w) ?? 'ack';
          if (typeof h === 'string') settle(h);
          else void h.then(settle);
        }
      });
      this.consumers.push(c);
    }
  }

  startedOf(predicate: (d: Delivery) => boolean): Started[] {
    return this.started.filter((s) => predicate(s.d));
  }

  until(check: () => boolean, what: string, timeoutMs = 30_000): Promise<void> {
    if (check()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what} (started ${this.started.length})`)), timeoutMs);
      this.waiters.push({
        check,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
      });
    });
  }

  private poke(): void {
    const waiting = this.waiters;
    this.waiters = [];
    for (const w of waiting) (w.check() ? w.resolve() : this.waiters.push(w));
  }

  close(): void {
    for (const c of this.consumers) c.cancel();
  }
}

/** Enqueues jobs in atomic batches of up to 1000. */
export async function enqueueJobs(api: Api, jobs: Parameters<Api['enqueue']>[0][]): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < jobs.length; i += 1000) {
    const { results } = await api.enqueueBatch(jobs.slice(i, i + 1000), true);
    for (const r of results) ids.push(r.id);
  }
  return ids;
}
