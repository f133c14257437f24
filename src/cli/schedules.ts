import { Command, InvalidArgumentError } from 'commander';
import { stateName } from '../../clients/typescript/src/wire.js';
import { EnqueueRequest } from '../../clients/typescript/src/gen/sluice/v1/producer.js';
import { JobState } from '../../clients/typescript/src/gen/sluice/v1/job.js';
import {
  CatchUpPolicy,
  CreateScheduleRequest,
  DeleteScheduleRequest,
  GetScheduleRequest,
  ListScheduleRunsRequest,
  ListSchedulesRequest,
  OverlapPolicy,
  PauseScheduleRequest,
  ResumeScheduleRequest,
  ScheduleRunKind,
  TriggerScheduleRequest,
  UpsertScheduleRequest,
  type Schedule,
  type ScheduleRun,
} from '../../clients/typescript/src/gen/sluice/v1/schedule.js';
import { addConnectionOptions, examples, out, withSession, type ConnectionFlags, type Session } from './connection.js';
import { readPayload } from './enqueue.js';
import { duration, fields, json, table, when } from './output.js';
import { durationMs, keyValue, pageSize, positiveInt, priority, time } from './parse.js';

const iso = (d: Date | undefined): string | null => (d ? d.toISOString() : null);
const orNull = (s: string): string | null => (s === '' ? null : s);

const CATCH_UP: Record<string, CatchUpPolicy> = { skip: CatchUpPolicy.CATCH_UP_POLICY_SKIP, once: CatchUpPolicy.CATCH_UP_POLICY_ONCE, all: CatchUpPolicy.CATCH_UP_POLICY_ALL };
const OVERLAP: Record<string, OverlapPolicy> = { allow: OverlapPolicy.OVERLAP_POLICY_ALLOW, skip: OverlapPolicy.OVERLAP_POLICY_SKIP, queue_one: OverlapPolicy.OVERLAP_POLICY_QUEUE_ONE };
const nameOf = <T>(map: Record<string, T>, v: T): string => Object.entries(map).find(([, x]) => x === v)?.[0] ?? 'unspecified';

function choice<T>(map: Record<string, T>): (raw: string) => T {
  return (raw) => {
    const v = map[raw.toLowerCase()];
    if (v === undefined) throw new InvalidArgumentError(`expected one of ${Object.keys(map).join(', ')}.`);
    return v;
  };
}

/** The --json shape of a schedule (every field present, null when unset). */
export function scheduleView(s: Schedule) {
  const spec = s.spec!;
  const job = spec.job!;
  return {
    id: s.id,
    name: spec.name,
    cron: spec.cron,
    timezone: spec.timezone,
    paused: s.paused,
    queue: job.queue,
    type: orNull(job.type),
    payload: job.payload ?? null,
    catchUp: nameOf(CATCH_UP, spec.catchUp),
    catchUpLimit: spec.catchUpLimit,
    overlap: nameOf(OVERLAP, spec.overlap),
    historyLimit: spec.historyLimit,
    startAt: iso(spec.startAt),
    endAt: iso(spec.endAt),
    nextFireAt: iso(s.nextFireAt),
    lastFireAt: iso(s.lastFireAt),
    upcoming: s.upcoming.map((d) => d.toISOString()),
    createdAt: iso(s.createdAt),
    updatedAt: iso(s.updatedAt),
  };
}
type ScheduleView = ReturnType<typeof scheduleView>;

/** The --json shape of a run. */
export function runView(r: ScheduleRun) {
  return {
    seq: r.seq,
    fireTime: iso(r.fireTime),
    kind: r.kind === ScheduleRunKind.SCHEDULE_RUN_KIND_MANUAL ? 'manual' : 'scheduled',
    skipped: r.skipped,
    reason: orNull(r.reason),
    jobId: orNull(r.jobId),
    jobState: r.jobState === JobState.JOB_STATE_UNSPECIFIED ? null : stateName(r.jobState),
    attempt: r.attempt,
    startedAt: iso(r.startedAt),
    finishedAt: iso(r.finishedAt),
    durationMs: r.finishedAt ? r.durationMs : null,
    lastError: orNull(r.lastError),
  };
}
type RunView = ReturnType<typeof runView>;

const date = (s: string | null) => (s ? new Date(s) : undefined);

function scheduleDetail(s: ScheduleView): string {
  return fields([
    ['schedule', s.name],
    ['id', s.id],
    ['cron', `${s.cron} (${s.timezone})`],
    ['status', s.paused ? 'paused' : 'active'],
    ['job', `${s.queue}${s.type ? ` / ${s.type}` : ''} ${JSON.stringify(s.payload)}`],
    ['catch-up', `${s.catchUp} (limit ${s.catchUpLimit})`],
    ['overlap', s.overlap],
    ['history kept', String(s.historyLimit)],
    ['window', s.startAt || s.endAt ? `${s.startAt ?? '…'} to ${s.endAt ?? '…'}` : ''],
    ['next fire', when(date(s.nextFireAt)) || 'none left'],
    ['last fire', when(date(s.lastFireAt))],
    ['upcoming', s.upcoming.join(', ')],
  ]);
}

function print(s: Schedule, asJson: boolean | undefined, headline?: string): void {
  const view = scheduleView(s);
  if (asJson) out(json(view));
  else out((headline ? `${headline}\n\n` : '') + scheduleDetail(view));
}

interface DefineFlags extends ConnectionFlags {
  cron: string;
  queue: string;
  timezone?: string;
  payload?: string;
  type?: string;
  priority?: number;
  maxAttempts?: number;
  leaseTimeout?: number;
  meta?: Record<string, string>;
  group?: string;
  catchUp?: CatchUpPolicy;
  catchUpLimit?: number;
  overlap?: OverlapPolicy;
  historyLimit?: number;
  startAt?: Date;
  endAt?: Date;
  paused?: boolean;
}

function defineCommand(name: string, description: string, ...example: string[]): Command {
  const cmd = new Command(name)
    .description(description)
    .argument('<name>', 'schedule name')
    .requiredOption('--cron <expr>', "5 fields (min hour day month weekday), 6 with seconds first, or @daily, @hourly, ...")
    .requiredOption('--queue <queue>', 'queue of the job created at each fire')
    .option('--timezone <zone>', 'IANA time zone the expression is read in (default UTC)')
    .option('--payload <json>', "the job's JSON document; @file reads a file (default {})")
    .option('--type <type>', 'handler name inside the queue')
    .option('--priority <level>', 'low, normal, high or critical', priority)
    .option('--max-attempts <n>', 'attempts before the job is dead-lettered', positiveInt)
    .option('--lease-timeout <duration>', 'how long one attempt may run without a heartbeat', durationMs)
    .option('--meta <key=value>', 'metadata entry of each job (repeatable)', keyValue)
    .option('--group <key>', 'group key of each job')
    .option('--catch-up <policy>', 'missed fire times: skip (default), once, all', choice(CATCH_UP))
    .option('--catch-up-limit <n>', 'most missed fire times handled at once (default 100)', positiveInt)
    .option('--overlap <policy>', 'while an earlier job is unfinished: allow (default), skip, queue_one', choice(OVERLAP))
    .option('--history-limit <n>', 'run history rows kept (default 100)', positiveInt)
    .option('--start-at <time>', 'no fire before this ISO 8601 time', time)
    .option('--end-at <time>', 'no fire at or after this ISO 8601 time', time);
  addConnectionOptions(cmd);
  return examples(cmd, ...example);
}

function spec(name: string, f: DefineFlags) {
  return {
    name,
    cron: f.cron,
    timezone: f.timezone ?? '',
    job: EnqueueRequest.fromPartial({
      queue: f.queue,
      type: f.type ?? '',
      payloadJson: Buffer.from(readPayload(f.payload)),
      priority: f.priority ?? 0,
      maxAttempts: f.maxAttempts ?? 0,
      leaseTimeoutMs: f.leaseTimeout ?? 0,
      metadata: f.meta ?? {},
      groupKey: f.group ?? '',
    }),
    startAt: f.startAt,
    endAt: f.endAt,
    catchUp: f.catchUp ?? 0,
    catchUpLimit: f.catchUpLimit ?? 0,
    overlap: f.overlap ?? 0,
    historyLimit: f.historyLimit ?? 0,
  };
}

function nameSubcommand(name: string, description: string, example: string): Command {
  const cmd = new Command(name).description(description).argument('<name>', 'schedule name');
  addConnectionOptions(cmd);
  return examples(cmd, example);
}

function runsTable(runs: RunView[]): string {
  return table(runs, [
    { header: 'FIRE TIME', value: (r) => r.fireTime ?? '' },
    { header: 'KIND', value: (r) => r.kind },
    { header: 'OUTCOME', value: (r) => (r.skipped ? 'skipped' : (r.jobState ?? 'job gone')) },
    { header: 'JOB', value: (r) => r.jobId ?? '' },
    { header: 'ATTEMPT', value: (r) => (r.jobId ? String(r.attempt) : ''), right: true },
    { header: 'DURATION', value: (r) => (r.durationMs === null ? '' : duration(r.durationMs)), right: true },
    { header: 'NOTE', value: (r) => r.reason ?? r.lastError ?? '' },
  ]);
}

export function scheduleCommands(): Command[] {
  const list = new Command('schedules').description('every cron schedule with its next and last fire');
  addConnectionOptions(list);
  examples(list, 'sluice schedules', 'sluice schedules --json | jq ".schedules[] | {name, nextFireAt}"');
  withSession(list, async (session, flags) => {
    const c = session.clients.schedules;
    const all: ScheduleView[] = [];
    let pageToken = '';
    do {
      const page = await session.call(c, c.listSchedules, ListSchedulesRequest.fromPartial({ pageSize: 1000, pageToken }));
      all.push(...page.schedules.map(scheduleView));
      pageToken = page.nextPageToken;
    } while (pageToken);
    if (flags.json) out(json({ schedules: all }));
    else if (all.length === 0) process.stderr.write('no schedules yet (sluice schedule create --help)\n');
    else
      out(
        table(all, [
          { header: 'SCHEDULE', value: (s) => s.name },
          { header: 'CRON', value: (s) => s.cron },
          { header: 'TIMEZONE', value: (s) => s.timezone },
          { header: 'QUEUE', value: (s) => s.queue },
          { header: 'STATUS', value: (s) => (s.paused ? 'paused' : 'active') },
          { header: 'NEXT FIRE', value: (s) => s.nextFireAt ?? 'none left' },
          { header: 'LAST FIRE', value: (s) => s.lastFireAt ?? '' },
        ]),
      );
  });

  const schedule = new Command('schedule').description('cron schedules: create, upsert, show, runs, trigger, pause, resume, delete');
  examples(schedule, `sluice schedule upsert invoices --cron '0 2 * * *' --timezone Europe/Berlin --queue billing --catch-up once`, 'sluice schedule runs invoices');

  const create = defineCommand('create', 'create a schedule (fails with ALREADY_EXISTS if the name is taken)', `sluice schedule create usage-report --cron '@hourly' --queue reports --payload '{"kind":"usage"}'`).option('--paused', 'create it paused');
  withSession<DefineFlags>(create, async (session, flags, name: string) => {
    const c = session.clients.schedules;
    print(await session.call(c, c.createSchedule, CreateScheduleRequest.fromPartial({ spec: spec(name, flags), paused: flags.paused ?? false })), flags.json, `created ${name}`);
  });

  const upsert = defineCommand('upsert', 'create the schedule or replace the definition of the one with this name (keeps id, history, paused)', `sluice schedule upsert invoices --cron '0 2 * * *' --timezone Europe/Berlin --queue billing --overlap skip`);
  withSession<DefineFlags>(upsert, async (session, flags, name: string) => {
    const c = session.clients.schedules;
    const res = await session.call(c, c.upsertSchedule, UpsertScheduleRequest.fromPartial({ spec: spec(name, flags) }));
    if (flags.json) out(json({ created: res.created, schedule: scheduleView(res.schedule!) }));
    else print(res.schedule!, false, `${res.created ? 'created' : 'updated'} ${name}`);
  });

  const show = nameSubcommand('show', 'one schedule with its next fire times', 'sluice schedule show invoices --upcoming 10').option('--upcoming <n>', 'how many next fire times (default 5, at most 100)', positiveInt);
  withSession<ConnectionFlags & { upcoming?: number }>(show, async (session, flags, name: string) => {
    const c = session.clients.schedules;
    print(await session.call(c, c.getSchedule, GetScheduleRequest.fromPartial({ name, upcomingCount: flags.upcoming ?? 0 })), flags.json);
  });

  const simple = (verb: string, done: string, description: string, call: (session: Session, name: string) => Promise<Schedule>) => {
    const cmd = nameSubcommand(verb, description, `sluice schedule ${verb} invoices`);
    withSession(cmd, async (session: Session, flags: ConnectionFlags, name: string) => print(await call(session, name), flags.json, `${done} ${name}`));
    return cmd;
  };
  const pause = simple('pause', 'paused', 'stop firing until resumed', (s, name) => s.call(s.clients.schedules, s.clients.schedules.pauseSchedule, PauseScheduleRequest.fromPartial({ name })));
  const resume = simple('resume', 'resumed', 'fire again from the next future fire time', (s, name) => s.call(s.clients.schedules, s.clients.schedules.resumeSchedule, ResumeScheduleRequest.fromPartial({ name })));

  const del = nameSubcommand('delete', 'delete the schedule and its history (its jobs stay)', 'sluice schedule delete invoices');
  withSession(del, async (session: Session, flags: ConnectionFlags, name: string) => {
    const c = session.clients.schedules;
    await session.call(c, c.deleteSchedule, DeleteScheduleRequest.fromPartial({ name }));
    if (flags.json) out(json({ deleted: name }));
    else out(`deleted ${name}\n`);
  });

  const trigger = nameSubcommand('trigger', 'run the schedule once now (recorded as manual); prints the job id', 'sluice schedule trigger invoices');
  withSession(trigger, async (session: Session, flags: ConnectionFlags, name: string) => {
    const c = session.clients.schedules;
    const run = runView(await session.call(c, c.triggerSchedule, TriggerScheduleRequest.fromPartial({ name })));
    if (flags.json) out(json(run));
    else out(run.skipped ? `skipped: ${run.reason}\n` : `${run.jobId}\n`);
  });

  const runs = nameSubcommand('runs', 'run history, newest first: fire time, job and its state, or why skipped', 'sluice schedule runs invoices --limit 20')
    .option('--limit <n>', 'most runs to show (default 100)', pageSize)
    .option('--page-token <token>', 'next page (printed after a full page)');
  withSession<ConnectionFlags & { limit?: number; pageToken?: string }>(runs, async (session, flags, name: string) => {
    const c = session.clients.schedules;
    const res = await session.call(c, c.listScheduleRuns, ListScheduleRunsRequest.fromPartial({ name, pageSize: flags.limit ?? 0, pageToken: flags.pageToken ?? '' }));
    const views = res.runs.map(runView);
    if (flags.json) out(json({ runs: views, nextPageToken: orNull(res.nextPageToken) }));
    else if (views.length === 0) process.stderr.write(`no runs of ${name} yet\n`);
    else {
      out(runsTable(views));
      if (res.nextPageToken) process.stderr.write(`more: --page-token ${res.nextPageToken}\n`);
    }
  });

  for (const sub of [create, upsert, show, runs, trigger, pause, resume, del]) schedule.addCommand(sub);
  return [list, schedule];
}
