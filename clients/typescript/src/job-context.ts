import type { Delivery } from './gen/sluice/v1/worker.js';
import type { JobAbortedError } from './errors.js';
import type { DeliveredJob, JobMap, PriorityName } from './types.js';
import { priorityName } from './wire.js';
import type { Heartbeating } from './heartbeat-schedule.js';
import { traceContextOf, type TraceContext } from './trace-context.js';

/** What every handler gets besides the typed `queue`/`type`/`payload`. */
export interface JobControls {
  /** The job id: stable across attempts, so handlers can use it as an idempotency key. */
  readonly id: string;
  /** This attempt's number, starting at 1. */
  readonly attempt: number;
  /** Attempts allowed in total; the last failure dead-letters the job. */
  readonly maxAttempts: number;
  readonly metadata: Readonly<Record<string, string>>;
  /**
   * The W3C trace context the job was enqueued with (`traceparent`, `tracestate` from its
   * metadata), to continue the producer's trace in the handler; undefined without one.
   */
  readonly trace: TraceContext | undefined;
  readonly priority: PriorityName;
  readonly createdAt: Date | undefined;
  /** Progress recorded by an earlier attempt (to resume), or null. */
  readonly previousProgress: unknown;
  /** When the lease ends unless renewed (heartbeats renew it automatically). */
  readonly deadline: Date;
  /**
   * Aborted when this attempt must stop: the lease was lost (`LeaseLostError`), the job was
   * cancelled (`JobCancelledError`) or the worker is closing and out of time
   * (`WorkerClosingError`). `signal.reason` is that error. Pass it to fetch() and friends.
   */
  readonly signal: AbortSignal;
  /** Records progress (any JSON value), visible to `getJob` and `watch`; also renews the lease. */
  progress(value: unknown): Promise<void>;
  /** Renews the lease for `ms` from now (and makes later heartbeats use `ms`). Resolves to the new deadline. */
  extendLease(ms: number): Promise<Date>;
}

/** The job a handler receives: typed by queue (and job type), with its controls. */
export type Job<J extends object = JobMap, Q extends keyof J = keyof J> = DeliveredJob<J, Q> & JobControls;

/** How a running job talks back to its worker. */
export interface JobChannel {
  progress(job: RunningJob, value: unknown): Promise<void>;
  extend(job: RunningJob, ms: number): Promise<Date>;
}

/**
 * One delivery being handled: its lease, its abort signal and when its next heartbeat is due.
 * A job is `lost` once its lease is no longer ours; from then on nothing is sent for it.
 */
export class RunningJob implements Heartbeating {
  readonly view: JobView;
  /** Why the job was lost (the abort reason its signal carries); set once. */
  lostReason: JobAbortedError | undefined;
  leaseMs: number;
  deadline: Date;
  heartbeatAt: number | undefined;
  /** performance.now() when the handler started (auto prefetch times the handlers). */
  startedAt = 0;
  /** performance.now() when the job began waiting for a slot (held with prefetch). */
  heldAt = 0;
  /** Made when a handler first reads `signal`: most short handlers never do, and one per job costs. */
  private controller: AbortController | undefined;

  constructor(
    readonly delivery: Delivery,
    /** The stream generation the lease belongs to. */
    readonly streamId: number,
    payload: unknown,
    channel: JobChannel,
  ) {
    this.leaseMs = delivery.leaseTimeoutMs;
    this.deadline = delivery.deadline ?? new Date(Date.now() + delivery.leaseTimeoutMs);
    this.view = new JobView(this, delivery, payload, channel);
  }

  get jobId(): string {
    return this.delivery.jobId;
  }

  get leaseId(): string {
    return this.delivery.leaseId;
  }

  get lost(): boolean {
    return this.lostReason !== undefined;
  }

  get signal(): AbortSignal {
    if (!this.controller) {
      this.controller = new AbortController();
      if (this.lostReason) this.controller.abort(this.lostReason);
    }
    return this.controller.signal;
  }

  /** The lease is gone: abort the handler with `reason`. Returns false if it already was. */
  lose(reason: JobAbortedError): boolean {
    if (this.lost) return false;
    this.lostReason = reason;
    this.stopHeartbeat();
    this.controller?.abort(reason);
    return true;
  }

  stopHeartbeat(): void {
    this.heartbeatAt = undefined;
  }
}

/**
 * What a handler receives. One plain object per job with the controls on the prototype: an
 * object literal with getters and arrow functions made five closures per job, which short jobs
 * paid for in garbage collection. `progress` and `extendLease` are getters returning bound
 * functions, so `({ payload, progress }) => …` in a handler's parameters still works.
 */
class JobView implements JobControls {
  readonly id: string;
  readonly queue: string;
  readonly type: string;
  readonly payload: unknown;
  readonly attempt: number;
  readonly maxAttempts: number;
  readonly metadata: Readonly<Record<string, string>>;
  readonly priority: PriorityName;
  readonly createdAt: Date | undefined;
  readonly previousProgress: unknown;
  readonly #job: RunningJob;
  readonly #channel: JobChannel;

  constructor(job: RunningJob, delivery: Delivery, payload: unknown, channel: JobChannel) {
    this.#job = job;
    this.#channel = channel;
    this.id = delivery.jobId;
    this.queue = delivery.queue;
    this.type = delivery.type;
    this.payload = payload;
    this.attempt = delivery.attempt;
    this.maxAttempts = delivery.maxAttempts;
    this.metadata = delivery.metadata;
    this.priority = priorityName(delivery.priority);
    this.createdAt = delivery.createdAt;
    this.previousProgress = delivery.progress ?? null;
  }

  get deadline(): Date {
    return this.#job.deadline;
  }

  get trace(): TraceContext | undefined {
    return traceContextOf(this.metadata);
  }

  get signal(): AbortSignal {
    return this.#job.signal;
  }

  get progress(): (value: unknown) => Promise<void> {
    return (value) => this.#channel.progress(this.#job, value);
  }

  get extendLease(): (ms: number) => Promise<Date> {
    return (ms) => this.#channel.extend(this.#job, ms);
  }
}

export type { DeliveredJob };
