/**
 * Job metadata keys whose value is logged as `correlationId` on every line about the job:
 * `correlation_id` is the documented one; the other spellings are accepted too.
 */
export const CORRELATION_ID_KEYS = ['correlation_id', 'correlation-id', 'correlationId'] as const;

export interface JobLogFields {
  jobId: string;
  queue: string;
  correlationId?: string;
}

/**
 * The fields every log line about a job carries: its id, its queue, and the producer's
 * correlation id when its metadata has one. Called only when the line will be written
 * (the metadata is parsed here, off the hot path).
 */
export function jobLogFields(jobId: string, queue: string, metadata: string | Record<string, string> | null | undefined): JobLogFields {
  const fields: JobLogFields = { jobId, queue };
  if (!metadata) return fields;
  let map: Record<string, string> | undefined;
  try {
    map = typeof metadata === 'string' ? (JSON.parse(metadata) as Record<string, string>) : metadata;
  } catch {
    return fields;
  }
  for (const key of CORRELATION_ID_KEYS) {
    const correlationId = map?.[key];
    if (typeof correlationId === 'string' && correlationId !== '') {
      fields.correlationId = correlationId.slice(0, 200);
      break;
    }
  }
  return fields;
}
