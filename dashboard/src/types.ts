/** The JSON shapes of /api/v1 (src/http/api/views.ts). */
export type JobState = 'scheduled' | 'pending' | 'active' | 'completed' | 'dead' | 'cancelled';
export const STATES: JobState[] = ['scheduled', 'pending', 'active', 'completed', 'dead', 'cancelled'];
export type Counts = Record<JobState, number>;

export interface RetryPolicy {
  initialMs: number;
  multiplier: number;
  maxMs: number;
  jitter: number;
}

export interface Queue {
  name: string;
  paused: boolean;
  counts: Counts;
  consumers: number;
  pendingSince: string | null;
  settings: { maxAttempts: number; leaseTimeoutMs: number; retry: RetryPolicy };
  overrides: string[];
  /** Dispatch limits, when the broker has them and the queue sets any. */
  limits?: QueueLimits | null;
}

export interface RateLimit {
  count: number;
  intervalMs: number;
  burst: number;
}

export interface QueueLimits {
  rate?: RateLimit;
  groupRate?: RateLimit;
  groupRates?: Record<string, RateLimit>;
  concurrency?: number;
  groupConcurrency?: number;
  fairGroups?: boolean;
  agingMs?: number;
}

export interface JobSummary {
  id: string;
  queue: string;
  type: string;
  state: JobState;
  priority: number;
  attempt: number;
  maxAttempts: number;
  runAt: string;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  updatedAt: string;
  lastError: string | null;
  groupKey: string | null;
  workerId: string | null;
}

export interface Job extends JobSummary {
  payload: unknown;
  result: unknown;
  progress: unknown;
  metadata: Record<string, string>;
  errors: { attempt: number; message: string; at: string; nonRetryable: boolean }[];
  retry: Partial<RetryPolicy> | null;
  leaseTimeoutMs: number;
  leaseExpiresAt: string | null;
  dedupKey: string | null;
}

export interface JobPage {
  jobs: JobSummary[];
  nextCursor: string | null;
}

export interface DeadLetterPage extends JobPage {
  errors: { message: string; count: number; lastAt: string }[];
}

export interface Worker {
  streamId: string;
  workerId: string;
  queues: string[];
  types: string[];
  labels: Record<string, string>;
  credit: number;
  inFlight: string[];
  draining: boolean;
  connectedAt: string;
  lastSeenAt: string;
  peer: string;
}

export interface Throughput {
  startMs: number;
  intervalMs: number;
  completed: number[];
  failed: number[];
}

export interface CountsEvent {
  queues: Queue[];
  workers: number;
  inFlight: number;
  throughput: { at: string; completed: number; failed: number };
  serverTime: string;
}

/** One fire of a schedule with its job as it is now; the job fields are null when skipped or the job is gone. */
export interface ScheduleRun {
  seq: number;
  scheduleId: string;
  fireTime: string;
  kind: 'scheduled' | 'manual';
  skipped: boolean;
  reason: string | null;
  jobId: string | null;
  jobState: JobState | null;
  attempt: number | null;
  startedAt: string | null;
  finishedAt: string | null;
  durationMs: number | null;
  lastError: string | null;
  createdAt: string;
}

export interface Schedule {
  id: string;
  name: string;
  cron: string;
  timezone: string;
  paused: boolean;
  nextFireAt: string | null;
  lastFireAt: string | null;
  upcoming: string[];
  startAt: string | null;
  endAt: string | null;
  catchUp: 'skip' | 'once' | 'all';
  catchUpLimit: number;
  overlap: 'allow' | 'skip' | 'queue_one';
  historyLimit: number;
  job: { queue: string; type: string; payload: unknown; priority: number; delayMs: number; metadata: Record<string, string>; groupKey: string | null };
  createdAt: string;
  updatedAt: string;
  /** The latest runs, newest first. */
  recentRuns: ScheduleRun[];
}

export interface SchedulePage {
  schedules: Schedule[];
  nextCursor: string | null;
}

export interface RunPage {
  runs: ScheduleRun[];
  nextCursor: string | null;
}
