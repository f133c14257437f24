import type { Clock } from '../domain/clock.js';
import { echo as quote, notFound } from '../domain/errors.js';
import { JobState } from '../domain/job-state.js';
import { decodeJobHistory } from '../store/job-history.js';
import type { StoreReads } from '../store/store-reads.js';
import type { HistoryEntry, JobFilter, JobRow } from '../store/types.js';
import type { DispatchLimits } from './dispatch-limits.js';
import { explainJob, type Explanation } from './explain.js';
import type { QueueRegistry, QueueSettings } from './queue-registry.js';

export interface QueueInfo {
  settings: QueueSettings;
  counts: Record<JobState, number>;
  consumers: number;
}

/** What the read views need from the broker besides the store: its memory (settings mirror, streams, limiters). */
export interface BrokerReadSources {
  store: StoreReads;
  queues: QueueRegistry;
  limits: DispatchLimits;
  consumersOf(queue: string): number;
  subscribersOf(queue: string): { types: string[]; workerIds: string[] }[];
  clock: Clock;
}

/**
 * The broker's read operations, one implementation for the gRPC services, the HTTP API, the
 * dashboard feed and the metrics scrape. Every one is async: the store's reads may take a
 * round trip (StoreReads). Errors are the same typed SluiceErrors as the writes' (NOT_FOUND).
 */
export class BrokerReads {
  readonly store: StoreReads;

  constructor(private readonly src: BrokerReadSources) {
    this.store = src.store;
  }

  async getJob(id: string): Promise<JobRow> {
    const row = await this.store.getJob(id);
    if (!row) throw notFound(`job ${quote(id)} not found`);
    return row;
  }

  listJobs(filter: JobFilter, limit: number, beforeSeq?: number): Promise<JobRow[]> {
    return this.store.listJobs(filter, limit, beforeSeq);
  }

  /** Every attempt and transition of a job, oldest first. */
  async jobHistory(id: string): Promise<HistoryEntry[]> {
    return decodeJobHistory(await this.getJob(id));
  }

  /** Why a job is (not) running: structured reasons and a summary line (explain.ts). */
  async explainJob(id: string): Promise<Explanation> {
    const row = await this.getJob(id);
    return explainJob(row, {
      reads: this.store,
      queues: this.src.queues,
      limits: this.src.limits,
      subscribersOf: this.src.subscribersOf,
      now: this.src.clock.now(),
    });
  }

  async listQueues(): Promise<QueueInfo[]> {
    const counts = new Map<string, Record<JobState, number>>();
    for (const { queue, state, n } of await this.store.countsByQueueAndState()) {
      let c = counts.get(queue);
      if (!c) counts.set(queue, (c = emptyCounts()));
      c[state] = n;
    }
    const { queues } = this.src;
    const names = new Set([...queues.names(), ...counts.keys()]);
    return [...names].sort().map((name) => ({
      settings: queues.get(name) ?? queues.refresh(name) ?? defaultSettings(name),
      counts: counts.get(name) ?? emptyCounts(),
      consumers: this.src.consumersOf(name),
    }));
  }

  async getQueue(name: string): Promise<QueueInfo> {
    const settings = this.src.queues.get(name);
    if (!settings) throw notFound(`queue ${quote(name)} not found (queues exist once a job was enqueued to them)`);
    const counts = emptyCounts();
    for (const { state, n } of await this.store.countsForQueue(name)) counts[state] = n;
    return { settings, counts, consumers: this.src.consumersOf(name) };
  }

  /** Dead jobs grouped by last error, most frequent first. */
  async deadLetterSummary(queue: string | undefined, limit: number): Promise<{ message: string; count: number; lastAt: number }[]> {
    return (await this.store.deadLetterSummary(queue, limit)).map((r) => ({ message: r.message, count: r.n, lastAt: r.last_at }));
  }

  /** Queue name -> when its next pending job became ready (queues with nothing pending are absent). */
  async pendingSince(): Promise<Map<string, number>> {
    return new Map((await this.store.pendingHeads()).map((r) => [r.queue, r.run_at]));
  }

  /** Scrape time: the oldest ready job per queue that has any. */
  async oldestPendingAges(): Promise<{ queue: string; ageMs: number }[]> {
    const now = this.src.clock.now();
    const pending = (await this.store.countsByQueueAndState()).filter((c) => c.state === JobState.Pending);
    const oldest = await Promise.all(pending.map(({ queue }) => this.store.oldestPendingRunAt(queue)));
    const out: { queue: string; ageMs: number }[] = [];
    pending.forEach(({ queue }, i) => {
      const at = oldest[i];
      if (at !== undefined) out.push({ queue, ageMs: Math.max(0, now - at) });
    });
    return out;
  }
}

export function emptyCounts(): Record<JobState, number> {
  return { scheduled: 0, pending: 0, active: 0, completed: 0, dead: 0, cancelled: 0 };
}

function defaultSettings(name: string): QueueSettings {
  return { name, paused: false, maxAttempts: undefined, retry: undefined, leaseTimeoutMs: undefined, retentionMaxAgeMs: undefined, retentionMaxCount: undefined, limits: undefined };
}
