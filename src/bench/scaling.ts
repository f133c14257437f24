/**
 * Scaling workloads (issue 15), Sluice only, not in the default set:
 *
 * - S1: drain throughput and broker CPU per job with 1, 10, 100 and 1,000 worker streams.
 * - S2: 1,000 queues: batch enqueue round-robin over them, then a drain by 10 streams of 100 queues.
 * - S3: 20 x jobs (1M by default) scheduled jobs: enqueue rate and broker RSS while they wait,
 *   then promotion + delivery throughput once they come due (all at one instant, after the enqueue).
 * - S4: a soak at a steady rate (--rate, default half of a W3 maximum measured first) for
 *   --soak-seconds, with broker RSS and the p99 latency sampled every 10 s, printed as a series.
 *
 * Broker CPU is utime + stime from /proc/<pid>/stat, read just before the measured phase and
 * as soon as the orchestrator sees the last job completed.
 */
import { Admin } from '../../clients/typescript/src/index.js';
import { BrokerProcess } from './broker-process.js';
import { cpuMs } from './proc-stat.js';
import { wallNow, type ConsumeResult } from './protocol.js';
import { startProducer, startWorker, type RoleProcess, type WorkerProcess } from './role-process.js';
import { rate } from './stats.js';
import { MB } from './system.js';
import { BATCH_SIZE, BATCHES_IN_FLIGHT, consumeTask, removeDataFile, shortCount, STALL_TIMEOUT_MS, w5Jobs, withSluiceBroker, WORKLOADS, WORKER_CONCURRENCY, type RunContext, type Sample } from './workloads.js';

export const STREAM_COUNTS = [1, 10, 100, 1000] as const;
/** Worker processes the streams are spread over (2 cores: more processes only add switching). */
const MAX_WORKER_PROCESSES = 4;
const QUEUE_COUNT = 1000;
/** At most 100 queues per subscription (MAX_SUBSCRIBED_QUEUES in the worker service). */
const QUEUES_PER_STREAM = 100;
const SOAK_SAMPLE_MS = 10_000;
const LATENCY_WARMUP = 20;

/** Runs `body` against a fresh broker on `dataFile` and cleans everything up. */
async function withFreshBroker(ctx: RunContext, dataFile: string, body: (broker: BrokerProcess, roles: RoleProcess<unknown>[]) => Promise<Sample[]>): Promise<Sample[]> {
  try {
    return await withSluiceBroker(ctx, body, [], dataFile);
  } finally {
    removeDataFile(dataFile);
  }
}

/** Splits `items` into `parts` nearly equal consecutive slices (none empty while items last). */
export function split<T>(items: readonly T[], parts: number): T[][] {
  const out: T[][] = [];
  const n = Math.min(parts, items.length);
  for (let i = 0; i < n; i++) out.push(items.slice(Math.floor((i * items.length) / n), Math.floor(((i + 1) * items.length) / n)));
  return out;
}

interface Drain {
  rate: number;
  cpuPerJobUs: number;
  duplicates: number;
}

/**
 * Drains `total` jobs already queued (and paused) on `queues` with one stream per entry of
 * `streams`, spread over worker processes: all subscribe first, then the queues are resumed
 * and the clock and the broker's CPU counter start.
 */
async function drainPaused(
  ctx: RunContext,
  broker: BrokerProcess,
  roles: RoleProcess<unknown>[],
  admin: Admin,
  queues: readonly string[],
  streams: string[][],
  concurrency: number,
  total: number,
): Promise<Drain> {
  const groups = split(streams, MAX_WORKER_PROCESSES);
  const completed = groups.map(() => 0);
  let reached!: () => void;
  const allDone = new Promise<void>((resolve) => (reached = resolve));
  const workers: WorkerProcess[] = await broker.guard(
    Promise.all(
      groups.map(async (subscriptions, i) => {
        const task = { ...consumeTask(broker.address, subscriptions[0]![0]!, 0), concurrency, subscriptions, progressMs: 50 };
        const w = await startWorker(task);
        roles.push(w);
        w.onProgress((n) => {
          completed[i] = n;
          if (completed.reduce((a, b) => a + b, 0) >= total) reached();
        });
        return w;
      }),
    ),
  );
  const cpuBefore = cpuMs(broker.pid)!;
  const startedAt = wallNow();
  await broker.guard(Promise.all(queues.map((q) => admin.resumeQueue(q))));
  // A long drain says how far it got, so a slow one is told from a stuck one.
  const ticker = setInterval(() => ctx.note(`  ${completed.reduce((a, b) => a + b, 0)} of ${total} completed after ${Math.round((wallNow() - startedAt) / 1000)} s`), 10_000);
  // A worker process that answers before the orchestrator's stop has failed (a stall, a
  // handler error): its result() rejects, or it answered early, and either ends the wait.
  const early = workers.map((w) => w.result().then(() => Promise.reject(new Error('a worker process finished before the drain did'))));
  try {
    await broker.guard(Promise.race([allDone, ...early]));
  } finally {
    clearInterval(ticker);
  }
  const cpuAfter = cpuMs(broker.pid)!;
  for (const w of workers) w.stop();
  const results: ConsumeResult[] = await broker.guard(Promise.all(workers.map((w) => w.result())));
  const last = Math.max(...results.map((r) => r.lastCompletionAt));
  return { rate: rate(total, startedAt, last), cpuPerJobUs: ((cpuAfter - cpuBefore) * 1000) / total, duplicates: results.reduce((a, r) => a + r.duplicates, 0) };
}

async function enqueuePaused(broker: BrokerProcess, roles: RoleProcess<unknown>[], admin: Admin, queues: string[], count: number): Promise<{ rate: number; cpuPerJobUs: number }> {
  await broker.guard(Promise.all(queues.map((q) => admin.pauseQueue(q, { createIfMissing: true }))));
  const cpuBefore = cpuMs(broker.pid)!;
  const producer = await broker.guard(
    startProducer({ role: 'enqueue-batch', address: broker.address, queue: queues[0]!, ...(queues.length > 1 ? { queues } : {}), count, batchSize: BATCH_SIZE, inFlight: BATCHES_IN_FLIGHT }),
  );
  roles.push(producer);
  const p = await broker.guard(producer.result());
  return { rate: rate(p.count, p.startedAt, p.finishedAt), cpuPerJobUs: (((cpuMs(broker.pid) ?? cpuBefore) - cpuBefore) * 1000) / count };
}

/** Total concurrency 50 split over the streams, at least 1 handler per stream. */
export function perStreamConcurrency(streams: number): number {
  return Math.max(1, Math.floor(WORKER_CONCURRENCY / streams));
}

async function s1(ctx: RunContext): Promise<Sample[]> {
  const n = ctx.settings.jobs;
  const samples: Sample[] = [];
  for (const k of STREAM_COUNTS) {
    const c = perStreamConcurrency(k);
    const label = `S1 ${k} stream${k === 1 ? '' : 's'} x ${c} (${Math.min(k, MAX_WORKER_PROCESSES)} proc), drain ${shortCount(n)}`;
    samples.push(
      ...(await withFreshBroker(ctx, `${ctx.dataFile}-s1-${k}`, async (broker, roles) => {
        const admin = new Admin({ address: broker.address });
        try {
          const queue = 'bench-s1';
          await enqueuePaused(broker, roles, admin, [queue], n);
          const d = await drainPaused(ctx, broker, roles, admin, [queue], Array.from({ length: k }, () => [queue]), c, n);
          if (d.duplicates > 0) ctx.note(`WARNING: ${label}: ${d.duplicates} redelivered`);
          ctx.note(`${label}: ${Math.round(d.rate)} jobs/s, broker ${d.cpuPerJobUs.toFixed(1)} µs CPU per job`);
          return [
            { workload: label, metric: 'throughput', unit: 'jobs/s', value: d.rate },
            { workload: label, metric: 'broker CPU per job', unit: 'us', value: d.cpuPerJobUs },
          ];
        } finally {
          admin.close();
        }
      })),
    );
  }
  return samples;
}

async function s2(ctx: RunContext): Promise<Sample[]> {
  const n = ctx.settings.jobs;
  const queues = Array.from({ length: QUEUE_COUNT }, (_, i) => `bench-s2-${String(i).padStart(4, '0')}`);
  const streams = split(queues, QUEUE_COUNT / QUEUES_PER_STREAM);
  const c = perStreamConcurrency(streams.length);
  const label = `S2 ${QUEUE_COUNT} queues, ${shortCount(n)} jobs`;
  return withFreshBroker(ctx, `${ctx.dataFile}-s2`, async (broker, roles) => {
    const admin = new Admin({ address: broker.address });
    try {
      ctx.note(`${label}: pausing ${QUEUE_COUNT} queues, then enqueueing`);
      const e = await enqueuePaused(broker, roles, admin, queues, n);
      ctx.note(`${label}: enqueued at ${Math.round(e.rate)} jobs/s; subscribing ${streams.length} streams`);
      const d = await drainPaused(ctx, broker, roles, admin, queues, streams, c, n);
      if (d.duplicates > 0) ctx.note(`WARNING: ${label}: ${d.duplicates} redelivered`);
      ctx.note(`${label}: enqueue ${Math.round(e.rate)} jobs/s (${e.cpuPerJobUs.toFixed(1)} µs/job), drain by ${streams.length} streams x ${c}: ${Math.round(d.rate)} jobs/s (${d.cpuPerJobUs.toFixed(1)} µs/job)`);
      return [
        { workload: label, metric: 'batch enqueue throughput', unit: 'jobs/s', value: e.rate },
        { workload: label, metric: 'broker CPU per enqueued job', unit: 'us', value: e.cpuPerJobUs },
        { workload: label, metric: `drain throughput (${streams.length} streams x ${c})`, unit: 'jobs/s', value: d.rate },
        { workload: label, metric: 'broker CPU per drained job', unit: 'us', value: d.cpuPerJobUs },
      ];
    } finally {
      admin.close();
    }
  });
}

/**
 * When S3's jobs come due, measured from the start of the enqueue: long enough for the batch
 * enqueue to finish first at 25k jobs/s (slower machines report that it overran).
 */
export function s3DueInMs(n: number): number {
  return 10_000 + n / 25;
}

async function s3(ctx: RunContext): Promise<Sample[]> {
  const n = w5Jobs(ctx.settings.jobs);
  const label = `S3 ${shortCount(n)} scheduled`;
  const queue = 'bench-s3';
  return withFreshBroker(ctx, `${ctx.dataFile}-s3`, async (broker, roles) => {
    const dueAt = wallNow() + s3DueInMs(n);
    const cpuBefore = cpuMs(broker.pid)!;
    const producer = await broker.guard(startProducer({ role: 'enqueue-batch', address: broker.address, queue, count: n, batchSize: BATCH_SIZE, inFlight: BATCHES_IN_FLIGHT, runAt: dueAt }));
    roles.push(producer);
    const p = await broker.guard(producer.result());
    const enqueueCpu = cpuMs(broker.pid)! - cpuBefore;
    const rss = broker.rss();
    const enqueueRate = rate(p.count, p.startedAt, p.finishedAt);
    if (p.finishedAt > dueAt) ctx.note(`WARNING: ${label}: the enqueue overran the due time by ${Math.round(p.finishedAt - dueAt)} ms; promotion overlaps it`);
    ctx.note(`${label}: enqueue ${Math.round(enqueueRate)} jobs/s; broker RSS ${(rss / MB).toFixed(1)} MB with all of them waiting`);

    const worker = await broker.guard(startWorker({ ...consumeTask(broker.address, queue, n), stallTimeoutMs: Math.max(0, dueAt - wallNow()) + STALL_TIMEOUT_MS, uniquePayloadIndex: true }));
    roles.push(worker);
    const cpuAtWorker = cpuMs(broker.pid)!;
    const c = await broker.guard(worker.result());
    const promotionCpu = cpuMs(broker.pid)! - cpuAtWorker;
    const from = Math.max(dueAt, p.finishedAt);
    const promotionRate = rate(c.completed, from, c.lastCompletionAt);
    ctx.note(`${label}: due -> ${c.completed} completed at ${Math.round(promotionRate)} jobs/s; broker peak RSS ${(broker.peakRss() / MB).toFixed(1)} MB`);
    return [
      { workload: label, metric: 'batch enqueue throughput', unit: 'jobs/s', value: enqueueRate },
      { workload: label, metric: 'broker CPU per enqueued job', unit: 'us', value: (enqueueCpu * 1000) / n },
      { workload: label, metric: 'broker RSS while they wait', unit: 'MB', value: rss / MB },
      { workload: label, metric: 'promotion + delivery throughput once due', unit: 'jobs/s', value: promotionRate },
      { workload: label, metric: 'broker CPU per promoted + run job', unit: 'us', value: (promotionCpu * 1000) / n },
      { workload: label, metric: 'broker peak RSS', unit: 'MB', value: broker.peakRss() / MB },
    ];
  });
}

/** S4's rate: --rate, or half of the W3 end-to-end throughput measured now on a fresh broker. */
async function soakRate(ctx: RunContext): Promise<number> {
  if (ctx.settings.rate) return ctx.settings.rate;
  const dataFile = `${ctx.dataFile}-s4-w3`;
  try {
    const w3 = await WORKLOADS.W3({ ...ctx, dataFile });
    const max = w3.find((s) => s.unit === 'jobs/s')!.value;
    ctx.note(`S4: W3 maximum ${Math.round(max)} jobs/s; soaking at half of it`);
    return Math.max(1, Math.round(max / 2));
  } finally {
    removeDataFile(dataFile);
  }
}

async function s4(ctx: RunContext): Promise<Sample[]> {
  const seconds = ctx.settings.soakSeconds;
  const ratePerSec = await soakRate(ctx);
  const n = Math.round(ratePerSec * seconds);
  const label = `S4 soak ${seconds} s @${ratePerSec}/s`;
  const queue = 'bench-s4';
  return withFreshBroker(ctx, `${ctx.dataFile}-s4`, async (broker, roles) => {
    const worker = await broker.guard(startWorker({ ...consumeTask(broker.address, queue, n, true), windowMs: SOAK_SAMPLE_MS, uniquePayloadIndex: true }));
    roles.push(worker);
    const producer = await broker.guard(startProducer({ role: 'enqueue-paced', address: broker.address, queue, count: n, ratePerSec, warmup: LATENCY_WARMUP, keepLatencies: false }));
    roles.push(producer);
    const startedAt = wallNow();
    const rss: number[] = [];
    const sampler = setInterval(() => {
      rss.push(broker.rss());
      ctx.note(`${label}: ${Math.round((wallNow() - startedAt) / 1000)} s, broker RSS ${(rss[rss.length - 1]! / MB).toFixed(1)} MB`);
    }, SOAK_SAMPLE_MS);
    let c: ConsumeResult;
    try {
      [, c] = await broker.guard(Promise.all([producer.result(), worker.result()]));
    } finally {
      clearInterval(sampler);
    }
    if (c.duplicates > 0) ctx.note(`WARNING: ${label}: ${c.duplicates} redelivered`);
    const samples: Sample[] = [];
    const windows = c.windows ?? [];
    for (let i = 0; i < Math.max(rss.length, windows.length); i++) {
      const at = `t=${String((i + 1) * (SOAK_SAMPLE_MS / 1000)).padStart(4, ' ')} s`;
      if (rss[i] !== undefined) samples.push({ workload: label, metric: `${at} broker RSS`, unit: 'MB', value: rss[i]! / MB });
      const w = windows[i];
      if (w) samples.push({ workload: label, metric: `${at} p99 latency`, unit: 'ms', value: w.p99 });
    }
    samples.push({ workload: label, metric: 'broker peak RSS', unit: 'MB', value: broker.peakRss() / MB });
    return samples;
  });
}

export const SCALING_WORKLOADS = { S1: s1, S2: s2, S3: s3, S4: s4 } as const;
