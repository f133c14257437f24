/**
 * The workloads. Each run starts its own broker on a fresh data file and its own producer and
 * worker processes, so runs do not inherit each other's tables, WAL or caches.
 */
import { rmSync } from 'node:fs';
import { BrokerProcess } from './broker-process.js';
import type { ConsumeTask } from './protocol.js';
import { RedisProcess } from './bullmq/redis-process.js';
import { bullmqW5 } from './bullmq/w5.js';
import { RoleProcess, startProducer, startWorker, type BenchSystem, type WorkerProcess } from './role-process.js';
import { percentileSorted, rate } from './stats.js';
import { fileSize, MB } from './system.js';
import { SCALING_WORKLOADS } from './scaling.js';
import { w6 } from './w6-tenants.js';

export const WORKLOAD_IDS = ['W1', 'W2', 'W3', 'W4', 'W5', 'W6', 'S1', 'S2', 'S3', 'S4'] as const;
export type WorkloadId = (typeof WORKLOAD_IDS)[number];
export const DEFAULT_WORKLOADS: readonly WorkloadId[] = ['W1', 'W2', 'W3', 'W4'];
/** `--all`: the W workloads (the scaling workloads S1-S4 only when named). */
export const ALL_WORKLOADS: readonly WorkloadId[] = ['W1', 'W2', 'W3', 'W4', 'W5', 'W6'];
/** The workloads `--compare bullmq` also runs against BullMQ. */
export const BULLMQ_WORKLOADS: ReadonlySet<WorkloadId> = new Set(['W1', 'W2', 'W3', 'W4', 'W5']);
export const DEFAULT_SOAK_SECONDS = 600;

export interface BenchSettings {
  /** Jobs in W1-W3 (default 50,000). W4 sends jobs/10, W5 enqueues 20 x jobs. */
  jobs: number;
  synchronous: string;
  /** S4: soak length, and its rate (default: half of a W3 maximum measured first). */
  soakSeconds: number;
  rate?: number;
}

/** One measured value of one run. */
export interface Sample {
  workload: string;
  metric: string;
  unit: 'jobs/s' | 'ms' | 'MB' | 'us';
  value: number;
}

export interface RunContext {
  settings: BenchSettings;
  /** A fresh data file path for this run (removed afterwards with its -wal and -shm). */
  dataFile: string;
  /** Progress line on stderr. */
  note(message: string): void;
  /** The system under test (default Sluice); for BullMQ the run's redis-server keeps its AOF in `${dataFile}.redis/`. */
  system?: BenchSystem;
}

// Fixed parameters from issue 4.
export const WORKER_CONCURRENCY = 50;
export const BATCH_SIZE = 1000;
export const BATCHES_IN_FLIGHT = 4;
const SINGLE_IN_FLIGHT = 50;
const LATENCY_RATE = 500;
const LATENCY_WARMUP = 20;
export const STALL_TIMEOUT_MS = 30_000;

export function latencyJobs(jobs: number): number {
  return Math.max(50, Math.round(jobs / 10));
}

export function w5Jobs(jobs: number): number {
  return jobs * 20;
}

/** 50000 -> "50k", 1000000 -> "1M". */
export function shortCount(n: number): string {
  if (n >= 1e6 && n % 1e5 === 0) return `${n / 1e6}M`;
  if (n >= 1e3 && n % 100 === 0) return `${n / 1e3}k`;
  return String(n);
}

/** What W1-W4 need of the server under test: Sluice's broker, or the redis-server behind BullMQ. */
export interface ServerUnderTest {
  readonly address: string;
  readonly pid: number;
  guard<T>(work: Promise<T>): Promise<T>;
  rss(): number;
  peakRss(): number;
}

/**
 * Starts the server (a Sluice broker on a fresh data file, or a fresh redis-server for
 * `ctx.system` 'bullmq'), runs `body`, and always stops it and kills leftover role processes.
 */
async function withBroker(ctx: RunContext, body: (broker: ServerUnderTest, roles: RoleProcess<unknown>[]) => Promise<Sample[]>): Promise<Sample[]> {
  const roles: RoleProcess<unknown>[] = [];
  if (ctx.system === 'bullmq') {
    const redis = await RedisProcess.start(`${ctx.dataFile}.redis`);
    try {
      return await body(redis, roles);
    } finally {
      for (const r of roles) r.kill();
      await redis.stop();
    }
  }
  return withSluiceBroker(ctx, (broker) => body(broker, roles), roles);
}

/** Starts a broker on `dataFile`, runs `body`, and always stops the broker and kills `roles`. */
export async function withSluiceBroker(
  ctx: RunContext,
  body: (broker: BrokerProcess, roles: RoleProcess<unknown>[]) => Promise<Sample[]>,
  roles: RoleProcess<unknown>[] = [],
  dataFile = ctx.dataFile,
): Promise<Sample[]> {
  const broker = await BrokerProcess.start({ dataFile, synchronous: ctx.settings.synchronous, port: 0 });
  try {
    return await body(broker, roles);
  } catch (error) {
    broker.kill();
    throw error;
  } finally {
    for (const r of roles) r.kill();
    await broker.stop();
  }
}

export function consumeTask(address: string, queue: string, expect: number, recordLatency = false): ConsumeTask {
  return { role: 'consume', address, queue, expect, concurrency: WORKER_CONCURRENCY, recordLatency, stallTimeoutMs: STALL_TIMEOUT_MS };
}

/** A healthy run delivers each job once; a redelivery means a lease was lost or a stream dropped. */
function checkOnce(ctx: RunContext, what: string, c: { duplicates: number }): void {
  if (c.duplicates > 0) ctx.note(`WARNING: ${what}: ${c.duplicates} job(s) completed twice (redelivered)`);
}

function peakRssSample(workload: string, broker: ServerUnderTest): Sample {
  return { workload, metric: 'broker peak RSS', unit: 'MB', value: broker.peakRss() / MB };
}

/** W1: a 50k backlog enqueued with enqueueBatch, then drained by a worker started afterwards. */
async function w1(ctx: RunContext): Promise<Sample[]> {
  const n = ctx.settings.jobs;
  return withBroker(ctx, async (broker, roles) => {
    const queue = 'bench-w1';
    const producer = await broker.guard(startProducer({ role: 'enqueue-batch', address: broker.address, queue, count: n, batchSize: BATCH_SIZE, inFlight: BATCHES_IN_FLIGHT }, ctx.system));
    roles.push(producer);
    const p = await broker.guard(producer.result());
    const enqueueRate = rate(p.count, p.startedAt, p.finishedAt);
    ctx.note(`W1 enqueued ${n} in batches: ${Math.round(enqueueRate)} jobs/s`);

    const worker = await broker.guard(startWorker(consumeTask(broker.address, queue, n), ctx.system));
    roles.push(worker);
    const c = await broker.guard(worker.result());
    checkOnce(ctx, 'W1 drain', c);
    const drainRate = rate(c.completed, c.firstCompletionAt, c.lastCompletionAt);
    ctx.note(`W1 drained ${c.completed}: ${Math.round(drainRate)} jobs/s`);
    return [
      { workload: `W1 batch enqueue ${shortCount(n)}`, metric: 'throughput', unit: 'jobs/s', value: enqueueRate },
      { workload: `W1 drain ${shortCount(n)}`, metric: 'throughput', unit: 'jobs/s', value: drainRate },
      peakRssSample('W1', broker),
    ];
  });
}

/** W2: one enqueue() per job, 50 calls in flight (the client coalesces them into batches). */
async function w2(ctx: RunContext): Promise<Sample[]> {
  const n = ctx.settings.jobs;
  return withBroker(ctx, async (broker, roles) => {
    const producer = await broker.guard(startProducer({ role: 'enqueue-single', address: broker.address, queue: 'bench-w2', count: n, inFlight: SINGLE_IN_FLIGHT }, ctx.system));
    roles.push(producer);
    const p = await broker.guard(producer.result());
    const value = rate(p.count, p.startedAt, p.finishedAt);
    ctx.note(`W2 enqueued ${n} one by one: ${Math.round(value)} jobs/s`);
    return [{ workload: `W2 single enqueue ${shortCount(n)}`, metric: 'throughput', unit: 'jobs/s', value }, peakRssSample('W2', broker)];
  });
}

/** W3: producer (single enqueues, 50 in flight) and worker at the same time; first enqueue to last completion. */
async function w3(ctx: RunContext): Promise<Sample[]> {
  const n = ctx.settings.jobs;
  return withBroker(ctx, async (broker, roles) => {
    const queue = 'bench-w3';
    const worker = await broker.guard(startWorker(consumeTask(broker.address, queue, n), ctx.system));
    roles.push(worker);
    const producer = await broker.guard(startProducer({ role: 'enqueue-single', address: broker.address, queue, count: n, inFlight: SINGLE_IN_FLIGHT }, ctx.system));
    roles.push(producer);
    const [p, c] = await broker.guard(Promise.all([producer.result(), worker.result()]));
    checkOnce(ctx, 'W3', c);
    const value = rate(c.completed, p.startedAt, c.lastCompletionAt);
    ctx.note(`W3 end to end ${n}: ${Math.round(value)} jobs/s (producer alone ${Math.round(rate(p.count, p.startedAt, p.finishedAt))} jobs/s)`);
    return [{ workload: `W3 end to end ${shortCount(n)}`, metric: 'throughput', unit: 'jobs/s', value }, peakRssSample('W3', broker)];
  });
}

/** W4: a steady 500 jobs/s for ~10 s; latency from the enqueue() call to the handler's start. */
async function w4(ctx: RunContext): Promise<Sample[]> {
  const n = latencyJobs(ctx.settings.jobs);
  return withBroker(ctx, async (broker, roles) => {
    const queue = 'bench-w4';
    const worker = await broker.guard(startWorker(consumeTask(broker.address, queue, n, true), ctx.system));
    roles.push(worker);
    const producer = await broker.guard(
      startProducer({ role: 'enqueue-paced', address: broker.address, queue, count: n, ratePerSec: LATENCY_RATE, warmup: LATENCY_WARMUP }, ctx.system),
    );
    roles.push(producer);
    const [p, c] = await broker.guard(Promise.all([producer.result(), worker.result()]));
    checkOnce(ctx, 'W4', c);
    const sorted = [...c.latenciesMs].sort((a, b) => a - b);
    if (sorted.length !== n) throw new Error(`W4: ${sorted.length} latencies recorded for ${n} jobs`);
    const enqueued = [...(p.enqueueLatenciesMs ?? [])].sort((a, b) => a - b);
    const label = `W4 latency @${LATENCY_RATE}/s`;
    const samples: Sample[] = [
      { workload: label, metric: 'p50', unit: 'ms', value: percentileSorted(sorted, 50) },
      { workload: label, metric: 'p90', unit: 'ms', value: percentileSorted(sorted, 90) },
      { workload: label, metric: 'p99', unit: 'ms', value: percentileSorted(sorted, 99) },
      { workload: label, metric: 'max', unit: 'ms', value: sorted[sorted.length - 1]! },
      // The part of it until the producer's enqueue() resolved (the job is committed).
      { workload: label, metric: 'enqueue() resolved p50', unit: 'ms', value: percentileSorted(enqueued, 50) },
      { workload: label, metric: 'enqueue() resolved p99', unit: 'ms', value: percentileSorted(enqueued, 99) },
      // Jobs 0..n-1 were due at i/rate: n-1 intervals from the first call to the last.
      { workload: label, metric: 'enqueue call rate achieved', unit: 'jobs/s', value: rate(p.count - 1, p.startedAt, p.lastCallAt ?? p.finishedAt) },
    ];
    ctx.note(`W4 ${n} jobs: ${samples.slice(0, 4).map((s) => `${s.metric} ${s.value.toFixed(2)} ms`).join(', ')}`);
    return samples;
  });
}

/** W5: a 1M backlog: broker memory and file sizes, then restart time to the first delivery. */
async function w5(ctx: RunContext): Promise<Sample[]> {
  if (ctx.system === 'bullmq') return bullmqW5(ctx);
  const n = w5Jobs(ctx.settings.jobs);
  const label = `W5 ${shortCount(n)} queued`;
  const queue = 'bench-w5';
  const samples: Sample[] = [];
  let port = 0;
  await withSluiceBroker(ctx, async (broker, roles) => {
    port = broker.port;
    const producer = await broker.guard(startProducer({ role: 'enqueue-batch', address: broker.address, queue, count: n, batchSize: BATCH_SIZE, inFlight: BATCHES_IN_FLIGHT }));
    roles.push(producer);
    const p = await broker.guard(producer.result());
    const enqueueRate = rate(p.count, p.startedAt, p.finishedAt);
    const rss = broker.rss();
    const db = fileSize(ctx.dataFile);
    const wal = fileSize(`${ctx.dataFile}-wal`);
    ctx.note(`W5 enqueued ${n}: ${Math.round(enqueueRate)} jobs/s; broker RSS ${(rss / MB).toFixed(1)} MB, db ${(db / MB).toFixed(1)} MB, WAL ${(wal / MB).toFixed(1)} MB`);
    samples.push(
      { workload: label, metric: 'batch enqueue throughput', unit: 'jobs/s', value: enqueueRate },
      { workload: label, metric: 'broker RSS after enqueue', unit: 'MB', value: rss / MB },
      { workload: label, metric: 'broker peak RSS while enqueueing', unit: 'MB', value: broker.peakRss() / MB },
      { workload: label, metric: 'database file', unit: 'MB', value: db / MB },
      { workload: label, metric: 'WAL file', unit: 'MB', value: wal / MB },
    );
    return [];
  });
  // withBroker stopped the broker with SIGTERM and waited for its exit.
  samples.push({ workload: label, metric: 'database + WAL after shutdown', unit: 'MB', value: (fileSize(ctx.dataFile) + fileSize(`${ctx.dataFile}-wal`)) / MB });

  // Restart on the same file and port. The worker process is forked (client loaded) first,
  // and subscribes as soon as the broker logs that it listens.
  const worker: WorkerProcess = await RoleProcess.fork('worker');
  try {
    const broker = await BrokerProcess.start({ dataFile: ctx.dataFile, synchronous: ctx.settings.synchronous, port });
    try {
      worker.start({ ...consumeTask(broker.address, queue, 1), stallTimeoutMs: 120_000 });
      const c = await broker.guard(worker.result());
      const listenMs = broker.listeningAt - broker.spawnedAt;
      const firstMs = c.firstStartAt - broker.spawnedAt;
      ctx.note(`W5 restart: listening after ${listenMs.toFixed(0)} ms, first delivery after ${firstMs.toFixed(0)} ms`);
      samples.push(
        { workload: label, metric: 'restart: spawn to listening', unit: 'ms', value: listenMs },
        { workload: label, metric: 'restart: spawn to first delivery', unit: 'ms', value: firstMs },
        { workload: label, metric: 'broker RSS after restart', unit: 'MB', value: broker.rss() / MB },
      );
    } catch (error) {
      broker.kill();
      throw error;
    } finally {
      worker.kill();
      await broker.stop();
    }
  } finally {
    worker.kill();
  }
  return samples;
}

export const WORKLOADS: Record<WorkloadId, (ctx: RunContext) => Promise<Sample[]>> = { W1: w1, W2: w2, W3: w3, W4: w4, W5: w5, W6: w6, ...SCALING_WORKLOADS };

/** Removes a data file and its -wal / -shm companions. */
export function removeDataFile(path: string): void {
  for (const suffix of ['', '-wal', '-shm', '-journal']) rmSync(`${path}${suffix}`, { force: true });
  rmSync(`${path}.redis`, { recursive: true, force: true });
}
