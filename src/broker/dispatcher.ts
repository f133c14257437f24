import type { ClaimedJob, JobStore, ReadyRef } from '../store/job-store.js';
import type { AfterCommit } from './group-commit.js';
import { FLUSH_BYTES_PER_STREAM, type ConsumeSession } from './consume-session.js';
import type { QueueRegistry } from './queue-registry.js';
import type { DispatchLimits } from './dispatch-limits.js';

/** Most jobs claimed in one flush; more work triggers another flush right away. */
const MAX_CLAIMS_PER_FLUSH = 1000;
/** Backoff of the dispatcher's own retries after a failed flush (a full disk). */
const RETRY_MIN_MS = 50;
const RETRY_MAX_MS = 2000;

/** Streams with the same queues and types compete for the same jobs and share them fairly. */
interface SubscriptionGroup {
  key: string;
  queues: string[];
  types: string[];
  sessions: ConsumeSession[];
  /** Round-robin start, so no stream is always served first. */
  cursor: number;
  /** Queues that may hold ready jobs for this group. Cleared when a peek comes back short. */
  maybeReady: Set<string>;
}

interface Claim {
  session: ConsumeSession;
  job: ClaimedJob;
}

/**
 * Pushes ready jobs to streams with credit. It keeps no copy of the backlog: each flush
 * peeks at most `credit` jobs per queue through the ready index and claims them in the
 * same transaction as the flush's other writes, so memory stays flat with any backlog.
 * It only runs when something changed (a job became ready, credit arrived), never on a
 * polling loop.
 */
export class Dispatcher {
  private readonly groups = new Map<string, SubscriptionGroup>();
  private readonly groupsByQueue = new Map<string, Set<SubscriptionGroup>>();
  private groupRotation = 0;
  private leaseCounter = 0;
  private enabled = true;
  /** A flush that would have claimed jobs failed: the next try (see retryLater). */
  private retryTimer: NodeJS.Timeout | undefined;
  private retryDelayMs = RETRY_MIN_MS;

  constructor(
    private readonly store: JobStore,
    private readonly queues: QueueRegistry,
    private readonly bootId: string,
    /** Called when a flush claimed as much as it may and more work may be waiting. */
    private readonly requestFlush: () => void,
    private readonly onDelivered: (claims: readonly Claim[]) => void,
  ) {}

  /** Queues with rate/concurrency/fairness limits take the limited path (set once by the broker). */
  private limits: DispatchLimits | undefined;

  setLimits(limits: DispatchLimits): void {
    this.limits = limits;
  }

  addSession(session: ConsumeSession): void {
    const { queues, types } = session.subscription;
    const key = `${[...queues].sort().join(',')}|${[...types].sort().join(',')}`;
    let group = this.groups.get(key);
    if (!group) {
      group = { key, queues: [...new Set(queues)], types: [...new Set(types)], sessions: [], cursor: 0, maybeReady: new Set(queues) };
      this.groups.set(key, group);
      for (const q of group.queues) {
        let set = this.groupsByQueue.get(q);
        if (!set) this.groupsByQueue.set(q, (set = new Set()));
        set.add(group);
      }
    }
    group.sessions.push(session);
    this.requestFlush();
  }

  removeSession(session: ConsumeSession): void {
    for (const group of this.groups.values()) {
      const i = group.sessions.indexOf(session);
      if (i < 0) continue;
      group.sessions.splice(i, 1);
      if (group.sessions.length === 0) {
        this.groups.delete(group.key);
        for (const q of group.queues) this.groupsByQueue.get(q)?.delete(group);
      }
    }
  }

  /** A job of this queue (and type) may have become ready. `type` undefined = any type. */
  markReady(queue: string, type?: string): void {
    const groups = this.groupsByQueue.get(queue);
    if (!groups) return;
    for (const group of groups) {
      if (type === undefined || group.types.length === 0 || group.types.includes(type)) {
        if (!group.maybeReady.has(queue)) {
          group.maybeReady.add(queue);
        }
        this.requestFlush();
      }
    }
  }

  /** Stops all further deliveries (shutdown). */
  disable(): void {
    this.enabled = false;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
  }

  private retryLater(): void {
    if (this.retryTimer || !this.enabled) return;
    const delay = this.retryDelayMs;
    this.retryDelayMs = Math.min(delay * 2, RETRY_MAX_MS);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.requestFlush();
    }, delay);
    this.retryTimer.unref();
  }

  /** The subscriptions (types and worker ids) of a queue's streams, for explain. */
  subscribersOf(queue: string): { types: string[]; workerIds: string[] }[] {
    const out: { types: string[]; workerIds: string[] }[] = [];
    for (const g of this.groupsByQueue.get(queue) ?? []) {
      out.push({ types: g.types, workerIds: g.sessions.map((s) => s.subscription.workerId) });
    }
    return out;
  }

  /** Number of streams subscribed to a queue. */
  consumersOf(queue: string): number {
    let n = 0;
    for (const g of this.groupsByQueue.get(queue) ?? []) n += g.sessions.length;
    return n;
  }

  /** Inside the flush transaction: lease ready jobs to streams with credit. */
  claim(now: number): AfterCommit & { claimed: number } {
    const claims: Claim[] = [];
    if (this.enabled && this.groups.size > 0) {
      const groups = [...this.groups.values()];
      const start = this.groupRotation++ % groups.length;
      let budget = MAX_CLAIMS_PER_FLUSH;
      try {
        for (let i = 0; i < groups.length && budget > 0; i++) {
          budget -= this.claimForGroup(groups[(start + i) % groups.length]!, now, budget, claims);
        }
      } catch (error) {
        // A claim statement failed (a full disk): the flush rolls back without reaching the
        // rolledBack hook below, so undo here.
        this.undoClaims(claims);
        throw error;
      }
      if (budget <= 0) this.requestFlush();
    }
    return {
      claimed: claims.length,
      committed: () => {
        if (claims.length > 0) this.retryDelayMs = RETRY_MIN_MS;
        for (const { session, job } of claims) session.deliver(job);
        if (claims.length > 0) this.onDelivered(claims);
      },
      rolledBack: () => this.undoClaims(claims),
    };
  }

  private undoClaims(claims: readonly Claim[]): void {
    for (const { session, job } of claims) {
      session.credit.refund();
      // The lease never existed: give its concurrency slot back.
      this.limits?.leaseEnded(job.id, false);
    }
    for (const group of this.groups.values()) for (const q of group.queues) group.maybeReady.add(q);
    // Nothing else may write for a while (a full disk fails every flush alike), so the
    // dispatcher tries again by itself, backing off, instead of waiting for an unrelated write.
    if (this.groups.size > 0) this.retryLater();
  }

  /**
   * Gives back (unclaimed, attempt refunded) the jobs past the per-stream byte budget; true if
   * any. Rare: the session sizes its claims from the payloads it was sent before, so this
   * only trims a flush whose payloads are much larger than the stream's recent ones.
   */
  private overBudget(session: ConsumeSession, jobs: ClaimedJob[], now: number): boolean {
    let bytes = 0;
    for (let k = 0; k < jobs.length; k++) {
      bytes += jobs[k]!.payload.length;
      if (k > 0 && bytes > FLUSH_BYTES_PER_STREAM) {
        for (const job of jobs.slice(k)) this.store.release(job.id, job.lease_id, '', false, now);
        jobs.length = k;
        session.notePayloadBytes(bytes, k + 1);
        return true;
      }
    }
    if (jobs.length > 0) session.notePayloadBytes(bytes, jobs.length);
    return false;
  }

  private claimForGroup(group: SubscriptionGroup, now: number, budget: number, claims: Claim[]): number {
    if (group.maybeReady.size === 0) return 0;
    const ready = group.sessions.filter((s) => s.wantsWork);
    if (ready.length === 0) return 0;
    let credit = 0;
    let limited = false;
    const room = ready.map((s) => {
      const n = Math.min(s.credit.available, s.claimLimit);
      if (n < s.credit.available) limited = true;
      credit += n;
      return n;
    });
    const want = Math.min(credit, budget);

    // Round-robin over streams with credit: nobody gets a second job while another stream
    // with credit has not had its first. Jobs are assigned here and then claimed with one
    // statement per stream.
    const left = room;
    const assigned: number[][] = ready.map(() => []);
    let planned = 0;
    let cursor = group.cursor % ready.length;
    let idle = 0;
    const pick = (): number => {
      while (idle < ready.length) {
        const candidate = cursor;
        cursor = (cursor + 1) % ready.length;
        if (left[candidate]! > 0) {
          idle = 0;
          return candidate;
        }
        idle++;
      }
      return -1;
    };
    let taken = 0;

    // Peek each queue's head, then merge by priority and age: FIFO inside a level holds
    // across the group's queues because seq is global insertion order. Queues with limits
    // decide themselves what may start and claim it at once (queue-limiter.ts).
    const refs: ReadyRef[] = [];
    // Queues whose peek came back short were taken out of maybeReady; that is only right if
    // every job peeked from them is claimed below. With several queues the refs can outnumber
    // the group's credit, so those queues go back in when some refs are left over.
    const drained: string[] = [];
    for (const queue of group.queues) {
      if (!group.maybeReady.has(queue) || this.queues.isPaused(queue)) continue;
      if (taken >= want) break;
      const limiter = this.limits?.get(queue);
      if (limiter) {
        const outcome = limiter.claim({
          now,
          want: want - taken,
          types: group.types,
          claim: (seqs) => {
            const jobs: ClaimedJob[] = [];
            for (const seq of seqs) {
              const i = pick();
              if (i < 0) break;
              const session = ready[i]!;
              const leasePrefix = `${this.bootId}.${(++this.leaseCounter).toString(36)}.`;
              const [job] = this.store.claim([seq], leasePrefix, session.subscription.workerId, now);
              if (!job) continue;
              left[i]!--;
              session.credit.take();
              claims.push({ session, job });
              jobs.push(job);
              taken++;
            }
            return jobs;
          },
        });
        if (outcome.more === 'idle') group.maybeReady.delete(queue);
        else if (outcome.more === 'again') this.requestFlush();
        continue;
      }
      const head = this.store.peekReady(queue, want - taken, group.types);
      if (head.length < want - taken) {
        group.maybeReady.delete(queue);
        drained.push(queue);
      }
      for (const ref of head) refs.push(ref);
    }
    if (refs.length === 0) {
      group.cursor = cursor;
      if (limited && taken > 0) this.requestFlush();
      return taken;
    }
    if (group.queues.length > 1) refs.sort((a, b) => b.priority - a.priority || a.seq - b.seq);

    for (const ref of refs) {
      if (planned >= want - taken) break;
      const chosen = pick();
      if (chosen < 0) break;
      left[chosen]!--;
      assigned[chosen]!.push(ref.seq);
      planned++;
    }
    if (planned < refs.length) for (const queue of drained) group.maybeReady.add(queue);
    for (let i = 0; i < ready.length; i++) {
      const seqs = assigned[i]!;
      if (seqs.length === 0) continue;
      const session = ready[i]!;
      const leasePrefix = `${this.bootId}.${(++this.leaseCounter).toString(36)}.`;
      const jobs = this.store.claim(seqs, leasePrefix, session.subscription.workerId, now);
      // Deliver in dispatch order (the statement returns rows in no particular order).
      if (jobs.length > 1) jobs.sort((a, b) => b.priority - a.priority || a.seq - b.seq);
      if (this.overBudget(session, jobs, now)) {
        for (const q of group.queues) group.maybeReady.add(q);
        this.requestFlush();
      }
      for (const job of jobs) {
        session.credit.take();
        claims.push({ session, job });
        taken++;
      }
    }
    group.cursor = cursor;
    // A stream held to its per-flush size with credit left gets the rest in the next flush.
    if (limited && taken > 0) this.requestFlush();
    // More ready jobs than we took means the queue stays ready for the next flush.
    return taken;
  }
}

export type { Claim };
