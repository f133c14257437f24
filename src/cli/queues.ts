import { Command, InvalidArgumentError } from 'commander';
import {
  DeleteQueueRequest,
  GetQueueRequest,
  ListQueuesRequest,
  PauseQueueRequest,
  ResumeQueueRequest,
  QueueLimits,
  UpdateQueueRequest,
  type Queue,
} from '../../clients/typescript/src/gen/sluice/v1/admin.js';
import { addConnectionOptions, examples, out, withSession, type ConnectionFlags, type Session } from './connection.js';
import { confirm } from './confirm.js';
import { usageError } from './exit.js';
import { count, duration, fields, json, table } from './output.js';
import { durationMs, nonNegativeInt, nonNegativeNumber, positiveInt, rate } from './parse.js';
import { queueView, type LimitsView, type QueueView } from './views.js';

function queueTable(queues: QueueView[]): string {
  return table(queues, [
    { header: 'QUEUE', value: (q) => q.name },
    { header: 'STATUS', value: (q) => (q.paused ? 'paused' : 'running') },
    { header: 'SCHEDULED', value: (q) => count(q.counts.scheduled), right: true },
    { header: 'PENDING', value: (q) => count(q.counts.pending), right: true },
    { header: 'ACTIVE', value: (q) => count(q.counts.active), right: true },
    { header: 'COMPLETED', value: (q) => count(q.counts.completed), right: true },
    { header: 'DEAD', value: (q) => count(q.counts.dead), right: true },
    { header: 'CANCELLED', value: (q) => count(q.counts.cancelled), right: true },
    { header: 'CONSUMERS', value: (q) => count(q.consumers), right: true },
  ]);
}

function queueDetail(q: QueueView): string {
  const r = q.retry;
  const retry = r
    ? [r.initialMs !== null && `initial ${duration(r.initialMs)}`, r.multiplier !== null && `x${r.multiplier}`, r.maxMs !== null && `max ${duration(r.maxMs)}`, r.jitter !== null && `jitter ${r.jitter}`]
        .filter(Boolean)
        .join(', ')
    : '';
  return fields([
    ['queue', q.name],
    ['status', q.paused ? 'paused (enqueues accepted, nothing delivered)' : 'running'],
    ['scheduled', count(q.counts.scheduled)],
    ['pending', count(q.counts.pending)],
    ['active', count(q.counts.active)],
    ['completed', count(q.counts.completed)],
    ['dead', count(q.counts.dead)],
    ['cancelled', count(q.counts.cancelled)],
    ['consumers', count(q.consumers)],
    ['max attempts', q.maxAttempts ? String(q.maxAttempts) : 'broker default'],
    ['lease timeout', q.leaseTimeoutMs ? duration(q.leaseTimeoutMs) : 'broker default'],
    ['retry', retry || 'broker default'],
    ['retention', retention(q)],
    ['limits', limitsText(q.limits)],
  ]);
}

/** How long finished (completed, cancelled) jobs are kept; dead jobs are always kept. */
function retention(q: QueueView): string {
  const parts = [q.retentionMaxAgeMs ? `for ${duration(q.retentionMaxAgeMs)}` : '', q.retentionMaxCount ? `at most ${count(q.retentionMaxCount)}` : ''].filter(Boolean);
  return parts.length ? `finished jobs kept ${parts.join(', ')}` : 'finished jobs kept forever';
}

const rateText = (r: { count: number; intervalMs: number; burst: number }) => `${r.count}/${duration(r.intervalMs)}${r.burst ? ` (burst ${r.burst})` : ''}`;

function limitsText(l: LimitsView): string {
  const parts = [
    l.rate && `rate ${rateText(l.rate)}`,
    l.groupRate && `per-group rate ${rateText(l.groupRate)}`,
    l.concurrency && `concurrency ${l.concurrency}`,
    l.groupConcurrency && `per-group concurrency ${l.groupConcurrency}`,
    l.fairGroups && 'fair across groups',
    l.agingMs && `aging ${duration(l.agingMs)}`,
    l.retryOvertake && 'retries may be overtaken',
    Object.keys(l.groupRates).length > 0 && `${Object.keys(l.groupRates).length} per-key rate(s)`,
  ].filter(Boolean);
  return parts.length ? parts.join(', ') : 'none';
}

function printQueue(q: Queue, asJson: boolean | undefined, headline?: string): void {
  const view = queueView(q);
  if (asJson) out(json(view));
  else out((headline ? `${headline}\n\n` : '') + queueDetail(view));
}

interface UpdateFlags extends ConnectionFlags {
  maxAttempts?: number;
  leaseTimeout?: number;
  retryInitial?: number;
  retryMultiplier?: number;
  retryMax?: number;
  retryJitter?: number;
  create?: boolean;
  retentionMaxAge?: number;
  retentionMaxCount?: number;
  rate?: { count: number; intervalMs: number; burst: number };
  groupRate?: { count: number; intervalMs: number; burst: number };
  concurrency?: number;
  groupConcurrency?: number;
  fairGroups?: boolean;
  aging?: number;
  /** false with --no-limits (commander's negatable flag). */
  limits?: boolean;
}

/** "0/1s" (or "off") removes a rate limit; anything else is a rate. */
function rateOrOff(raw: string) {
  if (raw === 'off' || /^0\//.test(raw)) return { count: 0, intervalMs: 0, burst: 0 };
  return rate(raw);
}

function onOff(raw: string): boolean {
  if (['on', 'true', 'yes'].includes(raw)) return true;
  if (['off', 'false', 'no'].includes(raw)) return false;
  throw new InvalidArgumentError('expected on or off.');
}

/** A command taking one <queue> argument, with the connection flags and an example. */
function queueSubcommand(name: string, description: string, ...example: string[]): Command {
  const cmd = new Command(name).description(description).argument('<queue>', 'queue name');
  addConnectionOptions(cmd);
  return examples(cmd, ...example);
}

export function queueCommands(): Command[] {
  const queues = new Command('queues').description('every queue with its job counts per state, paused flag and consumers');
  addConnectionOptions(queues);
  examples(queues, 'sluice queues', 'sluice queues --json | jq ".queues[] | {name, dead: .counts.dead}"');
  withSession(queues, async (session, flags) => {
    const res = await session.call(session.admin, session.admin.listQueues, ListQueuesRequest.fromPartial({}));
    const views = res.queues.map(queueView);
    if (flags.json) out(json({ queues: views }));
    else if (views.length === 0) process.stderr.write('no queues yet (a queue appears with its first job or setting)\n');
    else out(queueTable(views));
  });

  const queue = new Command('queue').description('inspect and steer one queue: show, pause, resume, update, delete');
  examples(queue, 'sluice queue pause email', 'sluice queue update email --max-attempts 5 --retry-initial 2s');

  const show = queueSubcommand('show', "one queue's counts and settings", 'sluice queue show email');
  withSession(show, async (session: Session, flags: ConnectionFlags, name: string) => {
    printQueue(await session.call(session.admin, session.admin.getQueue, GetQueueRequest.fromPartial({ queue: name })), flags.json);
  });

  const pause = queueSubcommand('pause', 'stop deliveries from a queue (enqueues are still accepted)', 'sluice queue pause email', 'sluice queue pause imports --create').option(
    '--create',
    'create the queue (paused) when it does not exist yet, instead of failing with NOT_FOUND',
  );
  withSession(pause, async (session: Session, flags: ConnectionFlags & { create?: boolean }, name: string) => {
    const request = PauseQueueRequest.fromPartial({ queue: name, createIfMissing: flags.create ?? false });
    printQueue(await session.call(session.admin, session.admin.pauseQueue, request), flags.json, `paused ${name}`);
  });

  const resume = queueSubcommand('resume', 'resume deliveries from a paused queue', 'sluice queue resume email');
  withSession(resume, async (session: Session, flags: ConnectionFlags, name: string) => {
    printQueue(await session.call(session.admin, session.admin.resumeQueue, ResumeQueueRequest.fromPartial({ queue: name })), flags.json, `resumed ${name}`);
  });

  const update = queueSubcommand('update', "change a queue's defaults for new attempts (unset flags keep their value)", 'sluice queue update email --max-attempts 5 --lease-timeout 2m --retry-initial 1s --retry-max 1h', 'sluice queue update email --retention-max-age 3d --retention-max-count 100000', 'sluice queue update email --rate 100/1s --group-concurrency 1', 'sluice queue update email --no-limits')
    .option('--max-attempts <n>', 'attempts before dead-lettering', positiveInt)
    .option('--lease-timeout <duration>', 'how long an attempt may run without a heartbeat', durationMs)
    .option('--retry-initial <duration>', 'delay before the first retry', durationMs)
    .option('--retry-multiplier <x>', 'growth of the delay per attempt (>= 1)', nonNegativeNumber)
    .option('--retry-max <duration>', 'upper bound of one delay', durationMs)
    .option('--retry-jitter <fraction>', 'random spread, 0..1 (0.2 = +/-20%)', nonNegativeNumber)
    .option('--create', 'create the queue with these defaults when it does not exist yet, instead of failing with NOT_FOUND')
    .option('--retention-max-age <duration>', 'delete completed and cancelled jobs this long after they finished (0 = never by age)', durationMs)
    .option('--retention-max-count <n>', 'keep at most this many completed and cancelled jobs (0 = no limit)', nonNegativeInt)
    .option('--rate <count/interval>', 'rate limit of the whole queue, e.g. 100/1s or 50/1s:100 (burst 100); 0/1s removes it', rateOrOff)
    .option('--group-rate <count/interval>', 'rate limit per group key, e.g. 10/1s; 0/1s removes it', rateOrOff)
    .option('--concurrency <n>', 'most active jobs of the queue (0 = no cap)', nonNegativeInt)
    .option('--group-concurrency <n>', 'most active jobs per group key (1 = strict per-key order, 0 = no cap)', nonNegativeInt)
    .option('--fair-groups <on|off>', 'round-robin across group keys', onOff)
    .option('--aging <duration>', 'a waiting job is served one priority level higher per this much waiting (0 = off)', durationMs)
    .option('--no-limits', 'remove every dispatch limit of the queue');
  withSession<UpdateFlags>(update, async (session, flags, name: string) => {
    const retry = {
      initialMs: flags.retryInitial,
      multiplier: flags.retryMultiplier,
      maxMs: flags.retryMax,
      jitter: flags.retryJitter,
    };
    const anyRetry = Object.values(retry).some((v) => v !== undefined);
    const limitFlags = [flags.rate, flags.groupRate, flags.concurrency, flags.groupConcurrency, flags.fairGroups, flags.aging];
    const anyLimit = limitFlags.some((v) => v !== undefined) || flags.limits === false;
    const others = [flags.maxAttempts, flags.leaseTimeout, flags.retentionMaxAge, flags.retentionMaxCount];
    if (!anyRetry && !anyLimit && others.every((v) => v === undefined)) {
      throw usageError('queue update: nothing to change (give --max-attempts, --lease-timeout, a --retry-* flag, a --retention-* flag or a limit flag)');
    }
    // The RPC replaces the limits as a whole: start from the queue's current ones, so a flag
    // left out keeps its value (commander turns --no-limits into limits === false).
    let limits: QueueLimits | undefined;
    if (anyLimit) {
      const current = flags.limits === false ? QueueLimits.fromPartial({}) : (await session.call(session.admin, session.admin.getQueue, GetQueueRequest.fromPartial({ queue: name }))).limits ?? QueueLimits.fromPartial({});
      limits = QueueLimits.fromPartial({
        ...current,
        ...(flags.rate !== undefined && { rate: flags.rate.count === 0 ? undefined : flags.rate }),
        ...(flags.groupRate !== undefined && { groupRate: flags.groupRate.count === 0 ? undefined : flags.groupRate }),
        ...(flags.concurrency !== undefined && { concurrency: flags.concurrency }),
        ...(flags.groupConcurrency !== undefined && { groupConcurrency: flags.groupConcurrency }),
        ...(flags.fairGroups !== undefined && { fairGroups: flags.fairGroups }),
        ...(flags.aging !== undefined && { agingMs: flags.aging }),
      });
    }
    const request = UpdateQueueRequest.fromPartial({
      queue: name,
      maxAttempts: flags.maxAttempts ?? 0,
      leaseTimeoutMs: flags.leaseTimeout ?? 0,
      retry: anyRetry ? retry : undefined,
      createIfMissing: flags.create ?? false,
      retentionMaxAgeMs: flags.retentionMaxAge,
      retentionMaxCount: flags.retentionMaxCount,
      limits,
    });
    printQueue(await session.call(session.admin, session.admin.updateQueue, request), flags.json, `updated ${name}`);
  });

  const del = queueSubcommand('delete', 'delete a queue that has no scheduled, pending, active or dead jobs (its completed and cancelled jobs go with it)', 'sluice queue delete old-imports --yes').option(
    '--yes',
    'do not ask for confirmation (required without a terminal)',
  );
  withSession(del, async (session: Session, flags: ConnectionFlags & { yes?: boolean }, name: string) => {
    if (!flags.yes && !(await confirm(`Delete queue ${name} with its completed and cancelled jobs?`, `queue delete ${name}`))) {
      process.stderr.write('nothing deleted\n');
      if (flags.json) out(json({ deleted: null }));
      return;
    }
    await session.call(session.admin, session.admin.deleteQueue, DeleteQueueRequest.fromPartial({ queue: name }));
    if (flags.json) out(json({ deleted: name }));
    else out(`deleted queue ${name}\n`);
  });

  for (const sub of [show, pause, resume, update, del]) queue.addCommand(sub);
  return [queues, queue];
}
