import type { ClientDuplexStream, ServiceError, StatusObject } from '@grpc/grpc-js';
import { unary, type SluiceClients } from '../../clients/typescript/src/connect.js';
import {
  CancelJobRequest,
  EnqueueBatchRequest,
  EnqueueRequest,
  type EnqueueBatchResponse,
  type EnqueueResponse,
  type JobEvent,
} from '../../clients/typescript/src/gen/sluice/v1/producer.js';
import type { Job } from '../../clients/typescript/src/gen/sluice/v1/job.js';
import {
  ConsumeRequest,
  Subscribe,
  type ConsumeResponse,
  type Delivery,
  type Drain,
  type QueueNotice,
  type Revoke,
  type SettleResult,
  type Subscribed,
} from '../../clients/typescript/src/gen/sluice/v1/worker.js';
import {
  DeadLetterFilter,
  ListJobsRequest,
  type ListQueuesRequest,
  type ListQueuesResponse,
  type PurgeDeadLettersRequest,
  type PurgeDeadLettersResponse,
  type ReplayDeadLettersRequest,
  type ReplayDeadLettersResponse,
  UpdateQueueRequest,
  type ListJobsResponse,
  type ListWorkersResponse,
  type BackupResponse,
  type JobHistoryEntry,
  type GetJobHistoryRequest,
  type GetJobHistoryResponse,
  type Queue,
} from '../../clients/typescript/src/gen/sluice/v1/admin.js';
import type { DeepPartial } from '../../clients/typescript/src/gen/sluice/v1/job.js';

/** Promise wrappers over the generated clients; requests accept partial messages. */
export class Api {
  constructor(readonly clients: SluiceClients) {}

  enqueue(req: DeepPartial<EnqueueRequest>): Promise<EnqueueResponse> {
    const p = this.clients.producer;
    return unary(p.enqueue, p, EnqueueRequest.fromPartial(req));
  }

  enqueueBatch(jobs: DeepPartial<EnqueueRequest>[], atomic: boolean): Promise<EnqueueBatchResponse> {
    const p = this.clients.producer;
    return unary(p.enqueueBatch, p, EnqueueBatchRequest.fromPartial({ jobs, atomic }));
  }

  /** Enqueues `count` jobs in one atomic batch; returns their ids in order. */
  async enqueueMany(queue: string, count: number): Promise<string[]> {
    const jobs = Array.from({ length: count }, (_, i) => ({ queue, payload: { i } }));
    const { results } = await this.enqueueBatch(jobs, true);
    return results.map((r) => r.id);
  }

  getJob(id: string): Promise<Job> {
    const p = this.clients.producer;
    return unary(p.getJob, p, { id });
  }

  cancelJob(id: string, reason = ''): Promise<Job> {
    const p = this.clients.producer;
    return unary(p.cancelJob, p, CancelJobRequest.fromPartial({ id, reason }));
  }

  /** Collects WatchJob events until the server ends the stream. */
  watchJob(id: string, onEvent?: (e: JobEvent) => void): Promise<JobEvent[]> {
    const events: JobEvent[] = [];
    const call = this.clients.producer.watchJob({ id });
    return new Promise((resolve, reject) => {
      call.on('data', (e: JobEvent) => {
        events.push(e);
        onEvent?.(e);
      });
      call.on('error', reject);
      call.on('end', () => resolve(events));
    });
  }

  listQueues(): Promise<Queue[]> {
    const a = this.clients.admin;
    return unary<ListQueuesRequest, ListQueuesResponse>(a.listQueues, a, {}).then((r) => r.queues);
  }

  getQueue(queue: string): Promise<Queue> {
    const a = this.clients.admin;
    return unary(a.getQueue, a, { queue });
  }

  pauseQueue(queue: string, createIfMissing = false): Promise<Queue> {
    const a = this.clients.admin;
    return unary(a.pauseQueue, a, { queue, createIfMissing });
  }

  deleteQueue(queue: string): Promise<void> {
    const a = this.clients.admin;
    return unary(a.deleteQueue, a, { queue }).then(() => undefined);
  }

  resumeQueue(queue: string): Promise<Queue> {
    const a = this.clients.admin;
    return unary(a.resumeQueue, a, { queue });
  }

  updateQueue(req: DeepPartial<UpdateQueueRequest>): Promise<Queue> {
    const a = this.clients.admin;
    return unary(a.updateQueue, a, UpdateQueueRequest.fromPartial(req));
  }

  listJobs(req: DeepPartial<ListJobsRequest>): Promise<ListJobsResponse> {
    const a = this.clients.admin;
    return unary(a.listJobs, a, ListJobsRequest.fromPartial(req));
  }

  listDeadLetters(req: { queue?: string; type?: string; pageSize?: number; pageToken?: string }): Promise<ListJobsResponse> {
    const a = this.clients.admin;
    return unary(a.listDeadLetters, a, { queue: '', type: '', pageSize: 0, pageToken: '', ...req });
  }

  replayDeadLetters(filter: DeepPartial<DeadLetterFilter>): Promise<number> {
    const a = this.clients.admin;
    return unary<ReplayDeadLettersRequest, ReplayDeadLettersResponse>(a.replayDeadLetters, a, {
      filter: DeadLetterFilter.fromPartial(filter),
    }).then((r) => r.replayed);
  }

  purgeDeadLetters(filter: DeepPartial<DeadLetterFilter>): Promise<number> {
    const a = this.clients.admin;
    return unary<PurgeDeadLettersRequest, PurgeDeadLettersResponse>(a.purgeDeadLetters, a, {
      filter: DeadLetterFilter.fromPartial(filter),
    }).then((r) => r.purged);
  }

  listWorkers(): Promise<ListWorkersResponse> {
    const a = this.clients.admin;
    return unary(a.listWorkers, a, {});
  }

  jobHistory(id: string): Promise<JobHistoryEntry[]> {
    const a = this.clients.admin;
    return unary<GetJobHistoryRequest, GetJobHistoryResponse>(a.getJobHistory, a, { id }).then((r) => r.entries);
  }

  backup(path: string): Promise<BackupResponse> {
    const a = this.clients.admin;
    return unary(a.backup, a, { path });
  }

  consumer(subscribe: DeepPartial<Subscribe>, credit = 0): TestConsumer {
    return new TestConsumer(this.clients.worker.consume(), subscribe, credit);
  }
}

/** Rejects with a clear message instead of letting a test hang. */
export function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
    promise.then(
      (v) => (clearTimeout(timer), resolve(v)),
      (e) => (clearTimeout(timer), reject(e)),
    );
  });
}

/**
 * A raw Consume stream for protocol tests: records every message and lets a test await a
 * condition on what has arrived (no sleeps).
 */
export class TestConsumer {
  readonly messages: ConsumeResponse[] = [];
  readonly deliveries: Delivery[] = [];
  readonly settled: SettleResult[] = [];
  readonly revoked: Revoke[] = [];
  readonly drains: Drain[] = [];
  readonly queueNotices: QueueNotice[] = [];
  subscribed: Subscribed | undefined;
  /** The broker confirmed this stream's stop. */
  stopped = false;
  /** Resolves with the final status when the stream ends (OK or error). */
  readonly status: Promise<StatusObject>;
  ended = false;
  private waiters: { check: () => boolean; resolve: () => void }[] = [];

  constructor(
    readonly call: ClientDuplexStream<ConsumeRequest, ConsumeResponse>,
    subscribe: DeepPartial<Subscribe>,
    credit: number,
  ) {
    this.status = new Promise((resolve) => {
      call.on('status', (s: StatusObject) => {
        this.ended = true;
        resolve(s);
        this.poke();
      });
    });
    call.on('error', (_e: ServiceError) => {
      /* the status promise carries it */
    });
    call.on('data', (m: ConsumeResponse) => {
      this.messages.push(m);
      if (m.subscribed) this.subscribed = m.subscribed;
      this.deliveries.push(...m.deliveries);
      this.settled.push(...m.settled);
      this.revoked.push(...m.revoked);
      if (m.drain) this.drains.push(m.drain);
      this.queueNotices.push(...m.queueNotices);
      if (m.stopped) this.stopped = true;
      this.poke();
    });
    this.send({ subscribe: Subscribe.fromPartial(subscribe), credit });
  }

  send(req: DeepPartial<ConsumeRequest>): void {
    this.call.write(ConsumeRequest.fromPartial(req));
  }

  credit(n: number): void {
    this.send({ credit: n });
  }

  ack(d: Pick<Delivery, 'jobId' | 'leaseId'>, result?: unknown, credit = 0): void {
    this.send({ acks: [{ jobId: d.jobId, leaseId: d.leaseId, result }], credit });
  }

  nack(d: Pick<Delivery, 'jobId' | 'leaseId'>, error: string, opts: { nonRetryable?: boolean; retryAfterMs?: number; credit?: number } = {}): void {
    this.send({ nacks: [{ jobId: d.jobId, leaseId: d.leaseId, error, nonRetryable: opts.nonRetryable ?? false, retryAfterMs: opts.retryAfterMs ?? 0 }], credit: opts.credit ?? 0 });
  }

  extend(d: Pick<Delivery, 'jobId' | 'leaseId'>, extendMs = 0, progress?: unknown): void {
    this.send({ extends: [{ jobId: d.jobId, leaseId: d.leaseId, extendMs, progress }] });
  }

  release(d: Pick<Delivery, 'jobId' | 'leaseId'>, reason = 'test release'): void {
    this.send({ releases: [{ jobId: d.jobId, leaseId: d.leaseId, reason }] });
  }

  /** Resolves once `check` holds for what has arrived so far. */
  until(check: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
    if (check()) return Promise.resolve();
    return withTimeout(
      new Promise<void>((resolve) => this.waiters.push({ check, resolve })),
      timeoutMs,
      what,
    );
  }

  async waitForDeliveries(count: number, timeoutMs = 10_000): Promise<Delivery[]> {
    await this.until(() => this.deliveries.length >= count, `${count} deliveries (have ${this.deliveries.length})`, timeoutMs);
    return this.deliveries.slice(0, count);
  }

  async waitForSettled(count: number, timeoutMs = 10_000): Promise<SettleResult[]> {
    await this.until(() => this.settled.length >= count, `${count} settle results (have ${this.settled.length})`, timeoutMs);
    return this.settled.slice(0, count);
  }

  /** Unsettled deliveries from this stream's point of view. */
  get outstanding(): number {
    return this.deliveries.length - this.settled.filter((s) => s.kind !== 3).length - this.revoked.length;
  }

  end(): void {
    this.call.end();
  }

  cancel(): void {
    this.call.cancel();
  }

  private poke(): void {
    const waiting = this.waiters;
    this.waiters = [];
    for (const w of waiting) {
      if (this.ended || w.check()) w.resolve();
      else this.waiters.push(w);
    }
  }
}

/** One answer of the HTTP JSON API: status, parsed JSON body (undefined when empty) and headers. */
export interface HttpAnswer {
  status: number;
  body: any;
  headers: Headers;
}

/**
 * The HTTP JSON API (/api/v1) with fetch: POSTs carry the CSRF header and a JSON body (a string
 * body is sent as is, for malformed-JSON tests); `token` adds the bearer header.
 */
export class HttpApi {
  constructor(
    readonly origin: string,
    readonly token?: string,
  ) {}

  get(path: string): Promise<HttpAnswer> {
    return this.call(path, { headers: this.auth() });
  }

  post(path: string, body?: unknown, options: { csrf?: boolean } = {}): Promise<HttpAnswer> {
    const headers: Record<string, string> = { ...this.auth() };
    if (options.csrf !== false) headers['x-sluice-csrf'] = '1';
    if (body !== undefined) headers['content-type'] = 'application/json';
    return this.call(path, { method: 'POST', headers, body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body) });
  }

  private auth(): Record<string, string> {
    return this.token ? { authorization: `Bearer ${this.token}` } : {};
  }

  private async call(path: string, init: RequestInit): Promise<HttpAnswer> {
    const res = await fetch(`${this.origin}/api/v1${path}`, init);
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : undefined, headers: res.headers };
  }
}
