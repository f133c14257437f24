import { status } from '@grpc/grpc-js';
import type { EnqueueOutcome } from '../broker/broker.js';
import type { Logger } from '../log.js';
import type { EnqueueResult } from '../../clients/typescript/src/gen/sluice/v1/producer.js';
import { stateToWire } from './convert.js';
import { grpcCode, toServiceError } from './status.js';

/**
 * One item's answer in a non-atomic batch (EnqueueBatch and EnqueueStream share these): the
 * job's id and state, or its own error with the gRPC code, message and retry hint.
 */
export function itemError(code: number, message: string, retryAfterMs = 0): EnqueueResult {
  return { id: '', deduplicated: false, state: 0, error: { code, message, retryAfterMs } };
}

/** An item refused before the broker saw it (bad input): its status as a result. */
export function itemFailure(error: unknown, log: Logger, rpc: string): EnqueueResult {
  const e = toServiceError(error, log, { rpc });
  return itemError(e.code ?? status.UNKNOWN, e.details ?? '');
}

export function outcomeResult(outcome: EnqueueOutcome): EnqueueResult {
  if ('error' in outcome) return itemError(grpcCode(outcome.error.code), outcome.error.message, outcome.error.retryAfterMs ?? 0);
  return { id: outcome.id, deduplicated: outcome.deduplicated, state: stateToWire(outcome.state), error: undefined };
}
