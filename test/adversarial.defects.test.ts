/**
 * Regression tests for the defects the adversarial test of issue 9 found, one `describe` per
 * defect, named after it. Each failed against the broker before its fix.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Client, credentials, status, type ServiceError, type StatusObject } from '@grpc/grpc-js';
import { BinaryWriter } from '@bufbuild/protobuf/wire';
import { JobState } from '../clients/typescript/src/gen/sluice/v1/job.js';
import { ConsumeRequest, SettleResult_Kind } from '../clients/typescript/src/gen/sluice/v1/worker.js';
import { startTestBroker, type TestBroker } from './helpers/broker.js';
import { expectStatus } from './helpers/expect-status.js';
import { withTimeout } from './helpers/api.js';

let b: TestBroker;
beforeEach(async () => {
  b = await startTestBroker();
});
afterEach(async () => {
  await b.close();
});

const identity = (x: Buffer) => x;

/** Sends raw bytes to a unary method, as a client with its own (or a broken) encoder would. */
function rawUnary(path: string, bytes: Uint8Array): Promise<Buffer> {
  const client = new Client(b.running.address, credentials.createInsecure());
  return new Promise<Buffer>((resolve, reject) => {
    client.makeUnaryRequest(path, identity, identity, Buffer.from(bytes), (error: ServiceError | null, value?: Buffer) => {
      client.close();
      if (error) reject(error);
      else resolve(value!);
    });
  });
}

/** Opens a Consume stream that writes raw bytes; resolves with the stream's final status. */
function rawConsume(messages: Uint8Array[]): Promise<StatusObject> {
  const client = new Client(b.running.address, credentials.createInsecure());
  const call = client.makeBidiStreamRequest('/sluice.v1.WorkerService/Consume', identity, identity);
  const ended = new Promise<StatusObject>((resolve) =>
    call.on('status', (s: StatusObject) => {
      client.close();
      resolve(s);
    }),
  );
  call.on('error', () => undefined);
  call.on('data', () => undefined);
  for (const m of messages) call.write(Buffer.from(m));
  return withTimeout(ended, 10_000, 'the raw Consume stream to end');
}

const subscribeBytes = (queue: string) => ConsumeRequest.encode(ConsumeRequest.fromPartial({ subscribe: { queues: [queue] } })).finish();

describe('defect 1: two acks of one job in one message are each answered by their own lease', () => {
  it('a forged lease next to the real one: the forged ack fails, the real one succeeds', async () => {
    const { id } = await b.api.enqueue({ queue: 'twice', payload: { n: 1 } });
    const c = b.api.consumer({ queues: ['twice'] }, 1);
    const [d] = await c.waitForDeliveries(1);
    const forged = `${d!.leaseId}x`;
    c.send({ acks: [{ jobId: id, leaseId: forged }, { jobId: id, leaseId: d!.leaseId, result: { ok: true } }] });
    await c.waitForSettled(2);
    const byLease = new Map(c.settled.map((s) => [s.leaseId, s]));
    expect(byLease.get(forged)).toMatchObject({ jobId: id, kind: SettleResult_Kind.KIND_ACK, code: status.FAILED_PRECONDITION });
    expect(byLease.get(d!.leaseId)).toMatchObject({ jobId: id, kind: SettleResult_Kind.KIND_ACK, code: status.OK, state: JobState.JOB_STATE_COMPLETED });
    expect(await b.api.getJob(id)).toMatchObject({ state: JobState.JOB_STATE_COMPLETED, result: { ok: true } });
    c.end();
  });

  it('the store matches completions by lease when one call names a job twice', async () => {
    const { id } = await b.api.enqueue({ queue: 'store-twice', payload: {} });
    const c = b.api.consumer({ queues: ['store-twice'] }, 1);
    const [d] = await c.waitForDeliveries(1);
    const store = b.running.broker.store;
    const now = Date.now();
    const attempts = store.completeMany(
      [
        { id, leaseId: 'stale', result: null },
        { id, leaseId: d!.leaseId, result: '1' },
        { id, leaseId: d!.leaseId, result: '2' },
      ],
      now,
    );
    expect(attempts).toEqual([undefined, 1, undefined]);
    c.cancel();
  });
});

describe('defect 3: values quoted in errors are capped; ids are checked for length first', () => {
  const huge = 'x'.repeat(1024 * 1024);

  it('GetJob, CancelJob and WatchJob with a 1 MiB id answer INVALID_ARGUMENT with a short message', async () => {
    for (const call of [b.api.getJob(huge), b.api.cancelJob(huge)]) {
      const error = await expectStatus(call, status.INVALID_ARGUMENT, 'id', 'characters');
      expect(error.details.length).toBeLessThan(300);
    }
    const watch = await expectStatus(b.api.watchJob(huge), status.INVALID_ARGUMENT, 'id');
    expect(watch.details.length).toBeLessThan(300);
  });

  it('a long unknown id or queue name is quoted cut short', async () => {
    const long = `0${'a'.repeat(60)}`;
    const error = await expectStatus(b.api.getJob(long), status.NOT_FOUND, long.slice(0, 40));
    expect(error.details.length).toBeLessThan(200);
    const queue = await expectStatus(b.api.enqueue({ queue: `bad queue ${huge}`, payload: {} }), status.INVALID_ARGUMENT, 'queue');
    expect(queue.details.length).toBeLessThan(300);
  });

  it('settles with oversized ids are refused one by one, echoing a short id', async () => {
    const c = b.api.consumer({ queues: ['long-ids'] }, 0);
    await c.until(() => c.subscribed !== undefined, 'subscribed');
    c.send({ acks: [{ jobId: huge, leaseId: huge }] });
    const [r] = await c.waitForSettled(1);
    expect(r).toMatchObject({ code: status.INVALID_ARGUMENT });
    expect(r!.jobId.length + r!.leaseId.length + r!.message.length).toBeLessThan(500);
    c.end();
  });
});

describe('defect 5: requests that cannot be decoded are INVALID_ARGUMENT, not INTERNAL', () => {
  it('malformed protobuf bytes', async () => {
    await expectStatus(rawUnary('/sluice.v1.ProducerService/Enqueue', Uint8Array.from([0x0a, 0xff, 0xff, 0xff, 0x0f])), status.INVALID_ARGUMENT, 'decoded');
    await expectStatus(rawUnary('/sluice.v1.AdminService/ListJobs', Uint8Array.from([0xff])), status.INVALID_ARGUMENT, 'decoded');
    const s = await rawConsume([Uint8Array.from([0x0a, 0x05, 0x01])]);
    expect(s.code).toBe(status.INVALID_ARGUMENT);
  });

  it('a run_at Timestamp of +/-2^63 seconds', async () => {
    for (const seconds of ['9223372036854775807', '-9223372036854775808']) {
      const w = new BinaryWriter();
      w.uint32((1 << 3) | 2).string('ts');
      w.uint32((7 << 3) | 2).fork().uint32(1 << 3).int64(seconds).join();
      await expectStatus(rawUnary('/sluice.v1.ProducerService/Enqueue', w.finish()), status.INVALID_ARGUMENT);
    }
    expect((await b.api.listJobs({ queue: 'ts' })).jobs).toHaveLength(0);
  });

  it('a Struct payload nested 5000 levels', async () => {
    // Value{list_value: ListValue{values: [Value{...}]}}, from the inside out.
    let value: Uint8Array = Uint8Array.from([0x08, 0x00]); // null_value
    for (let i = 0; i < 5000; i++) {
      const list = new BinaryWriter().uint32((1 << 3) | 2).bytes(value).finish();
      value = new BinaryWriter().uint32((6 << 3) | 2).bytes(list).finish();
    }
    const w = new BinaryWriter();
    w.uint32((1 << 3) | 2).string('deep');
    w.uint32((3 << 3) | 2).bytes(value);
    await expectStatus(rawUnary('/sluice.v1.ProducerService/Enqueue', w.finish()), status.INVALID_ARGUMENT);
    expect((await b.api.listJobs({ queue: 'deep' })).jobs).toHaveLength(0);
  });
});

describe('defect 6: numbers outside their documented range are rejected, not wrapped', () => {
  it('credit 2^32 ends the stream with INVALID_ARGUMENT instead of reading as 0', async () => {
    const credit = new BinaryWriter().uint32(2 << 3).int64('4294967296').finish();
    const s = await rawConsume([subscribeBytes('wrap'), credit]);
    expect(s.code).toBe(status.INVALID_ARGUMENT);
    expect(s.details).toContain('credit');
  });

  it('delay_ms -1 is rejected instead of becoming 49 days', async () => {
    const w = new BinaryWriter();
    w.uint32((1 << 3) | 2).string('wrap');
    w.uint32(6 << 3).int64(-1);
    await expectStatus(rawUnary('/sluice.v1.ProducerService/Enqueue', w.finish()), status.INVALID_ARGUMENT, 'delay_ms');
    expect((await b.api.listJobs({ queue: 'wrap' })).jobs).toHaveLength(0);
  });

  it('negative extend_ms and retry_after_ms are refused per settle', async () => {
    await b.api.enqueue({ queue: 'wrap-settle', payload: {} });
    const c = b.api.consumer({ queues: ['wrap-settle'] }, 1);
    const [d] = await c.waitForDeliveries(1);
    c.send({ extends: [{ jobId: d!.jobId, leaseId: d!.leaseId, extendMs: 2 ** 32 - 1 }] });
    c.send({ nacks: [{ jobId: d!.jobId, leaseId: d!.leaseId, error: 'x', retryAfterMs: 2 ** 32 - 1 }] });
    const results = await c.waitForSettled(2);
    expect(results.map((r) => r.code)).toEqual([status.INVALID_ARGUMENT, status.INVALID_ARGUMENT]);
    expect((await b.api.getJob(d!.jobId)).state).toBe(JobState.JOB_STATE_ACTIVE);
    c.end();
  });
});

describe('defect 8: only the stream holding a lease may settle or extend it', () => {
  it('another stream quoting the lease is refused and changes nothing', async () => {
    const { id } = await b.api.enqueue({ queue: 'bearer', payload: {} });
    const holder = b.api.consumer({ queues: ['bearer'] }, 1);
    const [d] = await holder.waitForDeliveries(1);
    const thief = b.api.consumer({ queues: ['other'] }, 0);
    await thief.until(() => thief.subscribed !== undefined, 'subscribed');
    thief.send({
      acks: [{ jobId: id, leaseId: d!.leaseId, result: { stolen: true } }],
      nacks: [{ jobId: id, leaseId: d!.leaseId, error: 'stolen', nonRetryable: true }],
      extends: [{ jobId: id, leaseId: d!.leaseId, extendMs: 60_000 }],
      releases: [{ jobId: id, leaseId: d!.leaseId }],
    });
    const refused = await thief.waitForSettled(4);
    for (const r of refused) {
      expect(r.code).toBe(status.FAILED_PRECONDITION);
      expect(r.message).toContain('another Consume stream');
    }
    expect(await b.api.getJob(id)).toMatchObject({ state: JobState.JOB_STATE_ACTIVE, attempt: 1 });
    holder.ack(d!, { mine: true });
    const [ok] = await holder.waitForSettled(1);
    expect(ok).toMatchObject({ code: status.OK, state: JobState.JOB_STATE_COMPLETED });
    expect((await b.api.getJob(id)).result).toEqual({ mine: true });
    holder.end();
    thief.end();
  });
});

