import { Metadata } from '@grpc/grpc-js';
import { ROOT_CONTEXT, TraceFlags, context, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Producer, Worker, type Job } from '../clients/typescript/src/index.js';
import { EnqueueRequest, type EnqueueResponse } from '../clients/typescript/src/gen/sluice/v1/producer.js';
import { startTestBroker, type TestBroker } from './helpers/broker.js';
import { withTimeout } from './helpers/api.js';

/** Every line the broker logs, parsed. */
const lines: Record<string, unknown>[] = [];
const logger = pino({ level: 'debug', base: { service: 'sluice' } }, { write: (line: string) => void lines.push(JSON.parse(line)) });

let b: TestBroker;
const closers: (() => Promise<void>)[] = [];
beforeAll(async () => {
  b = await startTestBroker({}, { logger });
});
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close();
});
afterAll(async () => {
  await b.close();
});

/** Runs a client Worker on `queue` until `count` jobs were handled; resolves with what the handler saw. */
function handle(queue: string, count: number, fail?: (job: Job) => boolean): Promise<Job[]> {
  const seen: Job[] = [];
  return withTimeout(
    new Promise<Job[]>((resolve) => {
      const worker = new Worker({
        address: b.running.address,
        queues: [queue],
        workerId: `worker-${queue}`,
        shutdownSignals: [],
        handler: async (job: Job) => {
          seen.push(job);
          if (fail?.(job)) throw new Error('first attempt fails');
          if (seen.length >= count) setImmediate(() => resolve(seen));
        },
      });
      closers.push(() => worker.close());
      void worker.run();
    }),
    20_000,
    `${count} jobs handled on ${queue}`,
  );
}

describe('trace context and job logs', () => {
  it('hands a traceparent sent as gRPC metadata on Enqueue to the handler unchanged; lifecycle log lines carry jobId, queue and correlationId', async () => {
    const traceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
    const tracestate = 'vendor=opaque-value';
    const md = new Metadata();
    md.set('traceparent', traceparent);
    md.set('tracestate', tracestate);
    const request = EnqueueRequest.fromPartial({ queue: 'traced', payload: { n: 1 }, metadata: { correlation_id: 'corr-42' }, maxAttempts: 3 });
    const { id } = await new Promise<EnqueueResponse>((resolve, reject) =>
      b.clients.producer.enqueue(request, md, (error, res) => (error ? reject(error) : resolve(res!))),
    );

    // The first attempt fails, so the job is nacked, retried and acked.
    const seen = await handle('traced', 2, (job) => job.attempt === 1);
    expect(seen.map((j) => j.id)).toEqual([id, id]);
    for (const job of seen) {
      expect(job.trace).toEqual({ traceparent, tracestate });
      expect(job.metadata).toMatchObject({ traceparent, tracestate, correlation_id: 'corr-42' });
    }
    // Stored with the job.
    expect((await b.api.getJob(id)).metadata).toMatchObject({ traceparent, tracestate });

    await withTimeout(
      (async () => {
        while (!lines.some((l) => l.jobId === id && l.msg === 'job acked')) await new Promise((r) => setTimeout(r, 20));
      })(),
      10_000,
      'the ack log line',
    );
    const mine = lines.filter((l) => l.jobId === id);
    expect(mine.map((l) => l.msg)).toEqual(expect.arrayContaining(['job enqueued', 'job delivered', 'job nacked', 'job acked']));
    for (const line of mine) expect(line).toMatchObject({ jobId: id, queue: 'traced', correlationId: 'corr-42', level: 20 });
    expect(mine.find((l) => l.msg === 'job delivered')).toMatchObject({ workerId: 'worker-traced', attempt: 1 });
    expect(mine.find((l) => l.msg === 'job nacked')).toMatchObject({ error: 'first attempt fails', state: 'scheduled' });
  });

  it('ignores an invalid traceparent in gRPC metadata and keeps one the job sets itself', async () => {
    const md = new Metadata();
    md.set('traceparent', 'not-a-trace');
    const own = '00-11111111111111111111111111111111-2222222222222222-00';
    const send = (metadata: Record<string, string>) =>
      new Promise<EnqueueResponse>((resolve, reject) =>
        b.clients.producer.enqueue(EnqueueRequest.fromPartial({ queue: 'traced-2', payload: {}, metadata }), md, (e, r) => (e ? reject(e) : resolve(r!))),
      );
    const bad = await send({});
    const kept = await send({ traceparent: own });
    expect((await b.api.getJob(bad.id)).metadata).toEqual({});
    expect((await b.api.getJob(kept.id)).metadata).toEqual({ traceparent: own });
  });

  it('the client Producer sends the active OpenTelemetry span; the Worker exposes it as job.trace', async () => {
    const manager = new AsyncLocalStorageContextManager().enable();
    context.setGlobalContextManager(manager);
    closers.push(async () => {
      context.disable();
    });
    const producer = new Producer({ address: b.running.address });
    closers.push(async () => producer.close());
    const spanContext = { traceId: 'a'.repeat(32), spanId: 'b'.repeat(16), traceFlags: TraceFlags.SAMPLED };
    const { id } = await context.with(trace.setSpanContext(ROOT_CONTEXT, spanContext), () => producer.enqueue('traced-otel', { hello: 'trace' }));
    // Outside any span nothing is added.
    const plain = await producer.enqueue('traced-otel', { hello: 'no trace' });

    const seen = await handle('traced-otel', 2);
    const byId = new Map(seen.map((j) => [j.id, j]));
    expect(byId.get(id)!.trace).toEqual({ traceparent: `00-${'a'.repeat(32)}-${'b'.repeat(16)}-01` });
    expect(byId.get(plain.id)!.trace).toBeUndefined();
  });
});
