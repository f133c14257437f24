/**
 * Crash safety (SPEC §5 "a hard kill loses nothing that was acknowledged to a producer", §3
 * settle confirmations "an ack resolves only after it is durable"). A broker child process is
 * SIGKILLed while producers enqueue and workers ack under load; a new broker on the same file
 * must hold every acknowledged job, never run an acknowledged ack again, and hand out again
 * exactly the jobs that were not finished, counting the attempt of those that were active.
 *
 * Runs the compiled broker: `npm test` builds first; run `npm run build` before running this
 * file alone.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { status, type ServiceError } from '@grpc/grpc-js';
import { JobState, type Job } from '../clients/typescript/src/gen/sluice/v1/job.js';
import { SettleResult_Kind, type ConsumeResponse, type Delivery } from '../clients/typescript/src/gen/sluice/v1/worker.js';
import { withTimeout, type Api, type TestConsumer } from './helpers/api.js';
import { tempDir } from './helpers/broker.js';
import { killChildBrokers, startChildBroker } from './helpers/child-broker.js';

const QUEUE = 'crash';
const PRODUCERS = 8;
const CALLS_PER_PRODUCER = 400;
const ACKERS = 3;
const ACKER_CREDIT = 8;
const HELD = 5;
/** Kill once this many acks were confirmed (and the holder has its jobs): an event, not a time. */
const KILL_AFTER_ACKS = 300;

let dir: string | undefined;
afterEach(async () => {
  await killChildBrokers();
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});

async function listAll(api: Api, queue: string): Promise<Map<string, Job>> {
  const jobs = new Map<string, Job>();
  let pageToken = '';
  do {
    const page = await api.listJobs({ queue, pageSize: 1000, pageToken });
    for (const j of page.jobs) jobs.set(j.id, j);
    pageToken = page.nextPageToken;
  } while (pageToken);
  return jobs;
}

describe('SIGKILL under load', () => {
  it('keeps every acknowledged enqueue, never redelivers a confirmed ack, and redelivers what was active with the attempt counted', async () => {
    dir = tempDir('sluice-crash-');
    const dataFile = join(dir, 'sluice.db');
    const first = await startChildBroker({ dataFile, http: false });

    const enqueued = new Set<string>(); // Enqueue / EnqueueBatch item returned OK with this id
    let unknownOutcome = 0; // jobs in calls that failed because of the kill (may or may not exist)
    const ackConfirmed = new Set<string>(); // settle result code 0 for an ack
    const deliveredBefore = new Map<string, number>(); // jobId -> attempt, before the kill
    const deliveredTwice: string[] = [];
    let crashed = false;
    let producersRunning = PRODUCERS;
    let producersRunningAtKill = 0;

    let onKill!: () => void;
    const killedPromise = new Promise<void>((resolve) => (onKill = resolve));
    const holder = first.api.consumer({ queues: [QUEUE], workerId: 'holder' }, HELD);
    const maybeKill = () => {
      if (crashed || ackConfirmed.size < KILL_AFTER_ACKS || holder.deliveries.length < HELD) return;
      crashed = true;
      producersRunningAtKill = producersRunning;
      first.kill('SIGKILL');
      onKill();
    };
    const record = (w: TestConsumer, ack: boolean) => {
      w.call.on('data', (m: ConsumeResponse) => {
        for (const d of m.deliveries) {
          if (deliveredBefore.has(d.jobId)) deliveredTwice.push(d.jobId);
          deliveredBefore.set(d.jobId, d.attempt);
          // Ack and re-grant the credit in one message.
          if (ack && !crashed) w.ack(d, { ok: true }, 1);
        }
        for (const s of m.settled) if (s.kind === SettleResult_Kind.KIND_ACK && s.code === 0) ackConfirmed.add(s.jobId);
        maybeKill();
      });
    };
    record(holder, false);
    const ackers = Array.from({ length: ACKERS }, (_, i) => {
      const w = first.api.consumer({ queues: [QUEUE], workerId: `acker-${i}` }, ACKER_CREDIT);
      record(w, true);
      return w;
    });

    const producer = async (p: number) => {
      try {
        for (let seq = 0; seq < CALLS_PER_PRODUCER && !crashed; seq++) {
          const batch = seq % 3 === 2;
          const size = batch ? 20 : 1;
          try {
            if (batch) {
              const jobs = Array.from({ length: size }, (_, k) => ({ queue: QUEUE, type: 'batch', payload: { p, seq, k } }));
              const r = await first.api.enqueueBatch(jobs, seq % 2 === 0);
              for (const item of r.results) {
                expect(item.error, `batch item error: ${item.error?.message}`).toBeUndefined();
                enqueued.add(item.id);
              }
            } else {
              enqueued.add((await first.api.enqueue({ queue: QUEUE, type: 'single', payload: { p, seq } })).id);
            }
          } catch (error) {
            if (!crashed) throw error;
            expect((error as ServiceError).code, (error as ServiceError).details).toBe(status.UNAVAILABLE);
            unknownOutcome += size;
            return;
          }
        }
      } finally {
        producersRunning--;
      }
    };
    const producers = Array.from({ length: PRODUCERS }, (_, p) => producer(p));

    await withTimeout(killedPromise, 15_000, `${KILL_AFTER_ACKS} confirmed acks and ${HELD} held deliveries (acks ${ackConfirmed.size}, held ${holder.deliveries.length})`);
    const exit = await withTimeout(first.exited, 10_000, 'the SIGKILLed broker to exit');
    expect(exit.signal).toBe('SIGKILL');
    await withTimeout(Promise.all(producers), 15_000, 'the producers to stop');
    for (const w of [holder, ...ackers]) w.cancel();
    await first.close();
    // The kill happened mid-flight: producers were still enqueueing.
    expect(producersRunningAtKill, 'producers still running when the broker was killed').toBeGreaterThan(0);

    expect(deliveredTwice, 'jobs delivered twice before the crash').toEqual([]);
    expect([...deliveredBefore.values()].filter((attempt) => attempt !== 1)).toEqual([]);
    const held = new Set(holder.deliveries.map((d) => d.jobId));
    expect(held.size).toBe(HELD);

    // --- a new broker on the same file ---------------------------------------------------
    const second = await startChildBroker({ dataFile, http: false });
    const recovered = await second.waitForLog((l) => l.msg === 'released leases left by a broker that did not shut down cleanly', 'the lease recovery log line');
    expect(recovered.jobs as number).toBeGreaterThanOrEqual(HELD);

    const atRestart = await listAll(second.api, QUEUE);
    // Every acknowledged enqueue is there; extra jobs can only come from calls cut by the kill.
    const missing = [...enqueued].filter((id) => !atRestart.has(id));
    expect(missing, 'acknowledged enqueues lost by the crash').toEqual([]);
    expect(atRestart.size - enqueued.size).toBeLessThanOrEqual(unknownOutcome);

    for (const [id, job] of atRestart) {
      expect([JobState.JOB_STATE_PENDING, JobState.JOB_STATE_COMPLETED], `state of ${id} after restart`).toContain(job.state);
      if (job.state === JobState.JOB_STATE_COMPLETED) {
        // Completed means a worker acked it, so it was delivered before the crash.
        expect(deliveredBefore.has(id), `completed job ${id} was delivered`).toBe(true);
        expect(job.attempt).toBe(1);
        expect(job.result).toEqual({ ok: true });
      } else if (deliveredBefore.has(id) || job.attempt > 0) {
        // Active at the kill (the delivery may not have reached the worker before the kill):
        // released by the new broker, the attempt counted, the reason recorded.
        expect(job.attempt, `attempt of ${id}, active at the kill`).toBe(1);
        expect(job.errors.length).toBe(1);
        expect(job.errors[0]!.attempt).toBe(1);
        expect(job.errors[0]!.message).toMatch(/broker stopped/);
        expect(job.lastError).toMatch(/broker stopped/);
      } else {
        expect(job.errors, `errors of ${id}, never delivered`).toEqual([]);
      }
    }
    for (const id of ackConfirmed) expect(atRestart.get(id)?.state, `confirmed ack of ${id}`).toBe(JobState.JOB_STATE_COMPLETED);
    for (const id of held) expect(atRestart.get(id), `held job ${id}`).toMatchObject({ state: JobState.JOB_STATE_PENDING, attempt: 1 });
    // The new broker released exactly the jobs that were active at the kill.
    const activeAtKill = [...atRestart.values()].filter((j) => j.state === JobState.JOB_STATE_PENDING && j.attempt === 1);
    expect(recovered.jobs).toBe(activeAtKill.length);

    // --- drain everything with a new worker ----------------------------------------------
    const pendingAtRestart = [...atRestart.values()].filter((j) => j.state === JobState.JOB_STATE_PENDING);
    const before = await second.api.getQueue(QUEUE);
    expect(before.counts).toMatchObject({ pending: pendingAtRestart.length, active: 0, scheduled: 0, dead: 0 });
    expect(pendingAtRestart.length).toBeGreaterThan(0);

    const drainer = second.api.consumer({ queues: [QUEUE], workerId: 'drainer' }, 50);
    const drained: Delivery[] = [];
    drainer.call.on('data', (m: ConsumeResponse) => {
      for (const d of m.deliveries) {
        drained.push(d);
        drainer.ack(d, { ok: true, again: true }, 1);
      }
    });
    await drainer.until(
      () => drainer.settled.filter((s) => s.code === 0).length >= pendingAtRestart.length,
      `${pendingAtRestart.length} acks of the drain (have ${drainer.settled.length})`,
      20_000,
    );
    expect(drainer.settled.filter((s) => s.code !== 0)).toEqual([]);
    const after = await second.api.getQueue(QUEUE);
    expect(after.counts).toMatchObject({ pending: 0, active: 0, scheduled: 0, dead: 0, cancelled: 0, completed: atRestart.size });

    // Exactly the unfinished jobs were delivered, each once, none of them a confirmed ack.
    const drainedIds = drained.map((d) => d.jobId);
    expect(new Set(drainedIds).size, 'no job delivered twice in the drain').toBe(drainedIds.length);
    expect(new Set(drainedIds)).toEqual(new Set(pendingAtRestart.map((j) => j.id)));
    expect(drainedIds.filter((id) => ackConfirmed.has(id)), 'confirmed acks delivered again').toEqual([]);
    for (const d of drained) expect(d.attempt, `attempt of ${d.jobId} in the drain`).toBe(atRestart.get(d.jobId)!.attempt + 1);
    for (const id of held) expect(drained.find((d) => d.jobId === id)?.attempt, `redelivery of held job ${id}`).toBe(2);

    // Every acknowledged enqueue reads back (GetJob) as completed.
    const ids = [...enqueued];
    for (let i = 0; i < ids.length; i += 200) {
      const jobs = await Promise.all(ids.slice(i, i + 200).map((id) => second.api.getJob(id)));
      for (const job of jobs) expect(job.state, `final state of ${job.id}`).toBe(JobState.JOB_STATE_COMPLETED);
    }
    drainer.end();
    await second.close();
  });
});
