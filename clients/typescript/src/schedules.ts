import { status as Status, type CallOptions } from '@grpc/grpc-js';
import { connect, unary, type ConnectionOptions, type SluiceClients } from './connect.js';
import { InvalidArgumentError, fromGrpcError } from './errors.js';
import { JobState, type RetryPolicy } from './gen/sluice/v1/job.js';
import type { EnqueueRequest } from './gen/sluice/v1/producer.js';
import {
  CatchUpPolicy,
  OverlapPolicy,
  ScheduleRunKind,
  type ListScheduleRunsResponse,
  type ListSchedulesResponse,
  type Schedule,
  type ScheduleRun,
  type ScheduleSpec,
  type UpsertScheduleResponse,
} from './gen/sluice/v1/schedule.js';
import type { EnqueueOptions, JobStateName } from './types.js';
import { priorityName, stateName, toEnqueueRequest } from './wire.js';

export type CatchUpName = 'skip' | 'once' | 'all';
export type OverlapName = 'allow' | 'skip' | 'queue_one';

/** The job a schedule enqueues at each fire: like `enqueue` options, without `runAt`. */
export type ScheduledJobOptions = Omit<EnqueueOptions, 'runAt'>;

/** A schedule's definition. Unset fields take the broker's defaults. */
export interface ScheduleOptions {
  /** 5 fields (minute hour day month weekday), 6 with seconds first, or @hourly, @daily, ... */
  cron: string;
  /** IANA zone the expression is read in, e.g. 'Europe/Berlin'. Default UTC. */
  timezone?: string;
  /** Queue of the job created at each fire. */
  queue: string;
  /** The job's JSON payload (the same at every fire; the fire time is in the job's metadata). */
  payload?: unknown;
  /** The job's other options (type, priority, retries, metadata, ...). */
  job?: ScheduledJobOptions;
  /** No fire before this time. */
  startAt?: Date;
  /** No fire at or after this time. */
  endAt?: Date;
  /** Fire times missed while the broker was down: none (default), the latest once, or all. */
  catchUp?: CatchUpName;
  /** Most missed fire times handled at once. Default 100. */
  catchUpLimit?: number;
  /** While an earlier fire's job is unfinished: fire anyway (default), skip, or keep one waiting. */
  overlap?: OverlapName;
  /** Run history rows kept. Default 100. */
  historyLimit?: number;
}

/** A stored schedule. */
export interface ScheduleInfo {
  id: string;
  name: string;
  cron: string;
  timezone: string;
  queue: string;
  payload: unknown;
  job: ScheduledJobOptions;
  startAt: Date | undefined;
  endAt: Date | undefined;
  catchUp: CatchUpName;
  catchUpLimit: number;
  overlap: OverlapName;
  historyLimit: number;
  paused: boolean;
  /** undefined once no fire time is left. */
  nextFireAt: Date | undefined;
  lastFireAt: Date | undefined;
  /** The next fire times (`get` returns `upcoming` of them). */
  upcoming: Date[];
  createdAt: Date | undefined;
  updatedAt: Date | undefined;
}

/** One run of a schedule, with its job as it is now. */
export interface ScheduleRunInfo {
  seq: number;
  scheduleId: string;
  fireTime: Date | undefined;
  kind: 'scheduled' | 'manual';
  /** No job was created; `reason` says why. */
  skipped: boolean;
  reason: string;
  /** '' when skipped. */
  jobId: string;
  /** undefined when skipped or the job is no longer stored. */
  jobState: JobStateName | undefined;
  attempt: number;
  startedAt: Date | undefined;
  finishedAt: Date | undefined;
  /** Once finished. */
  durationMs: number | undefined;
  lastError: string;
  createdAt: Date | undefined;
}

export interface Page {
  pageSize?: number;
  pageToken?: string;
}

/** A schedule by name (a string) or by id. */
export type ScheduleRef = string | { id: string };

export interface SchedulesOptions extends ConnectionOptions {
  /** Deadline per call, including waiting for an unreachable broker. Default 30 s. */
  callTimeoutMs?: number;
}

const CATCH_UP_TO_WIRE: Record<CatchUpName, CatchUpPolicy> = {
  skip: CatchUpPolicy.CATCH_UP_POLICY_SKIP,
  once: CatchUpPolicy.CATCH_UP_POLICY_ONCE,
  all: CatchUpPolicy.CATCH_UP_POLICY_ALL,
};
const OVERLAP_TO_WIRE: Record<OverlapName, OverlapPolicy> = {
  allow: OverlapPolicy.OVERLAP_POLICY_ALLOW,
  skip: OverlapPolicy.OVERLAP_POLICY_SKIP,
  queue_one: OverlapPolicy.OVERLAP_POLICY_QUEUE_ONE,
};

/** ScheduleOptions keys -> ScheduleSpec field paths for update masks. */
const MASK_PATHS: Record<string, string> = {
  name: 'name',
  cron: 'cron',
  timezone: 'timezone',
  queue: 'job',
  payload: 'job',
  job: 'job',
  startAt: 'start_at',
  endAt: 'end_at',
  catchUp: 'catch_up',
  catchUpLimit: 'catch_up_limit',
  overlap: 'overlap',
  historyLimit: 'history_limit',
};

/**
 * Cron schedules on the broker (ScheduleService). Each fire time creates exactly one job; the
 * job carries `sluice.schedule_id` and `sluice.fire_time` in its metadata, the idempotency
 * key for a handler (delivery is at least once, like every job).
 *
 *     const schedules = new Schedules({ address: '127.0.0.1:50051' });
 *     await schedules.upsert('invoices', { cron: '0 2 * * *', timezone: 'Europe/Berlin', queue: 'billing', payload: { task: 'invoices' } });
 */
export class Schedules {
  private readonly clients: SluiceClients;
  private readonly ownsClients: boolean;
  private readonly callTimeoutMs: number;

  /** Pass connection options, or the clients of an existing connection (shared, not closed by `close`). */
  constructor(options: SchedulesOptions | SluiceClients = {}, shared: { callTimeoutMs?: number } = {}) {
    if ('schedules' in options && 'metadata' in options) {
      this.clients = options;
      this.ownsClients = false;
      this.callTimeoutMs = shared.callTimeoutMs ?? 30_000;
    } else {
      const o = options as SchedulesOptions;
      this.clients = connect(o);
      this.ownsClients = true;
      this.callTimeoutMs = o.callTimeoutMs ?? 30_000;
    }
  }

  /** Creates a schedule; rejects with AlreadyExists (gRPC ALREADY_EXISTS) when the name is taken. */
  async create(name: string, options: ScheduleOptions, { paused = false }: { paused?: boolean } = {}): Promise<ScheduleInfo> {
    const spec = toSpec(name, options);
    return toScheduleInfo(await this.call<Schedule>('createSchedule', { spec, paused }));
  }

  /**
   * Creates the schedule or replaces the definition of the one with this name: idempotent, so
   * an application can declare its schedules at boot. A paused schedule stays paused.
   */
  async upsert(name: string, options: ScheduleOptions): Promise<{ schedule: ScheduleInfo; created: boolean }> {
    const r = await this.call<UpsertScheduleResponse>('upsertSchedule', { spec: toSpec(name, options) });
    return { schedule: toScheduleInfo(r.schedule!), created: r.created };
  }

  /** Changes only the given fields (a job field replaces the job, merged over the current one). */
  async update(ref: ScheduleRef, changes: Partial<ScheduleOptions> & { name?: string }): Promise<ScheduleInfo> {
    const paths = [...new Set(Object.keys(changes).filter((k) => (changes as Record<string, unknown>)[k] !== undefined).map((k) => MASK_PATHS[k]))];
    if (paths.some((p) => p === undefined)) throw new InvalidArgumentError(`unknown schedule option in ${Object.keys(changes).join(', ')}`, Status.INVALID_ARGUMENT);
    if (paths.length === 0) return this.get(ref);
    let merged: ScheduleOptions = { cron: changes.cron ?? '', queue: changes.queue ?? '', ...changes } as ScheduleOptions;
    if (paths.includes('job')) {
      const current = await this.get(ref);
      merged = { ...merged, queue: changes.queue ?? current.queue, payload: 'payload' in changes ? changes.payload : current.payload, job: changes.job ?? current.job };
    }
    const spec = toSpec(changes.name ?? '', merged, !paths.includes('job'));
    return toScheduleInfo(await this.call<Schedule>('updateSchedule', { ...refFields(ref), spec, updateMask: paths }));
  }

  pause(ref: ScheduleRef): Promise<ScheduleInfo> {
    return this.call<Schedule>('pauseSchedule', refFields(ref)).then(toScheduleInfo);
  }

  /** Fires again from the next future fire time (fire times passed while paused do not run). */
  resume(ref: ScheduleRef): Promise<ScheduleInfo> {
    return this.call<Schedule>('resumeSchedule', refFields(ref)).then(toScheduleInfo);
  }

  /** Deletes the schedule and its history; the jobs it created stay. */
  async delete(ref: ScheduleRef): Promise<void> {
    await this.call('deleteSchedule', refFields(ref));
  }

  /** The schedule with its next `upcoming` fire times (default 5). */
  get(ref: ScheduleRef, { upcoming = 0 }: { upcoming?: number } = {}): Promise<ScheduleInfo> {
    return this.call<Schedule>('getSchedule', { ...refFields(ref), upcomingCount: upcoming }).then(toScheduleInfo);
  }

  async list(page: Page = {}): Promise<{ schedules: ScheduleInfo[]; nextPageToken: string }> {
    const r = await this.call<ListSchedulesResponse>('listSchedules', { pageSize: page.pageSize ?? 0, pageToken: page.pageToken ?? '' });
    return { schedules: r.schedules.map(toScheduleInfo), nextPageToken: r.nextPageToken };
  }

  /** Runs the schedule once now, in addition to its fire times (recorded as manual). */
  trigger(ref: ScheduleRef): Promise<ScheduleRunInfo> {
    return this.call<ScheduleRun>('triggerSchedule', refFields(ref)).then(toRunInfo);
  }

  /** Run history, newest first. */
  async runs(ref: ScheduleRef, page: Page = {}): Promise<{ runs: ScheduleRunInfo[]; nextPageToken: string }> {
    const r = await this.call<ListScheduleRunsResponse>('listScheduleRuns', { ...refFields(ref), pageSize: page.pageSize ?? 0, pageToken: page.pageToken ?? '' });
    return { runs: r.runs.map(toRunInfo), nextPageToken: r.nextPageToken };
  }

  close(): void {
    if (this.ownsClients) this.clients.close();
  }

  private async call<Res>(method: string, request: object): Promise<Res> {
    const client = this.clients.schedules as unknown as Record<string, (req: object, md: unknown, opts: Partial<CallOptions>, cb: (e: Error | null, r?: Res) => void) => unknown>;
    const fn = client[method]!;
    try {
      return await unary<object, Res>(
        (req, cb) => fn.call(client, req, this.clients.metadata, { deadline: Date.now() + this.callTimeoutMs }, cb),
        client,
        request,
      );
    } catch (error) {
      throw fromGrpcError(error);
    }
  }
}

function refFields(ref: ScheduleRef): { id: string; name: string } {
  return typeof ref === 'string' ? { id: '', name: ref } : { id: ref.id, name: '' };
}

function toSpec(name: string, o: ScheduleOptions, skipJob = false): ScheduleSpec {
  if (o.catchUp !== undefined && !CATCH_UP_TO_WIRE[o.catchUp]) throw new InvalidArgumentError(`catchUp must be skip, once or all; got ${String(o.catchUp)}`, Status.INVALID_ARGUMENT);
  if (o.overlap !== undefined && !OVERLAP_TO_WIRE[o.overlap]) throw new InvalidArgumentError(`overlap must be allow, skip or queue_one; got ${String(o.overlap)}`, Status.INVALID_ARGUMENT);
  return {
    name,
    cron: o.cron ?? '',
    timezone: o.timezone ?? '',
    job: skipJob ? undefined : toEnqueueRequest(o.queue, o.payload ?? null, { ...(o.job ?? {}) }),
    startAt: o.startAt,
    endAt: o.endAt,
    catchUp: o.catchUp ? CATCH_UP_TO_WIRE[o.catchUp] : CatchUpPolicy.CATCH_UP_POLICY_UNSPECIFIED,
    catchUpLimit: o.catchUpLimit ?? 0,
    overlap: o.overlap ? OVERLAP_TO_WIRE[o.overlap] : OverlapPolicy.OVERLAP_POLICY_UNSPECIFIED,
    historyLimit: o.historyLimit ?? 0,
  };
}

function jobOptions(job: EnqueueRequest): ScheduledJobOptions {
  const out: ScheduledJobOptions = { priority: priorityName(job.priority) };
  if (job.type) out.type = job.type;
  if (job.delayMs) out.delay = job.delayMs;
  if (job.maxAttempts) out.maxAttempts = job.maxAttempts;
  if (job.retry) out.backoff = backoff(job.retry);
  if (job.leaseTimeoutMs) out.leaseTimeout = job.leaseTimeoutMs;
  if (Object.keys(job.metadata).length > 0) out.metadata = job.metadata;
  if (job.dedupKey) out.dedupKey = job.dedupKey;
  if (job.groupKey) out.groupKey = job.groupKey;
  return out;
}

function backoff(r: RetryPolicy): ScheduledJobOptions['backoff'] {
  return { initialMs: r.initialMs, multiplier: r.multiplier, maxMs: r.maxMs, jitter: r.jitter };
}

const CATCH_UP_NAMES: Partial<Record<CatchUpPolicy, CatchUpName>> = { 1: 'skip', 2: 'once', 3: 'all' };
const OVERLAP_NAMES: Partial<Record<OverlapPolicy, OverlapName>> = { 1: 'allow', 2: 'skip', 3: 'queue_one' };

function toScheduleInfo(s: Schedule): ScheduleInfo {
  const spec = s.spec!;
  const job = spec.job!;
  return {
    id: s.id,
    name: spec.name,
    cron: spec.cron,
    timezone: spec.timezone,
    queue: job.queue,
    payload: job.payload ?? null,
    job: jobOptions(job),
    startAt: spec.startAt,
    endAt: spec.endAt,
    catchUp: CATCH_UP_NAMES[spec.catchUp] ?? 'skip',
    catchUpLimit: spec.catchUpLimit,
    overlap: OVERLAP_NAMES[spec.overlap] ?? 'allow',
    historyLimit: spec.historyLimit,
    paused: s.paused,
    nextFireAt: s.nextFireAt,
    lastFireAt: s.lastFireAt,
    upcoming: s.upcoming,
    createdAt: s.createdAt,
    updatedAt: s.updatedAt,
  };
}

function toRunInfo(r: ScheduleRun): ScheduleRunInfo {
  return {
    seq: r.seq,
    scheduleId: r.scheduleId,
    fireTime: r.fireTime,
    kind: r.kind === ScheduleRunKind.SCHEDULE_RUN_KIND_MANUAL ? 'manual' : 'scheduled',
    skipped: r.skipped,
    reason: r.reason,
    jobId: r.jobId,
    jobState: r.jobState === JobState.JOB_STATE_UNSPECIFIED ? undefined : stateName(r.jobState),
    attempt: r.attempt,
    startedAt: r.startedAt,
    finishedAt: r.finishedAt,
    durationMs: r.finishedAt ? r.durationMs : undefined,
    lastError: r.lastError,
    createdAt: r.createdAt,
  };
}
