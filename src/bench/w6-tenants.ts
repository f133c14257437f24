/**
 * W6 (opt-in: `--workload W6`): the tenant case of issue 10. One tenant has a big backlog
 * (2 x jobs, 100k by default), 50 small tenants arrive later with 10 jobs each, and every
 * tenant is rate limited (group rate limit, round-robin between tenants). Reports each small
 * tenant's time to first start and total throughput; then 100k distinct group keys with one
 * job each (per-key concurrency 1): broker memory and drain rate.
 *
 * The producer and the worker run in this (orchestrator) process on raw gRPC clients; the
 * worker acks each message's deliveries in one message, as the client's Worker does.
 */
import { connect, unary, type SluiceClients } from '../../clients/typescript/src/connect.js';
import { EnqueueBatchRequest, type EnqueueRequest } from '../../clients/typescript/src/gen/sluice/v1/producer.js';
import { UpdateQueueRequest } from '../../clients/typescript/src/gen/sluice/v1/admin.js';
import { ConsumeRequest, Subscribe, type ConsumeResponse, type Delivery } from '../../clients/typescript/src/gen/sluice/v1/worker.js';
import type { DeepPartial } from '../../clients/typescript/src/gen/sluice/v1/job.js';
import { BrokerProcess } from './broker-process.js';
import { percentileSorted } from './stats.js';
import { MB } from './system.js';
import type { RunContext, Sample } from './workloads.js';

const SMALL_TENANTS = 50;
const SMALL_JOBS = 10;
/** Every tenant: at most 2000 starts per second, 200 at once. */
const TENANT_RATE = { count: 2000, intervalMs: 1000, burst: 200 };
const CREDIT = 200;
const KEYS = 100_000;

async function enqueueAll(clients: SluiceClients, jobs: DeepPartial<EnqueueRequest>[]): Promise<void> {
  const p = clients.producer;
  const chunks: DeepPartial<EnqueueRequest>[][] = [];
  for (let i = 0; i < jobs.length; i += 1000) chunks.push(jobs.slice(i, i + 1000));
  let next = 0;
  const lane = async () => {
    while (next < chunks.length) {
      const chunk = chunks[next++]!;
      await unary(p.enqueueBatch, p, EnqueueBatchRequest.fromPartial({ jobs: chunk, atomic: true }));
    }
  };
  await Promise.all([lane(), lane(), lane(), lane()]);
}

/** A Consume stream that acks every message's deliveries at once; resolves after `expect` deliveries. */
function drain(clients: SluiceClients, queue: string, expect: number, onDelivery: (d: Delivery, at: number) => void): { done: Promise<void>; stop(): void } {
  const call = clients.worker.consume();
  let seen = 0;
  const done = new Promise<void>((resolve, reject) => {
    call.on('data', (m: ConsumeResponse) => {
      if (m.deliveries.length === 0) return;
      const at = performance.now();
      for (const d of m.deliveries) onDelivery(d, at);
      seen += m.deliveries.length;
      call.write(ConsumeRequest.fromPartial({ acks: m.deliveries.map((d) => ({ jobId: d.jobId, leaseId: d.leaseId })), credit: m.deliveries.length }));
      if (seen >= expect) resolve();
    });
    call.on('error', (e: Error & { code?: number }) => {
      if (e.code !== 1) reject(e);
    });
  });
  call.write(ConsumeRequest.fromPartial({ subscribe: Subscribe.fromPartial({ queues: [queue], workerId: 'bench-w6' }), credit: CREDIT }));
  return { done, stop: () => call.cancel() };
}

export async function w6(ctx: RunContext): Promise<Sample[]> {
  const big = ctx.settings.jobs * 2;
  const broker = await BrokerProcess.start({ dataFile: ctx.dataFile, synchronous: ctx.settings.synchronous, port: 0 });
  const clients = connect(broker.address);
  const samples: Sample[] = [];
  const label = `W6 tenants: 1 x ${big / 1000}k + ${SMALL_TENANTS} x ${SMALL_JOBS}`;
  try {
    const admin = clients.admin;
    await unary(admin.updateQueue, admin, UpdateQueueRequest.fromPartial({ queue: 'bench-w6', createIfMissing: true, limits: { groupRate: TENANT_RATE } }));
    await broker.guard(enqueueAll(clients, Array.from({ length: big }, (_, i) => ({ queue: 'bench-w6', payloadJson: Buffer.from(`{"i":${i}}`), groupKey: 'big' }))));
    ctx.note(`W6 enqueued the big tenant's ${big} jobs`);

    const firstStart = new Map<string, number>();
    let smallDone = 0;
    let lastSmall = 0;
    let first = 0;
    let last = 0;
    const total = big + SMALL_TENANTS * SMALL_JOBS;
    const worker = drain(clients, 'bench-w6', total, (d, at) => {
      if (first === 0) first = at;
      last = at;
      if (d.groupKey !== 'big') {
        if (!firstStart.has(d.groupKey)) firstStart.set(d.groupKey, at);
        smallDone++;
        lastSmall = at;
      }
    });
    // The small tenants arrive once the big one is running.
    await new Promise((r) => setTimeout(r, 2000));
    const small = [];
    for (let t = 0; t < SMALL_TENANTS; t++) for (let j = 0; j < SMALL_JOBS; j++) small.push({ queue: 'bench-w6', payloadJson: Buffer.from('{}'), groupKey: `small-${t}` });
    const arrivedAt = performance.now();
    await broker.guard(enqueueAll(clients, small));
    await broker.guard(worker.done);
    worker.stop();
    const ttfs = [...firstStart.values()].map((t) => t - arrivedAt).sort((a, b) => a - b);
    const throughput = (total / (last - first)) * 1000;
    ctx.note(
      `W6 small tenants: first start p50 ${percentileSorted(ttfs, 50).toFixed(1)} ms, max ${ttfs[ttfs.length - 1]!.toFixed(1)} ms, all ${smallDone} started after ${(lastSmall - arrivedAt).toFixed(0)} ms; total ${Math.round(throughput)} jobs/s`,
    );
    samples.push(
      { workload: label, metric: 'small tenant time to first start p50', unit: 'ms', value: percentileSorted(ttfs, 50) },
      { workload: label, metric: 'small tenant time to first start max', unit: 'ms', value: ttfs[ttfs.length - 1]! },
      { workload: label, metric: 'all small-tenant jobs started after', unit: 'ms', value: lastSmall - arrivedAt },
      { workload: label, metric: 'total throughput', unit: 'jobs/s', value: throughput },
      { workload: label, metric: 'broker peak RSS', unit: 'MB', value: broker.peakRss() / MB },
    );

    // 100k distinct keys, one job each, per-key concurrency 1.
    const keysLabel = `W6 ${KEYS / 1000}k group keys, 1 job each`;
    await unary(admin.updateQueue, admin, UpdateQueueRequest.fromPartial({ queue: 'bench-w6-keys', createIfMissing: true, limits: { groupConcurrency: 1 } }));
    const rssBefore = broker.rss();
    await broker.guard(enqueueAll(clients, Array.from({ length: KEYS }, (_, i) => ({ queue: 'bench-w6-keys', payloadJson: Buffer.from('{}'), groupKey: `tenant-${i}` }))));
    const rssQueued = broker.rss();
    let kFirst = 0;
    let kLast = 0;
    const keys = drain(clients, 'bench-w6-keys', KEYS, (_d, at) => {
      if (kFirst === 0) kFirst = at;
      kLast = at;
    });
    await broker.guard(keys.done);
    keys.stop();
    const rssAfter = broker.rss();
    const keysRate = (KEYS / (kLast - kFirst)) * 1000;
    ctx.note(`W6 ${KEYS} keys: RSS ${(rssBefore / MB).toFixed(1)} -> ${(rssQueued / MB).toFixed(1)} MB queued -> ${(rssAfter / MB).toFixed(1)} MB drained (peak ${(broker.peakRss() / MB).toFixed(1)}); drain ${Math.round(keysRate)} jobs/s`);
    samples.push(
      { workload: keysLabel, metric: 'broker RSS before enqueue', unit: 'MB', value: rssBefore / MB },
      { workload: keysLabel, metric: 'broker RSS with all queued', unit: 'MB', value: rssQueued / MB },
      { workload: keysLabel, metric: 'broker RSS after drain', unit: 'MB', value: rssAfter / MB },
      { workload: keysLabel, metric: 'drain throughput', unit: 'jobs/s', value: keysRate },
    );
    return samples;
  } catch (error) {
    broker.kill();
    throw error;
  } finally {
    clients.close();
    await broker.stop();
  }
}
