import { status } from '@grpc/grpc-js';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { StatusObject } from '@grpc/grpc-js';
import { connect } from '../clients/typescript/src/connect.js';
import { JobState, type Job, type Priority } from '../clients/typescript/src/gen/sluice/v1/job.js';
import { ConsumeRequest, SettleResult_Kind, type ConsumeResponse } from '../clients/typescript/src/gen/sluice/v1/worker.js';
import { Api } from './helpers/api.js';
import { startTestBroker, type TestBroker } from './helpers/broker.js';
import { expectStatus, expectStreamStatus } from './helpers/expect-status.js';

const MAX_PAYLOAD = 1024;
const MAX_BATCH = 10;
const MAX_CREDIT = 50;

let b: TestBroker;
/** A job stored before each test; bad input must never change it. */
let sentinel: Job;

beforeEach(async () => {
  b = await startTestBroker({ maxPayloadBytes: MAX_PAYLOAD, maxBatchSize: MAX_BATCH, maxCreditPerStream: MAX_CREDIT });
  const { id } = await b.api.enqueue({ queue: 'sentinel', type: 'keep', payload: { keep: [1, 2, 3] }, metadata: { k: 'v' } });
  sentinel = await b.api.getJob(id);
});
afterEach(async () => {
  await b.close();
});

/**
 * After bad input the broker still serves a fresh client (a valid enqueue and read), and the
 * job stored before is unchanged.
 */
async function expectStillServing(): Promise<void> {
  const clients = connect(b.running.address);
  try {
    const api = new Api(clients);
    const { id, state } = await api.enqueue({ queue: 'after-bad-input', payload: { fine: true } });
    expect(state).toBe(JobState.JOB_STATE_PENDING);
    expect(await api.getJob(id)).toMatchObject({ id, queue: 'after-bad-input', payload: { fine: true } });
    expect(await api.getJob(sentinel.id)).toEqual(sentinel);
  } finally {
    clients.close();
  }
}

/** Opens a raw Consume stream (no automatic subscribe) and records what comes back. */
function rawStream() {
  const call = b.clients.worker.consume();
  const messages: ConsumeResponse[] = [];
  const ended = new Promise<StatusObject>((resolve) => call.on('status', resolve));
  call.on('error', () => undefined);
  call.on('data', (m: ConsumeResponse) => messages.push(m));
  return { call, messages, status: ended, write: (req: Parameters<typeof ConsumeRequest.fromPartial>[0]) => call.write(ConsumeRequest.fromPartial(req)) };
}

describe('Enqueue rejects bad input with INVALID_ARGUMENT naming the field', () => {
  it('rejects an empty queue name', async () => {
    await expectStatus(b.api.enqueue({ queue: '', payload: {} }), status.INVALID_ARGUMENT, 'queue', 'required');
    await expectStillServing();
  });

  it('rejects invalid queue names: spaces, too long, bad first character', async () => {
    await expectStatus(b.api.enqueue({ queue: 'has space', payload: {} }), status.INVALID_ARGUMENT, 'queue', 'has space');
    await expectStatus(b.api.enqueue({ queue: 'q'.repeat(129), payload: {} }), status.INVALID_ARGUMENT, 'queue', '128');
    await expectStatus(b.api.enqueue({ queue: '-dash-first', payload: {} }), status.INVALID_ARGUMENT, 'queue');
    await expectStatus(b.api.enqueue({ queue: 'ok', type: 'bad type', payload: {} }), status.INVALID_ARGUMENT, 'type');
    // The longest valid name is fine.
    const { id } = await b.api.enqueue({ queue: 'q'.repeat(128), payload: {} });
    expect((await b.api.getJob(id)).queue).toBe('q'.repeat(128));
    await expectStillServing();
  });

  it('rejects payload_json that is not JSON', async () => {
    await expectStatus(b.api.enqueue({ queue: 'json', payloadJson: Buffer.from('{"a":') }), status.INVALID_ARGUMENT, 'payload_json', 'not valid json');
    await expectStatus(b.api.enqueue({ queue: 'json', payloadJson: Buffer.from('hello') }), status.INVALID_ARGUMENT, 'payload_json');
    expect((await b.api.listJobs({ queue: 'json' })).jobs).toHaveLength(0);
    await expectStillServing();
  });

  it('rejects payloads over --max-payload-bytes, as payload_json or as payload', async () => {
    const big = JSON.stringify({ s: 'x'.repeat(MAX_PAYLOAD) });
    await expectStatus(b.api.enqueue({ queue: 'big', payloadJson: Buffer.from(big) }), status.INVALID_ARGUMENT, 'payload', `${MAX_PAYLOAD}`);
    await expectStatus(b.api.enqueue({ queue: 'big', payload: { s: 'x'.repeat(MAX_PAYLOAD) } }), status.INVALID_ARGUMENT, 'payload', `${MAX_PAYLOAD}`);
    // Just under the limit is accepted.
    const fits = JSON.stringify({ s: 'x'.repeat(MAX_PAYLOAD - 10) });
    expect(Buffer.byteLength(fits)).toBeLessThanOrEqual(MAX_PAYLOAD);
    const { id } = await b.api.enqueue({ queue: 'big', payloadJson: Buffer.from(fits) });
    expect((await b.api.listJobs({ queue: 'big' })).jobs.map((j) => j.id)).toEqual([id]);
    await expectStillServing();
  });

  it('rejects both payload and payload_json', async () => {
    await expectStatus(b.api.enqueue({ queue: 'both', payload: { a: 1 }, payloadJson: Buffer.from('{"a":1}') }), status.INVALID_ARGUMENT, 'payload', 'payload_json');
    await expectStillServing();
  });

  it('rejects delay_ms together with run_at', async () => {
    await expectStatus(b.api.enqueue({ queue: 'when', payload: {}, delayMs: 1000, runAt: new Date(Date.now() + 1000) }), status.INVALID_ARGUMENT, 'delay_ms', 'run_at');
    expect((await b.api.listJobs({ queue: 'when' })).jobs).toHaveLength(0);
    await expectStillServing();
  });

  it('rejects an unknown priority value', async () => {
    await expectStatus(b.api.enqueue({ queue: 'prio', payload: {}, priority: 99 as Priority }), status.INVALID_ARGUMENT, 'priority', '99');
    await expectStillServing();
  });
});

describe('job lookups', () => {
  it('answers NOT_FOUND for an unknown id on GetJob and CancelJob, INVALID_ARGUMENT for an empty id', async () => {
    const unknown = '01900000-0000-7000-8000-00000000beef';
    await expectStatus(b.api.getJob(unknown), status.NOT_FOUND, unknown);
    await expectStatus(b.api.cancelJob(unknown), status.NOT_FOUND, unknown);
    await expectStatus(b.api.getJob(''), status.INVALID_ARGUMENT, 'id');
    await expectStatus(b.api.cancelJob(''), status.INVALID_ARGUMENT, 'id');
    await expectStillServing();
  });

  it('rejects an unknown state filter and a bad page token in ListJobs', async () => {
    await expectStatus(b.api.listJobs({ state: 99 as JobState }), status.INVALID_ARGUMENT, 'state', '99');
    await expectStatus(b.api.listJobs({ pageToken: 'not-a-token' }), status.INVALID_ARGUMENT, 'page_token');
    await expectStatus(b.api.listDeadLetters({ pageToken: 'garbage!' }), status.INVALID_ARGUMENT, 'page_token');
    await expectStatus(b.api.listJobs({ pageSize: 5000 }), status.INVALID_ARGUMENT, 'page_size');
    // A good request still pages normally.
    expect((await b.api.listJobs({ queue: 'sentinel' })).jobs.map((j) => j.id)).toEqual([sentinel.id]);
    await expectStillServing();
  });
});

describe('EnqueueBatch', () => {
  const good = (n: number) => ({ queue: 'batch', payload: { n } });

  it('fails an atomic batch with one invalid item as a whole, naming the index, and writes nothing', async () => {
    const jobs = [good(0), good(1), { queue: 'batch', payloadJson: Buffer.from('{nope') }, good(3)];
    await expectStatus(b.api.enqueueBatch(jobs, true), status.INVALID_ARGUMENT, 'jobs[2]', 'payload_json');
    expect((await b.api.listJobs({ queue: 'batch' })).jobs).toHaveLength(0);
    expect((await b.api.listQueues()).find((q) => q.name === 'batch')?.counts?.pending ?? 0).toBe(0);
    await expectStillServing();
  });

  it('fails only the invalid item of a non-atomic batch; the others are stored', async () => {
    const jobs = [good(0), { queue: 'bad queue', payload: {} }, good(2), { queue: 'batch', payload: {}, priority: 42 as Priority }];
    const { results } = await b.api.enqueueBatch(jobs, false);
    expect(results).toHaveLength(4);
    expect(results[1]!.id).toBe('');
    expect(results[1]!.error).toMatchObject({ code: status.INVALID_ARGUMENT });
    expect(results[1]!.error!.message).toContain('queue');
    expect(results[3]!.id).toBe('');
    expect(results[3]!.error).toMatchObject({ code: status.INVALID_ARGUMENT });
    expect(results[3]!.error!.message).toContain('priority');
    for (const i of [0, 2]) {
      expect(results[i]!.error).toBeUndefined();
      expect(results[i]!.state).toBe(JobState.JOB_STATE_PENDING);
      expect(await b.api.getJob(results[i]!.id)).toMatchObject({ queue: 'batch', payload: { n: i } });
    }
    expect((await b.api.listJobs({ queue: 'batch' })).jobs).toHaveLength(2);
    await expectStillServing();
  });

  it('rejects an empty batch and a batch over --max-batch-size', async () => {
    await expectStatus(b.api.enqueueBatch([], true), status.INVALID_ARGUMENT, 'jobs', 'empty');
    await expectStatus(b.api.enqueueBatch([], false), status.INVALID_ARGUMENT, 'jobs', 'empty');
    const tooMany = Array.from({ length: MAX_BATCH + 1 }, (_, n) => good(n));
    await expectStatus(b.api.enqueueBatch(tooMany, false), status.INVALID_ARGUMENT, 'jobs', `${MAX_BATCH}`, 'max-batch-size');
    expect((await b.api.listJobs({ queue: 'batch' })).jobs).toHaveLength(0);
    // Exactly the limit is fine.
    const { results } = await b.api.enqueueBatch(tooMany.slice(0, MAX_BATCH), true);
    expect(results.every((r) => r.id !== '' && r.error === undefined)).toBe(true);
    await expectStillServing();
  });
});

describe('Consume protocol errors end the stream with INVALID_ARGUMENT', () => {
  it('requires subscribe in the first message', async () => {
    await b.api.enqueue({ queue: 'proto', payload: {} });
    const raw = rawStream();
    raw.write({ credit: 1, acks: [] });
    await expectStreamStatus(raw, status.INVALID_ARGUMENT, 'first', 'subscribe');
    expect(raw.messages.some((m) => m.subscribed !== undefined || m.deliveries.length > 0)).toBe(false);
    await expectStillServing();
  });

  it('refuses a second subscribe', async () => {
    const w = b.api.consumer({ queues: ['proto'] }, 0);
    await w.until(() => w.subscribed !== undefined, 'subscribed');
    w.send({ subscribe: { queues: ['proto'] } });
    await expectStreamStatus(w, status.INVALID_ARGUMENT, 'subscribe', 'once');
    await expectStillServing();
  });

  it('refuses a subscribe with no queues, or with a bad queue name', async () => {
    const none = b.api.consumer({ queues: [] }, 1);
    await expectStreamStatus(none, status.INVALID_ARGUMENT, 'subscribe.queues');
    expect(none.subscribed).toBeUndefined();
    const bad = b.api.consumer({ queues: ['no spaces allowed'] }, 1);
    await expectStreamStatus(bad, status.INVALID_ARGUMENT, 'subscribe.queues', 'no spaces allowed');
    await expectStillServing();
  });

  it('refuses negative credit', async () => {
    const w = b.api.consumer({ queues: ['proto'] }, 0);
    await w.until(() => w.subscribed !== undefined, 'subscribed');
    w.credit(-1);
    await expectStreamStatus(w, status.INVALID_ARGUMENT, 'credit', '-1');
    await expectStillServing();
  });

  it('refuses credit over --max-credit-per-stream, in the subscribe message or later', async () => {
    const first = b.api.consumer({ queues: ['proto'] }, MAX_CREDIT + 1);
    await expectStreamStatus(first, status.INVALID_ARGUMENT, 'credit', `${MAX_CREDIT}`);

    const later = b.api.consumer({ queues: ['proto'] }, MAX_CREDIT);
    await later.until(() => later.subscribed !== undefined, 'subscribed');
    expect(later.subscribed!.maxCredit).toBe(MAX_CREDIT);
    later.credit(1);
    await expectStreamStatus(later, status.INVALID_ARGUMENT, 'credit', `${MAX_CREDIT}`);
    await expectStillServing();
  });

  it('answers an ack with an empty lease id with settle code 3 and keeps the stream and the lease', async () => {
    const { id } = await b.api.enqueue({ queue: 'acks', payload: {} });
    const w = b.api.consumer({ queues: ['acks'] }, 1);
    const [d] = await w.waitForDeliveries(1);
    w.send({ acks: [{ jobId: id, leaseId: '' }] });
    const [bad] = await w.waitForSettled(1);
    expect(bad).toMatchObject({ jobId: id, kind: SettleResult_Kind.KIND_ACK, code: status.INVALID_ARGUMENT });
    expect(bad!.message).toContain('lease_id');
    expect((await b.api.getJob(id)).state).toBe(JobState.JOB_STATE_ACTIVE);

    // The stream is still usable: the real ack completes the job.
    w.ack(d!);
    const [, ok] = await w.waitForSettled(2);
    expect(ok).toMatchObject({ jobId: id, code: 0, state: JobState.JOB_STATE_COMPLETED });
    expect(w.ended).toBe(false);
    w.end();
    expect((await w.status).code).toBe(status.OK);
    await expectStillServing();
  });
});

describe('a protocol error on one stream does not disturb the others', () => {
  it('keeps serving a healthy stream while another is aborted', async () => {
    const healthy = b.api.consumer({ queues: ['shared'] }, 5);
    await healthy.until(() => healthy.subscribed !== undefined, 'subscribed');
    const broken = b.api.consumer({ queues: ['shared'] }, 0);
    await broken.until(() => broken.subscribed !== undefined, 'subscribed');
    broken.credit(-5);
    await expectStreamStatus(broken, status.INVALID_ARGUMENT, 'credit');

    const { id } = await b.api.enqueue({ queue: 'shared', payload: {} });
    const [d] = await healthy.waitForDeliveries(1);
    expect(d!.jobId).toBe(id);
    healthy.ack(d!);
    expect((await healthy.waitForSettled(1))[0]).toMatchObject({ code: 0 });
    healthy.cancel();
    await expectStillServing();
  });
});
