import { Command } from 'commander';
import { CancelJobRequest, GetJobRequest, WatchJobRequest, type JobEvent } from '../../clients/typescript/src/gen/sluice/v1/producer.js';
import { GetJobHistoryRequest, ListJobsRequest } from '../../clients/typescript/src/gen/sluice/v1/admin.js';
import { status as Status, type ServiceError } from '@grpc/grpc-js';
import { addConnectionOptions, examples, out, withSession, type ConnectionFlags, type Session } from './connection.js';
import { EXIT_JOB_FAILED } from './exit.js';
import { ago, clip, compactJson, duration, fields, json, table, when, type Column } from './output.js';
import { jobState, pageSize, STATE_NAMES } from './parse.js';
import { date, eventView, historyView, jobView, TERMINAL_STATES, type EventView, type HistoryView, type JobView } from './views.js';

/** The detail view of one job (`sluice job`, `sluice cancel`). */
export function jobDetail(j: JobView): string {
  const now = Date.now();
  let text = fields([
    ['id', j.id],
    ['queue', j.queue],
    ['type', j.type ?? ''],
    ['state', j.state],
    ['priority', j.priority],
    ['attempt', `${j.attempt} of ${j.maxAttempts}`],
    ['group', j.groupKey ?? ''],
    ['dedup key', j.dedupKey ?? ''],
    ['worker', j.workerId ?? ''],
    ['created', when(date(j.createdAt), now)],
    ['run at', when(date(j.runAt), now)],
    ['started', when(date(j.startedAt), now)],
    ['finished', when(date(j.finishedAt), now)],
    ['lease expires', when(date(j.leaseExpiresAt), now)],
    ['lease timeout', duration(j.leaseTimeoutMs)],
    ['metadata', Object.entries(j.metadata).map(([k, v]) => `${k}=${v}`).join(' ')],
    ['payload', compactJson(j.payload)],
    ['progress', compactJson(j.progress)],
    ['result', compactJson(j.result)],
    ['last error', j.lastError ?? ''],
  ]);
  if (j.errors.length > 0) {
    text += `\nErrors:\n${indent(
      table(j.errors, [
        { header: 'ATTEMPT', value: (e) => String(e.attempt), right: true },
        { header: 'AT', value: (e) => e.at ?? '' },
        { header: 'RETRYABLE', value: (e) => (e.nonRetryable ? 'no' : 'yes') },
        { header: 'MESSAGE', value: (e) => clip(e.message, 100) },
      ]),
    )}`;
  }
  return text;
}

/** The job's history as a table under the detail view. */
export function historyTable(history: HistoryView[]): string {
  return `\nHistory:\n${indent(
    table(history, [
      { header: 'AT', value: (h) => h.at ?? '' },
      { header: 'KIND', value: (h) => h.kind },
      { header: 'ATTEMPT', value: (h) => String(h.attempt), right: true },
      { header: 'WORKER', value: (h) => h.workerId ?? '' },
      { header: 'LEASE', value: (h) => h.leaseId ?? '' },
      { header: 'ERROR / DETAIL', value: (h) => clip([h.error, h.detail].filter(Boolean).join(' — '), 80) },
    ]),
  )}`;
}

/**
 * The job's history, or null from a broker without GetJobHistory (UNIMPLEMENTED), so `sluice job`
 * still works against an older broker.
 */
async function historyOf(session: Session, id: string): Promise<HistoryView[] | null> {
  try {
    const res = await session.call(session.admin, session.admin.getJobHistory, GetJobHistoryRequest.fromPartial({ id }));
    return res.entries.map(historyView);
  } catch (error) {
    if ((error as ServiceError).code === Status.UNIMPLEMENTED) return null;
    throw error;
  }
}

function indent(text: string): string {
  return text.replace(/^(?=.)/gm, '  ');
}

const JOB_COLUMNS: Column<JobView>[] = [
  { header: 'ID', value: (j) => j.id },
  { header: 'QUEUE', value: (j) => j.queue },
  { header: 'TYPE', value: (j) => j.type ?? '' },
  { header: 'STATE', value: (j) => j.state },
  { header: 'ATTEMPT', value: (j) => `${j.attempt}/${j.maxAttempts}`, right: true },
  { header: 'PRIORITY', value: (j) => j.priority },
  { header: 'GROUP', value: (j) => j.groupKey ?? '' },
  { header: 'CREATED', value: (j) => ago(date(j.createdAt)) },
  { header: 'LAST ERROR', value: (j) => clip(j.lastError ?? '', 50) },
];

/** A page of jobs as a table, with how to get the next page on stderr. */
export function printJobPage(jobs: JobView[], nextPageToken: string, asJson: boolean | undefined): void {
  if (asJson) {
    out(json({ jobs, nextPageToken: nextPageToken || null }));
    return;
  }
  if (jobs.length === 0) process.stderr.write('no jobs match\n');
  else out(table(jobs, JOB_COLUMNS));
  // The hint goes to stderr so that stdout stays the table alone.
  if (nextPageToken) process.stderr.write(`more jobs: run again with --page-token ${nextPageToken}\n`);
}

interface ListFlags extends ConnectionFlags {
  queue?: string;
  state?: number;
  type?: string;
  group?: string;
  limit: number;
  pageToken?: string;
}

export function jobCommands(): Command[] {
  const job = new Command('job').description('show one job: state, attempts, payload, result, errors and its history').argument('<id>', 'job id');
  addConnectionOptions(job);
  examples(job, 'sluice job 019a2b3c-…', 'sluice job 019a2b3c-… --json | jq .state');
  withSession(job, async (session, flags, id: string) => {
    const [wire, history] = await Promise.all([session.call(session.producer, session.producer.getJob, GetJobRequest.fromPartial({ id })), historyOf(session, id)]);
    const view = jobView(wire);
    if (flags.json) out(json({ ...view, history }));
    else out(jobDetail(view) + (history ? historyTable(history) : ''));
  });

  const jobs = new Command('jobs')
    .description('list jobs, newest first, filtered and paginated')
    .option('--queue <queue>', 'only this queue')
    .option('--state <state>', `only this state: ${STATE_NAMES.join(', ')}`, jobState)
    .option('--type <type>', 'only this type')
    .option('--group <key>', 'only this group key')
    .option('--limit <n>', 'page size, 1-1000', pageSize, 50)
    .option('--page-token <token>', 'the next page, from the previous page (printed after the table)');
  addConnectionOptions(jobs);
  examples(jobs, 'sluice jobs --queue email --state pending', 'sluice jobs --state dead --type email.send --limit 20', 'sluice jobs --json | jq -r ".jobs[].id"');
  withSession<ListFlags>(jobs, async (session, flags) => {
    const request = ListJobsRequest.fromPartial({
      queue: flags.queue ?? '',
      state: flags.state ?? 0,
      type: flags.type ?? '',
      groupKey: flags.group ?? '',
      pageSize: flags.limit,
      pageToken: flags.pageToken ?? '',
    });
    const res = await session.call(session.admin, session.admin.listJobs, request);
    printJobPage(res.jobs.map(jobView), res.nextPageToken, flags.json);
  });

  const cancel = new Command('cancel')
    .description("cancel a job that has not finished (an active job's worker is told to stop)")
    .argument('<id>', 'job id')
    .option('--reason <text>', "recorded in the job's error history");
  addConnectionOptions(cancel);
  examples(cancel, 'sluice cancel 019a2b3c-… --reason "customer asked"');
  withSession<ConnectionFlags & { reason?: string }>(cancel, async (session, flags, id: string) => {
    const wire = await session.call(session.producer, session.producer.cancelJob, CancelJobRequest.fromPartial({ id, reason: flags.reason ?? '' }));
    const view = jobView(wire);
    if (flags.json) out(json(view));
    else out(`cancelled ${view.id} (${view.state})\n`);
  });

  const watch = new Command('watch')
    .description('follow a job live until it completes, dies or is cancelled')
    .argument('<id>', 'job id')
    .option('--exit-status', 'exit 3 when the job ends dead or cancelled (0 only when it completed)');
  addConnectionOptions(watch);
  watch.addHelpText('after', '\nWith --json, prints one JSON document per event (JSON Lines).');
  examples(watch, 'sluice watch 019a2b3c-…', 'sluice enqueue email \'{"to":"a@b.c"}\' --json | jq -r .id | xargs sluice watch --exit-status');
  withSession<ConnectionFlags & { exitStatus?: boolean }>(watch, async (session, flags, id: string) => {
    const last = await follow(session.stream(session.producer, session.producer.watchJob, WatchJobRequest.fromPartial({ id })), (e) =>
      out(flags.json ? JSON.stringify(e) + '\n' : eventLine(e)),
    );
    if (flags.exitStatus && last?.state !== 'completed') process.exitCode = EXIT_JOB_FAILED;
  });

  return [job, jobs, cancel, watch];
}

/** Reads a WatchJob stream to its end; resolves with the last event (rejects on a failed call). */
function follow(stream: NodeJS.EventEmitter, onEvent: (e: EventView) => void): Promise<EventView | undefined> {
  return new Promise((resolve, reject) => {
    let last: EventView | undefined;
    stream.on('data', (e: JobEvent) => {
      last = eventView(e);
      onEvent(last);
    });
    stream.on('error', reject);
    stream.on('end', () => resolve(last));
  });
}

function eventLine(e: EventView): string {
  const parts = [e.at ?? new Date().toISOString(), e.state.padEnd(9), `attempt ${e.attempt}`];
  if (e.progress !== null) parts.push(`progress ${compactJson(e.progress)}`);
  if (e.error) parts.push(`error ${clip(e.error, 100)}`);
  if (e.result !== null) parts.push(`result ${clip(compactJson(e.result), 100)}`);
  if (TERMINAL_STATES.includes(e.state)) parts.push('(final)');
  return parts.join('  ') + '\n';
}
