import type { Metadata } from '@grpc/grpc-js';
import type { EnqueueInput } from '../broker/broker.js';

/** W3C Trace Context keys: the same names in gRPC metadata and in job metadata. */
export const TRACEPARENT = 'traceparent';
export const TRACESTATE = 'tracestate';

/** version-traceid-parentid-flags (https://www.w3.org/TR/trace-context/#traceparent-header). */
const TRACEPARENT_PATTERN = /^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}(-.*)?$/;
const MAX_TRACESTATE_LENGTH = 512;

export interface TraceContext {
  traceparent: string;
  tracestate?: string;
}

/**
 * The trace context sent as gRPC metadata with an Enqueue or EnqueueBatch call; it applies
 * to every job of the call. Like any W3C receiver, an invalid traceparent is ignored (a
 * tracing header never makes a call fail), and tracestate only counts next to a valid one.
 */
export function traceContextOfCall(metadata: Metadata): TraceContext | undefined {
  const [parent] = metadata.get(TRACEPARENT);
  if (typeof parent !== 'string') return undefined;
  const traceparent = parent.trim().toLowerCase();
  if (!TRACEPARENT_PATTERN.test(traceparent) || traceparent.startsWith('ff')) return undefined;
  const states = metadata.get(TRACESTATE).filter((s): s is string => typeof s === 'string');
  const tracestate = states.join(',').trim();
  return tracestate && tracestate.length <= MAX_TRACESTATE_LENGTH ? { traceparent, tracestate } : { traceparent };
}

/** Stores the call's trace context with the job, unless the job carries its own in its metadata. */
export function withTraceContext(input: EnqueueInput, trace: TraceContext): EnqueueInput {
  if (input.metadata?.[TRACEPARENT]) return input;
  const metadata: Record<string, string> = { ...input.metadata, [TRACEPARENT]: trace.traceparent };
  if (trace.tracestate) metadata[TRACESTATE] = trace.tracestate;
  else delete metadata[TRACESTATE];
  return { ...input, metadata };
}
