import { status } from '@grpc/grpc-js';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { unary } from '../clients/typescript/src/connect.js';
import { JobState } from '../clients/typescript/src/gen/sluice/v1/job.js';
import { startTestBroker, type TestBroker } from './helpers/broker.js';
import { expectStatus } from './helpers/expect-status.js';

let b: TestBroker;
beforeEach(async () => {
  b = await startTestBroker();
});
afterEach(async () => {
  await b.close();
});

/** Enqueues `n` jobs to `queue` and kills each with a non-retryable nack. Returns their ids in enqueue order. */
async function deadJobs(queue: string, n: number, type = ''): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < n; i++) ids.push((await b.api.enqueue({ queue, type, payload: { i }, maxAttempts: 5 })).id);
  const worker = b.api.consumer({ queues: [queue] }, n);
  const deliveries = await worker.waitForDeliveries(n);
  worker.send({ nacks: deliveries.map((d) => ({ jobId: d.jobId, leaseId: d.leaseId, error: `poison ${d.jobId}`, nonRetryable: true })) });
  const settled = await worker.waitForSettled(n);
  expect(settled.every((s) => s.code === 0 && s.state === JobState.JOB_STATE_DEAD)).toBe(true);
  worker.end();
  await worker.status;
  return ids;
}

async function stateOf(id: string): Promise<JobState> {
  return (await b.api.getJob(id)).state;
}

describe('dead letter replay', () => {
  it('replays a dead job by id: pending with attempts reset, delivered again as attempt 1, completes on ack', async () => {
    const [id] = await deadJobs('dlq-one', 1);
    const dead = await b.api.getJob(id!);
    expect(dead).toMatchObject({ state: JobState.JOB_STATE_DEAD, attempt: 1, lastError: `poison ${id}` });
    expect(dead.finishedAt).toBeDefined();

    expect(await b.api.replayDeadLetters({ ids: [id!] })).toBe(1);
    const replayed = await b.api.getJob(id!);
    expect(replayed.state).toBe(JobState.JOB_STATE_PENDING);
    expect(replayed.attempt).toBe(0);
    expect(replayed.finishedAt).toBeUndefined();
    expect(replayed.payload).toEqual({ i: 0 });
    expect((await b.api.listDeadLetters({ queue: 'dlq-one' })).jobs).toHaveLength(0);

    const worker = b.api.consumer({ queues: ['dlq-one'] }, 1);
    const [d] = await worker.waitForDeliveries(1);
    expect(d).toMatchObject({ jobId: id, attempt: 1, maxAttempts: 5, payload: { i: 0 } });
    worker.ack(d!, { ok: true });
    const [s] = await worker.waitForSettled(1);
    expect(s).toMatchObject({ code: 0, state: JobState.JOB_STATE_COMPLETED });
    const done = await b.api.getJob(id!);
    expect(done).toMatchObject({ state: JobState.JOB_STATE_COMPLETED, attempt: 1, result: { ok: true } });
    worker.cancel();
  });

  it('replays every dead job of a queue by filter, and only that queue', async () => {
    const a = await deadJobs('dlq-a', 3);
    const [other] = await deadJobs('dlq-b', 1);

    expect(await b.api.replayDeadLetters({ queue: 'dlq-a' })).toBe(3);
    for (const id of a) expect(await stateOf(id)).toBe(JobState.JOB_STATE_PENDING);
    expect(await stateOf(other!)).toBe(JobState.JOB_STATE_DEAD);
    expect((await b.api.getQueue('dlq-a')).counts).toMatchObject({ pending: 3, dead: 0 });

    const worker = b.api.consumer({ queues: ['dlq-a'] }, 3);
    const deliveries = await worker.waitForDeliveries(3);
    expect(deliveries.map((d) => d.jobId).sort()).toEqual([...a].sort());
    expect(deliveries.every((d) => d.attempt === 1)).toBe(true);
    worker.cancel();

    // Replaying again finds nothing left to replay in that queue.
    expect(await b.api.replayDeadLetters({ queue: 'dlq-a' })).toBe(0);
  });

  it('refuses to replay a job that is not dead (FAILED_PRECONDITION) or unknown (NOT_FOUND), changing nothing', async () => {
    const [dead] = await deadJobs('dlq-pre', 1);
    const { id: pending } = await b.api.enqueue({ queue: 'dlq-pre', payload: {} });

    await expectStatus(b.api.replayDeadLetters({ ids: [pending] }), status.FAILED_PRECONDITION, pending, 'not dead');
    await expectStatus(b.api.replayDeadLetters({ ids: [dead!, pending] }), status.FAILED_PRECONDITION, pending);
    const unknown = '01900000-0000-7000-8000-000000000000';
    await expectStatus(b.api.replayDeadLetters({ ids: [unknown] }), status.NOT_FOUND, unknown);
    await expectStatus(b.api.replayDeadLetters({ ids: [dead!, unknown] }), status.NOT_FOUND, unknown);

    // A rejected request replays nothing, not even its valid ids.
    expect(await stateOf(dead!)).toBe(JobState.JOB_STATE_DEAD);
    expect(await b.api.getJob(pending)).toMatchObject({ state: JobState.JOB_STATE_PENDING, attempt: 0 });
  });
});

describe('dead letter purge', () => {
  it('purges only the dead jobs of the queue named in the filter', async () => {
    const purgeable = await deadJobs('purge-a', 2);
    const [keptDead] = await deadJobs('purge-b', 1);
    const { id: pending } = await b.api.enqueue({ queue: 'purge-a', payload: {} });
    const { id: scheduled } = await b.api.enqueue({ queue: 'purge-a', payload: {}, delayMs: 60_000 });

    expect(await b.api.purgeDeadLetters({ queue: 'purge-a' })).toBe(2);
    for (const id of purgeable) await expectStatus(b.api.getJob(id), status.NOT_FOUND, id);
    expect(await stateOf(keptDead!)).toBe(JobState.JOB_STATE_DEAD);
    expect(await stateOf(pending)).toBe(JobState.JOB_STATE_PENDING);
    expect(await stateOf(scheduled)).toBe(JobState.JOB_STATE_SCHEDULED);
    expect((await b.api.listDeadLetters({})).jobs.map((j) => j.id)).toEqual([keptDead]);
    expect((await b.api.getQueue('purge-a')).counts).toMatchObject({ dead: 0, pending: 1, scheduled: 1 });
  });

  it('refuses a purge without a filter or with an empty one (INVALID_ARGUMENT), deleting nothing', async () => {
    const ids = await deadJobs('purge-guard', 2);
    const admin = b.clients.admin;
    await expectStatus(unary(admin.purgeDeadLetters, admin, { filter: undefined }), status.INVALID_ARGUMENT, 'filter');
    await expectStatus(b.api.purgeDeadLetters({}), status.INVALID_ARGUMENT, 'filter');
    // "all" may not be mixed with a narrowing field either.
    await expectStatus(b.api.purgeDeadLetters({ all: true, queue: 'purge-guard' }), status.INVALID_ARGUMENT, 'all');
    for (const id of ids) expect(await stateOf(id)).toBe(JobState.JOB_STATE_DEAD);
    expect((await b.api.listDeadLetters({})).jobs).toHaveLength(2);
  });
});

describe('dead letter listing', () => {
  it('pages through every dead job exactly once with page_size and next_page_token', async () => {
    const ids = [...(await deadJobs('page-a', 4)), ...(await deadJobs('page-b', 3))];
    // A job that is not dead must not show up.
    await b.api.enqueue({ queue: 'page-a', payload: {} });

    const seen: string[] = [];
    const pageSizes: number[] = [];
    let token = '';
    do {
      const page = await b.api.listDeadLetters({ pageSize: 3, pageToken: token });
      expect(page.jobs.length).toBeLessThanOrEqual(3);
      expect(page.jobs.every((j) => j.state === JobState.JOB_STATE_DEAD)).toBe(true);
      pageSizes.push(page.jobs.length);
      seen.push(...page.jobs.map((j) => j.id));
      token = page.nextPageToken;
      expect(pageSizes.length).toBeLessThan(10);
    } while (token !== '');

    expect(pageSizes.slice(0, 2)).toEqual([3, 3]);
    expect(seen).toHaveLength(ids.length);
    expect(new Set(seen).size).toBe(ids.length);
    expect([...seen].sort()).toEqual([...ids].sort());
    // Newest first.
    expect(seen).toEqual([...ids].reverse());

    // A queue filter pages the same way over that queue only.
    const firstA = await b.api.listDeadLetters({ queue: 'page-a', pageSize: 3 });
    expect(firstA.jobs.map((j) => j.id)).toEqual(ids.slice(1, 4).reverse());
    const secondA = await b.api.listDeadLetters({ queue: 'page-a', pageSize: 3, pageToken: firstA.nextPageToken });
    expect(secondA.jobs.map((j) => j.id)).toEqual([ids[0]]);
    expect(secondA.nextPageToken).toBe('');
  });
});
