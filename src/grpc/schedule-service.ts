import type { sendUnaryData, ServerUnaryCall } from '@grpc/grpc-js';
import type { Broker } from '../broker/broker.js';
import { SCHEDULE_DEFAULTS, definitionOf, type ScheduleDefinition, type ScheduleRef } from '../broker/schedules.js';
import type { JobTemplate } from '../broker/schedule-template.js';
import { SluiceError, invalidArgument } from '../domain/errors.js';
import type { Logger } from '../log.js';
import { runDurationMs, runJobId, type CatchUpPolicy, type OverlapPolicy, type RunRow, type ScheduleRow } from '../store/types.js';
import type { EnqueueRequest } from '../../clients/typescript/src/gen/sluice/v1/producer.js';
import { JobState as WireJobState } from '../../clients/typescript/src/gen/sluice/v1/job.js';
import {
  CatchUpPolicy as WireCatchUp,
  OverlapPolicy as WireOverlap,
  ScheduleRunKind,
  type Schedule,
  type ScheduleRun,
  type ScheduleServiceServer,
  type ScheduleSpec,
} from '../../clients/typescript/src/gen/sluice/v1/schedule.js';
import { DEFAULT_UPCOMING, decodeNameToken, encodeNameToken, upcomingCount } from '../broker/admin-input.js';
import { decodePageToken, encodePageToken, pageSize, retryToWire, stateToWire } from './convert.js';
import { parseEnqueueRequest, type EnqueueLimits } from './enqueue-input.js';
import { toServiceError } from './status.js';

function unary<Req, Res>(log: Logger, rpc: string, body: (req: Req) => Res | Promise<Res>) {
  return (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>) => {
    Promise.resolve()
      .then(() => body(call.request))
      .then(
        (res) => callback(null, res),
        (error) => callback(toServiceError(error, log, { rpc }) as Parameters<sendUnaryData<Res>>[0], null),
      );
  };
}

const CATCH_UP: Record<number, CatchUpPolicy> = {
  [WireCatchUp.CATCH_UP_POLICY_UNSPECIFIED]: SCHEDULE_DEFAULTS.catchUp,
  [WireCatchUp.CATCH_UP_POLICY_SKIP]: 'skip',
  [WireCatchUp.CATCH_UP_POLICY_ONCE]: 'once',
  [WireCatchUp.CATCH_UP_POLICY_ALL]: 'all',
};
const CATCH_UP_TO_WIRE: Record<CatchUpPolicy, WireCatchUp> = {
  skip: WireCatchUp.CATCH_UP_POLICY_SKIP,
  once: WireCatchUp.CATCH_UP_POLICY_ONCE,
  all: WireCatchUp.CATCH_UP_POLICY_ALL,
};
const OVERLAP: Record<number, OverlapPolicy> = {
  [WireOverlap.OVERLAP_POLICY_UNSPECIFIED]: SCHEDULE_DEFAULTS.overlap,
  [WireOverlap.OVERLAP_POLICY_ALLOW]: 'allow',
  [WireOverlap.OVERLAP_POLICY_SKIP]: 'skip',
  [WireOverlap.OVERLAP_POLICY_QUEUE_ONE]: 'queue_one',
};
const OVERLAP_TO_WIRE: Record<OverlapPolicy, WireOverlap> = {
  allow: WireOverlap.OVERLAP_POLICY_ALLOW,
  skip: WireOverlap.OVERLAP_POLICY_SKIP,
  queue_one: WireOverlap.OVERLAP_POLICY_QUEUE_ONE,
};

/** Spec fields by update_mask path (proto and JSON spellings). */
const MASK_FIELDS: Record<string, keyof ScheduleDefinition> = {
  name: 'name',
  cron: 'cron',
  timezone: 'timezone',
  job: 'job',
  start_at: 'startAt',
  startAt: 'startAt',
  end_at: 'endAt',
  endAt: 'endAt',
  catch_up: 'catchUp',
  catchUp: 'catchUp',
  catch_up_limit: 'catchUpLimit',
  catchUpLimit: 'catchUpLimit',
  overlap: 'overlap',
  history_limit: 'historyLimit',
  historyLimit: 'historyLimit',
};

function ref(req: { id: string; name: string }): ScheduleRef {
  if (req.id && req.name) throw invalidArgument('set id or name, not both');
  if (req.id) return { id: req.id };
  if (req.name) return { name: req.name };
  throw invalidArgument('set id or name to say which schedule');
}

function template(job: EnqueueRequest | undefined, limits: EnqueueLimits): JobTemplate {
  if (!job) throw invalidArgument('job is required: the job to enqueue at each fire (at least job.queue)');
  if (job.runAt) throw invalidArgument('job.run_at cannot be set on a schedule (each fire runs now; use job.delay_ms to delay it)');
  try {
    const { runAt: _runAt, ...input } = parseEnqueueRequest(job, limits);
    return input;
  } catch (error) {
    if (error instanceof SluiceError) throw new SluiceError(error.code, `job: ${error.message}`);
    throw error;
  }
}

function enumValue<T>(map: Record<number, T>, value: number, field: string): T {
  const v = map[value];
  if (v === undefined) throw invalidArgument(`unknown ${field} ${value}`);
  return v;
}

/** One field of a wire spec -> the definition's value. */
function field(spec: ScheduleSpec, key: keyof ScheduleDefinition, limits: EnqueueLimits): ScheduleDefinition[keyof ScheduleDefinition] {
  switch (key) {
    case 'name':
      return spec.name;
    case 'cron':
      return spec.cron;
    case 'timezone':
      return spec.timezone;
    case 'job':
      return template(spec.job, limits);
    case 'startAt':
      return spec.startAt ? time(spec.startAt, 'start_at') : null;
    case 'endAt':
      return spec.endAt ? time(spec.endAt, 'end_at') : null;
    case 'catchUp':
      return enumValue(CATCH_UP, spec.catchUp, 'catch_up');
    case 'catchUpLimit':
      return spec.catchUpLimit || SCHEDULE_DEFAULTS.catchUpLimit;
    case 'overlap':
      return enumValue(OVERLAP, spec.overlap, 'overlap');
    case 'historyLimit':
      return spec.historyLimit || SCHEDULE_DEFAULTS.historyLimit;
  }
}

function time(d: Date, name: string): number {
  const t = d.getTime();
  if (!Number.isFinite(t)) throw invalidArgument(`${name} is not a valid time`);
  return t;
}

const ALL_FIELDS: (keyof ScheduleDefinition)[] = ['name', 'cron', 'timezone', 'job', 'startAt', 'endAt', 'catchUp', 'catchUpLimit', 'overlap', 'historyLimit'];

export function definitionFromWire(spec: ScheduleSpec | undefined, limits: EnqueueLimits): ScheduleDefinition {
  if (!spec) throw invalidArgument('spec is required');
  const def = {} as Record<string, unknown>;
  for (const key of ALL_FIELDS) def[key] = field(spec, key, limits);
  return def as unknown as ScheduleDefinition;
}

function templateToWire(t: JobTemplate): EnqueueRequest {
  return {
    queue: t.queue,
    type: t.type,
    payload: JSON.parse(t.payload),
    payloadJson: Buffer.alloc(0),
    priority: t.priority,
    delayMs: t.delayMs,
    runAt: undefined,
    maxAttempts: t.maxAttempts ?? 0,
    retry: retryToWire(t.retry),
    leaseTimeoutMs: t.leaseTimeoutMs ?? 0,
    metadata: t.metadata ?? {},
    dedupKey: t.dedupKey ?? '',
    groupKey: t.groupKey ?? '',
  };
}

const date = (ms: number | null): Date | undefined => (ms === null ? undefined : new Date(ms));

export function scheduleToWire(row: ScheduleRow, upcoming: number[]): Schedule {
  const def = definitionOf(row);
  return {
    id: row.id,
    spec: {
      name: def.name,
      cron: def.cron,
      timezone: def.timezone,
      job: templateToWire(def.job),
      startAt: date(def.startAt),
      endAt: date(def.endAt),
      catchUp: CATCH_UP_TO_WIRE[def.catchUp],
      catchUpLimit: def.catchUpLimit,
      overlap: OVERLAP_TO_WIRE[def.overlap],
      historyLimit: def.historyLimit,
    },
    paused: row.paused === 1,
    nextFireAt: date(row.next_fire_at),
    lastFireAt: date(row.last_fire_at),
    upcoming: upcoming.map((t) => new Date(t)),
    createdAt: new Date(row.created_at),
    updatedAt: new Date(row.updated_at),
  };
}

export function runToWire(r: RunRow): ScheduleRun {
  return {
    seq: r.seq,
    scheduleId: r.schedule_id,
    fireTime: new Date(r.fire_time),
    kind: r.kind === 'manual' ? ScheduleRunKind.SCHEDULE_RUN_KIND_MANUAL : ScheduleRunKind.SCHEDULE_RUN_KIND_SCHEDULED,
    skipped: r.outcome === 'skipped',
    reason: r.reason ?? '',
    jobId: runJobId(r) ?? '',
    jobState: r.job_state ? stateToWire(r.job_state) : WireJobState.JOB_STATE_UNSPECIFIED,
    attempt: r.job_attempt ?? 0,
    startedAt: date(r.job_started_at),
    finishedAt: date(r.job_finished_at),
    durationMs: runDurationMs(r) ?? 0,
    lastError: r.job_last_error ?? '',
    createdAt: new Date(r.created_at),
  };
}

export function scheduleService(broker: Broker, log: Logger): ScheduleServiceServer {
  const schedules = broker.schedules;
  const limits = broker.config;
  const view = (row: ScheduleRow, n = DEFAULT_UPCOMING) => scheduleToWire(row, schedules.upcoming(row, n));
  return {
    createSchedule: unary(log, 'CreateSchedule', async (req) => view(await schedules.create(definitionFromWire(req.spec, limits), req.paused))),
    upsertSchedule: unary(log, 'UpsertSchedule', async (req) => {
      const { row, created } = await schedules.upsert(definitionFromWire(req.spec, limits));
      return { schedule: view(row), created };
    }),
    updateSchedule: unary(log, 'UpdateSchedule', async (req) => {
      const target = ref(req);
      const paths = req.updateMask ?? [];
      if (paths.length === 0) throw invalidArgument('update_mask is required: name the spec fields to change, e.g. "cron,timezone"');
      if (!req.spec) throw invalidArgument('spec is required: it holds the new values of the fields in update_mask');
      const changes: Record<string, unknown> = {};
      for (const path of paths) {
        const key = MASK_FIELDS[path];
        if (!key) throw invalidArgument(`update_mask: unknown field ${JSON.stringify(path.slice(0, 64))} (use ${Object.keys(MASK_FIELDS).filter((k) => !/[A-Z]/.test(k)).join(', ')})`);
        changes[key] = field(req.spec, key, limits);
      }
      return view(await schedules.update(target, changes as Partial<ScheduleDefinition>));
    }),
    pauseSchedule: unary(log, 'PauseSchedule', async (req) => view(await schedules.setPaused(ref(req), true))),
    resumeSchedule: unary(log, 'ResumeSchedule', async (req) => view(await schedules.setPaused(ref(req), false))),
    deleteSchedule: unary(log, 'DeleteSchedule', async (req) => {
      await schedules.delete(ref(req));
      return {};
    }),
    getSchedule: unary(log, 'GetSchedule', async (req) => {
      return view(await schedules.get(ref(req)), upcomingCount(req.upcomingCount));
    }),
    listSchedules: unary(log, 'ListSchedules', async (req) => {
      const size = pageSize(req.pageSize);
      const rows = await schedules.list(size, decodeNameToken(req.pageToken));
      return {
        schedules: rows.map((row) => scheduleToWire(row, row.next_fire_at === null ? [] : [row.next_fire_at])),
        nextPageToken: rows.length === size ? encodeNameToken(rows[rows.length - 1]!.name) : '',
      };
    }),
    triggerSchedule: unary(log, 'TriggerSchedule', async (req) => runToWire(await schedules.trigger(ref(req)))),
    listScheduleRuns: unary(log, 'ListScheduleRuns', async (req) => {
      const size = pageSize(req.pageSize);
      const runs = await schedules.runs(ref(req), size, decodePageToken(req.pageToken));
      return { runs: runs.map(runToWire), nextPageToken: runs.length === size ? encodePageToken(runs[runs.length - 1]!.seq) : '' };
    }),
  };
}
