import type { ClaimedJob } from '../store/job-store.js';
import type { JobState } from '../domain/job-state.js';
import type { ErrorCode } from '../domain/errors.js';
import { StreamCredit } from './stream-credit.js';

/** Unwritten bytes past which a stream gets no more deliveries until its transport catches up. */
export const STREAM_BUFFER_BYTES = 1024 * 1024;
/** Payload bytes one stream is given per flush (past its first job); see Dispatcher.overBudget. */
export const FLUSH_BYTES_PER_STREAM = 1024 * 1024;
/** Claims for a stream's first flush, before its payload sizes are known. */
const FIRST_FLUSH_CLAIMS = 32;

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
  /** Recent payload size of this stream's deliveries (bytes, moving average); undefined before the first. */
  private payloadBytesAverage: number | undefined;
  /** Bytes handed to the transport and not yet taken by it (the peer is not reading fast enough). */
  private unwrittenBytes = 0;

  constructor(
    readonly id: string,
    readonly subscription: Subscription,
    readonly peer: string,
    maxCredit: number,
    now: number,
    /** Sends one message; returns its size and calls `written` once the transport took it. */
    private readonly write: (out: Outgoing, written: () => void) => number,
    private readonly onOutboxUsed: (session: ConsumeSession) => void,
    /** The transport caught up after backpressure: deliveries may resume. */
    private readonly onWritable: (session: ConsumeSession) => void = () => {},
  ) {
    this.credit = new StreamCredit(maxCredit);
    this.connectedAt = now;
    this.lastSeenAt = now;
  }

  /** True when the dispatcher may give this stream a job now. */
  get wantsWork(): boolean {
    return !this.closed && !this.draining && this.credit.available > 0 && this.unwrittenBytes <= STREAM_BUFFER_BYTES;
  }

  /**
   * Most jobs the dispatcher should claim for this stream in one flush: about
   * FLUSH_BYTES_PER_STREAM of payloads, judged by the payloads it was sent before (a first
   * flush takes at most FIRST_FLUSH_CLAIMS, so a large grant cannot pull in gigabytes at once).
   */
  get claimLimit(): number {
    const avg = this.payloadBytesAverage;
    if (avg === undefined) return FIRST_FLUSH_CLAIMS;
    return Math.max(1, Math.floor(FLUSH_BYTES_PER_STREAM / Math.max(avg, 1)));
  }

  notePayloadBytes(bytes: number, jobs: number): void {
    const avg = bytes / jobs;
    this.payloadBytesAverage = this.payloadBytesAverage === undefined ? avg : (this.payloadBytesAverage + avg) / 2;
  }

  /**
   * The peer is not taking what was sent (a worker that grants credit but does not read):
   * no more deliveries until the transport has taken what it holds, so the broker buffers a
   * bounded amount per stream instead of everything the credit allows.
   */
  get backpressured(): boolean {
    return this.unwrittenBytes > STREAM_BUFFER_BYTES;
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
    if (this.closed) return;
    let size = 0;
    let written = false;
    size = this.write(out, () => {
      written = true;
      if (size === 0) return; // taken at once, before it was counted
      const before = this.backpressured;
      this.unwrittenBytes -= size;
      if (before && !this.backpressured && !this.closed) this.onWritable(this);
    });
    if (!written) this.unwrittenBytes += size;
  }

  private touch(): void {
    if (this.outboxEmpty) {
      this.outboxEmpty = false;
      this.onOutboxUsed(this);
    }
  }
}
