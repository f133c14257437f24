import type { EnqueueInput } from './broker.js';
import type { RunKind, ScheduleRow } from '../store/schedule-store.js';

/** The job a schedule creates at each fire: an enqueue input, validated like Enqueue's, without run_at. */
export type JobTemplate = Omit<EnqueueInput, 'runAt'>;

/** Metadata keys set on every job a schedule creates: a handler's idempotency key is (schedule id, fire time). */
export const SCHEDULE_METADATA = {
  id: 'sluice.schedule_id',
  name: 'sluice.schedule_name',
  fireTime: 'sluice.fire_time',
  kind: 'sluice.fire_kind',
} as const;

export function serializeTemplate(template: JobTemplate): string {
  return JSON.stringify(template);
}

export function parseTemplate(text: string): JobTemplate {
  const t = JSON.parse(text) as Partial<JobTemplate>;
  return {
    queue: t.queue!,
    type: t.type ?? '',
    payload: t.payload ?? 'null',
    priority: t.priority ?? 2,
    delayMs: t.delayMs ?? 0,
    maxAttempts: t.maxAttempts,
    retry: t.retry,
    leaseTimeoutMs: t.leaseTimeoutMs,
    metadata: t.metadata,
    dedupKey: t.dedupKey,
    groupKey: t.groupKey,
  };
}

/** The job for one fire: the template, plus the schedule and fire time in its metadata. */
export function jobFromTemplate(template: JobTemplate, row: Pick<ScheduleRow, 'id' | 'name'>, fireTime: number, kind: RunKind): EnqueueInput {
  return {
    ...template,
    runAt: undefined,
    metadata: {
      ...template.metadata,
      [SCHEDULE_METADATA.id]: row.id,
      [SCHEDULE_METADATA.name]: row.name,
      [SCHEDULE_METADATA.fireTime]: new Date(fireTime).toISOString(),
      [SCHEDULE_METADATA.kind]: kind,
    },
  };
}
