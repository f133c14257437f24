import type { EnqueueRequest, EnqueueBatchResponse } from './gen/sluice/v1/producer.js';
import { errorForCode, fromGrpcError, retryHintMs } from './errors.js';
import type { EnqueuedJob } from './types.js';
import { stateName } from './wire.js';

export interface BatcherOptions {
  /** Most jobs in one EnqueueBatch RPC (the broker's limit is --max-batch-size, 1000 by default). */
  maxBatchSize: number;
  /** Most payload bytes in one RPC, so big payloads stay under gRPC message limits. */
  maxBatchBytes: number;
  /** Most EnqueueBatch RPCs in flight at once; further jobs wait and ride in the next batch. */
  maxInFlight: number;
  /** Extra wait before sending a batch, in ms; 0 sends at the end of the current event-loop turn. */
  lingerMs: number;
  /**
   * Jobs that wait together are split into several batches of at least this many while batch
   * slots are free (0: never split). In a closed loop (N calls in flight, each new call made
   * when one resolves) a single batch makes the producer and the broker take turns; two
   * halves keep both busy, the broker committing one while the producer handles the other's
   * answers. Below 2 x splitMin a batch is not split: each batch costs a commit and an fsync.
   */
  splitMin: number;
}

interface Pending {
  request: EnqueueRequest;
  /** Epoch ms: past this a refused job is not retried (the producer's call timeout). */
  deadline: number;
  resolve(job: EnqueuedJob): void;
  reject(error: Error): void;
}

/**
 * Coalesces concurrent `enqueue()` calls into non-atomic EnqueueBatch RPCs. A unary call costs
 * ~130 µs of grpc-js CPU, so one RPC per job caps a producer near 7-8k jobs/s; batching lifts
 * that by an order of magnitude. Jobs collect during one event-loop turn (plus `lingerMs`);
 * while `maxInFlight` batches are on the wire, new jobs wait and the next batch is bigger, so
 * batches grow with load and stay single-job when idle (no added latency). Each caller still
 * gets its own outcome: the job's commit, or its own error from the per-item result.
 */
export class EnqueueBatcher {
  private queue: Pending[] = [];
  private inFlight = 0;
  /** Jobs waiting out a retry hint before they are queued again. */
  private waiting = 0;
  private timer: NodeJS.Immediate | NodeJS.Timeout | undefined;
  /** EnqueueBatch RPCs sent so far (for tests and metrics). */
  rpcs = 0;

  constructor(
    private readonly send: (requests: EnqueueRequest[]) => Promise<EnqueueBatchResponse>,
    private readonly options: BatcherOptions,
  ) {}

  enqueue(request: EnqueueRequest, deadline = Infinity): Promise<EnqueuedJob> {
    return new Promise<EnqueuedJob>((resolve, reject) => {
      this.queue.push({ request, deadline, resolve, reject });
      this.schedule();
    });
  }

  /**
   * Admission control refused the job with a retry hint (a queue at its cap, the disk guard):
   * wait the hint out and send it again, as long as that ends before the job's deadline.
   * False: the caller rejects as usual.
   */
  private retryLater(p: Pending, error: Error): boolean {
    const hint = retryHintMs(error);
    if (hint === undefined || Date.now() + hint >= p.deadline) return false;
    this.waiting++;
    setTimeout(() => {
      this.waiting--;
      this.queue.push(p);
      this.schedule();
    }, hint);
    return true;
  }

  /** Resolves when every job handed in so far has its outcome. */
  async idle(): Promise<void> {
    while (this.queue.length > 0 || this.inFlight > 0 || this.waiting > 0) {
      await new Promise<void>((resolve) => (this.idleWaiters ??= []).push(resolve));
    }
  }

  private idleWaiters: (() => void)[] | undefined;

  private schedule(): void {
    if (this.timer || this.inFlight >= this.options.maxInFlight) return;
    const fire = () => {
      this.timer = undefined;
      this.dispatch();
    };
    this.timer = this.options.lingerMs > 0 ? setTimeout(fire, this.options.lingerMs) : setImmediate(fire);
  }

  private dispatch(): void {
    while (this.queue.length > 0 && this.inFlight < this.options.maxInFlight) {
      const batch = this.queue.splice(0, this.batchLength());
      this.inFlight++;
      this.rpcs++;
      this.send(batch.map((p) => p.request)).then(
        (response) => this.settle(batch, response),
        (error: unknown) => {
          const e = fromGrpcError(error);
          for (const p of batch) if (!this.retryLater(p, e)) p.reject(e);
        },
      ).finally(() => {
        this.inFlight--;
        if (this.queue.length > 0) this.schedule();
        else if (this.inFlight === 0 && this.waiting === 0) this.wakeIdle();
      });
    }
  }

  /** How many queued jobs fit the next batch: by count and by payload bytes (at least one). */
  private batchLength(): number {
    let limit = Math.min(this.queue.length, this.options.maxBatchSize);
    const { splitMin } = this.options;
    if (splitMin > 0) {
      const parts = Math.min(this.options.maxInFlight - this.inFlight, Math.floor(this.queue.length / splitMin));
      if (parts > 1) limit = Math.min(limit, Math.ceil(this.queue.length / parts));
    }
    let bytes = 0;
    for (let i = 0; i < limit; i++) {
      bytes += this.queue[i]!.request.payloadJson.length;
      if (bytes > this.options.maxBatchBytes && i > 0) return i;
    }
    return limit;
  }

  private settle(batch: Pending[], response: EnqueueBatchResponse): void {
    for (let i = 0; i < batch.length; i++) {
      const p = batch[i]!;
      const r = response.results[i];
      if (!r) p.reject(errorForCode(13, `the broker answered ${response.results.length} results for ${batch.length} jobs`));
      else if (r.error && r.error.code !== 0) {
        const e = errorForCode(r.error.code, r.error.message, undefined, r.error.retryAfterMs);
        if (!this.retryLater(p, e)) p.reject(e);
      }
      else {
        try {
          p.resolve({ id: r.id, deduplicated: r.deduplicated, state: stateName(r.state) });
        } catch (error) {
          p.reject(error as Error);
        }
      }
    }
  }

  private wakeIdle(): void {
    const waiters = this.idleWaiters ?? [];
    this.idleWaiters = undefined;
    for (const w of waiters) w();
  }
}
