import { Command } from 'commander';
import {
  DeadLetterFilter,
  ListDeadLettersRequest,
  ListQueuesRequest,
  PurgeDeadLettersRequest,
  ReplayDeadLettersRequest,
} from '../../clients/typescript/src/gen/sluice/v1/admin.js';
import { addConnectionOptions, examples, out, withSession, type ConnectionFlags, type Session } from './connection.js';
import { confirm } from './confirm.js';
import { usageError } from './exit.js';
import { count, json } from './output.js';
import { pageSize, timeOrAgo } from './parse.js';
import { printJobPage } from './jobs.js';
import { jobView } from './views.js';

interface FilterFlags extends ConnectionFlags {
  queue?: string;
  type?: string;
  deadBefore?: Date;
  all?: boolean;
  yes?: boolean;
}

/** The filter options shared by replay and purge (the same DeadLetterFilter as the RPCs). */
function withFilter(cmd: Command): Command {
  return cmd
    .argument('[ids...]', 'dead job ids')
    .option('--queue <queue>', 'every dead job of this queue')
    .option('--type <type>', 'narrow to this type')
    .option('--dead-before <time>', 'narrow to jobs that died at or before this time (ISO 8601, or a duration ago: 1h, 7d)', timeOrAgo)
    .option('--all', 'every dead job of every queue (alone, without other filters)');
}

function filterFrom(ids: string[], flags: FilterFlags, verb: string): DeadLetterFilter {
  if (ids.length === 0 && !flags.queue && !flags.all) {
    throw usageError(`dlq ${verb}: say which dead jobs: job ids, --queue <queue>, or --all for every dead job`);
  }
  return DeadLetterFilter.fromPartial({ ids, queue: flags.queue ?? '', type: flags.type ?? '', deadBefore: flags.deadBefore, all: flags.all ?? false });
}

/** "queue email, type x, dead before T" — what the filter selects, for the prompt. */
function describeFilter(f: DeadLetterFilter): string {
  const parts: string[] = [];
  if (f.ids.length) parts.push(`${f.ids.length} job id(s)`);
  if (f.all) parts.push('every queue');
  if (f.queue) parts.push(`queue ${f.queue}`);
  if (f.type) parts.push(`type ${f.type}`);
  if (f.deadBefore) parts.push(`dead before ${f.deadBefore.toISOString()}`);
  return parts.join(', ');
}

/** How many dead jobs the filter can reach at most, from the per-queue counts (no table scan). */
async function deadUpperBound(session: Session, f: DeadLetterFilter): Promise<number | undefined> {
  if (f.ids.length) return f.ids.length;
  const { queues } = await session.call(session.admin, session.admin.listQueues, ListQueuesRequest.fromPartial({}));
  return queues.filter((q) => f.all || q.name === f.queue).reduce((n, q) => n + (q.counts?.dead ?? 0), 0);
}

/**
 * Purge is the one irreversible command: without --yes it asks on a terminal, and refuses
 * (exit 2) when there is no terminal to ask on, so a script never deletes by accident.
 */
async function confirmPurge(session: Session, f: DeadLetterFilter): Promise<boolean> {
  if (!process.stdin.isTTY) return confirm('', 'dlq purge deletes dead jobs for good');
  const bound = await deadUpperBound(session, f);
  if (bound === 0) return true; // nothing it could delete: no question to ask
  return confirm(`Permanently delete up to ${count(bound ?? 0)} dead job(s) (${describeFilter(f)})?`, 'dlq purge');
}

export function dlqCommand(): Command {
  const dlq = new Command('dlq').description('dead letter queue: list, replay, purge');
  examples(dlq, 'sluice dlq list --queue email', 'sluice dlq replay --queue email', 'sluice dlq purge --queue email --dead-before 7d --yes');

  const list = new Command('list')
    .description('list dead jobs, newest first')
    .option('--queue <queue>', 'only this queue')
    .option('--type <type>', 'only this type')
    .option('--limit <n>', 'page size, 1-1000', pageSize, 50)
    .option('--page-token <token>', 'the next page, from the previous page');
  addConnectionOptions(list);
  examples(list, 'sluice dlq list', 'sluice dlq list --queue email --json | jq -r ".jobs[] | [.id, .lastError] | @tsv"');
  withSession<ConnectionFlags & { queue?: string; type?: string; limit: number; pageToken?: string }>(list, async (session, flags) => {
    const request = ListDeadLettersRequest.fromPartial({ queue: flags.queue ?? '', type: flags.type ?? '', pageSize: flags.limit, pageToken: flags.pageToken ?? '' });
    const res = await session.call(session.admin, session.admin.listDeadLetters, request);
    printJobPage(res.jobs.map(jobView), res.nextPageToken, flags.json);
  });

  const replay = withFilter(new Command('replay').description('put dead jobs back to pending with their attempts reset'));
  addConnectionOptions(replay);
  examples(replay, 'sluice dlq replay 019a2b3c-… 019a2b3d-…', 'sluice dlq replay --queue email --type email.send', 'sluice dlq replay --all');
  withSession<FilterFlags>(replay, async (session, flags, ids: string[]) => {
    const filter = filterFrom(ids, flags, 'replay');
    const res = await session.call(session.admin, session.admin.replayDeadLetters, ReplayDeadLettersRequest.fromPartial({ filter }));
    if (flags.json) out(json({ replayed: res.replayed }));
    else out(`replayed ${count(res.replayed)} dead job(s)\n`);
  });

  const purge = withFilter(new Command('purge').description('delete dead jobs for good (asks first unless --yes)')).option('--yes', 'do not ask for confirmation (required without a terminal)');
  addConnectionOptions(purge);
  examples(purge, 'sluice dlq purge --queue email', 'sluice dlq purge --queue email --dead-before 7d --yes', 'sluice dlq purge --all --yes --json');
  withSession<FilterFlags>(purge, async (session, flags, ids: string[]) => {
    const filter = filterFrom(ids, flags, 'purge');
    if (!flags.yes && !(await confirmPurge(session, filter))) {
      process.stderr.write('nothing purged\n');
      if (flags.json) out(json({ purged: 0 }));
      return;
    }
    const res = await session.call(session.admin, session.admin.purgeDeadLetters, PurgeDeadLettersRequest.fromPartial({ filter }));
    if (flags.json) out(json({ purged: res.purged }));
    else out(`purged ${count(res.purged)} dead job(s)\n`);
  });

  for (const sub of [list, replay, purge]) dlq.addCommand(sub);
  return dlq;
}
