import { status, type ServerDuplexStream } from '@grpc/grpc-js';
import type { Broker, EnqueueInput, EnqueueOutcome } from '../broker/broker.js';
import { invalidArgument } from '../domain/errors.js';
import type { Logger } from '../log.js';
import { itemRefusals } from '../auth/rpc-policy.js';
import type {
  EnqueueRequest,
  EnqueueResult,
  EnqueueStreamRequest,
  EnqueueStreamResponse,
} from '../../clients/typescript/src/gen/sluice/v1/producer.js';
import { isUndecodable } from './decode-guard.js';
import { parseEnqueueRequest, type EnqueueLimits } from './enqueue-input.js';
import { itemError, itemFailure, outcomeResult } from './enqueue-result.js';
import { encodeEnqueueStreamResponse } from './enqueue-stream-codec.js';
import { toServiceError } from './status.js';
import { traceContextOfCall, withTraceContext, type TraceContext } from './trace-context.js';

/**
 * Most items one stream may have waiting for their commit before the broker stops reading it:
 * past this, gRPC flow control holds the producer back instead of the broker's memory growing.
 */
export const MAX_OUTSTANDING_ITEMS_PER_STREAM = 4096;

/**
 * Non-atomic enqueue of one message's jobs: each item is validated (and was checked against
 * the caller's grants, `itemRefusals`) on its own, the valid ones go into the group commit
 * together, and the results come back in request order once the commit is durable. A failure
 * of the whole commit (a stopping broker, the disk guard) becomes every item's error, with
 * its retry hint, so the producer treats it as it treats a failed EnqueueBatch call.
 *
 * `committed` sees the results once the commit is made, before it is durable (the caller
 * prepares its answer meanwhile); `asCommitted` says the results are still those.
 */
export async function enqueueItems(
  broker: Broker,
  jobs: readonly EnqueueRequest[],
  limits: EnqueueLimits,
  trace: TraceContext | undefined,
  refused: ReadonlyMap<number, string> | undefined,
  log: Logger,
  committed?: (results: readonly EnqueueResult[]) => void,
): Promise<{ results: EnqueueResult[]; asCommitted: boolean }> {
  const results: (EnqueueResult | undefined)[] = new Array(jobs.length);
  const valid: EnqueueInput[] = [];
  const at: number[] = [];
  for (let i = 0; i < jobs.length; i++) {
    const why = refused?.get(i);
    if (why !== undefined) {
      results[i] = itemError(status.PERMISSION_DENIED, why);
      continue;
    }
    try {
      const input = parseEnqueueRequest(jobs[i]!, limits);
      valid.push(trace ? withTraceContext(input, trace) : input);
      at.push(i);
    } catch (error) {
      results[i] = itemFailure(error, log, 'EnqueueStream');
    }
  }
  if (valid.length === 0) {
    committed?.(results as EnqueueResult[]);
    return { results: results as EnqueueResult[], asCommitted: true };
  }
  let filled = false;
  const fill = (outcomes: EnqueueOutcome[]) => {
    for (let k = 0; k < outcomes.length; k++) results[at[k]!] = outcomeResult(outcomes[k]!);
    filled = true;
  };
  try {
    const outcomes = await broker.enqueue(valid, false, committed && ((o) => (fill(o), committed(results as EnqueueResult[]))));
    if (!filled) fill(outcomes);
    return { results: results as EnqueueResult[], asCommitted: true };
  } catch (error) {
    const e = toServiceError(error, log, { rpc: 'EnqueueStream' });
    const hint = Number(e.metadata?.get('retry-after-ms')[0] ?? 0);
    const failed = itemError(e.code ?? status.UNKNOWN, e.details ?? '', Number.isFinite(hint) ? hint : 0);
    for (const k of at) results[k] = failed;
    return { results: results as EnqueueResult[], asCommitted: false };
  }
}

/**
 * One EnqueueStream: each request is answered by a response with its seq once its jobs are
 * durable (the same group commit and fsync as Enqueue/EnqueueBatch). Several requests may be
 * in flight; that is the point, as one stream costs far less per message than a unary call
 * and the producer no longer waits for one batch before sending the next. Bad items get their
 * own error; only an undecodable message (its seq unknown) ends the stream, with
 * INVALID_ARGUMENT. Reading pauses while MAX_OUTSTANDING_ITEMS_PER_STREAM items wait.
 */
export function enqueueStream(broker: Broker, log: Logger) {
  const limits = broker.config;
  return (call: ServerDuplexStream<EnqueueStreamRequest, EnqueueStreamResponse>): void => {
    const trace = traceContextOfCall(call.metadata);
    let outstanding = 0;
    let paused = false;
    let inputEnded = false;
    let finished = false;

    const finish = () => {
      if (finished || !inputEnded || outstanding > 0) return;
      finished = true;
      call.end();
    };
    const abort = (error: unknown) => {
      if (finished) return;
      finished = true;
      call.emit('error', toServiceError(error, log, { rpc: 'EnqueueStream', peer: call.getPeer() }));
    };

    call.on('data', (req: EnqueueStreamRequest) => {
      if (finished) return;
      if (isUndecodable(req)) return abort(invalidArgument(req.message));
      const { seq, jobs } = req;
      if (jobs.length > limits.maxBatchSize) {
        const e = itemError(status.INVALID_ARGUMENT, `request has ${jobs.length} jobs, over the limit of ${limits.maxBatchSize} (--max-batch-size)`);
        call.write(encodeEnqueueStreamResponse(seq, jobs.map(() => e)) as unknown as EnqueueStreamResponse);
        return;
      }
      outstanding += jobs.length;
      if (!paused && outstanding >= MAX_OUTSTANDING_ITEMS_PER_STREAM) {
        paused = true;
        call.pause();
      }
      // The answer is encoded once the commit is made, while its fsync runs, and leaves as
      // bytes once it is durable (server.ts passes Buffers through the serializer).
      let answer: Buffer | undefined;
      enqueueItems(broker, jobs, limits, trace, itemRefusals(req), log, (results) => (answer = encodeEnqueueStreamResponse(seq, results))).then(
        ({ results, asCommitted }) => {
          outstanding -= jobs.length;
          if (!finished) call.write(((asCommitted && answer) || encodeEnqueueStreamResponse(seq, results)) as unknown as EnqueueStreamResponse);
          if (paused && outstanding < MAX_OUTSTANDING_ITEMS_PER_STREAM / 2) {
            paused = false;
            call.resume();
          }
          finish();
        },
        (error) => {
          outstanding -= jobs.length;
          abort(error);
        },
      );
    });
    call.on('end', () => {
      inputEnded = true;
      finish();
    });
    // The producer went away: answers still due are dropped (their jobs are committed anyway,
    // exactly as when a unary caller disconnects before its answer).
    call.on('cancelled', () => (finished = true));
    call.on('error', () => (finished = true));
  };
}
