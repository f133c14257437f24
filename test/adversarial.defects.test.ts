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
import type { NewJob } from '../src/store/job-store.js';
import type { Db } from '../src/store/database.js';
import { copyFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from './helpers/broker.js';
import { rmSync } from 'node:fs';

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
    const completed = store.completeMany(
      [
        { id, leaseId: 'stale', result: null },
        { id, leaseId: d!.leaseId, result: '1' },
        { id, leaseId: d!.leaseId, result: '2' },
      ],
      now,
    );
    expect(completed.map((job) => job?.attempt)).toEqual([undefined, 1, undefined]);
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


/** Nested arrays `depth` levels deep, as JSON text. */
const nested = (depth: number) => `${'['.repeat(depth)}${']'.repeat(depth)}`;

describe('defect 2: deeply nested documents are refused, and one that got in fails alone', () => {
  it('refuses payloads, results and progress nested past --max-json-depth', async () => {
    await expectStatus(b.api.enqueue({ queue: 'deep', payloadJson: Buffer.from(nested(10_000)) }), status.INVALID_ARGUMENT, 'payload', 'nested', '--max-json-depth');
    // 64 levels is fine.
    await b.api.enqueue({ queue: 'deep', payloadJson: Buffer.from(nested(64)) });
    // As google.protobuf.Value (the decoder itself stops at ~50 levels), against a lower limit.
    const low = await startTestBroker({ maxJsonDepth: 8 });
    let deep: unknown = 1;
    for (let i = 0; i < 10; i++) deep = [deep];
    try {
      await expectStatus(low.api.enqueue({ queue: 'deep', payload: deep }), status.INVALID_ARGUMENT, 'payload', 'nested', '8 levels');
      await low.api.enqueue({ queue: 'deep', payload: [[[[[[[[1]]]]]]]] });
      const c = low.api.consumer({ queues: ['deep'] }, 1);
      const [d] = await c.waitForDeliveries(1);
      c.send({ extends: [{ jobId: d!.jobId, leaseId: d!.leaseId, progress: deep }], acks: [{ jobId: d!.jobId, leaseId: d!.leaseId, result: deep }] });
      const results = await c.waitForSettled(2);
      expect(results.map((r) => [r.code, r.message.includes('nested')])).toEqual([
        [status.INVALID_ARGUMENT, true],
        [status.INVALID_ARGUMENT, true],
      ]);
      expect((await low.api.getJob(d!.jobId)).state).toBe(JobState.JOB_STATE_ACTIVE);
      c.end();
    } finally {
      await low.close();
    }
  });

  it('a stored payload too deep for google.protobuf.Value is dead-lettered alone; the stream and the other jobs are unharmed', async () => {
    // As a broker without the limit stored it.
    const now = Date.now();
    const legacy: NewJob = {
      queue: 'poison', type: '', payload: nested(100_000), metadata: null, priority: 2, runAt: now, maxAttempts: 25,
      retry: null, leaseTimeoutMs: 30_000, dedupKey: null, groupKey: null, inherits: 0,
    };
    const bad = b.running.broker.store.insert(legacy, 'pending', now);
    const good = (await b.api.enqueueBatch(Array.from({ length: 9 }, (_, i) => ({ queue: 'poison', payload: { i } })), true)).results.map((r) => r.id);

    const c = b.api.consumer({ queues: ['poison'] }, 10);
    const delivered = await c.waitForDeliveries(9);
    expect(delivered.map((d) => d.jobId).sort()).toEqual([...good].sort());
    expect(delivered.every((d) => d.attempt === 1)).toBe(true);
    expect(c.ended).toBe(false);

    const dead = await b.api.getJob(bad);
    expect(dead.state).toBe(JobState.JOB_STATE_DEAD);
    expect(dead.lastError).toContain('raw_json_payloads');
    expect(typeof dead.payload).toBe('string'); // shown as a note, not the unencodable value
    expect((await b.api.listJobs({})).jobs.length).toBe(10); // the 9 and the poison job: the listing works
    for (const d of delivered) c.ack(d);
    await c.waitForSettled(9);
    expect(c.settled.every((s) => s.code === status.OK)).toBe(true);
    c.end();
  });
});

describe('defect 7: one request cannot cost unbounded work or memory', () => {
  it('refuses a payload with more than --max-json-values values', async () => {
    const many = JSON.stringify(new Array(200_000).fill(0));
    await expectStatus(b.api.enqueue({ queue: 'many', payloadJson: Buffer.from(many) }), status.INVALID_ARGUMENT, 'values', '--max-json-values');
    await b.api.enqueue({ queue: 'many', payloadJson: Buffer.from(JSON.stringify(new Array(50_000).fill(0))) });
  });

  it('a ListJobs page stops early when its payloads are large', async () => {
    const big = 'x'.repeat(300 * 1024);
    await b.api.enqueueBatch(Array.from({ length: 8 }, () => ({ queue: 'pages', payload: { big } })), true);
    const first = await b.api.listJobs({ queue: 'pages', pageSize: 100 });
    expect(first.jobs.length).toBeLessThan(8);
    expect(first.nextPageToken).not.toBe('');
    let seen = first.jobs.length;
    let token = first.nextPageToken;
    while (token) {
      const next = await b.api.listJobs({ queue: 'pages', pageSize: 100, pageToken: token });
      seen += next.jobs.length;
      token = next.nextPageToken;
    }
    expect(seen).toBe(8);
  });

  it('a worker that grants credit but does not read gets no more deliveries until it reads', async () => {
    const JOBS = 120;
    const payload = { blob: 'y'.repeat(256 * 1024) };
    for (let i = 0; i < JOBS; i += 20) {
      await b.api.enqueueBatch(Array.from({ length: 20 }, () => ({ queue: 'slow-reader', payload })), true);
    }
    const c = b.api.consumer({ queues: ['slow-reader'], rawJsonPayloads: true }, JOBS);
    c.call.pause();
    const broker = b.running.broker;
    const session = () => broker.listSessions()[0];
    await withTimeout(
      (async () => {
        while (!session()?.backpressured) await new Promise((r) => setTimeout(r, 20));
      })(),
      20_000,
      'the stream to push back',
    );
    // The client library buffers 16 messages itself (~4 jobs each here) before the transport
    // pushes back; past that the broker holds about 1 MiB for the stream, not the 30 MiB the
    // credit allows. Give it a second to send more if it would.
    await new Promise((r) => setTimeout(r, 1000));
    const active = async () => (await broker.reads.getQueue('slow-reader')).counts.active;
    expect(await active()).toBeLessThan(JOBS * 0.75);
    expect(session()!.backpressured).toBe(true);
    c.call.resume();
    await c.waitForDeliveries(JOBS, 30_000);
    expect(await active()).toBe(JOBS);
    c.cancel();
  });
});

/**
 * A full disk without a full disk: the database may not grow past its current size, and
 * every insert or update of a job also writes 256 KiB of ballast, so each one fails with
 * SQLITE_FULL as it would on a full volume. Reads keep working.
 */
function fillDisk(db: Db): void {
  db.exec(`CREATE TABLE IF NOT EXISTS ballast (b BLOB);
    CREATE TEMP TRIGGER IF NOT EXISTS ballast_insert AFTER INSERT ON main.jobs BEGIN INSERT INTO ballast VALUES (zeroblob(262144)); END;
    CREATE TEMP TRIGGER IF NOT EXISTS ballast_update AFTER UPDATE ON main.jobs BEGIN INSERT INTO ballast VALUES (zeroblob(262144)); END;`);
  db.pragma(`max_page_count = ${db.pragma('page_count', { simple: true }) as number}`);
}

function freeDisk(db: Db): void {
  db.exec('DROP TRIGGER IF EXISTS temp.ballast_insert; DROP TRIGGER IF EXISTS temp.ballast_update;');
  db.pragma('max_page_count = 1073741823');
}

/** grpc.health.v1 Check for one service: 1 = SERVING, 2 = NOT_SERVING. */
async function health(target: TestBroker, service: string): Promise<number> {
  const request = new BinaryWriter().uint32((1 << 3) | 2).string(service).finish();
  const client = new Client(target.running.address, credentials.createInsecure());
  const response = await new Promise<Buffer>((resolve, reject) =>
    client.makeUnaryRequest('/grpc.health.v1.Health/Check', identity, identity, Buffer.from(request), (e: ServiceError | null, v?: Buffer) => {
      client.close();
      if (e) reject(e);
      else resolve(v!);
    }),
  );
  return response.length >= 2 && response[0] === 0x08 ? response[1]! : 0;
}

const SERVING = 1;
const NOT_SERVING = 2;

describe('defect 4: a full disk', () => {
  it('Enqueue answers RESOURCE_EXHAUSTED, health says NOT_SERVING, reads work, and delivery resumes by itself once space frees', async () => {
    let db: Db | undefined;
    const full = await startTestBroker({}, { onDatabaseOpen: (d) => (db = d) });
    try {
      const ids = (await full.api.enqueueBatch([{ queue: 'full', payload: { n: 1 } }, { queue: 'full', payload: { n: 2 } }], true)).results.map((r) => r.id);
      fillDisk(db!);
      await expectStatus(full.api.enqueue({ queue: 'full', payload: { n: 3 } }), status.RESOURCE_EXHAUSTED, 'full', 'free disk space');
      expect(await health(full, '')).toBe(NOT_SERVING);
      expect(await health(full, 'sluice.v1.ProducerService')).toBe(NOT_SERVING);
      expect(await health(full, 'sluice.v1.WorkerService')).toBe(SERVING);
      expect((await full.api.getJob(ids[0]!)).state).toBe(JobState.JOB_STATE_PENDING);

      // A worker with credit: the flush that would lease the jobs fails.
      const commits = full.running.broker.commits;
      const failuresBefore = commits.stats.failures;
      const c = full.api.consumer({ queues: ['full'] }, 2);
      await withTimeout(
        (async () => {
          while (commits.stats.failures === failuresBefore) await new Promise((r) => setTimeout(r, 10));
        })(),
        10_000,
        'a failed claim',
      );
      expect(c.deliveries).toHaveLength(0);
      // Space comes back; nothing else writes. The dispatcher retries on its own.
      freeDisk(db!);
      const delivered = await c.waitForDeliveries(2, 10_000);
      expect(delivered.map((d) => d.jobId).sort()).toEqual([...ids].sort());
      await expect.poll(() => health(full, ''), { timeout: 5000 }).toBe(SERVING);
      await full.api.enqueue({ queue: 'full', payload: { n: 3 } });
      c.end();
    } finally {
      await full.close();
    }
  });

  it('a broker started on a full disk serves reads and says why writes fail', async () => {
    const dirA = tempDir();
    const dirB = tempDir();
    const a = await startTestBroker({}, { dir: dirA });
    let b2: TestBroker | undefined;
    try {
      const { id } = await a.api.enqueue({ queue: 'restart-full', payload: { n: 1 }, leaseTimeoutMs: 500 });
      const c = a.api.consumer({ queues: ['restart-full'] }, 1);
      await c.waitForDeliveries(1);
      // A crash image: the file and its log as they are while the job is leased.
      for (const suffix of ['', '-wal']) {
        if (existsSync(a.dataFile + suffix)) copyFileSync(a.dataFile + suffix, join(dirB, 'sluice.db' + suffix));
      }
      let db: Db | undefined;
      b2 = await startTestBroker({}, { dir: dirB, onDatabaseOpen: (d) => fillDisk((db = d)) });
      expect(b2.running.broker.writeHealth.degraded).toContain('full');
      expect(await health(b2, '')).toBe(NOT_SERVING);
      expect((await b2.api.getJob(id)).state).toBe(JobState.JOB_STATE_ACTIVE);
      await expectStatus(b2.api.enqueue({ queue: 'restart-full', payload: {} }), status.RESOURCE_EXHAUSTED, 'full');
      // Once writes succeed the left-behind lease is released (by the lease timer).
      freeDisk(db!);
      await expect.poll(async () => (await b2!.api.getJob(id)).state, { timeout: 10_000 }).toBe(JobState.JOB_STATE_PENDING);
      c.cancel();
    } finally {
      await b2?.close();
      await a.close();
      rmSync(dirA, { recursive: true, force: true });
      rmSync(dirB, { recursive: true, force: true });
    }
  });
});
