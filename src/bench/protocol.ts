/**
 * Messages between the bench orchestrator and its role processes (child_process.fork IPC).
 * Every time is wall-clock milliseconds (`performance.timeOrigin + performance.now()`), so
 * times taken in different processes on this machine can be compared.
 */

/** Enqueue `count` jobs with `enqueueBatch`, `batchSize` per call, `inFlight` calls at once. */
export interface EnqueueBatchTask {
  role: 'enqueue-batch';
  address: string;
  queue: string;
  count: number;
  batchSize: number;
  inFlight: number;
  /** Spread the jobs round-robin over these queues instead of `queue` (scaling workload S2). */
  queues?: string[];
  /** Every job scheduled to run at this wall-clock time (ms) instead of now (S3, delayed jobs). */
  runAt?: number;
}

/** Enqueue `count` jobs with one `enqueue()` call each, `inFlight` calls at once. */
export interface EnqueueSingleTask {
  role: 'enqueue-single';
  address: string;
  queue: string;
  count: number;
  inFlight: number;
}

/**
 * Enqueue `count` jobs with `enqueue()` at a steady `ratePerSec`, each payload stamped with the
 * wall-clock time of its call; first `warmup` jobs (marked, not measured) go through one by one.
 */
export interface EnqueuePacedTask {
  role: 'enqueue-paced';
  address: string;
  queue: string;
  count: number;
  ratePerSec: number;
  warmup: number;
  /** Keep each job's enqueue() latency for the result (default true; off for long soaks). */
  keepLatencies?: boolean;
}

/**
 * Run a Worker (no-op handler) until `expect` distinct measured jobs completed (ack durable).
 * With `recordLatency`, the handler records now − payload.t for each measured job.
 */
export interface ConsumeTask {
  role: 'consume';
  address: string;
  queue: string;
  expect: number;
  concurrency: number;
  recordLatency: boolean;
  /** Fail when no job completes for this long. */
  stallTimeoutMs: number;
  /**
   * One worker (one stream) per entry, each subscribed to the entry's queues, all with
   * `concurrency`; default one worker on `queue`. With several, `expect` counts them all.
   */
  subscriptions?: string[][];
  /**
   * With `expect` 0 the role runs until the orchestrator says `stop` (its jobs are part of a
   * total spread over several processes), and reports `progress` every `progressMs`.
   */
  progressMs?: number;
  /** With recordLatency: summarise latencies per window of this many ms instead of returning each. */
  windowMs?: number;
  /**
   * Every job's payload `n` is unique (one producer, n = 0, 1, 2, ...): duplicates are found with
   * one bit per job instead of a set of ids. A set of millions of ids makes this process's own
   * GC pauses grow through a long run and shows up as latency (the 10-minute soak's p99).
   */
  uniquePayloadIndex?: boolean;
}

export type Task = EnqueueBatchTask | EnqueueSingleTask | EnqueuePacedTask | ConsumeTask;

export interface EnqueueResult {
  count: number;
  /** Just before the first call. */
  startedAt: number;
  /** When the last call resolved. */
  finishedAt: number;
  /** Paced: when the last call was made (so the achieved call rate excludes the last commit). */
  lastCallAt?: number;
  /** Paced: per job, ms from the enqueue() call until its promise resolved (durable). */
  enqueueLatenciesMs?: number[];
}

export interface ConsumeResult {
  completed: number;
  /** Deliveries of a job already seen (redeliveries); 0 in a healthy run. */
  duplicates: number;
  /** Handlers that threw, or were aborted. */
  failures: number;
  firstStartAt: number;
  firstCompletionAt: number;
  lastCompletionAt: number;
  /** Per measured job, ms from enqueue() call to handler start (only with recordLatency). */
  latenciesMs: number[];
  /** With windowMs: latency summaries per window of handler start times, in order. */
  windows?: LatencyWindow[];
}

export interface LatencyWindow {
  /** Wall-clock start of the window. */
  startAt: number;
  count: number;
  p50: number;
  p99: number;
}

/** Orchestrator -> role process. */
export type ParentMessage = { type: 'start'; task: Task } | { type: 'stop' };

/** Role process -> orchestrator. */
export type ChildMessage =
  /** Modules loaded (client, grpc-js): a task sent now starts at once. */
  | { type: 'loaded' }
  /** Consume: subscribed, waiting for jobs. */
  | { type: 'ready' }
  /** Consume with `progressMs`: distinct measured jobs completed so far. */
  | { type: 'progress'; completed: number }
  | { type: 'result'; result: EnqueueResult | ConsumeResult }
  | { type: 'error'; message: string; stack?: string };

/** Wall-clock milliseconds with sub-millisecond resolution, comparable across processes. */
export function wallNow(): number {
  return performance.timeOrigin + performance.now();
}

/** A JSON payload of about `bytes` bytes (serialised) carrying a sequence number and a timestamp. */
export function makePayload(n: number, t: number, bytes = 100): { n: number; t: number; warm?: boolean; pad: string } {
  const base = JSON.stringify({ n, t, pad: '' }).length;
  return { n, t, pad: 'x'.repeat(Math.max(0, bytes - base)) };
}
