/**
 * The job lifecycle, declared once. The same set is enforced by a CHECK constraint in the
 * store (see store/migrations.ts) and drawn in proto/README.md.
 */
export const JobState = {
  /** Waiting for run_at: a delayed job, or a retry waiting out its backoff. */
  Scheduled: 'scheduled',
  /** Ready; waiting for a worker stream with credit. */
  Pending: 'pending',
  /** Leased to exactly one worker stream (lease_id is set). */
  Active: 'active',
  /** Finished successfully. Terminal. */
  Completed: 'completed',
  /** Attempts exhausted or non-retryable failure. Terminal until replayed. */
  Dead: 'dead',
  /** Cancelled by a producer or operator. Terminal. */
  Cancelled: 'cancelled',
} as const;

export type JobState = (typeof JobState)[keyof typeof JobState];

export const ALL_JOB_STATES: readonly JobState[] = Object.values(JobState);

/** States a job can still leave by itself; dedup keys are held while a job is in one. */
export const UNFINISHED_STATES: readonly JobState[] = [JobState.Scheduled, JobState.Pending, JobState.Active];

export function isTerminal(state: JobState): boolean {
  return state === JobState.Completed || state === JobState.Dead || state === JobState.Cancelled;
}
