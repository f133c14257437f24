import type { ClientReadableStream } from '@grpc/grpc-js';
import { connect, type ConnectionOptions, type SluiceClients } from './connect.js';
import { EnqueueBatcher, type BatcherOptions } from './enqueue-batcher.js';
import { EnqueueStreamTransport } from './enqueue-stream.js';
import { fromGrpcError, retryHintMs } from './errors.js';
import { guardedCall, type CallLimits } from './call.js';
import type { Job } from './gen/sluice/v1/job.js';
import type { EnqueueBatchRequest, EnqueueBatchResponse, EnqueueRequest, ExplainJobResponse, JobEvent as WireJobEvent } from './gen/sluice/v1/producer.js';
import type { BatchItem, EnqueueArgs, EnqueuedJob, EnqueueOptions, JobEvent, JobInfo, JobMap, QueueName } from './types.js';
import { stateName, toEnqueueRequest, toJobEvent, toJobInfo } from './wire.js';
import { toJobExplanation, type JobExplanation } from './explain.js';

export interface ProducerOptions extends ConnectionOptions {
  /** How concurrent `enqueue()` calls are coalesced on the wire. */
  batching?: Partial<BatcherOptions>;
  /**
   * How long a call may take, including waiting for the broker while it is unreachable (a
   * restart or deploy): calls wait for the connection instead of failing at once. Past this the
   * call rejects with DeadlineExceededError. Default 30 s.
   */
  callTimeoutMs?: number;
  /**
   * How long a call waits for a broker this producer has never reached before it rejects with
   * UnavailableError naming the address ("no Sluice broker at 127.0.0.1:50051 (connection
   * refused)"). A broker reached before (a restart) is waited for up to `callTimeoutMs`. Default 5 s.
   */
  connectTimeoutMs?: number;
}

const DEFAULT_BATCHING: BatcherOptions = { maxBatchSize: 500, maxBatchBytes: 4 * 1024 * 1024, maxInFlight: 4, lingerMs: 0, splitMin: 0 };

/**
 * Enqueues jobs and inspects them. `J` maps queue names to payload types, checked at compile
 * time (see `JobTypes` for queues with several job types):
 *
 *     const producer = new Producer<{ email: { to: string } }>({ address: '127.0.0.1:50051' });
 *     const { id } = await producer.enqueue('email', { to: 'a@b.c' }, { priority: 'high' });
 */
export class Producer<J extends object = JobMap> {
  private readonly clients: SluiceClients;
  private readonly batcher: EnqueueBatcher;
  private readonly stream: EnqueueStreamTransport;
  private readonly watches = new Set<ClientReadableStream<WireJobEvent>>();
  private closed = false;
  private readonly limits: CallLimits;

  constructor(options: ProducerOptions = {}) {
    this.clients = connect(options);
    this.limits = { callTimeoutMs: options.callTimeoutMs ?? 30_000, connectTimeoutMs: options.connectTimeoutMs ?? 5_000 };
    this.stream = new EnqueueStreamTransport(this.clients, this.limits, (jobs) => this.sendBatch({ jobs, atomic: false }));
    this.batcher = new EnqueueBatcher((jobs) => this.stream.send(jobs), { ...DEFAULT_BATCHING, ...options.batching });
  }

  /**
   * Enqueues one job; resolves once it is durable on the broker. Calls made concurrently
   * travel together in batches on one EnqueueStream (EnqueueBatch RPCs against an older
   * broker), yet each resolves or rejects on its own. A job refused by admission control
   * (queue or group at its cap, disk guard) is sent again after the broker's retry hint,
   * until `callTimeoutMs`; then it rejects with ResourceExhaustedError.
   */
  enqueue<Q extends QueueName<J>>(queue: Q, ...[payload, options]: EnqueueArgs<J, Q>): Promise<EnqueuedJob> {
    if (this.closed) return Promise.reject(new Error('producer is closed'));
    let request: EnqueueRequest;
    try {
      request = toEnqueueRequest(queue, payload, options as EnqueueOptions | undefined);
    } catch (error) {
      return Promise.reject(error as Error);
    }
    return this.batcher.enqueue(request, Date.now() + this.limits.callTimeoutMs);
  }

  /**
   * Enqueues many jobs in one RPC, all or nothing: if any job is invalid none is stored and the
   * call rejects with that job's error.
   */
  async enqueueBatch(items: readonly BatchItem<J>[]): Promise<EnqueuedJob[]> {
    if (this.closed) throw new Error('producer is closed');
    const jobs = items.map((item) => {
      const it = item as { queue: string; payload: unknown; options?: EnqueueOptions };
      return toEnqueueRequest(it.queue, it.payload, it.options);
    });
    // Refused by admission control with a retry hint: wait it out within the call timeout.
    const deadline = Date.now() + this.limits.callTimeoutMs;
    let response: EnqueueBatchResponse;
    for (;;) {
      try {
        response = await this.sendBatch({ jobs, atomic: true });
        break;
      } catch (error) {
        const hint = retryHintMs(error);
        if (hint === undefined || Date.now() + hint >= deadline) throw error;
        await new Promise((resolve) => setTimeout(resolve, hint));
      }
    }
    return response.results.map((r) => ({ id: r.id, deduplicated: r.deduplicated, state: stateName(r.state) }));
  }

  /** The job as stored now. Rejects with NotFoundError for an unknown id. */
  async getJob<P = unknown>(id: string): Promise<JobInfo<P>> {
    const job = await guardedCall<Job>(this.clients.reachability, this.limits, (o, cb) => this.clients.producer.getJob({ id }, this.clients.metadata, o, cb));
    return toJobInfo<P>(job);
  }

  /**
   * Why the job is (not) running: scheduled, paused queue, rate or concurrency limit, no
   * worker for its type, leased to a worker, or finished with its last error. Rejects with
   * NotFoundError for an unknown id.
   */
  async explain(id: string): Promise<JobExplanation> {
    const r = await guardedCall<ExplainJobResponse>(this.clients.reachability, this.limits, (o, cb) => this.clients.producer.explainJob({ id }, this.clients.metadata, o, cb));
    return toJobExplanation(r);
  }

  /**
   * Cancels a scheduled, pending or active job (an active job's worker sees its signal abort
   * with JobCancelledError). Rejects with FailedPreconditionError when the job already finished.
   */
  async cancel(id: string, reason = ''): Promise<JobInfo> {
    const job = await guardedCall<Job>(this.clients.reachability, this.limits, (o, cb) => this.clients.producer.cancelJob({ id, reason }, this.clients.metadata, o, cb));
    return toJobInfo(job);
  }

  /**
   * Follows a job: the current state first, then every change (state, progress, result),
   * ending after a final state (completed, dead, cancelled). Breaking out of the loop stops
   * the watch.
   */
  async *watch(id: string): AsyncGenerator<JobEvent, void, undefined> {
    const call = this.clients.producer.watchJob({ id }, this.clients.metadata);
    this.watches.add(call);
    try {
      for await (const event of call as AsyncIterable<WireJobEvent>) yield toJobEvent(event);
    } catch (error) {
      throw fromGrpcError(error);
    } finally {
      this.watches.delete(call);
      call.cancel();
    }
  }

  /**
   * Batches sent so far for coalesced `enqueue()` calls: EnqueueStream messages, or EnqueueBatch
   * RPCs (before the first connection, and against a broker without EnqueueStream).
   */
  get batchRpcCount(): number {
    return this.batcher.rpcs;
  }

  /** EnqueueStream streams opened so far (0 against a broker without it: EnqueueBatch is used). */
  get enqueueStreamCount(): number {
    return this.stream.streams;
  }

  /** Waits for enqueues in flight, then closes the connection. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.batcher.idle();
    this.stream.close();
    for (const w of this.watches) w.cancel();
    this.clients.close();
  }

  private sendBatch(request: EnqueueBatchRequest): Promise<EnqueueBatchResponse> {
    return guardedCall(this.clients.reachability, this.limits, (o, cb) => this.clients.producer.enqueueBatch(request, this.clients.metadata, o, cb));
  }
}
