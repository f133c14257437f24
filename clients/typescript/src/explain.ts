import { ExplainReasonCode, type ExplainJobResponse } from './gen/sluice/v1/producer.js';
import type { JobStateName } from './types.js';
import { stateName } from './wire.js';

/** Why a job is (not) running, as the broker sees it now. */
export interface JobExplanation {
  id: string;
  state: JobStateName;
  /** One line for people: the state and every reason. */
  summary: string;
  /** Most decisive first. */
  reasons: ExplainReasonInfo[];
}

export type ExplainReasonName =
  | 'scheduled'
  | 'queue_paused'
  | 'no_worker'
  | 'queue_concurrency'
  | 'queue_rate_limit'
  | 'group_concurrency'
  | 'group_rate_limit'
  | 'group_order'
  | 'waiting_behind'
  | 'ready'
  | 'leased'
  | 'completed'
  | 'dead'
  | 'cancelled'
  | 'unknown';

export interface ExplainReasonInfo {
  code: ExplainReasonName;
  message: string;
  /** Run time, next token, lease deadline or finish time. */
  at: Date | undefined;
  count: number;
  countIsLowerBound: boolean;
  limit: number;
  groupKey: string;
  workerIds: string[];
  attempt: number;
  maxAttempts: number;
  lastError: string;
}

/** EXPLAIN_REASON_CODE_QUEUE_RATE_LIMIT -> 'queue_rate_limit'. */
function reasonName(code: ExplainReasonCode): ExplainReasonName {
  const name = ExplainReasonCode[code];
  if (typeof name !== 'string' || code === ExplainReasonCode.EXPLAIN_REASON_CODE_UNSPECIFIED || code === ExplainReasonCode.UNRECOGNIZED) return 'unknown';
  return name.replace('EXPLAIN_REASON_CODE_', '').toLowerCase() as ExplainReasonName;
}

export function toJobExplanation(r: ExplainJobResponse): JobExplanation {
  return {
    id: r.id,
    state: stateName(r.state),
    summary: r.summary,
    reasons: r.reasons.map((x) => ({
      code: reasonName(x.code),
      message: x.message,
      at: x.at,
      count: x.count,
      countIsLowerBound: x.countIsLowerBound,
      limit: x.limit,
      groupKey: x.groupKey,
      workerIds: x.workerIds,
      attempt: x.attempt,
      maxAttempts: x.maxAttempts,
      lastError: x.lastError,
    })),
  };
}
