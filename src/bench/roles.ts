/**
 * What a bench role process does: producers and a worker, written against the public
 * TypeScript client only (`Producer`, `Worker`), as an application would use it.
 */
import { Producer, Worker } from '../../clients/typescript/src/index.js';
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

/** Runs `workers` async loops that each take the next index until `count` are done. */
async function pool(count: number, workers: number, each: (index: number) => Promise<void>): Promise<void> {
  let next = 0;
  const loop = async (): Promise<void> => {
    while (next < count) await each(next++);
  };
  await Promise.all(Array.from({ length: Math.min(workers, count) }, loop));
}

export async function enqueueBatch(task: EnqueueBatchTask): Promise<EnqueueResult> {
  const producer = new Producer({ address: task.address, token: benchToken() });
  try {
    const batches = Math.ceil(task.count / task.batchSize);
    const startedAt = wallNow();
    await pool(batches, task.inFlight, async (b) => {
      const from = b * task.batchSize;
      const to = Math.min(task.count, from + task.batchSize);
      const items = [];
      for (let n = from; n < to; n++) items.push({ queue: task.queue, payload: makePayload(n, wallNow()) });
      const results = await producer.enqueueBatch(items);
      if (results.length !== to - from) throw new Error(`enqueueBatch answered ${results.length} results for ${to - from} jobs`);
    });
    return { count: task.count, startedAt, finishedAt: wallNow() };
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

    const calls: Promise<unknown>[] = [];
    const enqueueLatenciesMs: number[] = [];
    let lastCallAt = 0;
    const startedAt = wallNow();
    await new Promise<void>((resolve) => {
      let sent = 0;
      const tick = () => {
        // Every job whose slot has come: job i is due at startedAt + i / rate.
        const due = Math.min(task.count, Math.floor(((wallNow() - startedAt) * task.ratePerSec) / 1000) + 1);
        while (sent < due) {
          const at = wallNow();
          lastCallAt = at;
          calls.push(producer.enqueue(task.queue, makePayload(sent++, at)).then(() => enqueueLatenciesMs.push(wallNow() - at)));
        }
        if (sent < task.count) setTimeout(tick, 1);
        else resolve();
      };
      tick();
    });
    await Promise.all(calls);
    return { count: task.count, startedAt, finishedAt: wallNow(), lastCallAt, enqueueLatenciesMs };
  } finally {
    await producer.close();
  }
}

/** `ready` is called once the worker is subscribed (before any job is expected). */
export async function consume(task: ConsumeTask, ready: () => void): Promise<ConsumeResult> {
  const seen = new Set<string>();
  const latenciesMs: number[] = [];
  let duplicates = 0;
  let failures = 0;
  let firstStartAt = 0;
  let firstCompletionAt = 0;
  let lastCompletionAt = 0;
  let lastProgressAt = wallNow();
  let failure: Error | undefined;

  const worker = new Worker({
    address: task.address,
    token: benchToken(),
    queues: [task.queue],
    concurrency: task.concurrency,
    shutdownSignals: [],
    handler: (job) => {
      const now = wallNow();
      if (firstStartAt === 0) firstStartAt = now;
      const payload = job.payload as { t: number; warm?: boolean };
      if (task.recordLatency && !payload.warm) latenciesMs.push(now - payload.t);
      return undefined;
    },
  });

  let finish!: () => void;
  const done = new Promise<void>((resolve) => (finish = resolve));
  const fail = (error: Error) => {
    failure ??= error;
    finish();
  };

  let readySent = false;
  worker.on('ready', () => {
    if (!readySent) ready();
    readySent = true;
  });
  worker.on('completed', (job) => {
    const now = wallNow();
    lastProgressAt = now;
    if ((job.payload as { warm?: boolean }).warm) return;
    if (seen.has(job.id)) {
      duplicates++;
      return;
    }
    seen.add(job.id);
    if (seen.size === 1) firstCompletionAt = now;
    if (seen.size === task.expect) {
      lastCompletionAt = now;
      finish();
    }
  });
  worker.on('failed', (job, error) => {
    failures++;
    fail(new Error(`handler failure reported for job ${job.id}: ${error.message}`));
  });
  worker.on('aborted', (job, reason) => {
    failures++;
    fail(new Error(`job ${job.id} aborted: ${reason.message}`));
  });
  worker.on('error', (error) => fail(new Error(`worker error: ${error.message}`)));

  const stall = setInterval(() => {
    if (wallNow() - lastProgressAt > task.stallTimeoutMs) {
      fail(new Error(`stalled: no job completed for ${task.stallTimeoutMs} ms (${seen.size} of ${task.expect} done)`));
    }
  }, 500);

  const running = worker.run();
  running.catch((error: Error) => fail(new Error(`worker.run() rejected: ${error.message}`)));
  try {
    await done;
  } finally {
    clearInterval(stall);
  }
  await worker.close({ timeoutMs: 5_000 });
  if (failure) throw failure;
  return { completed: seen.size, duplicates, failures, firstStartAt, firstCompletionAt, lastCompletionAt, latenciesMs };
}
