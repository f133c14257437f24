import { effectivePriority, orderWithAging, TOP_PRIORITY } from '../domain/aging.js';
import { ConcurrencyLimiter } from '../domain/concurrency-limiter.js';
import { walkRing } from '../domain/group-round-robin.js';
import { formatJobId } from '../domain/job-id.js';
import { hasGroupPolicy, type QueueLimits, type RateLimit } from '../domain/queue-limits.js';
import { TokenBucket } from '../domain/token-bucket.js';
import type { ClaimedJob, JobStore } from '../store/job-store.js';

/** Most groups one walk visits per priority level before it yields to the event loop. */
const MAX_GROUP_VISITS = 512;
/** Full group buckets checked (and dropped) per claim: bounded work, bounded memory. */
const PRUNE_PER_CLAIM = 256;
/** The queue-wide slot key. */
const QUEUE = '';

/** What one claim round for a limited queue may do. */
export interface LimitedClaim {
  now: number;
  /** Jobs the streams could take (credit). */
  want: number;
  types: readonly string[];
  /** Leases these ready jobs to streams with credit (in this order); returns the jobs claimed. */
  claim(seqs: readonly number[]): ClaimedJob[];
}

/**
 * Whether the queue should be looked at again: `idle` = not before something changes (a job
 * becomes ready, a lease ends, a token arrives: each of these wakes the queue); `again` = the
 * walk stopped early (budget) and should resume on the next flush; `filled` = every credit was
 * used, so more may be ready.
 */
export type LimitedOutcome = { taken: number; more: 'idle' | 'again' | 'filled' };

/**
 * The dispatch state of one queue with limits: its token buckets, its concurrency slots and
 * its round-robin cursors. It decides how many jobs may start and which; the store does the
 * peeking and the dispatcher hands the jobs to streams. State per group exists only while the
 * group holds a slot (active or retrying jobs) or its bucket is not full (it recently started
 * jobs), so 100,000 idle groups cost nothing.
 */
export class QueueLimiter {
  readonly grouped: boolean;
  readonly queueBucket: TokenBucket | undefined;
  readonly groupBuckets = new Map<string, TokenBucket>();
  readonly queueSlots: ConcurrencyLimiter | undefined;
  readonly groupSlots: ConcurrencyLimiter | undefined;
  /** Round-robin cursor per priority level (index = level). */
  private readonly cursors: (string | undefined)[] = [];
  private pruneCursor: Iterator<[string, TokenBucket]> | undefined;

  constructor(
    readonly queue: string,
    readonly limits: QueueLimits,
    private readonly store: JobStore,
    now: number,
    /** Ask to look at the queue again at this time (next token). */
    private readonly wakeAt: (queue: string, at: number) => void,
  ) {
    this.grouped = hasGroupPolicy(limits);
    if (limits.rate) this.queueBucket = new TokenBucket(limits.rate, now);
    if (limits.concurrency) this.queueSlots = new ConcurrencyLimiter(limits.concurrency);
    if (limits.groupConcurrency) this.groupSlots = new ConcurrencyLimiter(limits.groupConcurrency);
    // Jobs already running or retrying hold their slots (limits apply to jobs already queued).
    if (this.queueSlots || this.groupSlots) {
      for (const h of store.limits.slotHolders(queue)) {
        const id = formatJobId(h.seq, h.created_at);
        if (h.state === 'active') this.queueSlots?.acquire(id, QUEUE);
        if (h.state === 'active' || this.holdsRetries) this.groupSlots?.acquire(id, h.group_key ?? '');
      }
    }
  }

  /** A job in retry backoff keeps its group slot (per-key order across retries). */
  get holdsRetries(): boolean {
    return !!this.groupSlots && !this.limits.retryOvertake;
  }

  /** A group's bucket; a group without one has a full bucket. */
  bucketOf(groupKey: string, now: number): TokenBucket | undefined {
    const limit = this.rateOf(groupKey);
    if (!limit) return undefined;
    let b = this.groupBuckets.get(groupKey);
    if (!b) this.groupBuckets.set(groupKey, (b = new TokenBucket(limit, now)));
    return b;
  }

  /** The group's rate limit: its own, or the one for every group. */
  rateOf(groupKey: string): RateLimit | undefined {
    return this.limits.groupRates?.[groupKey] ?? this.limits.groupRate;
  }

  /** Inside the flush transaction: start what the limits allow. */
  claim(c: LimitedClaim): LimitedOutcome {
    this.prune(c.now);
    let want = c.want;
    let capped = false;
    if (this.queueSlots) {
      const room = this.queueSlots.room(QUEUE);
      if (room < want) (want = room), (capped = true);
    }
    if (this.queueBucket) {
      const tokens = this.queueBucket.available(c.now);
      if (tokens < want) {
        want = tokens;
        capped = true;
        this.wakeAt(this.queue, this.queueBucket.nextTokenAt(c.now));
      }
    }
    if (want <= 0) return { taken: 0, more: 'idle' };
    const outcome = this.grouped ? this.claimGrouped(c, want) : this.claimPlain(c, want);
    // All the credit used: more may be ready, look again when credit comes back.
    if (!capped && outcome.more === 'idle' && outcome.taken >= c.want) return { taken: outcome.taken, more: 'filled' };
    return outcome;
  }

  /** No group policy: the queue's ready jobs in order (with aging), as many as allowed. */
  private claimPlain(c: LimitedClaim, want: number): LimitedOutcome {
    let seqs: number[];
    if (this.limits.agingMs) {
      const heads = [];
      for (let level = TOP_PRIORITY; level >= 1; level--) {
        for (const r of this.store.limits.levelHeads(this.queue, level, want, c.types)) heads.push({ seq: r.seq, priority: r.priority, readyAt: r.run_at });
      }
      seqs = orderWithAging(heads, c.now, this.limits.agingMs, want).map((h) => h.seq);
    } else {
      seqs = this.store.peekReady(this.queue, want, c.types).map((r) => r.seq);
    }
    const jobs = seqs.length > 0 ? c.claim(seqs) : [];
    for (const job of jobs) this.started(job, c.now);
    return { taken: jobs.length, more: 'idle' };
  }

  /**
   * Group policy: levels from the top; inside a level, round-robin over the groups with ready
   * jobs, each group starting at most its weight per turn and only what its own limits allow.
   * With aging, the oldest jobs of lower levels that have aged into a level go first in it.
   */
  private claimGrouped(c: LimitedClaim, want: number): LimitedOutcome {
    let taken = 0;
    let again = false;
    const aged = this.limits.agingMs ? this.agedCandidates(c, want) : [];
    for (let level = TOP_PRIORITY; level >= 1 && taken < want; level--) {
      for (const a of aged) {
        if (taken >= want) break;
        if (a.done || a.level < level) continue;
        a.done = true;
        if (this.groupAllowance(a.groupKey, 1, c.now) > 0) taken += this.serve(a.groupKey, [a.seq], c);
      }
      if (taken >= want) break;
      const walk = walkRing({
        cursor: this.cursors[level],
        want: want - taken,
        maxVisits: MAX_GROUP_VISITS,
        next: (after) => this.store.limits.nextReadyGroup(this.queue, level, after, c.types),
        weight: (key) => this.limits.groupWeights?.[key] ?? 1,
        serve: (key, max) => {
          const allowed = this.groupAllowance(key, max, c.now);
          if (allowed === 0) return 0;
          return this.serve(key, this.store.limits.groupHeads(this.queue, level, key, allowed, c.types), c);
        },
      });
      this.cursors[level] = walk.cursor;
      taken += walk.taken;
      if (walk.stop === 'budget') {
        again = true;
        break;
      }
    }
    return { taken, more: again ? 'again' : 'idle' };
  }

  /** Jobs of lower levels old enough to be served at a higher one: highest level first, then oldest. */
  private agedCandidates(c: LimitedClaim, want: number): { seq: number; groupKey: string; level: number; done: boolean }[] {
    const agingMs = this.limits.agingMs!;
    const aged: { seq: number; groupKey: string; level: number; done: boolean }[] = [];
    for (let level = TOP_PRIORITY - 1; level >= 1; level--) {
      for (const r of this.store.limits.levelHeads(this.queue, level, want, c.types)) {
        const effective = effectivePriority(r.priority, r.run_at, c.now, agingMs);
        if (effective > r.priority) aged.push({ seq: r.seq, groupKey: r.group_key ?? '', level: effective, done: false });
      }
    }
    return aged.sort((a, b) => b.level - a.level || a.seq - b.seq);
  }

  /** How many of `max` jobs the group may start now (its slots and tokens). */
  private groupAllowance(key: string, max: number, now: number): number {
    let n = max;
    if (this.groupSlots) n = Math.min(n, this.groupSlots.room(key));
    if (n > 0) {
      const bucket = this.bucketOf(key, now);
      if (bucket) {
        const tokens = bucket.available(now);
        if (tokens === 0) this.wakeAt(this.queue, bucket.nextTokenAt(now));
        n = Math.min(n, tokens);
      }
    }
    return n;
  }

  private serve(key: string, seqs: readonly number[], c: LimitedClaim): number {
    if (seqs.length === 0) return 0;
    const jobs = c.claim(seqs);
    for (const job of jobs) this.started(job, c.now);
    return jobs.length;
  }

  /** A job of this queue was leased: it takes a token and a slot at each level. */
  private started(job: ClaimedJob, now: number): void {
    this.queueBucket?.take(now);
    const key = job.group_key ?? '';
    this.bucketOf(key, now)?.take(now);
    this.queueSlots?.acquire(job.id, QUEUE);
    this.groupSlots?.acquire(job.id, key);
  }

  /**
   * A lease ended. `retrying`: the job waits for its backoff, and keeps its group slot when
   * per-key order holds across retries. Returns true when a slot was freed.
   */
  leaseEnded(jobId: string, retrying: boolean): boolean {
    const freedQueue = this.queueSlots?.release(jobId) !== undefined;
    if (retrying && this.holdsRetries) return freedQueue;
    return (this.groupSlots?.release(jobId) !== undefined) || freedQueue;
  }

  /** A job left its retry backoff (ready again) or was cancelled while waiting: its held slot is freed. */
  retryEnded(jobId: string): boolean {
    if (this.queueSlots?.holds(jobId)) return false; // active, not retrying
    return this.groupSlots?.release(jobId) !== undefined;
  }

  /** Drops a few full buckets: a full bucket is the same as no bucket. */
  private prune(now: number): void {
    if (this.groupBuckets.size === 0) return;
    if (!this.pruneCursor) this.pruneCursor = this.groupBuckets.entries();
    for (let i = 0; i < PRUNE_PER_CLAIM; i++) {
      const next = this.pruneCursor.next();
      if (next.done) {
        this.pruneCursor = undefined;
        return;
      }
      const [key, bucket] = next.value;
      if (bucket.isFull(now)) this.groupBuckets.delete(key);
    }
  }
}
