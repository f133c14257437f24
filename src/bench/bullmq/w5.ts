/**
 * W5 against BullMQ: the same 1M backlog (addBulk, 1,000 per call, 4 in flight) on a fresh
 * redis-server; its memory (RSS and INFO used_memory) and AOF size, then a restart on the same
 * AOF to the first delivery. Labels match Sluice's W5 rows so the comparison pairs them.
 */
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { RoleProcess, startProducer, type ProducerProcess, type WorkerProcess } from '../role-process.js';
import { rate } from '../stats.js';
import { MB } from '../system.js';
import { BATCH_SIZE, BATCHES_IN_FLIGHT, consumeTask, shortCount, w5Jobs, type RunContext, type Sample } from '../workloads.js';
import { RedisProcess } from './redis-process.js';

/** Bytes of every file under `dir` (the AOF lives in dir/appendonlydir/). */
function treeSize(dir: string): number {
  let total = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    total += entry.isDirectory() ? treeSize(path) : statSync(path).size;
  }
  return total;
}

export async function bullmqW5(ctx: RunContext): Promise<Sample[]> {
  const n = w5Jobs(ctx.settings.jobs);
  const label = `W5 ${shortCount(n)} queued`;
  const queue = 'bench-w5';
  const dir = `${ctx.dataFile}.redis`;
  const samples: Sample[] = [];

  const redis = await RedisProcess.start(dir);
  let producer: ProducerProcess | undefined;
  try {
    producer = await redis.guard(startProducer({ role: 'enqueue-batch', address: redis.address, queue, count: n, batchSize: BATCH_SIZE, inFlight: BATCHES_IN_FLIGHT }, 'bullmq'));
    const p = await redis.guard(producer.result());
    const enqueueRate = rate(p.count, p.startedAt, p.finishedAt);
    const rss = redis.rss();
    const used = await redis.usedMemory();
    ctx.note(`W5 enqueued ${n}: ${Math.round(enqueueRate)} jobs/s; redis-server RSS ${(rss / MB).toFixed(1)} MB, used_memory ${(used / MB).toFixed(1)} MB`);
    samples.push(
      { workload: label, metric: 'batch enqueue throughput', unit: 'jobs/s', value: enqueueRate },
      { workload: label, metric: 'broker RSS after enqueue', unit: 'MB', value: rss / MB },
      { workload: label, metric: 'broker peak RSS while enqueueing', unit: 'MB', value: redis.peakRss() / MB },
      { workload: label, metric: 'redis used_memory after enqueue', unit: 'MB', value: used / MB },
    );
  } finally {
    producer?.kill();
    await redis.stop();
  }
  samples.push({ workload: label, metric: 'database + WAL after shutdown', unit: 'MB', value: treeSize(dir) / MB });

  // Restart on the same AOF; the worker is forked (BullMQ loaded) first, as for Sluice.
  const worker: WorkerProcess = await RoleProcess.fork('bullmq worker', 'bullmq');
  try {
    const restarted = await RedisProcess.start(dir);
    try {
      worker.start({ ...consumeTask(restarted.address, queue, 1), stallTimeoutMs: 120_000 });
      const c = await restarted.guard(worker.result());
      const listenMs = restarted.readyAt - restarted.spawnedAt;
      const firstMs = c.firstStartAt - restarted.spawnedAt;
      ctx.note(`W5 restart: ready after ${listenMs.toFixed(0)} ms, first delivery after ${firstMs.toFixed(0)} ms`);
      samples.push(
        { workload: label, metric: 'restart: spawn to listening', unit: 'ms', value: listenMs },
        { workload: label, metric: 'restart: spawn to first delivery', unit: 'ms', value: firstMs },
        { workload: label, metric: 'broker RSS after restart', unit: 'MB', value: restarted.rss() / MB },
      );
    } finally {
      worker.kill();
      await restarted.stop();
    }
  } finally {
    worker.kill();
  }
  return samples;
}
