import type { JobState } from '../domain/job-state.js';
import type { ClaimedJob, CompletedJob, NewJob, ReleasedJob, StoredJobError } from './types.js';

/**
 * One group-commit flush as data (docs/design/postgres-store.md, 3.2): the writes every op of
 * the flush asked for, grouped by kind, plus the claims the dispatcher planned for streams with
 * credit. A backend runs a batch as one transaction: SQLite synchronously with its statements,
 * PostgreSQL as one set-based statement per kind, pipelined, in one round trip. Order inside
 * the transaction is fixed: new queues; the workers' settles (acks, fails, extends); releases
 * (a worker handing a job back, a lost stream, an expired lease); the timers (expire, then
 * promote); enqueues; then claims. Settles before releases: an ack and the loss of its stream in
 * one flush complete the job, as the ack came first. The timers after the settles and releases:
 * a lease is its worker's until the flush commits, so an ack, nack, heartbeat or release that
 * reached the flush wins over the expiry of the same lease (a heartbeat moves the deadline past
 * now, the others end the lease), instead of the worker's settle missing a lease the flush took
 * from it. Promotion before the enqueues: a job enqueued scheduled in this flush (run_at after
 * the broker's now) is never promoted by it, even where the statement's clock is the database's
 * now() and runs a little ahead of the broker's (PostgreSQL, 3.7). Releases, timers and enqueues
 * before claims: a job released, expired back to pending, promoted or enqueued in a flush can be
 * claimed by it (as on SQLite today, where the dispatcher claims last, in `beforeCommit`).
 *
 * Every command is written so a stale input matches nothing instead of failing (guards by lease
 * id, attempt, state): only an enqueue can fail on its input, and a backend isolates it (the
 * other commands of the flush still commit).
 */

/** Jobs of one Enqueue request. Atomic: all or none (one error for all); otherwise an outcome per job. */
export interface EnqueueCommand {
  jobs: readonly NewJob[];
  /** The state each job starts in (pending, or scheduled for a later run_at). */
  states: readonly JobState[];
  atomic: boolean;
}

export type EnqueueOutcome = { id: string; state: JobState; deduplicated: boolean } | { error: Error };

export interface AckCommand {
  id: string;
  leaseId: string;
  result: string | null;
}

/**
 * A nack decided by the broker (backoff, dead letter) from the attempt and max_attempts it knew:
 * applied only while the job is still active under this lease with those values, so a decision
 * made from stale values (UpdateQueue changed max_attempts meanwhile) changes nothing.
 */
export interface FailCommand {
  id: string;
  leaseId: string;
  attempt: number;
  maxAttempts: number;
  /** The decision: retry at runAt, or dead. */
  state: typeof JobState.Scheduled | typeof JobState.Dead;
  runAt: number;
  error: StoredJobError;
}

export interface ExtendCommand {
  id: string;
  leaseId: string;
  extendMs: number;
  progress: string | null;
}

export interface ReleaseCommand {
  id: string;
  leaseId: string;
  reason: string;
  countsAsAttempt: boolean;
  /** How the lease ended, in the history; default 'released'. */
  outcome?: 'expired' | 'released';
}

/**
 * Promote due jobs (scheduled -> pending, run_at reached): up to `limit`, oldest run_at first.
 * The broker's scheduled timer asks for it; a result of `limit` jobs means more may be due.
 */
export interface PromoteCommand {
  limit: number;
}

/** The reason an expired lease gets when the command names none (the broker's today). */
export const LEASE_EXPIRED_REASON = 'lease expired: no heartbeat within the lease timeout';

/**
 * Expire leases past their deadline: up to `limit`, earliest deadline first, each released as an
 * attempt (dead on the last one) with outcome 'expired'. The deadline is compared with the
 * statement's clock: batch.now on SQLite, the database's now() on PostgreSQL (3.7).
 */
export interface ExpireCommand {
  limit: number;
  /** Written as the job's last_error and in its history; default LEASE_EXPIRED_REASON. */
  reason?: string;
}

/** A job a promote command made pending. */
export interface PromotedJob {
  id: string;
  queue: string;
  type: string;
  attempt: number;
}

/** A lease an expire command ended, and the job as released. */
export interface ExpiredLease {
  id: string;
  /** The lease that expired. */
  leaseId: string;
  released: ReleasedJob;
}

/** The lease prefix of design 3.6, `<brokerId>.<counter>.`, and the worker, of one delivery slot. */
export interface ClaimSlot {
  prefix: string;
  workerId: string;
}

/** Up to slots.length ready jobs of one queue, in delivery order, the i-th to slots[i]. */
export interface ClaimCommand {
  queue: string;
  /** Only jobs of these types; empty or absent: any type. */
  types?: readonly string[];
  slots: readonly ClaimSlot[];
}

export interface FlushBatch {
  /** The broker's (database-aligned) clock: created_at and run_at of enqueues, history times. */
  now: number;
  /** Queues to create (with defaults) if missing, before the enqueues: the first job of a new queue. */
  newQueues: readonly string[];
  enqueues: readonly EnqueueCommand[];
  acks: readonly AckCommand[];
  fails: readonly FailCommand[];
  extends: readonly ExtendCommand[];
  releases: readonly ReleaseCommand[];
  /** Timer commands, absent when the timer is not due: at most one of each per flush. */
  promote?: PromoteCommand;
  expire?: ExpireCommand;
  claims: readonly ClaimCommand[];
  /** Queues that gained ready jobs in this flush: other brokers are told at commit (3.5). */
  ready: readonly string[];
}

/** What each command did, index for index with the batch. */
export interface FlushResult {
  enqueues: EnqueueOutcome[][];
  /** The completed job, or undefined: not active under that lease (a stale ack). */
  acks: (CompletedJob | undefined)[];
  /** Applied, or not (no longer active under that lease with that attempt and max_attempts). */
  fails: boolean[];
  extends: ({ deadline: number; attempt: number } | undefined)[];
  releases: (ReleasedJob | undefined)[];
  /** The jobs the promote command made pending, in seq order; empty without one. */
  promoted: PromotedJob[];
  /** The leases the expire command ended, in seq order; empty without one. */
  expired: ExpiredLease[];
  /** The jobs each claim got, in slot order; fewer than its slots: the queue had no more. */
  claims: ClaimedJob[][];
}

export function emptyBatch(now: number): FlushBatch {
  return { now, newQueues: [], enqueues: [], acks: [], fails: [], extends: [], releases: [], claims: [], ready: [] };
}

export function isEmptyBatch(b: FlushBatch): boolean {
  return (
    b.newQueues.length === 0 && b.enqueues.length === 0 && b.acks.length === 0 && b.fails.length === 0 && b.extends.length === 0 &&
    b.releases.length === 0 && b.promote === undefined && b.expire === undefined && b.claims.length === 0 && b.ready.length === 0
  );
}

/**
 * A FlushBatch being filled by the ops of one flush (broker/group-commit.ts). Each op adds its
 * commands and remembers their indices, which are its slice of the FlushResult. `mark`/`reset`
 * take back what an op added before it threw, so a failed op leaves no half of its commands.
 */
export class FlushBatchBuilder implements FlushBatch {
  readonly newQueues: string[] = [];
  readonly enqueues: EnqueueCommand[] = [];
  readonly acks: AckCommand[] = [];
  readonly fails: FailCommand[] = [];
  readonly extends: ExtendCommand[] = [];
  readonly releases: ReleaseCommand[] = [];
  readonly claims: ClaimCommand[] = [];
  readonly ready: string[] = [];
  promote: PromoteCommand | undefined;
  expire: ExpireCommand | undefined;
  /** Dedup keys (queue NUL key) of the jobs planned so far: a later job with one is deduplicated, not inserted. */
  private keys: Set<string> | undefined;

  constructor(readonly now: number) {}

  /** A queue to create (with defaults) before the enqueues; once per batch. */
  addQueue(name: string): void {
    if (!this.newQueues.includes(name)) this.newQueues.push(name);
  }

  /** Returns the command's index into FlushResult.enqueues. */
  addEnqueue(command: EnqueueCommand): number {
    this.noteKeys(command);
    return this.enqueues.push(command) - 1;
  }

  /** Whether a job planned earlier in this batch holds the key (so this one will be deduplicated against it). */
  plansKey(queue: string, key: string): boolean {
    return this.keys?.has(dedupSlot(queue, key)) ?? false;
  }

  /** Returns the ack's index into FlushResult.acks (and so on for the others). */
  addAck(command: AckCommand): number {
    return this.acks.push(command) - 1;
  }

  addFail(command: FailCommand): number {
    return this.fails.push(command) - 1;
  }

  addExtend(command: ExtendCommand): number {
    return this.extends.push(command) - 1;
  }

  addRelease(command: ReleaseCommand): number {
    return this.releases.push(command) - 1;
  }

  /** Asks for the promote command; false if an op of this batch already did (its reader owns the result). */
  addPromote(command: PromoteCommand): boolean {
    if (this.promote) return false;
    this.promote = command;
    return true;
  }

  /** Asks for the expire command; false if an op of this batch already did. */
  addExpire(command: ExpireCommand): boolean {
    if (this.expire) return false;
    this.expire = command;
    return true;
  }

  /** What has been added so far, for `reset`. */
  mark(): BuilderMark {
    return [this.promote ? 1 : 0, this.expire ? 1 : 0, this.newQueues.length, this.enqueues.length, this.acks.length, this.fails.length, this.extends.length, this.releases.length, this.claims.length];
  }

  /** Takes back everything added since `mark` (the dedup keys are rebuilt from the enqueues kept). */
  reset(mark: BuilderMark): void {
    const lists = [this.newQueues, this.enqueues, this.acks, this.fails, this.extends, this.releases, this.claims] as unknown[][];
    if (!mark[0]) this.promote = undefined;
    if (!mark[1]) this.expire = undefined;
    let dropped = false;
    lists.forEach((list, k) => {
      if (list.length > mark[k + 2]!) (list.length = mark[k + 2]!), (dropped = true);
    });
    if (!dropped || this.keys === undefined) return;
    this.keys = undefined;
    for (const command of this.enqueues) this.noteKeys(command);
  }

  private noteKeys(command: EnqueueCommand): void {
    for (const job of command.jobs) if (job.dedupKey !== null) (this.keys ??= new Set()).add(dedupSlot(job.queue, job.dedupKey));
  }
}

export type BuilderMark = readonly number[];

function dedupSlot(queue: string, key: string): string {
  return `${queue}\u0000${key}`;
}
