import type { Clock } from '../domain/clock.js';
import { hasAnyLimit } from '../domain/queue-limits.js';
import type { JobStore } from '../store/job-store.js';
import { DeadlineTimer } from './deadline-timer.js';
import type { QueueRegistry } from './queue-registry.js';
import { QueueLimiter } from './queue-limiter.js';

/**
 * The limiters of the queues that have limits (usually none or a few), the token timer that
 * wakes them, and the lease bookkeeping their concurrency slots need. Queues without limits
 * have no entry: their dispatch path is the dispatcher's plain one.
 */
export class DispatchLimits {
  private readonly limiters = new Map<string, QueueLimiter>();
  /** queue -> earliest time a token arrives that it waits for. */
  private readonly wakeups = new Map<string, number>();
  private readonly timer: DeadlineTimer;

  constructor(
    private readonly store: JobStore,
    private readonly queues: QueueRegistry,
    private readonly clock: Clock,
    /** The queue may start jobs again (the dispatcher marks it ready). */
    private readonly wake: (queue: string) => void,
  ) {
    this.timer = new DeadlineTimer(clock, () => this.onTimer());
  }

  /** At start, once leases left by a crash are released. */
  syncAll(): void {
    for (const name of this.queues.names()) this.sync(name);
  }

  get(queue: string): QueueLimiter | undefined {
    return this.limiters.get(queue);
  }

  /** The queue's limits may have changed: rebuild its limiter (buckets restart full, slots are recounted from the store). */
  sync(queue: string): void {
    const limits = this.queues.limitsOf(queue);
    if (!hasAnyLimit(limits)) {
      if (this.limiters.delete(queue)) this.wake(queue);
      return;
    }
    const before = this.limiters.get(queue);
    if (before && JSON.stringify(before.limits) === JSON.stringify(limits)) return;
    this.limiters.set(queue, new QueueLimiter(queue, limits!, this.store, this.clock.now(), (q, at) => this.wakeAt(q, at)));
    this.wake(queue);
  }

  private wakeAt(queue: string, at: number): void {
    const current = this.wakeups.get(queue);
    if (current === undefined || at < current) this.wakeups.set(queue, at);
    this.timer.armAt(at);
  }

  private onTimer(): void {
    const now = this.clock.now();
    let next: number | undefined;
    for (const [queue, at] of this.wakeups) {
      if (at <= now) {
        this.wakeups.delete(queue);
        this.wake(queue);
      } else if (next === undefined || at < next) next = at;
    }
    this.timer.armAt(next);
  }

  /** A lease ended (settled, expired, released, cancelled); `retrying` = it waits for a backoff. */
  leaseEnded(jobId: string, retrying: boolean): void {
    if (this.limiters.size === 0) return;
    for (const limiter of this.limiters.values()) if (limiter.leaseEnded(jobId, retrying)) this.wake(limiter.queue);
  }

  /** A job that was waiting for its retry is ready again or cancelled. */
  retryEnded(jobId: string): void {
    if (this.limiters.size === 0) return;
    for (const limiter of this.limiters.values()) if (limiter.retryEnded(jobId)) this.wake(limiter.queue);
  }

  /** When the queue next gets a token it waits for (explain). */
  wakeupOf(queue: string): number | undefined {
    return this.wakeups.get(queue);
  }

  stop(): void {
    this.timer.stop();
  }
}
