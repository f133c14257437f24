/**
 * What a bench role process does: producers and a worker, written against the public
 * TypeScript client only (`Producer`, `Worker`), as an application would use it.
 */
import { Producer, Worker } from '../../clients/typescript/src/index.js';
import { ConsumeTracker } from './consume-tracker.js';
import { batches, batchQueue, paced, pool } from './drive.js';
import {
  makePayload,
  wallNow,
  type ConsumeResult,
  type ConsumeTask,
  type EnqueueBatchTask,
  type EnqueuePacedTask,
  type EnqueueResult,
  type EnqueueSingleTask,
} from './protocol.js';

/** Set by the orchestrator when the broker runs with auth (SLUICE_BENCH_AUTH=1); role processes inherit it. */
const benchToken = (): string | undefined => process.env.SLUICE_BENCH_TOKEN || undefined;

export async function enqueueBatch(task: EnqueueBatchTask): Promise<EnqueueResult> {
  const producer = new Producer({ address: task.address, token: benchToken() });
  try {
    const options = task.runAt === undefined ? undefined : { runAt: new Date(task.runAt) };
    return await batches(task, async (from, to) => {
      const items = [];
      for (let n = from; n < to; n++) items.push({ queue: batchQueue(task, n), payload: makePayload(n, wallNow()), ...(options ? { options } : {}) });
      const results = await producer.enqueueBatch(items);
      if (results.length !== to - from) throw new Error(`enqueueBatch answered ${results.length} results for ${to - from} jobs`);
    });
  } finally {
    await producer.close();
  }
}

export async function enqueueSingle(task: EnqueueSingleTask): Promise<EnqueueResult> {
  const producer = new Producer({ address: task.address, token: benchToken() });
  try {
    const startedAt = wallNow();
    await pool(task.count, task.inFlight, async (n) => {
      await producer.enqueue(task.queue, makePayload(n, wallNow()));
    });
    return { count: task.count, startedAt, finishedAt: wallNow() };
  } finally {
    await producer.close();
  }
}

export async function enqueuePaced(task: EnqueuePacedTask): Promise<EnqueueResult> {
  const producer = new Producer({ address: task.address, token: benchToken() });
  try {
    // Warm-up: open the connection and the broker's statements before measuring.
    for (let i = 0; i < task.warmup; i++) await producer.enqueue(task.queue, { ...makePayload(-1 - i, wallNow()), warm: true });
    return await paced(task, (n, at) => producer.enqueue(task.queue, makePayload(n, at)));
  } finally {
    await producer.close();
  }
}

/** How a consume role talks to the orchestrator (child.ts wires it to IPC). */
export interface ConsumeControl {
  /** Subscribed: every worker of the task is ready (before any job is expected). */
  ready(): void;
  progress(completed: number): void;
  /** Registers what to do on the orchestrator's `stop`. */
  onStop(stop: () => void): void;
}

/** The worker's subscriptions: one Worker (one stream) per entry. */
export function subscriptionsOf(task: ConsumeTask): string[][] {
  return task.subscriptions ?? [[task.queue]];
}

export async function consume(task: ConsumeTask, control: ConsumeControl): Promise<ConsumeResult> {
  const tracker = new ConsumeTracker(task, control.progress);
  control.onStop(() => tracker.stop());
  const subscriptions = subscriptionsOf(task);
  let pendingReady = subscriptions.length;
  const workers = subscriptions.map((queues) => {
    const worker = new Worker({
      address: task.address,
      token: benchToken(),
      queues,
      concurrency: task.concurrency,
      shutdownSignals: [],
      handler: (job) => {
        tracker.started(job.payload);
        return undefined;
      },
    });
    let readySent = false;
    worker.on('ready', () => {
      if (readySent) return;
      readySent = true;
      if (--pendingReady === 0) control.ready();
    });
    worker.on('completed', (job) => tracker.completed(job.id, job.payload));
    worker.on('failed', (job, error) => tracker.fail(new Error(`handler failure reported for job ${job.id}: ${error.message}`)));
    worker.on('aborted', (job, reason) => tracker.fail(new Error(`job ${job.id} aborted: ${reason.message}`)));
    worker.on('error', (error) => tracker.fail(new Error(`worker error: ${error.message}`)));
    worker.run().catch((error: Error) => tracker.fail(new Error(`worker.run() rejected: ${error.message}`)));
    return worker;
  });
  await tracker.done;
  await Promise.all(workers.map((w) => w.close({ timeoutMs: 5_000 })));
  return tracker.result();
}
