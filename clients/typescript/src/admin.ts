import type { CallOptions, ServiceError } from '@grpc/grpc-js';
import { connect, type ConnectionOptions, type SluiceClients } from './connect.js';
import { guardedCall, type CallLimits } from './call.js';
import { JobState } from './gen/sluice/v1/job.js';
import type { DeadLetterFilter as WireDeadLetterFilter, ListJobsResponse, Queue as WireQueue, WorkerStream } from './gen/sluice/v1/admin.js';
import type { BackoffOptions, JobInfo, JobStateName } from './types.js';
import { toJobInfo } from './wire.js';
import { Schedules } from './schedules.js';

export interface AdminOptions extends ConnectionOptions {
  /** How long a call may take, including waiting for an unreachable broker. Default 30 s. */
  callTimeoutMs?: number;
  /** How long a call waits for a broker never reached before rejecting with its address. Default 5 s. */
  connectTimeoutMs?: number;
}

/** A queue with its job counts per state and its defaults (undefined = the broker's). */
export interface QueueInfo {
  name: string;
  paused: boolean;
  counts: Record<JobStateName, number>;
  maxAttempts: number | undefined;
  retry: BackoffOptions | undefined;
  leaseTimeoutMs: number | undefined;
  /** Worker streams subscribed to the queue right now. */
  consumers: number;
}

/** New defaults for a queue; fields left out keep their value. */
export interface QueueDefaults {
  maxAttempts?: number;
  retry?: BackoffOptions;
  leaseTimeoutMs?: number;
}

/** Which jobs `listJobs` returns (all fields optional, combined with AND). */
export interface JobFilter {
  queue?: string;
  state?: JobStateName;
  type?: string;
  groupKey?: string;
  /** Jobs per RPC while iterating (1-1000, default 100). */
  pageSize?: number;
}

/** Which dead letters to replay or purge: ids, or a queue (optionally narrowed), or `all: true`. */
export interface DeadLetterSelection {
  ids?: string[];
  queue?: string;
  type?: string;
  /** Only jobs that died at or before this time. */
  deadBefore?: Date;
  /** Every dead job of every queue (only on its own). */
  all?: boolean;
}

/** A connected Consume stream. */
export interface WorkerInfo {
  streamId: string;
  workerId: string;
  queues: string[];
  types: string[];
  labels: Record<string, string>;
  /** Credit granted and not used yet. */
  credit: number;
  activeJobIds: string[];
  connectedAt: Date | undefined;
  lastSeenAt: Date | undefined;
  peer: string;
}

const STATE_TO_WIRE: Record<JobStateName, JobState> = {
  scheduled: JobState.JOB_STATE_SCHEDULED,
  pending: JobState.JOB_STATE_PENDING,
  active: JobState.JOB_STATE_ACTIVE,
  completed: JobState.JOB_STATE_COMPLETED,
  dead: JobState.JOB_STATE_DEAD,
  cancelled: JobState.JOB_STATE_CANCELLED,
};

/**
 * Operators' calls (AdminService): queues, jobs, dead letters and workers, typed, with the
 * client's typed errors (`NotFoundError` for an unknown queue, `FailedPreconditionError` for
 * deleting a queue with work left, ...). List calls are async iterators that fetch page after
 * page as the loop asks for more:
 *
 *     const admin = new Admin({ address: '127.0.0.1:50051' });
 *     for await (const job of admin.listDeadLetters({ queue: 'email' })) console.log(job.id, job.lastError);
 *     await admin.replayDeadLetters({ queue: 'email' });
 */
export class Admin {
  private readonly clients: SluiceClients;
  private readonly limits: CallLimits;
  private schedulesView: Schedules | undefined;

  constructor(options: AdminOptions = {}) {
    this.clients = connect(options);
    this.limits = { callTimeoutMs: options.callTimeoutMs ?? 30_000, connectTimeoutMs: options.connectTimeoutMs ?? 5_000 };
  }

  /** Cron schedules (ScheduleService) over this Admin's connection, closed with it. */
  get schedules(): Schedules {
    return (this.schedulesView ??= new Schedules(this.clients, { callTimeoutMs: this.limits.callTimeoutMs }));
  }

  /** Every queue that has jobs or settings, by name. */
  async listQueues(): Promise<QueueInfo[]> {
    const r = await this.call<{ queues: WireQueue[] }>((o, cb) => this.clients.admin.listQueues({}, this.clients.metadata, o, cb));
    return r.queues.map(toQueueInfo);
  }

  /** One queue. Rejects with NotFoundError for a queue that does not exist. */
  async getQueue(queue: string): Promise<QueueInfo> {
    return toQueueInfo(await this.call<WireQueue>((o, cb) => this.clients.admin.getQueue({ queue }, this.clients.metadata, o, cb)));
  }

  /**
   * Stops deliveries from a queue (enqueues are still accepted; running jobs finish). Rejects
   * with NotFoundError for an unknown queue unless `createIfMissing` is set.
   */
  async pauseQueue(queue: string, options: { createIfMissing?: boolean } = {}): Promise<QueueInfo> {
    const req = { queue, createIfMissing: options.createIfMissing ?? false };
    return toQueueInfo(await this.call<WireQueue>((o, cb) => this.clients.admin.pauseQueue(req, this.clients.metadata, o, cb)));
  }

  /** Resumes deliveries. Rejects with NotFoundError for an unknown queue. */
  async resumeQueue(queue: string): Promise<QueueInfo> {
    return toQueueInfo(await this.call<WireQueue>((o, cb) => this.clients.admin.resumeQueue({ queue }, this.clients.metadata, o, cb)));
  }

  /**
   * Changes a queue's defaults; they apply to its unfinished jobs that did not set their own.
   * Rejects with NotFoundError for an unknown queue unless `createIfMissing` is set.
   */
  async updateQueue(queue: string, defaults: QueueDefaults, options: { createIfMissing?: boolean } = {}): Promise<QueueInfo> {
    const req = {
      queue,
      maxAttempts: defaults.maxAttempts ?? 0,
      retry: defaults.retry,
      leaseTimeoutMs: defaults.leaseTimeoutMs ?? 0,
      createIfMissing: options.createIfMissing ?? false,
    };
    return toQueueInfo(await this.call<WireQueue>((o, cb) => this.clients.admin.updateQueue(req, this.clients.metadata, o, cb)));
  }

  /**
   * Deletes a queue with no scheduled, pending, active or dead jobs, with its settings and its
   * completed and cancelled jobs. Rejects with FailedPreconditionError (naming the counts)
   * while work or dead letters are left, NotFoundError for an unknown queue.
   */
  async deleteQueue(queue: string): Promise<void> {
    await this.call((o, cb) => this.clients.admin.deleteQueue({ queue }, this.clients.metadata, o, cb));
  }

  /** Jobs, newest first, filtered; pages are fetched as the loop goes. */
  listJobs<P = unknown>(filter: JobFilter = {}): AsyncGenerator<JobInfo<P>, void, undefined> {
    const base = {
      queue: filter.queue ?? '',
      state: filter.state ? STATE_TO_WIRE[filter.state] : JobState.JOB_STATE_UNSPECIFIED,
      type: filter.type ?? '',
      groupKey: filter.groupKey ?? '',
      pageSize: filter.pageSize ?? 0,
    };
    return this.pages<P>((pageToken, o, cb) => this.clients.admin.listJobs({ ...base, pageToken }, this.clients.metadata, o, cb));
  }

  /** Dead jobs, newest first, with their error history; pages are fetched as the loop goes. */
  listDeadLetters<P = unknown>(filter: { queue?: string; type?: string; pageSize?: number } = {}): AsyncGenerator<JobInfo<P>, void, undefined> {
    const base = { queue: filter.queue ?? '', type: filter.type ?? '', pageSize: filter.pageSize ?? 0 };
    return this.pages<P>((pageToken, o, cb) => this.clients.admin.listDeadLetters({ ...base, pageToken }, this.clients.metadata, o, cb));
  }

  /** Puts the selected dead jobs back to pending with their attempts reset; resolves with how many. */
  async replayDeadLetters(selection: DeadLetterSelection): Promise<number> {
    const filter = toWireFilter(selection);
    const r = await this.call<{ replayed: number }>((o, cb) => this.clients.admin.replayDeadLetters({ filter }, this.clients.metadata, o, cb));
    return r.replayed;
  }

  /** Deletes the selected dead jobs for good; resolves with how many. */
  async purgeDeadLetters(selection: DeadLetterSelection): Promise<number> {
    const filter = toWireFilter(selection);
    const r = await this.call<{ purged: number }>((o, cb) => this.clients.admin.purgeDeadLetters({ filter }, this.clients.metadata, o, cb));
    return r.purged;
  }

  /** Connected worker streams with their in-flight jobs. */
  async listWorkers(): Promise<WorkerInfo[]> {
    const r = await this.call<{ workers: WorkerStream[] }>((o, cb) => this.clients.admin.listWorkers({}, this.clients.metadata, o, cb));
    return r.workers.map((w) => ({
      streamId: w.streamId,
      workerId: w.workerId,
      queues: w.queues,
      types: w.types,
      labels: w.labels,
      credit: w.credit,
      activeJobIds: w.activeJobIds,
      connectedAt: w.connectedAt,
      lastSeenAt: w.lastSeenAt,
      peer: w.peer,
    }));
  }

  /** Closes the connection. */
  close(): void {
    this.clients.close();
  }

  /** One unary call with a deadline, its error mapped to the typed errors. */
  private call<T>(start: (options: Partial<CallOptions>, callback: (error: ServiceError | null, response?: T) => void) => { cancel(): void }): Promise<T> {
    return guardedCall(this.clients.reachability, this.limits, start);
  }

  private async *pages<P>(
    fetch: (pageToken: string, options: Partial<CallOptions>, callback: (error: ServiceError | null, response?: ListJobsResponse) => void) => { cancel(): void },
  ): AsyncGenerator<JobInfo<P>, void, undefined> {
    let pageToken = '';
    do {
      const page = await this.call<ListJobsResponse>((o, cb) => fetch(pageToken, o, cb));
      for (const job of page.jobs) yield toJobInfo<P>(job);
      pageToken = page.nextPageToken;
    } while (pageToken);
  }
}

function toQueueInfo(q: WireQueue): QueueInfo {
  const c = q.counts;
  return {
    name: q.name,
    paused: q.paused,
    counts: {
      scheduled: c?.scheduled ?? 0,
      pending: c?.pending ?? 0,
      active: c?.active ?? 0,
      completed: c?.completed ?? 0,
      dead: c?.dead ?? 0,
      cancelled: c?.cancelled ?? 0,
    },
    maxAttempts: q.maxAttempts || undefined,
    retry: q.retry ? stripUndefined({ initialMs: q.retry.initialMs, multiplier: q.retry.multiplier, maxMs: q.retry.maxMs, jitter: q.retry.jitter }) : undefined,
    leaseTimeoutMs: q.leaseTimeoutMs || undefined,
    consumers: q.consumers,
  };
}

function toWireFilter(s: DeadLetterSelection): WireDeadLetterFilter {
  return { ids: s.ids ?? [], queue: s.queue ?? '', type: s.type ?? '', deadBefore: s.deadBefore, all: s.all ?? false };
}

function stripUndefined<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}
