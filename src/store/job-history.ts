import { JobState } from '../domain/job-state.js';
import type { HistoryEntry, HistoryKind, JobRow } from './types.js';

export type { HistoryEntry, HistoryKind } from './types.js';

/**
 * The stored form (migration 4): the `history` column holds comma-separated JSON arrays,
 * appended by the transition statements in job-store.ts:
 *
 *   ['a', attempt, workerId, leaseId, startedAt, lastHeartbeatAt|null, endedAt, outcome, error?, nextState?, retryAt?]
 *       one per attempt, written when its lease ends (outcome: acked, nacked, expired,
 *       released, cancelled); heartbeats are coalesced into the last one's time
 *   ['p', at, attempt]          scheduled -> pending (a delayed job or a retry became due)
 *   ['r', at]                   replayed from the dead letter queue (attempts reset)
 *   ['c', at, reason, attempt]  cancelled while not leased
 *
 * The enqueue and the attempt in progress are not stored twice: they come from the row's
 * created_at and its lease columns. One entry per attempt instead of one row per transition
 * keeps the cost on the hot path to a string append on an update the job makes anyway.
 */
type StoredEntry =
  | ['a', number, string | null, string | null, number, number | null, number, string, (string | null)?, (string | null)?, (number | null)?]
  | ['p', number, number]
  | ['r', number]
  | ['c', number, string | null, number];

/** Every step of a job, oldest first. */
export function decodeJobHistory(row: JobRow): HistoryEntry[] {
  const stored = row.history ? (JSON.parse(`[${row.history}]`) as StoredEntry[]) : [];
  const out: HistoryEntry[] = [];
  const push = (at: number, kind: HistoryKind, attempt: number, fields: Partial<Omit<HistoryEntry, 'at' | 'kind' | 'attempt'>> = {}) =>
    out.push({ at, kind, attempt, workerId: fields.workerId ?? '', leaseId: fields.leaseId ?? '', error: fields.error ?? '', detail: fields.detail ?? '' });

  const delayed = stored[0]?.[0] === 'p' || (stored.length === 0 && row.state === JobState.Scheduled);
  push(row.created_at, 'enqueued', 0, { detail: delayed ? 'scheduled for later' : '' });
  for (const e of stored) {
    switch (e[0]) {
      case 'a': {
        const [, n, worker, lease, startedAt, heartbeatAt, endedAt, outcome, error, next, retryAt] = e;
        const who = { workerId: worker ?? '', leaseId: lease ?? '' };
        push(startedAt, 'delivered', n, who);
        if (heartbeatAt !== null) push(heartbeatAt, 'extended', n, { ...who, detail: 'last heartbeat of the attempt' });
        const detail =
          next === JobState.Scheduled && typeof retryAt === 'number'
            ? `retry at ${new Date(retryAt).toISOString()}`
            : next === JobState.Pending
              ? 'back to pending'
              : '';
        push(endedAt, outcome as HistoryKind, n, { ...who, error: error ?? '', detail });
        if (next === JobState.Dead) push(endedAt, 'dead', n, { error: error ?? '' });
        break;
      }
      case 'p':
        push(e[1], 'promoted', e[2], { detail: 'due: scheduled -> pending' });
        break;
      case 'r':
        push(e[1], 'replayed', 0, { detail: 'dead -> pending, attempts reset' });
        break;
      case 'c':
        push(e[1], 'cancelled', e[3], { error: e[2] ?? '' });
        break;
    }
  }
  if (row.state === JobState.Active && row.started_at !== null) {
    const who = { workerId: row.worker_id ?? '', leaseId: row.lease_id ?? '' };
    push(row.started_at, 'delivered', row.attempt, who);
    if (row.updated_at > row.started_at) push(row.updated_at, 'extended', row.attempt, { ...who, detail: 'last heartbeat so far' });
  }
  return out;
}
