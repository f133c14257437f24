/** The job metadata key whose value is logged as `correlationId` on every line about the job. */
export const CORRELATION_ID_KEY = 'correlation_id';

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
  const correlationId = map?.[CORRELATION_ID_KEY];
  if (typeof correlationId === 'string' && correlationId !== '') fields.correlationId = correlationId.slice(0, 200);
  return fields;
}
