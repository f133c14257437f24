import type { JobStore, QueueRow } from '../store/job-store.js';
import type { PartialRetryPolicy } from '../domain/backoff.js';
import { hasGroupPolicy, limitsFromJson, type QueueLimits } from '../domain/queue-limits.js';

export interface QueueSettings {
  name: string;
  paused: boolean;
  maxAttempts: number | undefined;
  retry: PartialRetryPolicy | undefined;
  leaseTimeoutMs: number | undefined;
  /** Dispatch limits; undefined = none (the dispatcher's fast path). */
  limits: QueueLimits | undefined;
}

/**
 * In-memory mirror of the queues table (a handful of rows), so the hot path never reads it.
 * Changes are written to the store first and mirrored here after commit.
 */
export class QueueRegistry {
  private readonly queues = new Map<string, QueueSettings>();

  constructor(private readonly store: JobStore) {
    for (const row of store.listQueues()) this.queues.set(row.name, fromRow(row));
  }

  get(name: string): QueueSettings | undefined {
    return this.queues.get(name);
  }

  has(name: string): boolean {
    return this.queues.has(name);
  }

  isPaused(name: string): boolean {
    return this.queues.get(name)?.paused ?? false;
  }

  limitsOf(name: string): QueueLimits | undefined {
    return this.queues.get(name)?.limits;
  }

  /** Jobs without a group key are stored with the key '' in such a queue (see migration 4). */
  hasGroupPolicy(name: string): boolean {
    return hasGroupPolicy(this.queues.get(name)?.limits);
  }

  names(): string[] {
    return [...this.queues.keys()].sort();
  }

  /** Inside a transaction: make sure the queue row exists. */
  ensure(name: string, now: number): void {
    if (!this.queues.has(name)) this.store.ensureQueue(name, now);
  }

  /** After commit: the queue was deleted. */
  forget(name: string): void {
    this.queues.delete(name);
  }

  /** After commit (or when the row is known to exist): reload one queue from the store. */
  refresh(name: string): QueueSettings | undefined {
    const row = this.store.getQueue(name);
    if (!row) return undefined;
    const settings = fromRow(row);
    this.queues.set(name, settings);
    return settings;
  }
}

function fromRow(row: QueueRow): QueueSettings {
  return {
    name: row.name,
    paused: row.paused === 1,
    maxAttempts: row.max_attempts ?? undefined,
    retry: row.retry ? (JSON.parse(row.retry) as PartialRetryPolicy) : undefined,
    leaseTimeoutMs: row.lease_timeout_ms ?? undefined,
    limits: limitsFromJson(row.limits),
  };
}
