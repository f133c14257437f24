import { statfs } from 'node:fs/promises';
import { statfsSync } from 'node:fs';
import { dirname } from 'node:path';
import { SluiceError, echo } from '../domain/errors.js';
import type { JobStore } from '../store/job-store.js';

/**
 * Admission control (SPEC §4): caps on queued jobs (pending + scheduled) per queue and per
 * group key, and a disk guard. Past them Enqueue fails with RESOURCE_EXHAUSTED, a message
 * naming the limit and a retry hint (`retry-after-ms`, see grpc/status.ts), instead of letting
 * the store grow without bound. Settles, cancels and admin deletes are never refused here, so
 * a queue can always drain.
 *
 * Cost: nothing unless a cap applies to the job's queue. The queue's count comes from
 * queue_counts (kept by triggers, migration 2) and the group's from group_counts (migration
 * 3): one primary-key read per queue or group per request, not a scan. The disk guard reads
 * the file system on a timer, never per enqueue.
 */
export interface AdmissionConfig {
  /** Broker-wide default cap per queue; 0 = none. */
  maxQueuedPerQueue: number;
  /** Broker-wide default cap per (queue, group key); 0 = none. */
  maxQueuedPerGroup: number;
  /** Refuse enqueues while the data volume has less free space than this; 0 = off. */
  minFreeDiskBytes: number;
  /** Refuse enqueues while the database holds more than this (pages in use, not free ones); 0 = off. */
  maxDatabaseBytes: number;
  /** The hint sent with a refusal. */
  admissionRetryAfterMs: number;
}

/** The per-queue caps as set on the queue (undefined = the broker's default). */
export interface QueueCaps {
  maxQueued?: number | undefined;
  maxQueuedPerGroup?: number | undefined;
}

/** How often the disk guard looks at the volume and the file sizes. */
const DISK_CHECK_INTERVAL_MS = 1000;

function refused(message: string, retryAfterMs: number): SluiceError {
  return new SluiceError('RESOURCE_EXHAUSTED', message, retryAfterMs);
}

/**
 * Counts seen and added by the enqueues planned into one flush batch. A request counts into its
 * own tally, on top of the batch's (`parent`), and `commit`s into it once it is planned whole:
 * a later request of the batch sees the jobs the earlier ones will insert, and an atomic request
 * refused part-way adds nothing.
 */
export class AdmissionTally {
  private readonly queues = new Map<string, number>();
  private readonly groups = new Map<string, number>();

  constructor(private readonly parent?: AdmissionTally) {}

  queued(queue: string): number | undefined {
    return this.queues.get(queue) ?? this.parent?.queued(queue);
  }

  queuedInGroup(key: string): number | undefined {
    return this.groups.get(key) ?? this.parent?.queuedInGroup(key);
  }

  setQueued(queue: string, n: number): void {
    this.queues.set(queue, n);
  }

  setQueuedInGroup(key: string, n: number): void {
    this.groups.set(key, n);
  }

  /** This request is planned: its jobs count for the batch's later requests. */
  commit(): void {
    if (!this.parent) return;
    for (const [queue, n] of this.queues) this.parent.setQueued(queue, n);
    for (const [key, n] of this.groups) this.parent.setQueuedInGroup(key, n);
  }
}

export class Admission {
  private diskProblem: string | undefined;
  private timer: NodeJS.Timeout | undefined;
  private checking = false;

  constructor(
    private config: AdmissionConfig,
    private readonly store: JobStore,
    private readonly dataFile: string,
    private readonly log: { warn(o: object, m: string): void; info(o: object, m: string): void },
  ) {}

  /** Checks the disk once now (so a broker started past a limit refuses at once) and then on a timer. */
  start(): void {
    if (!this.diskGuardOn) return;
    this.setDiskProblem(this.diskProblemNow());
    this.timer = setInterval(() => void this.refreshDisk(), DISK_CHECK_INTERVAL_MS);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Changes the limits at run time (tests; a future config reload). */
  configure(changes: Partial<AdmissionConfig>): void {
    this.config = { ...this.config, ...changes };
    if (!this.diskGuardOn) this.setDiskProblem(undefined);
  }

  /** Looks at the disk now; resolves once the guard reflects it. */
  async refreshDisk(): Promise<void> {
    if (!this.diskGuardOn || this.checking) return;
    this.checking = true;
    try {
      const volume = await statfs(dirname(this.dataFile));
      this.setDiskProblem(this.problemFrom(volume, this.store.databaseBytesInUse()));
    } catch (error) {
      this.log.warn({ err: error }, 'disk guard could not read the data volume');
    } finally {
      this.checking = false;
    }
  }

  /** Before an enqueue request: the disk guard. */
  checkDisk(): void {
    if (this.diskProblem) throw refused(this.diskProblem, this.config.admissionRetryAfterMs);
  }

  /** Whether a cap applies to a job of this queue and group (else `admit` reads and refuses nothing). */
  capped(groupKey: string | null, caps: QueueCaps | undefined): boolean {
    const maxQueue = caps?.maxQueued ?? this.config.maxQueuedPerQueue;
    const maxGroup = groupKey === null ? 0 : (caps?.maxQueuedPerGroup ?? this.config.maxQueuedPerGroup);
    return maxQueue > 0 || maxGroup > 0;
  }

  /** Inside the enqueue transaction, before inserting one job: the queue and group caps. */
  admit(tally: AdmissionTally, queue: string, groupKey: string | null, caps: QueueCaps | undefined): void {
    const maxQueue = caps?.maxQueued ?? this.config.maxQueuedPerQueue;
    const maxGroup = groupKey === null ? 0 : (caps?.maxQueuedPerGroup ?? this.config.maxQueuedPerGroup);
    if (maxQueue > 0) {
      const queued = tally.queued(queue) ?? this.store.queuedInQueue(queue);
      if (queued >= maxQueue) {
        throw refused(
          `queue ${echo(queue)} holds ${queued} queued jobs (pending + scheduled), its limit (max_queued ${maxQueue}); retry once workers have taken some`,
          this.config.admissionRetryAfterMs,
        );
      }
      tally.setQueued(queue, queued + 1);
    }
    if (maxGroup > 0 && groupKey !== null) {
      const key = `${queue}\u0000${groupKey}`;
      const queued = tally.queuedInGroup(key) ?? this.store.queuedInGroup(queue, groupKey);
      if (queued >= maxGroup) {
        throw refused(
          `group ${echo(groupKey)} of queue ${echo(queue)} holds ${queued} queued jobs, its limit (max_queued_per_group ${maxGroup}); retry once workers have taken some`,
          this.config.admissionRetryAfterMs,
        );
      }
      tally.setQueuedInGroup(key, queued + 1);
    }
  }

  private get diskGuardOn(): boolean {
    return this.config.minFreeDiskBytes > 0 || this.config.maxDatabaseBytes > 0;
  }

  private diskProblemNow(): string | undefined {
    try {
      return this.problemFrom(statfsSync(dirname(this.dataFile)), this.store.databaseBytesInUse());
    } catch (error) {
      this.log.warn({ err: error }, 'disk guard could not read the data volume');
      return undefined;
    }
  }

  private problemFrom(volume: { bavail: number | bigint; bsize: number | bigint }, databaseBytes: number): string | undefined {
    const free = Number(volume.bavail) * Number(volume.bsize);
    const { minFreeDiskBytes, maxDatabaseBytes } = this.config;
    if (minFreeDiskBytes > 0 && free < minFreeDiskBytes) {
      return `the data volume has ${mib(free)} free, below the limit of ${mib(minFreeDiskBytes)} (--min-free-disk-bytes); enqueues resume once space is freed (acks and deletes still work)`;
    }
    if (maxDatabaseBytes > 0 && databaseBytes > maxDatabaseBytes) {
      return `the database is ${mib(databaseBytes)}, over the limit of ${mib(maxDatabaseBytes)} (--max-database-bytes); enqueues resume once jobs are purged or retention removes them (acks and deletes still work)`;
    }
    return undefined;
  }

  private setDiskProblem(problem: string | undefined): void {
    const was = this.diskProblem;
    this.diskProblem = problem;
    if (problem && !was) this.log.warn({ reason: problem }, 'disk guard: refusing enqueues');
    else if (!problem && was) this.log.info({}, 'disk guard: accepting enqueues again');
  }
}

function mib(bytes: number): string {
  return `${(bytes / (1024 * 1024)).toFixed(1)} MiB`;
}
