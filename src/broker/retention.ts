import type { Clock } from '../domain/clock.js';
import { JobState } from '../domain/job-state.js';
import type { Logger } from '../log.js';
import type { JobStore } from '../store/job-store.js';
import type { GroupCommit } from './group-commit.js';

/** How long and how many finished jobs a queue keeps; 0 = no limit. */
export interface RetentionPolicy {
  maxAgeMs: number;
  maxCount: number;
}

export interface RetentionOptions {
  /** Between passes; 0 = no timer (passes only on request). */
  intervalMs: number;
  /** Jobs examined per write transaction. */
  batchSize: number;
}

export interface RetentionPassResult {
  deleted: number;
  examined: number;
  batches: number;
  /** The longest time one batch spent inside its transaction. */
  longestBatchMs: number;
}

/** What one pass must still do: jobs over each queue's count limit, the age horizon. */
interface PassPlan {
  excess: Map<string, number>;
  /** A job created after this cannot have expired by age (finished_at >= created_at). */
  ageHorizon: number;
}

/**
 * Deletes completed and cancelled jobs (and with them their history) once they are older
 * than their queue's age limit or beyond its count limit, oldest first. Dead jobs are never
 * deleted: they wait for an operator.
 *
 * A pass walks the jobs table in seq order (creation order), `batchSize` rows per write
 * transaction through the group commit, so it never holds the write lock for long and other
 * writes interleave between batches. No index is kept for retention (that would cost every
 * ack); instead the walk stops at the first job too young to have expired, and only walks
 * further while a queue is over its count limit. Jobs still in the walked prefix (dead,
 * unfinished, or of queues with longer limits) are read again by the next pass.
 */
export class Retention {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<RetentionPassResult> | undefined;
  private stopped = false;

  constructor(
    private readonly store: JobStore,
    private readonly commits: GroupCommit,
    private readonly clock: Clock,
    private readonly log: Logger,
    private readonly policyFor: (queue: string) => RetentionPolicy,
    private readonly options: RetentionOptions,
  ) {}

  start(): void {
    if (this.options.intervalMs <= 0 || this.timer) return;
    this.timer = setInterval(() => {
      if (!this.running) this.runPass().catch((error) => this.log.error({ err: error }, 'retention pass failed'));
    }, this.options.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** One pass over what may be deleted now; joins the pass in progress if there is one. */
  runPass(): Promise<RetentionPassResult> {
    this.running ??= this.pass().finally(() => (this.running = undefined));
    return this.running;
  }

  private plan(now: number): PassPlan | undefined {
    const finished = new Map<string, number>();
    for (const { queue, state, n } of this.store.countsByQueueAndState()) {
      if (state === JobState.Completed || state === JobState.Cancelled) finished.set(queue, (finished.get(queue) ?? 0) + n);
    }
    const excess = new Map<string, number>();
    let youngest = Infinity;
    for (const [queue, n] of finished) {
      const { maxAgeMs, maxCount } = this.policyFor(queue);
      if (maxCount > 0 && n > maxCount) excess.set(queue, n - maxCount);
      if (maxAgeMs > 0) youngest = Math.min(youngest, maxAgeMs);
    }
    if (excess.size === 0 && youngest === Infinity) return undefined;
    return { excess, ageHorizon: youngest === Infinity ? -Infinity : now - youngest };
  }

  private async pass(): Promise<RetentionPassResult> {
    const result: RetentionPassResult = { deleted: 0, examined: 0, batches: 0, longestBatchMs: 0 };
    const plan = this.plan(this.clock.now());
    if (!plan) return result;
    let afterSeq = 0;
    for (;;) {
      if (this.stopped) break;
      const batch = await this.commits.run((now) => this.batch(plan, afterSeq, now));
      result.batches++;
      result.deleted += batch.deleted;
      result.examined += batch.examined;
      result.longestBatchMs = Math.max(result.longestBatchMs, batch.ms);
      if (batch.done) break;
      afterSeq = batch.lastSeq;
    }
    if (result.deleted > 0) {
      this.log.info({ deleted: result.deleted, batches: result.batches, longestBatchMs: Math.round(result.longestBatchMs * 10) / 10 }, 'retention deleted finished jobs');
    }
    return result;
  }

  /** Inside a write transaction: examine one window of jobs and delete the expired ones. */
  private batch(plan: PassPlan, afterSeq: number, now: number): { deleted: number; examined: number; lastSeq: number; done: boolean; ms: number } {
    const started = performance.now();
    const rows = this.store.retentionWindow(afterSeq, this.options.batchSize);
    const doomed: number[] = [];
    let reachedYoungJobs = false;
    for (const [seq, queue, state, finishedAt, createdAt] of rows) {
      if (createdAt > plan.ageHorizon && plan.excess.size === 0) {
        reachedYoungJobs = true;
        break;
      }
      if (state !== JobState.Completed && state !== JobState.Cancelled) continue;
      const { maxAgeMs } = this.policyFor(queue);
      const expired = maxAgeMs > 0 && finishedAt !== null && finishedAt <= now - maxAgeMs;
      const over = plan.excess.get(queue) ?? 0;
      if (!expired && over === 0) continue;
      doomed.push(seq);
      if (over > 0) {
        if (over === 1) plan.excess.delete(queue);
        else plan.excess.set(queue, over - 1);
      }
    }
    const deleted = this.store.deleteJobs(doomed);
    const last = rows[rows.length - 1];
    return {
      deleted,
      examined: rows.length,
      lastSeq: last ? last[0] : afterSeq,
      done: reachedYoungJobs || rows.length < this.options.batchSize,
      ms: performance.now() - started,
    };
  }
}
