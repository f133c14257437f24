/**
 * How the producer roles drive their calls, shared by the Sluice and the BullMQ roles so both
 * systems are offered exactly the same load: a pool of N calls in flight, and a paced stream.
 */
import { wallNow, type EnqueueBatchTask, type EnqueuePacedTask, type EnqueueResult } from './protocol.js';

/** Runs `workers` async loops that each take the next index until `count` are done. */
export async function pool(count: number, workers: number, each: (index: number) => Promise<void>): Promise<void> {
  let next = 0;
  const loop = async (): Promise<void> => {
    while (next < count) await each(next++);
  };
  await Promise.all(Array.from({ length: Math.min(workers, count) }, loop));
}

/** The queue of job `n` of a batch task: `queue`, or round-robin over `queues`. */
export function batchQueue(task: EnqueueBatchTask, n: number): string {
  return task.queues ? task.queues[n % task.queues.length]! : task.queue;
}

/** Runs `send(from, to)` for each batch of a batch task, `inFlight` at once; times the whole. */
export async function batches(task: EnqueueBatchTask, send: (from: number, to: number) => Promise<void>): Promise<EnqueueResult> {
  const startedAt = wallNow();
  await pool(Math.ceil(task.count / task.batchSize), task.inFlight, async (b) => {
    const from = b * task.batchSize;
    await send(from, Math.min(task.count, from + task.batchSize));
  });
  return { count: task.count, startedAt, finishedAt: wallNow() };
}

/**
 * Calls `enqueue(n, at)` for job n at its slot startedAt + n / rate (the caller did the
 * warm-up), and resolves once every call has resolved. Calls are counted, not kept: a long
 * soak makes millions of them.
 */
export async function paced(task: EnqueuePacedTask, enqueue: (n: number, at: number) => Promise<unknown>): Promise<EnqueueResult> {
  const keep = task.keepLatencies ?? true;
  const enqueueLatenciesMs: number[] = [];
  let lastCallAt = 0;
  let outstanding = 0;
  let failure: unknown;
  let allSent = false;
  let settled!: () => void;
  const drained = new Promise<void>((resolve) => (settled = resolve));
  const call = (n: number) => {
    const at = wallNow();
    lastCallAt = at;
    outstanding++;
    enqueue(n, at).then(
      () => {
        if (keep) enqueueLatenciesMs.push(wallNow() - at);
        if (--outstanding === 0 && allSent) settled();
      },
      (error: unknown) => {
        failure ??= error;
        settled();
      },
    );
  };
  const startedAt = wallNow();
  await new Promise<void>((resolve) => {
    let sent = 0;
    const tick = () => {
      // Every job whose slot has come: job i is due at startedAt + i / rate.
      const due = Math.min(task.count, Math.floor(((wallNow() - startedAt) * task.ratePerSec) / 1000) + 1);
      while (sent < due) call(sent++);
      if (sent < task.count && failure === undefined) setTimeout(tick, 1);
      else resolve();
    };
    tick();
  });
  allSent = true;
  if (outstanding === 0) settled();
  await drained;
  if (failure !== undefined) throw failure;
  return { count: task.count, startedAt, finishedAt: wallNow(), lastCallAt, ...(keep ? { enqueueLatenciesMs } : {}) };
}
