import { validateQueueLimits, type QueueLimits } from '../domain/queue-limits.js';
import type { QueueLimits as WireQueueLimits } from '../../clients/typescript/src/gen/sluice/v1/admin.js';
import { ExplainReasonCode, type ExplainJobResponse } from '../../clients/typescript/src/gen/sluice/v1/producer.js';
import type { ExplainCode, Explanation } from '../broker/explain.js';
import { stateToWire } from './convert.js';

/** UpdateQueue limits -> validated domain limits (INVALID_ARGUMENT on bad values). */
export function limitsFromWire(wire: WireQueueLimits): QueueLimits {
  return validateQueueLimits({
    rate: wire.rate,
    groupRate: wire.groupRate,
    groupRates: wire.groupRates,
    concurrency: wire.concurrency,
    groupConcurrency: wire.groupConcurrency,
    fairGroups: wire.fairGroups,
    groupWeights: wire.groupWeights,
    agingMs: wire.agingMs,
    retryOvertake: wire.retryOvertake,
  });
}

export function limitsToWire(limits: QueueLimits | undefined): WireQueueLimits | undefined {
  if (!limits) return undefined;
  return {
    rate: limits.rate,
    groupRate: limits.groupRate,
    groupRates: limits.groupRates ?? {},
    concurrency: limits.concurrency ?? 0,
    groupConcurrency: limits.groupConcurrency ?? 0,
    fairGroups: limits.fairGroups ?? false,
    groupWeights: limits.groupWeights ?? {},
    agingMs: limits.agingMs ?? 0,
    retryOvertake: limits.retryOvertake ?? false,
  };
}

const CODE_TO_WIRE: Record<ExplainCode, ExplainReasonCode> = {
  scheduled: ExplainReasonCode.EXPLAIN_REASON_CODE_SCHEDULED,
  queue_paused: ExplainReasonCode.EXPLAIN_REASON_CODE_QUEUE_PAUSED,
  no_worker: ExplainReasonCode.EXPLAIN_REASON_CODE_NO_WORKER,
  queue_concurrency: ExplainReasonCode.EXPLAIN_REASON_CODE_QUEUE_CONCURRENCY,
  queue_rate_limit: ExplainReasonCode.EXPLAIN_REASON_CODE_QUEUE_RATE_LIMIT,
  group_concurrency: ExplainReasonCode.EXPLAIN_REASON_CODE_GROUP_CONCURRENCY,
  group_rate_limit: ExplainReasonCode.EXPLAIN_REASON_CODE_GROUP_RATE_LIMIT,
  group_order: ExplainReasonCode.EXPLAIN_REASON_CODE_GROUP_ORDER,
  waiting_behind: ExplainReasonCode.EXPLAIN_REASON_CODE_WAITING_BEHIND,
  ready: ExplainReasonCode.EXPLAIN_REASON_CODE_READY,
  leased: ExplainReasonCode.EXPLAIN_REASON_CODE_LEASED,
  completed: ExplainReasonCode.EXPLAIN_REASON_CODE_COMPLETED,
  dead: ExplainReasonCode.EXPLAIN_REASON_CODE_DEAD,
  cancelled: ExplainReasonCode.EXPLAIN_REASON_CODE_CANCELLED,
};

export function explanationToWire(e: Explanation): ExplainJobResponse {
  return {
    id: e.id,
    state: stateToWire(e.state),
    summary: e.summary,
    reasons: e.reasons.map((r) => ({
      code: CODE_TO_WIRE[r.code],
      message: r.message,
      at: r.at === undefined ? undefined : new Date(r.at),
      count: r.count ?? 0,
      countIsLowerBound: r.countIsLowerBound ?? false,
      limit: r.limit ?? 0,
      groupKey: r.groupKey ?? '',
      workerIds: r.workerIds ?? [],
      attempt: r.attempt ?? 0,
      maxAttempts: r.maxAttempts ?? 0,
      lastError: r.lastError ?? '',
    })),
  };
}
