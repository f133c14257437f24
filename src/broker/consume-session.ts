import type { ClaimedJob } from '../store/job-store.js';
import type { JobState } from '../domain/job-state.js';
import type { ErrorCode } from '../domain/errors.js';
import { StreamCredit } from './stream-credit.js';

export type SettleKind = 'ack' | 'nack' | 'extend' | 'release';

/** The answer to one ack, nack or extend. */
export interface SettleOutcome {
  kind: SettleKind;
  jobId: string;
  leaseId: string;
  /** undefined = OK */
  errorCode?: ErrorCode;
  message?: string;
  state?: JobState;
  deadline?: number;
}

export type RevokeReason = 'cancelled' | 'lease_expired';

export interface RevokeNotice {
  jobId: string;
  leaseId: string;
  reason: RevokeReason;
}

/** Everything queued for one outgoing stream message. */
export interface Outgoing {
  deliveries: ClaimedJob[];
  settled: SettleOutcome[];
  revoked: RevokeNotice[];
  drainGraceMs?: number;
  /** Answers the worker's stop. */
  stopped?: true;
  /** Subscribed queues paused or resumed. */
  queueNotices?: QueueNotice[];
}

export interface QueueNotice {
  queue: string;
  paused: boolean;
}

export interface Subscription {
  queues: string[];
  types: string[];
  workerId: string;
  labels: Record<string, string>;
  rawJsonPayloads: boolean;
}

/**
 * One Consume stream: its subscription, credit and the leases it holds. Outgoing items are
 * collected in an outbox and written as one message per flush, so under load one message
 * carries many deliveries and settle confirmations.
 */
export class ConsumeSession {
  readonly credit: StreamCredit;
  /** jobId -> leaseId for every job leased to this stream. */
  readonly leases = new Map<string, string>();
  readonly connectedAt: number;
  lastSeenAt: number;
  draining = false;
  closed = false;
  private outbox: Outgoing = { deliveries: [], settled: [], revoked: [] };
  private outboxEmpty = true;

  constructor(
    readonly id: string,
    readonly subscription: Subscription,
    readonly peer: string,
    maxCredit: number,
    now: number,
    private readonly write: (out: Outgoing) => void,
    private readonly onOutboxUsed: (session: ConsumeSession) => void,
  ) {
    this.credit = new StreamCredit(maxCredit);
    this.connectedAt = now;
    this.lastSeenAt = now;
  }

  /** True when the dispatcher may give this stream a job now. */
  get wantsWork(): boolean {
    return !this.closed && !this.draining && this.credit.available > 0;
  }

  deliver(job: ClaimedJob): void {
    // Back on this stream under a new lease before the end of the old one was processed
    // (its commit is not durable yet): the old lease ends here.
    if (this.leases.has(job.id)) this.credit.settled();
    this.leases.set(job.id, job.lease_id);
    this.outbox.deliveries.push(job);
    this.touch();
  }

  /** A lease of this stream ended (settled, expired, cancelled, released). */
  leaseEnded(jobId: string, leaseId: string): boolean {
    if (this.leases.get(jobId) !== leaseId) return false;
    this.leases.delete(jobId);
    this.credit.settled();
    return true;
  }

  settled(outcome: SettleOutcome): void {
    this.outbox.settled.push(outcome);
    this.touch();
  }

  revoked(notice: RevokeNotice): void {
    this.outbox.revoked.push(notice);
    this.touch();
  }

  /** The worker asked to stop: unused credit is dropped, so nothing more is delivered. */
  stop(): void {
    this.draining = true;
    this.credit.dropUnused();
    this.outbox.stopped = true;
    this.touch();
  }

  /** A subscribed queue was paused or resumed: the worker is told, so it can say why it is idle. */
  queueNotice(notice: QueueNotice): void {
    (this.outbox.queueNotices ??= []).push(notice);
    this.touch();
  }

  drain(graceMs: number): void {
    this.draining = true;
    this.outbox.drainGraceMs = graceMs;
    this.touch();
  }

  /** Writes whatever the outbox holds as one message. */
  flushOutbox(): void {
    if (this.outboxEmpty) return;
    const out = this.outbox;
    this.outbox = { deliveries: [], settled: [], revoked: [] };
    this.outboxEmpty = true;
    if (!this.closed) this.write(out);
  }

  private touch(): void {
    if (this.outboxEmpty) {
      this.outboxEmpty = false;
      this.onOutboxUsed(this);
    }
  }
}
