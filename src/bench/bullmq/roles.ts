/**
 * The same roles as ../roles.ts, written against BullMQ the way its documentation shows:
 * `Queue.add` / `Queue.addBulk` and a `Worker` with `concurrency`, default options otherwise
 * (jobs are kept after completion, as BullMQ does unless told `removeOnComplete`). The task's
 * `address` is the redis-server's host:port.
 */
import { Queue, Worker } from 'bullmq';
import { ConsumeTracker } from '../consume-tracker.js';
import { batches, batchQueue, paced, pool } from '../drive.js';
import {
  makePayload,
  wallNow,
  type ConsumeResult,
  type ConsumeTask,
  type EnqueueBatchTask,
  type EnqueuePacedTask,
  type EnqueueResult,
  type EnqueueSingleTask,
} from '../protocol.js';
import type { ConsumeControl } from '../roles.js';
import { subscriptionsOf } from '../roles.js';

const JOB_NAME = 'bench';

function connection(address: string): { host: string; port: number } {
  const colon = address.lastIndexOf(':');
  return { host: address.slice(0, colon), port: Number(address.slice(colon + 1)) };
}

/** One Queue object per queue name, connected before the clock starts. */
async function openQueues(address: string, names: readonly string[]): Promise<Map<string, Queue>> {
  const queues = new Map<string, Queue>();
  for (const name of new Set(names)) queues.set(name, new Queue(name, { connection: connection(address) }));
  await Promise.all([...queues.values()].map((q) => q.waitUntilReady()));
  return queues;
}

async function closeQueues(queues: Map<string, Queue>): Promise<void> {
  await Promise.all([...queues.values()].map((q) => q.close()));
}

export async function enqueueBatch(task: EnqueueBatchTask): Promise<EnqueueResult> {
  const queues = await openQueues(task.address, task.queues ?? [task.queue]);
  try {
    return await batches(task, async (from, to) => {
      // addBulk is per queue: split the batch by queue (one queue except in S2).
      const byQueue = new Map<string, { name: string; data: unknown; opts?: { delay: number } }[]>();
      for (let n = from; n < to; n++) {
        const q = batchQueue(task, n);
        let list = byQueue.get(q);
        if (!list) byQueue.set(q, (list = []));
        const now = wallNow();
        list.push({ name: JOB_NAME, data: makePayload(n, now), ...(task.runAt === undefined ? {} : { opts: { delay: Math.max(0, Math.round(task.runAt - now)) } }) });
      }
      const added = await Promise.all([...byQueue].map(([q, jobs]) => queues.get(q)!.addBulk(jobs)));
      const count = added.reduce((sum, jobs) => sum + jobs.length, 0);
      if (count !== to - from) throw new Error(`addBulk answered ${count} jobs for ${to - from}`);
    });
  } finally {
    await closeQueues(queues);
  }
}

export async function enqueueSingle(task: EnqueueSingleTask): Promise<EnqueueResult> {
  const queue = (await openQueues(task.address, [task.queue])).get(task.queue)!;
  try {
    const startedAt = wallNow();
    await pool(task.count, task.inFlight, async (n) => {
      await queue.add(JOB_NAME, makePayload(n, wallNow()));
    });
    return { count: task.count, startedAt, finishedAt: wallNow() };
  } finally {
    await queue.close();
  }
}

export async function enqueuePaced(task: EnqueuePacedTask): Promise<EnqueueResult> {
  const queue = (await openQueues(task.address, [task.queue])).get(task.queue)!;
  try {
    for (let i = 0; i < task.warmup; i++) await queue.add(JOB_NAME, { ...makePayload(-1 - i, wallNow()), warm: true });
    return await paced(task, (n, at) => queue.add(JOB_NAME, makePayload(n, at)));
  } finally {
    await queue.close();
  }
}

/**
 * A BullMQ Worker serves one queue, so a subscription to several queues is one Worker per
 * queue, each with the task's concurrency.
 */
export async function consume(task: ConsumeTask, control: ConsumeControl): Promise<ConsumeResult> {
  const tracker = new ConsumeTracker(task, control.progress);
  control.onStop(() => tracker.stop());
  const workers = subscriptionsOf(task)
    .flat()
    .map((queue) => {
      const worker = new Worker(
        queue,
        async (job) => {
          tracker.started(job.data);
        },
        { connection: connection(task.address), concurrency: task.concurrency, autorun: false },
      );
      worker.on('completed', (job) => tracker.completed(job.id!, job.data));
      worker.on('failed', (job, error) => tracker.fail(new Error(`handler failure reported for job ${job?.id}: ${error.message}`)));
      worker.on('error', (error) => tracker.fail(new Error(`worker error: ${error.message}`)));
      return worker;
    });
  await Promise.all(workers.map((w) => w.waitUntilReady()));
  for (const w of workers) w.run().catch((error: Error) => tracker.fail(new Error(`worker.run() rejected: ${error.message}`)));
  control.ready();
  await tracker.done;
  await Promise.all(workers.map((w) => w.close()));
  return tracker.result();
}
