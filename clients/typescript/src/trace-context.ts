/**
 * W3C trace context carried with a job in its metadata (`traceparent`, `tracestate`), so one
 * trace spans producer -> broker -> worker.
 */
export interface TraceContext {
  traceparent: string;
  tracestate?: string;
}

export const TRACEPARENT = 'traceparent';
export const TRACESTATE = 'tracestate';

/** The slice of @opentelemetry/api used here (an optional peer dependency, typed locally). */
interface OtelApi {
  context: { active(): unknown };
  trace: {
    getSpanContext(context: unknown): { traceId: string; spanId: string; traceFlags: number; traceState?: { serialize(): string } } | undefined;
    isSpanContextValid(spanContext: { traceId: string; spanId: string }): boolean;
  };
}

// Loaded once when the application has it installed; without it nothing is added.
// (A variable specifier, so neither TypeScript nor bundlers require the package.)
const OTEL_API: string = '@opentelemetry/api';
const otel: OtelApi | undefined = await import(OTEL_API).then(
  (m: OtelApi & { default?: OtelApi }) => (m.trace ? m : m.default),
  () => undefined,
);

/** The active OpenTelemetry span's context as W3C headers, or undefined (no API installed, no active span). */
export function activeTraceContext(): TraceContext | undefined {
  if (!otel) return undefined;
  const span = otel.trace.getSpanContext(otel.context.active());
  if (!span || !otel.trace.isSpanContextValid(span)) return undefined;
  const flags = (span.traceFlags & 0xff).toString(16).padStart(2, '0');
  const trace: TraceContext = { traceparent: `00-${span.traceId}-${span.spanId}-${flags}` };
  const state = span.traceState?.serialize();
  if (state) trace.tracestate = state;
  return trace;
}

/** Job metadata with the active trace context added, unless the caller set a traceparent. */
export function withActiveTraceContext(metadata: Record<string, string> | undefined): Record<string, string> {
  if (metadata?.[TRACEPARENT]) return metadata;
  const trace = activeTraceContext();
  if (!trace) return metadata ?? {};
  return { ...metadata, ...trace };
}

/** The trace context a job arrived with, from its metadata. */
export function traceContextOf(metadata: Readonly<Record<string, string>>): TraceContext | undefined {
  const traceparent = metadata[TRACEPARENT];
  if (!traceparent) return undefined;
  const tracestate = metadata[TRACESTATE];
  return tracestate ? { traceparent, tracestate } : { traceparent };
}
