/**
 * Graceful shutdown (SPEC §5): on SIGTERM the broker reports NOT_SERVING (gRPC health and
 * /healthz), sends `drain` to workers, stops deliveries and refuses new work, accepts the
 * settles of in-flight jobs until the grace period ends, then releases what is left without
 * counting the attempt, closes the store and exits 0.
 *
 * Runs the compiled broker in a child process: `npm test` builds first; run `npm run build`
 * before running this file alone.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { status } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { protoPath as healthProtoPath } from 'grpc-health-check';
import { JobState, type Job } from '../clients/typescript/src/gen/sluice/v1/job.js';
import { withTimeout, type Api } from './helpers/api.js';
import { tempDir } from './helpers/broker.js';
import { expectStatus, expectStreamStatus } from './helpers/expect-status.js';
import { killChildBrokers, startChildBroker, type ChildBroker } from './helpers/child-broker.js';

const QUEUE = 'drain';

type HealthClient = grpc.Client & {
  Check(req: { service: string }, cb: (e: grpc.ServiceError | null, res?: { status: string }) => void): void;
};

/** A grpc.health.v1.Health client built from the health proto shipped with grpc-health-check. */
function healthClient(address: string): HealthClient {
  const definition = loadSync(healthProtoPath, { keepCase: false, longs: String, enums: String, defaults: true, oneofs: true });
  const pkg = grpc.loadPackageDefinition(definition) as unknown as { grpc: { health: { v1: { Health: grpc.ServiceClientConstructor } } } };
  return new pkg.grpc.health.v1.Health(address, grpc.credentials.createInsecure()) as unknown as HealthClient;
}

function check(client: HealthClient, service: string): Promise<string> {
  return new Promise((resolve, reject) => client.Check({ service }, (e, res) => (e ? reject(e) : resolve(res!.status))));
}

async function healthz(broker: ChildBroker): Promise<{ status: number; body: { status: string; state: string } }> {
  const res = await fetch(`http://127.0.0.1:${broker.httpPort}/healthz`);
  return { status: res.status, body: (await res.json()) as { status: string; state: string } };
}

async function listAll(api: Api): Promise<Map<string, Job>> {
  const jobs = new Map<string, Job>();
  let pageToken = '';
  do {
    const page = await api.listJobs({ queue: QUEUE, pageSize: 1000, pageToken });
    for (const j of page.jobs) jobs.set(j.id, j);
    pageToken = page.nextPageToken;
  } while (pageToken);
  return jobs;
}

async function enqueueMany(api: Api, n: number): Promise<string[]> {
  const r = await api.enqueueBatch(
    Array.from({ length: n }, (_, i) => ({ queue: QUEUE, payload: { i } })),
    true,
  );
  return r.results.map((x) => x.id);
}

let dir: string | undefined;
const closers: (() => void)[] = [];
afterEach(async () => {
  for (const c of closers.splice(0)) c();
  await killChildBrokers();
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});

describe('SIGTERM', () => {
  it('drains: NOT_SERVING, drain to workers, new work refused, in-flight acks accepted, exit 0 as soon as all are settled', async () => {
    dir = tempDir('sluice-shutdown-');
    const dataFile = join(dir, 'sluice.db');
    const broker = await startChildBroker({ dataFile, args: ['--shutdown-grace-ms', '10000'] });
    const health = healthClient(broker.address);
    closers.push(() => health.close());

    const ids = await enqueueMany(broker.api, 8);
    expect(await check(health, '')).toBe('SERVING');
    expect(await check(health, 'sluice.v1.WorkerService')).toBe('SERVING');
    expect((await healthz(broker)).status).toBe(200);

    const worker = broker.api.consumer({ queues: [QUEUE], workerId: 'w' }, 5);
    const held = await worker.waitForDeliveries(5);

    const sigtermAt = Date.now();
    expect(broker.kill('SIGTERM')).toBe(true);
    await worker.until(() => worker.drains.length > 0, 'drain on the Consume stream');
    expect(worker.drains[0]!.graceMs).toBe(10_000);

    // Draining: health says NOT_SERVING, the HTTP check fails, new work is refused.
    expect(await check(health, '')).toBe('NOT_SERVING');
    expect(await check(health, 'sluice.v1.WorkerService')).toBe('NOT_SERVING');
    expect(await check(health, 'sluice.v1.ProducerService')).toBe('NOT_SERVING');
    const hz = await healthz(broker);
    expect(hz.status).toBe(503);
    expect(hz.body).toMatchObject({ status: 'NOT_SERVING', state: 'draining' });
    await expectStatus(broker.api.enqueue({ queue: QUEUE, payload: { late: true } }), status.UNAVAILABLE, 'draining');
    await expectStatus(broker.api.enqueueBatch([{ queue: QUEUE, payload: { late: true } }], false), status.UNAVAILABLE, 'draining');
    await expectStreamStatus(broker.api.consumer({ queues: [QUEUE], workerId: 'late' }, 1), status.UNAVAILABLE, 'draining');
    // Credit granted while draining brings no new deliveries (checked once the process is gone).
    worker.credit(3);

    // Settles of in-flight jobs are accepted; the broker keeps running while any is unsettled.
    for (const d of held.slice(0, 3)) worker.ack(d, { done: d.jobId });
    const firstSettles = await worker.waitForSettled(3);
    expect(firstSettles.map((s) => s.code)).toEqual([0, 0, 0]);
    expect(firstSettles.map((s) => s.state)).toEqual([JobState.JOB_STATE_COMPLETED, JobState.JOB_STATE_COMPLETED, JobState.JOB_STATE_COMPLETED]);
    expect(broker.exit, 'the broker waits for the 2 unsettled jobs').toBeUndefined();
    expect((await healthz(broker)).status).toBe(503);

    for (const d of held.slice(3)) worker.ack(d, { done: d.jobId });
    const allSettles = await worker.waitForSettled(5);
    expect(allSettles.map((s) => s.code)).toEqual([0, 0, 0, 0, 0]);

    const exit = await withTimeout(broker.exited, 15_000, 'the broker to exit after the last settle');
    const exitedAfterMs = Date.now() - sigtermAt;
    expect(exit).toEqual({ code: 0, signal: null });
    // Waiting out the grace period would take at least 10 000 ms from the signal.
    expect(exitedAfterMs, 'exit comes when the in-flight jobs are settled, not at the end of the grace period').toBeLessThan(10_000);
    expect(broker.logs.some((l) => l.msg === 'broker stopped')).toBe(true);
    expect(broker.logs.some((l) => l.msg === 'released unsettled leases at shutdown')).toBe(false);
    expect(worker.deliveries.length, 'no deliveries while draining').toBe(5);
    await broker.close();

    // Restart on the same file: the acked jobs are completed, the others wait untouched.
    const again = await startChildBroker({ dataFile });
    expect(again.logs.some((l) => l.msg === 'released leases left by a broker that did not shut down cleanly'), 'clean shutdown leaves no leases').toBe(false);
    const jobs = await listAll(again.api);
    expect(new Set(jobs.keys())).toEqual(new Set(ids));
    const acked = new Set(held.map((d) => d.jobId));
    for (const id of ids) {
      const job = jobs.get(id)!;
      if (acked.has(id)) {
        expect(job, `acked job ${id}`).toMatchObject({ state: JobState.JOB_STATE_COMPLETED, attempt: 1, result: { done: id } });
      } else {
        expect(job, `untouched job ${id}`).toMatchObject({ state: JobState.JOB_STATE_PENDING, attempt: 0, errors: [] });
      }
    }
  });

  it('when the grace period ends with jobs unsettled, releases them without counting the attempt, exits 0, and they run again', async () => {
    dir = tempDir('sluice-shutdown-');
    const dataFile = join(dir, 'sluice.db');
    const broker = await startChildBroker({ dataFile, http: false, args: ['--shutdown-grace-ms', '500'] });
    const ids = await enqueueMany(broker.api, 4);
    const worker = broker.api.consumer({ queues: [QUEUE], workerId: 'slow' }, 3);
    const held = await worker.waitForDeliveries(3);
    for (const d of held) expect(d.attempt).toBe(1);

    expect(broker.kill('SIGTERM')).toBe(true);
    await worker.until(() => worker.drains.length > 0, 'drain on the Consume stream');
    expect(worker.drains[0]!.graceMs).toBe(500);
    // The worker never settles; the grace period runs out.
    const exit = await withTimeout(broker.exited, 15_000, 'the broker to exit after the grace period');
    expect(exit).toEqual({ code: 0, signal: null });
    const released = broker.logs.find((l) => l.msg === 'released unsettled leases at shutdown');
    expect(released?.jobs).toBe(3);
    await broker.close();

    const again = await startChildBroker({ dataFile, http: false });
    expect(again.logs.some((l) => l.msg === 'released leases left by a broker that did not shut down cleanly')).toBe(false);
    const jobs = await listAll(again.api);
    expect(new Set(jobs.keys())).toEqual(new Set(ids));
    for (const id of ids) {
      // The attempt did not fail: the broker left. Back to pending with attempt 0, no error.
      expect(jobs.get(id), `job ${id} after restart`).toMatchObject({ state: JobState.JOB_STATE_PENDING, attempt: 0, errors: [] });
    }

    const next = again.api.consumer({ queues: [QUEUE], workerId: 'next' }, 4);
    const deliveries = await next.waitForDeliveries(4);
    expect(new Set(deliveries.map((d) => d.jobId))).toEqual(new Set(ids));
    for (const d of deliveries) expect(d.attempt, `attempt of ${d.jobId} on redelivery`).toBe(1);
    for (const d of deliveries) next.ack(d);
    const settles = await next.waitForSettled(4);
    expect(settles.map((s) => s.code)).toEqual([0, 0, 0, 0]);
    next.end();
  });
});
