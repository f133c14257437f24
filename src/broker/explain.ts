import { JobState } from '../domain/job-state.js';
import type { StoreReads } from '../store/store-reads.js';
import type { JobRow } from '../store/types.js';
import type { DispatchLimits } from './dispatch-limits.js';
import type { QueueRegistry } from './queue-registry.js';

/** Why a job is where it is. One code per case; each comes with a sentence for people. */
export const ExplainCode = {
  Scheduled: 'scheduled',
  QueuePaused: 'queue_paused',
  NoWorker: 'no_worker',
  QueueConcurrency: 'queue_concurrency',
  QueueRateLimit: 'queue_rate_limit',
  GroupConcurrency: 'group_concurrency',
  GroupRateLimit: 'group_rate_limit',
  GroupOrder: 'group_order',
  WaitingBehind: 'waiting_behind',
  Ready: 'ready',
  Leased: 'leased',
  Completed: 'completed',
  Dead: 'dead',
  Cancelled: 'cancelled',
} as const;
export type ExplainCode = (typeof ExplainCode)[keyof typeof ExplainCode];

export interface ExplainReason {
  code: ExplainCode;
  message: string;
  /** scheduled: run_at; rate limits: next token; leased: lease deadline; terminal: finished. */
  at?: number;
  /** waiting_behind: jobs ahead; concurrency: active now. */
  count?: number;
  /** count is a lower bound (counting stopped at the cap). */
  countIsLowerBound?: boolean;
  /** concurrency: the cap; rate limits: tokens per interval. */
  limit?: number;
  groupKey?: string;
  /** leased: the holder; no_worker: workers subscribed to the queue with other types. */
  workerIds?: string[];
  attempt?: number;
  maxAttempts?: number;
  lastError?: string;
}

export interface Explanation {
  id: string;
  state: JobState;
  summary: string;
  reasons: ExplainReason[];
}

/** Jobs counted ahead of a pending job before "N or more" is reported. */
const AHEAD_CAP = 10_000;

export interface ExplainSources {
  reads: StoreReads;
  queues: QueueRegistry;
  limits: DispatchLimits;
  subscribersOf(queue: string): { types: string[]; workerIds: string[] }[];
  now: number;
}

const iso = (ms: number): string => new Date(ms).toISOString();
const group = (key: string): string => (key === '' ? 'the group of jobs without a group key' : `group "${key}"`);

/** Reads only: what the broker knows about one job, turned into reasons and one summary line. */
export async function explainJob(row: JobRow, src: ExplainSources): Promise<Explanation> {
  const reasons: ExplainReason[] = [];
  const attempts = { attempt: row.attempt, maxAttempts: row.max_attempts };
  switch (row.state) {
    case JobState.Completed:
      reasons.push({ code: ExplainCode.Completed, message: `completed at ${iso(row.finished_at ?? row.updated_at)} on attempt ${row.attempt} of ${row.max_attempts}`, at: row.finished_at ?? row.updated_at, ...attempts });
      break;
    case JobState.Dead:
      reasons.push({
        code: ExplainCode.Dead,
        message: `dead since ${iso(row.finished_at ?? row.updated_at)} after attempt ${row.attempt} of ${row.max_attempts}; last error: ${row.last_error ?? '(none)'}`,
        at: row.finished_at ?? row.updated_at,
        lastError: row.last_error ?? '',
        ...attempts,
      });
      break;
    case JobState.Cancelled:
      reasons.push({
        code: ExplainCode.Cancelled,
        message: `cancelled at ${iso(row.finished_at ?? row.updated_at)}${row.last_error ? `; last error: ${row.last_error}` : ''}`,
        at: row.finished_at ?? row.updated_at,
        lastError: row.last_error ?? '',
        ...attempts,
      });
      break;
    case JobState.Active:
      reasons.push({
        code: ExplainCode.Leased,
        message: `running: leased to worker ${row.worker_id ?? '?'} until ${iso(row.lease_expires_at ?? 0)} (attempt ${row.attempt} of ${row.max_attempts})`,
        at: row.lease_expires_at ?? undefined,
        workerIds: row.worker_id ? [row.worker_id] : [],
        ...attempts,
      });
      break;
    case JobState.Scheduled:
      reasons.push({
        code: ExplainCode.Scheduled,
        message:
          row.attempt > 0
            ? `scheduled until ${iso(row.run_at)}: retry ${row.attempt + 1} of ${row.max_attempts} after a backoff (last error: ${row.last_error ?? '(none)'})`
            : `scheduled until ${iso(row.run_at)}`,
        at: row.run_at,
        lastError: row.last_error ?? '',
        ...attempts,
      });
      await whyNotDelivered(row, src, reasons, false);
      break;
    case JobState.Pending:
      await whyNotDelivered(row, src, reasons, true);
      break;
  }
  return { id: row.id, state: row.state, summary: summarize(row, reasons), reasons };
}

/** The reasons that hold a ready (or future) job back, most decisive first. */
async function whyNotDelivered(row: JobRow, src: ExplainSources, reasons: ExplainReason[], pending: boolean): Promise<void> {
  const { queue } = row;
  if (src.queues.isPaused(queue)) reasons.push({ code: ExplainCode.QueuePaused, message: `queue "${queue}" is paused` });
  const subs = src.subscribersOf(queue);
  const matching = subs.filter((s) => s.types.length === 0 || s.types.includes(row.type));
  if (matching.length === 0) {
    const others = subs.flatMap((s) => s.workerIds.map((w) => `${w} (types ${s.types.join(', ')})`));
    reasons.push({
      code: ExplainCode.NoWorker,
      message:
        `no worker is subscribed to queue "${queue}"${row.type ? ` with type "${row.type}"` : ''}` +
        (others.length > 0 ? `; subscribed with other types: ${others.join('; ')}` : ''),
      workerIds: subs.flatMap((s) => s.workerIds),
    });
  }
  if (!pending) return;

  const limiter = src.limits.get(queue);
  const settings = src.queues.limitsOf(queue);
  const now = src.now;
  const key = row.group_key ?? '';
  if (limiter && settings) {
    if (limiter.queueSlots && !limiter.queueSlots.hasRoom('')) {
      const held = limiter.queueSlots.held('');
      reasons.push({ code: ExplainCode.QueueConcurrency, message: `concurrency cap: ${held} of ${limiter.queueSlots.limit} jobs of queue "${queue}" are active`, count: held, limit: limiter.queueSlots.limit });
    }
    if (limiter.queueBucket && limiter.queueBucket.available(now) === 0) {
      const at = limiter.queueBucket.nextTokenAt(now);
      const r = settings.rate!;
      reasons.push({ code: ExplainCode.QueueRateLimit, message: `rate limit of queue "${queue}" (${r.count} per ${r.intervalMs} ms): next token at ${iso(at)}`, at, limit: r.count });
    }
    if (limiter.grouped) {
      if (limiter.groupSlots && !limiter.groupSlots.hasRoom(key)) {
        const held = limiter.groupSlots.held(key);
        const retrying = limiter.holdsRetries ? await src.reads.retryingInGroup(queue, key) : undefined;
        if (retrying && retrying.seq < row.seq) {
          reasons.push({
            code: ExplainCode.GroupOrder,
            message: `waiting for an earlier job of ${group(key)} that is in retry backoff until ${iso(retrying.run_at)} (per-key order holds across retries)`,
            at: retrying.run_at,
            groupKey: key,
          });
        }
        reasons.push({
          code: ExplainCode.GroupConcurrency,
          message: `concurrency cap: ${held} of ${limiter.groupSlots.limit} jobs of ${group(key)} are active${retrying ? ' or waiting to retry' : ''}`,
          count: held,
          limit: limiter.groupSlots.limit,
          groupKey: key,
        });
      }
      const bucket = limiter.groupBuckets.get(key);
      if (bucket && bucket.available(now) === 0) {
        const at = bucket.nextTokenAt(now);
        const r = limiter.rateOf(key)!;
        reasons.push({ code: ExplainCode.GroupRateLimit, message: `rate limit of ${group(key)} (${r.count} per ${r.intervalMs} ms): next token at ${iso(at)}`, at, limit: r.count, groupKey: key });
      }
      const aheadInGroup = await src.reads.groupAhead(queue, key, row.priority, row.seq, AHEAD_CAP);
      if (aheadInGroup > 0) {
        const bound = aheadInGroup >= AHEAD_CAP;
        reasons.push({
          code: ExplainCode.WaitingBehind,
          message: `waiting behind ${aheadInGroup}${bound ? ' or more' : ''} ready jobs of ${group(key)} with higher or equal priority (groups take turns)`,
          count: aheadInGroup,
          countIsLowerBound: bound,
          groupKey: key,
        });
      }
    }
  }
  const ahead = await src.reads.readyAhead(queue, row.priority, row.seq, AHEAD_CAP);
  if (ahead > 0 && !(limiter?.grouped)) {
    const bound = ahead >= AHEAD_CAP;
    reasons.push({
      code: ExplainCode.WaitingBehind,
      message: `waiting behind ${ahead}${bound ? ' or more' : ''} ready jobs of queue "${queue}" with higher or equal priority`,
      count: ahead,
      countIsLowerBound: bound,
    });
  }
  if (reasons.length === 0) {
    reasons.push({
      code: ExplainCode.Ready,
      message: `ready and first in line: it is delivered as soon as a worker stream subscribed to queue "${queue}" has credit`,
    });
  }
}

function summarize(row: JobRow, reasons: ExplainReason[]): string {
  const head = `job ${row.id} (queue "${row.queue}"${row.type ? `, type "${row.type}"` : ''}) is ${row.state}`;
  if (reasons.length === 0) return head;
  return `${head}: ${reasons.map((r) => r.message).join('; ')}`;
}
