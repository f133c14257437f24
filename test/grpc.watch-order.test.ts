import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import type { ServerWritableStream } from '@grpc/grpc-js';
import type { Broker } from '../src/broker/broker.js';
import type { JobChange, JobListener } from '../src/broker/job-watchers.js';
import { producerService } from '../src/grpc/producer-service.js';
import { createLogger } from '../src/log.js';
import type { JobRow } from '../src/store/types.js';
import { JobState as WireJobState } from '../clients/typescript/src/gen/sluice/v1/job.js';
import type { JobEvent, WatchJobRequest } from '../clients/typescript/src/gen/sluice/v1/producer.js';

const ID = '0190a1b2-c3d4-7e5f-8000-000000000001';

/** A broker whose job read is a promise the test settles, so changes can arrive while it is pending. */
function fakeBroker() {
  let listener: JobListener | undefined;
  let settle!: (row: JobRow) => void;
  const read = new Promise<JobRow>((resolve) => (settle = resolve));
  const broker = {
    config: {},
    watchJob: (_id: string, l: JobListener) => ((listener = l), () => (listener = undefined)),
    reads: { getJob: () => read },
  } as unknown as Broker;
  return { broker, change: (c: JobChange) => listener?.(c), settle, watching: () => listener !== undefined };
}

function fakeCall() {
  const call = new EventEmitter() as EventEmitter & { request: WatchJobRequest; events: Partial<JobEvent>[]; ended: boolean };
  call.request = { id: ID };
  call.events = [];
  call.ended = false;
  Object.assign(call, { write: (e: JobEvent) => call.events.push(e), end: () => (call.ended = true) });
  return call;
}

const row = (state: JobRow['state']) => ({ id: ID, state, attempt: 1, progress: null, result: null, last_error: null, updated_at: 1 }) as JobRow;

describe('WatchJob while the current state is read', () => {
  it('sends the current state first, then the changes that arrived meanwhile, in order', async () => {
    const f = fakeBroker();
    const call = fakeCall();
    producerService(f.broker, createLogger('silent')).watchJob(call as unknown as ServerWritableStream<WatchJobRequest, JobEvent>);
    f.change({ jobId: ID, state: 'active', attempt: 1, at: 2 });
    f.change({ jobId: ID, state: 'completed', attempt: 1, at: 3 });
    expect(call.events).toEqual([]);
    f.settle(row('pending'));
    await new Promise((r) => setImmediate(r));
    expect(call.events.map((e) => e.state)).toEqual([WireJobState.JOB_STATE_PENDING, WireJobState.JOB_STATE_ACTIVE, WireJobState.JOB_STATE_COMPLETED]);
    expect(call.ended).toBe(true);
    expect(f.watching()).toBe(false);
  });

  it('ends at a finished current state without the changes that led to it', async () => {
    const f = fakeBroker();
    const call = fakeCall();
    producerService(f.broker, createLogger('silent')).watchJob(call as unknown as ServerWritableStream<WatchJobRequest, JobEvent>);
    f.change({ jobId: ID, state: 'completed', attempt: 1, at: 3 });
    f.settle(row('completed'));
    await new Promise((r) => setImmediate(r));
    expect(call.events.map((e) => e.state)).toEqual([WireJobState.JOB_STATE_COMPLETED]);
    expect(call.ended).toBe(true);
  });

  it('writes nothing when the caller left during the read', async () => {
    const f = fakeBroker();
    const call = fakeCall();
    producerService(f.broker, createLogger('silent')).watchJob(call as unknown as ServerWritableStream<WatchJobRequest, JobEvent>);
    call.emit('cancelled');
    f.settle(row('pending'));
    await new Promise((r) => setImmediate(r));
    expect(call.events).toEqual([]);
    expect(f.watching()).toBe(false);
  });
});
