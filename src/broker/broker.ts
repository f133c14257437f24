import { randomBytes } from 'node:crypto';
import type { BrokerConfig } from '../config.js';
import type { Clock } from '../domain/clock.js';
import type { Logger } from '../log.js';
import { backoffDelayMs, resolveRetryPolicy, type PartialRetryPolicy, type RetryPolicy } from '../domain/backoff.js';
import { SluiceError, echo as quote, failedPrecondition, invalidArgument, notFound, unavailable } from '../domain/errors.js';
import { JobState, isTerminal } from '../domain/job-state.js';
import { openDatabase, closeDatabase, type Db } from '../store/database.js';
import type { WalSync } from '../store/wal-sync.js';
import { INHERITS_LEASE_TIMEOUT, INHERITS_MAX_ATTEMPTS, JobStore, type ClaimedJob, type DeadLetterSelection, type JobRow, type NewJob } from '../store/job-store.js';
import { GroupCommit } from './group-commit.js';
import { Dispatcher, type Claim } from './dispatcher.js';
import { DeadlineTimer } from './deadline-timer.js';
import { QueueRegistry } from './queue-registry.js';
import { ConsumeSession, type Outgoing, type SettleOutcome, type Subscription } from './consume-session.js';
import { JobWatchers, type JobChange, type JobListener } from './job-watchers.js';
import { WriteHealth } from './write-health.js';
import { Admission, AdmissionTally } from './admission.js';
import { FlushBatchBuilder, type FlushResult } from '../store/flush-batch.js';
import { SqliteFlushExecutor } from '../store/sqlite-flush.js';
import { isDiskFull, storeErrorToDomain } from '../store/store-errors.js';

/** Test seams, like the clock. */
export interface BrokerOptions {
  /** Runs right after the database is opened (tests set PRAGMA max_page_count to fill the disk). */
  onDatabaseOpen?: (db: Db) => void;
}
import { ScheduleStore } from '../store/schedule-store.js';
import { Scheduler } from './scheduler.js';
import { ScheduleManager } from './schedules.js';
import { BrokerMetrics } from '../metrics/broker-metrics.js';
import { SqliteReads } from '../store/sqlite-reads.js';
import { BrokerReads, emptyCounts, type QueueInfo } from './broker-reads.js';
import { backupDatabase, validateBackupPath } from '../store/backup.js';
import { Retention, type RetentionPolicy } from './retention.js';
import { jobLogFields } from './job-log.js';
import { DispatchLimits } from './dispatch-limits.js';
import { hasGroupPolicy, limitsToJson, type QueueLimits } from '../domain/queue-limits.js';
import { Throughput } from './throughput.js';

/** A validated job from a producer (see grpc/enqueue-input.ts). */
export interface EnqueueInput {
  queue: string;
  type: string;
  /** JSON text. */
  payload: string;
  priority: number;
  delayMs: number;
  runAt: number | undefined;
  maxAttempts: number | undefined;
  retry: PartialRetryPolicy | undefined;
  leaseTimeoutMs: number | undefined;
  metadata: Record<string, string> | undefined;
  dedupKey: string | undefined;
  groupKey: string | undefined;
}

export type EnqueueOutcome = { id: string; deduplicated: boolean; state: JobState } | { error: SluiceError };

export interface AckInput {
  jobId: string;
  leaseId: string;
  /** JSON text or null. */
  result: string | null;
}

export interface NackInput {
  jobId: string;
  leaseId: string;
  error: string;
  nonRetryable: boolean;
  retryAfterMs: number;
}

export interface ReleaseInput {
  jobId: string;
  leaseId: string;
  reason: string;
}

/** Everything one Consume message settles. */
export interface Settles {
  acks: readonly AckInput[];
  nacks: readonly NackInput[];
  extends: readonly ExtendInput[];
  releases: readonly ReleaseInput[];
}

export interface ExtendInput {
  jobId: string;
  leaseId: string;
  extendMs: number;
  /** JSON text or null. */
  progress: string | null;
}

/**
 * Broker lifecycle. Changed only through `setState`, which checks the transition.
 * starting -> serving -> draining -> stopped
 */
export type BrokerState = 'starting' | 'serving' | 'draining' | 'stopped';
const NEXT_STATES: Record<BrokerState, BrokerState[]> = {
  starting: ['serving', 'stopped'],
  serving: ['draining', 'stopped'],
  draining: ['stopped'],
  stopped: [],
};

/** Most timer-driven rows handled per flush, so one flush never blocks the loop for long. */
const TIMER_BATCH = 1000;

/**
 * The broker core: owns the store, the group commit, the dispatcher, the timers and the
 * Consume sessions. Transport-agnostic: the gRPC layer translates to and from it.
 */
export class Broker {
  readonly db: Db;
  readonly store: JobStore;
  readonly queues: QueueRegistry;
  readonly commits: GroupCommit;
  readonly watchers = new JobWatchers();
  /** Whether writes currently succeed (a full disk makes them fail; reads go on). */
  readonly writeHealth: WriteHealth;
  /** Cron schedules (broker/schedules.ts). */
  readonly schedules: ScheduleManager;
  readonly metrics: BrokerMetrics;
  readonly retention: Retention;
  /** Completed/failed per second, last 15 minutes (the dashboard's chart). */
  readonly throughput = new Throughput();
  /** Caps on queued jobs and the disk guard (admission.ts). */
  readonly admission: Admission;
  /** Jobs, queues, explain, dead-letter summaries: every read of the views, async (broker-reads.ts). */
  readonly reads: BrokerReads;
  private readonly dispatcher: Dispatcher;
  /** Rate, concurrency and fairness limits of the queues that have them (dispatch-limits.ts). */
  private readonly limits: DispatchLimits;
  private readonly sessions = new Map<string, ConsumeSession>();
  /** jobId -> session holding its lease. */
  private readonly leaseOwners = new Map<string, ConsumeSession>();
  private readonly outboxes = new Set<ConsumeSession>();
  private readonly scheduledTimer: DeadlineTimer;
  private readonly leaseTimer: DeadlineTimer;
  private readonly bootId = randomBytes(4).toString('hex');
  private sessionCounter = 0;
  private stateValue: BrokerState = 'starting';
  private readonly stateListeners: ((state: BrokerState) => void)[] = [];
  private leasesEmptyWaiters: (() => void)[] = [];
  private readonly walSync: WalSync | undefined;
  private readonly fatalListeners: ((error: Error) => void)[] = [];
  /** Jobs the dispatcher claimed in the flush being committed (write health counts them as writes). */
  private claimedInFlush = 0;
  /** Watch events produced inside the current flush; sent only once it is durable. */
  private uncommittedChanges: JobChange[] = [];
  private backupInFlight: Promise<unknown> | undefined;
  /** Runs the flushes' commands (the group commit's, and cron's jobs inside its closures). */
  private readonly executor: SqliteFlushExecutor;
  /** The admission counts of the enqueues planned into each batch (see AdmissionTally). */
  private readonly flushTallies = new WeakMap<FlushBatchBuilder, AdmissionTally>();

  constructor(
    readonly config: BrokerConfig,
    readonly clock: Clock,
    readonly log: Logger,
    options: BrokerOptions = {},
  ) {
    this.writeHealth = new WriteHealth(log);
    const { db, walSync } = openDatabase(config.dataFile, config.synchronous);
    options.onDatabaseOpen?.(db);
    this.db = db;
    this.walSync = walSync;
    this.store = new JobStore(this.db);
    this.admission = new Admission(config, this.store, config.dataFile, log);
    this.queues = new QueueRegistry(this.store);
    this.commits = new GroupCommit(
      this.db,
      clock,
      (error) => this.log.error({ err: error }, 'store commit failed'),
      walSync,
      (error) => this.onSyncFailure(error),
    );
    this.executor = new SqliteFlushExecutor(this.store);
    this.commits.setExecutor(this.executor);
    this.dispatcher = new Dispatcher(
      this.store,
      this.queues,
      this.bootId,
      () => this.commits.schedule(),
      (claims) => this.onDelivered(claims),
    );
    this.limits = new DispatchLimits(this.store, this.queues, clock, (queue) => this.dispatcher.markReady(queue));
    this.dispatcher.setLimits(this.limits);
    this.commits.setHooks({
      beforeCommit: (now) => {
        const claims = this.dispatcher.claim(now);
        this.claimedInFlush = claims.claimed;
        const changes = this.uncommittedChanges;
        this.uncommittedChanges = [];
        return {
          committed: () => claims.committed(),
          rolledBack: () => claims.rolledBack(),
          durable:
            changes.length > 0
              ? () => {
                  for (const change of changes) this.watchers.emit(change);
                }
              : undefined,
        };
      },
      afterFlush: () => this.flushOutboxes(),
      flushed: (error, results) => {
        let wrote = this.claimedInFlush > 0;
        this.claimedInFlush = 0;
        const errors = results.map((r) => {
          if (!r.error) wrote = true;
          return r.error;
        });
        this.writeHealth.observe(error, errors, wrote);
      },
    });
    this.metrics = new BrokerMetrics(
      {
        queueCounts: () => this.reads.store.countsByQueueAndState(),
        oldestPendingAgeMs: () => this.reads.oldestPendingAges(),
        activeLeases: () => this.leaseOwners.size,
        connectedStreams: () => this.sessions.size,
        outstandingCredit: () => {
          let unused = 0;
          let unsettled = 0;
          for (const s of this.sessions.values()) (unused += s.credit.available), (unsettled += s.credit.outstanding);
          return { unused, unsettled };
        },
        fileSizes: () => this.reads.store.storeSizes(),
      },
      { processMetrics: config.httpAddress !== 'off' },
    );
    this.commits.setObserver({
      flushed: (ops, ms) => this.metrics.observeFlush(ops, ms),
      synced: (ms) => this.metrics.observeSync(ms),
    });
    this.retention = new Retention(this.store, this.commits, clock, log, (queue) => this.retentionPolicy(queue), {
      intervalMs: config.retentionIntervalMs,
      batchSize: config.retentionBatchSize,
    });
    this.scheduledTimer = new DeadlineTimer(clock, () => this.promoteDueJobs());
    this.leaseTimer = new DeadlineTimer(clock, () => this.expireLeases());
    const scheduleStore = new ScheduleStore(this.db);
    const scheduler = new Scheduler({
      store: scheduleStore,
      commits: this.commits,
      insertJob: (input, now) => this.insertJobInFlush(input, now),
      clock,
      log,
      misfireGraceMs: config.scheduleMisfireGraceMs,
    });
    const storeReads = new SqliteReads(this.store, scheduleStore, config.dataFile);
    this.reads = new BrokerReads({
      store: storeReads,
      queues: this.queues,
      limits: this.limits,
      consumersOf: (queue) => this.dispatcher.consumersOf(queue),
      subscribersOf: (queue) => this.dispatcher.subscribersOf(queue),
      clock,
    });
    this.schedules = new ScheduleManager(scheduleStore, storeReads, scheduler, this.commits, clock, log);
  }

  /** The store can no longer make writes durable; the process should exit and be restarted. */
  onFatal(listener: (error: Error) => void): void {
    this.fatalListeners.push(listener);
  }

  private onSyncFailure(error: Error): void {
    this.log.fatal({ err: error }, 'fsync of the write-ahead log failed: refusing all writes; restart the broker');
    for (const listener of this.fatalListeners) listener(error);
  }

  get state(): BrokerState {
    return this.stateValue;
  }

  onStateChange(listener: (state: BrokerState) => void): void {
    this.stateListeners.push(listener);
  }

  private setState(next: BrokerState): void {
    if (!NEXT_STATES[this.stateValue].includes(next)) {
      throw new Error(`broker cannot go from ${this.stateValue} to ${next}`);
    }
    this.log.info({ from: this.stateValue, to: next }, 'broker state');
    this.stateValue = next;
    for (const listener of this.stateListeners) listener(next);
  }

  /** Recovers leases a crashed broker left behind and arms the timers. */
  start(): void {
    const now = this.clock.now();
    const orphaned = this.store.activeLeases();
    if (orphaned.length > 0) {
      try {
        this.db.transaction(() => {
          for (const { id, lease_id } of orphaned) {
            const released = this.store.release(id, lease_id, 'broker stopped while the job was active', true, now);
            if (released) this.countLostAttempt(released);
          }
        })();
        this.log.warn({ jobs: orphaned.length }, 'released leases left by a broker that did not shut down cleanly');
      } catch (error) {
        if (!isDiskFull(error)) throw error;
        // Start anyway and serve reads: the lease timer releases these once writes succeed.
        this.writeHealth.failed(error);
        this.log.error({ jobs: orphaned.length }, 'cannot release leases left by the previous broker: the disk is full; the lease timer retries');
      }
    }
    // After the orphaned leases are gone: limiters count the slots still held.
    this.limits.syncAll();
    this.scheduledTimer.armAt(this.store.nextRunAt());
    this.leaseTimer.armAt(this.store.nextLeaseExpiry());
    this.schedules.start();
    this.retention.start();
    this.admission.start();
    this.setState('serving');
  }

  private assertAccepting(): void {
    if (this.stateValue !== 'serving') throw unavailable(`broker is ${this.stateValue}; retry against a running broker`);
  }

  // --- producers -------------------------------------------------------------------------

  // async: a draining broker must reject (UNAVAILABLE), not throw out of the RPC handler (UNKNOWN).
  // `committed`: the outcomes once committed, before they are durable (GroupCommit's WriteOp.committed).
  async enqueue(inputs: readonly EnqueueInput[], atomic: boolean, committed?: (outcomes: EnqueueOutcome[]) => void): Promise<EnqueueOutcome[]> {
    this.assertAccepting();
    this.admission.checkDisk();
    const outcomes = await this.commits.runPlanned((batch, now) => this.planEnqueue(batch, inputs, now, atomic), committed);
    // Counted once committed: an atomic batch that failed inserted nothing.
    if (this.log.isLevelEnabled('debug')) {
      for (let i = 0; i < outcomes.length; i++) {
        const o = outcomes[i]!;
        if ('error' in o) continue;
        const input = inputs[i]!;
        this.log.debug({ ...jobLogFields(o.id, input.queue, input.metadata), state: o.state, deduplicated: o.deduplicated }, 'job enqueued');
      }
    }
    let queue = '';
    let tally = undefined as ReturnType<BrokerMetrics['tally']> | undefined;
    for (let i = 0; i < outcomes.length; i++) {
      const o = outcomes[i]!;
      if ('error' in o || o.deduplicated) continue;
      const q = inputs[i]!.queue;
      if (q !== queue || !tally) (queue = q), (tally = this.metrics.tally(q));
      tally.enqueued++;
    }
    return outcomes;
  }

  /**
   * One Enqueue request as one enqueue command of the flush (store/flush-batch.ts): queue
   * defaults and admission applied here, the inserts and dedup lookups by the store's
   * executor, which deduplicates a job against the rows before it, the batch's included. Not
   * atomic: a job refused here or by the store gets its own error. Atomic: the first error is
   * thrown (from the plan, nothing of the request is added; from the store, its savepoint took
   * the request back).
   */
  private planEnqueue(batch: FlushBatchBuilder, inputs: readonly EnqueueInput[], now: number, atomic: boolean): (result: FlushResult) => EnqueueOutcome[] {
    const out: EnqueueOutcome[] = new Array(inputs.length);
    let parent = this.flushTallies.get(batch);
    if (!parent) this.flushTallies.set(batch, (parent = new AdmissionTally()));
    const tally = new AdmissionTally(parent);
    const jobs: NewJob[] = [];
    const states: JobState[] = [];
    const index: number[] = [];
    for (let i = 0; i < inputs.length; i++) {
      try {
        const { job, state } = this.prepareJob(inputs[i]!, now, tally, batch);
        jobs.push(job), states.push(state), index.push(i);
      } catch (error) {
        if (atomic) throw error;
        out[i] = { error: toSluiceError(error) };
      }
    }
    tally.commit();
    if (jobs.length === 0) return () => out;
    const command = batch.addEnqueue({ jobs, states, atomic });
    return (result) => {
      const stored = result.enqueues[command]!;
      if (atomic) for (const o of stored) if ('error' in o) throw o.error;
      for (let k = 0; k < stored.length; k++) {
        const o = stored[k]!;
        const i = index[k]!;
        if ('error' in o) out[i] = { error: toSluiceError(o.error) };
        else if (o.deduplicated) out[i] = { id: o.id, deduplicated: true, state: o.state };
        else out[i] = this.inserted(jobs[k]!, o.state, o.id);
      }
      return out;
    };
  }

  /**
   * One job inserted inside the current flush, by the same path as Enqueue (queue defaults,
   * dedup, dispatch hint, timers), for jobs the broker creates itself (cron fires). Throws on
   * a bad job, so the caller's savepoint takes back what it wrote with it.
   */
  insertJobInFlush(input: EnqueueInput, now: number): { id: string; deduplicated: boolean } {
    const batch = new FlushBatchBuilder(now);
    const read = this.planEnqueue(batch, [input], now, true);
    const outcome = read(this.executor.execute(batch))[0]!;
    if ('error' in outcome) throw outcome.error;
    return outcome;
  }

  private prepareJob(input: EnqueueInput, now: number, tally: AdmissionTally, batch: FlushBatchBuilder): { job: NewJob; state: JobState } {
    if (!this.queues.has(input.queue)) batch.addQueue(input.queue);
    const queue = this.queues.get(input.queue);
    const capGroup = input.groupKey ?? null;
    // A job the store will deduplicate (against a job of this batch, or one stored) takes no
    // room: admit only the others. The lookup runs only where a cap applies.
    const deduplicated =
      !!input.dedupKey &&
      this.admission.capped(capGroup, queue) &&
      (batch.plansKey(input.queue, input.dedupKey) || this.store.findUnfinishedByDedupKey(input.queue, input.dedupKey) !== undefined);
    if (!deduplicated) this.admission.admit(tally, input.queue, capGroup, queue);
    const runAt = input.runAt ?? now + input.delayMs;
    const state = runAt > now ? JobState.Scheduled : JobState.Pending;
    const job: NewJob = {
      queue: input.queue,
      type: input.type,
      payload: input.payload,
      metadata: input.metadata ? JSON.stringify(input.metadata) : null,
      priority: input.priority,
      runAt,
      maxAttempts: input.maxAttempts ?? queue?.maxAttempts ?? this.config.defaultMaxAttempts,
      retry: input.retry ? JSON.stringify(input.retry) : null,
      leaseTimeoutMs: input.leaseTimeoutMs ?? queue?.leaseTimeoutMs ?? this.config.defaultLeaseTimeoutMs,
      dedupKey: input.dedupKey || null,
      // '': the group of jobs without a key, in a queue that dispatches by group (migration 5).
      groupKey: input.groupKey ?? (this.queues.hasGroupPolicy(input.queue) ? '' : null),
      inherits: (input.maxAttempts === undefined ? INHERITS_MAX_ATTEMPTS : 0) | (input.leaseTimeoutMs === undefined ? INHERITS_LEASE_TIMEOUT : 0),
    };
    return { job, state };
  }

  private inserted(job: NewJob, state: JobState, id: string): { id: string; deduplicated: boolean; state: JobState } {
    // Hints and timers are safe to set before the commit: at worst they cause a wasted look.
    if (state === JobState.Pending) this.dispatcher.markReady(job.queue, job.type);
    else this.scheduledTimer.armAt(job.runAt);
    if (!this.queues.has(job.queue)) queueMicrotask(() => this.queues.refresh(job.queue));
    return { id, deduplicated: false, state };
  }

  async cancelJob(id: string, reason: string): Promise<JobRow> {
    const outcome = await this.commits.run((now) => {
      const before = this.store.stateAndLease(id);
      if (!before) throw notFound(`job ${quote(id)} not found`);
      if (before.state === JobState.Cancelled) return { row: this.store.get(id)!, leaseId: null, changed: false };
      if (isTerminal(before.state)) throw failedPrecondition(`job ${quote(id)} is ${before.state} and cannot be cancelled`);
      const result = this.store.cancel(id, reason || null, now);
      if (!result.ok) throw failedPrecondition(`job ${quote(id)} changed while cancelling; try again`);
      if (before.state === JobState.Active) this.limits.leaseEnded(id, false);
      else if (before.state === JobState.Scheduled) this.limits.retryEnded(id);
      return { row: result.value, leaseId: before.lease_id, changed: true };
    });
    if (outcome.leaseId) {
      const session = this.leaseOwners.get(id);
      if (session && session.leaseEnded(id, outcome.leaseId)) {
        this.leaseOwners.delete(id);
        session.revoked({ jobId: id, leaseId: outcome.leaseId, reason: 'cancelled' });
        this.commits.schedule();
      }
    }
    if (outcome.changed) this.metrics.tally(outcome.row.queue).cancelled++;
    this.watchers.emit({ jobId: id, state: JobState.Cancelled, attempt: outcome.row.attempt, error: reason || null, at: outcome.row.updated_at });
    if (outcome.changed) this.log.debug({ ...jobLogFields(id, outcome.row.queue, outcome.row.metadata), reason: reason || undefined }, 'job cancelled');
    return outcome.row;
  }

  watchJob(id: string, listener: JobListener): () => void {
    return this.watchers.watch(id, listener);
  }

  // --- consume sessions ------------------------------------------------------------------

  openSession(subscription: Subscription, peer: string, write: (out: Outgoing, written: () => void) => number): ConsumeSession {
    this.assertAccepting();
    if (this.sessions.size >= this.config.maxStreams) {
      throw new SluiceError('RESOURCE_EXHAUSTED', `the broker already serves ${this.sessions.size} Consume streams (--max-streams)`);
    }
    const id = `${this.bootId}-s${++this.sessionCounter}`;
    const session = new ConsumeSession(
      id,
      subscription,
      peer,
      this.config.maxCreditPerStream,
      this.clock.now(),
      write,
      (s) => this.outboxes.add(s),
      () => this.commits.schedule(),
    );
    this.sessions.set(id, session);
    this.dispatcher.addSession(session);
    this.log.debug({ streamId: id, workerId: subscription.workerId, queues: subscription.queues }, 'consume stream opened');
    return session;
  }

  grantCredit(session: ConsumeSession, n: number): void {
    session.credit.grant(n);
    if (n > 0) this.commits.schedule();
  }

  /**
   * The stream is gone: its leases go back to pending at once (counting the attempt, so a
   * job that kills its worker every time still ends up dead).
   */
  closeSession(session: ConsumeSession, reason: string): void {
    if (session.closed) return;
    session.closed = true;
    this.sessions.delete(session.id);
    this.dispatcher.removeSession(session);
    this.outboxes.delete(session);
    const leases = [...session.leases];
    this.log.debug({ streamId: session.id, leases: leases.length, reason }, 'consume stream closed');
    if (leases.length > 0) this.releaseLeases(session, leases, `worker stream closed: ${reason}`, true);
  }

  private releaseLeases(session: ConsumeSession, leases: [string, string][], reason: string, countsAsAttempt: boolean): void {
    this.commits.submit({
      plan: (batch, now) => {
        const at = leases.map(([id, leaseId]) => batch.addRelease({ id, leaseId, reason, countsAsAttempt }));
        return (result) =>
          leases.map(([jobId, leaseId], k) => {
            const released = result.releases[at[k]!];
            if (released) {
              this.limits.leaseEnded(jobId, false);
              if (countsAsAttempt) this.countLostAttempt(released);
              if (this.log.isLevelEnabled('debug')) {
                this.log.debug({ ...jobLogFields(jobId, released.queue, released.metadata), leaseId, state: released.state, reason }, 'job released');
              }
              if (released.state === JobState.Pending) this.dispatcher.markReady(released.queue, released.type);
              this.recordChange({ jobId, state: released.state, attempt: released.attempt, error: reason, at: now });
            }
            return { jobId, leaseId };
          });
      },
      done: (error, results) => {
        if (error || !results) return;
        for (const { jobId, leaseId } of results) {
          // The job may already run under a new lease (claimed again in the same flush).
          if (session.leaseEnded(jobId, leaseId) && this.leaseOwners.get(jobId) === session) this.leaseOwners.delete(jobId);
        }
        this.checkLeasesEmpty();
      },
    });
  }

  /** The worker is closing: no more deliveries on this stream; settles still count. */
  stopSession(session: ConsumeSession): void {
    session.stop();
    this.commits.schedule(); // the outbox (with `stopped`) is written after the next flush
  }

  settle(session: ConsumeSession, { acks, nacks, extends: extends_, releases }: Settles): void {
    this.commits.submit<{ outcomes: SettleOutcome[]; owners: (ConsumeSession | undefined)[] }>({
      plan: (batch, now) => {
        // A lease id is a fencing token, not a bearer token: only the stream the job was
        // delivered to may settle or extend it. Anything else is answered without a write.
        const refused: SettleOutcome[] = [];
        const held = <T extends { jobId: string; leaseId: string }>(kind: SettleOutcome['kind'], items: readonly T[]): readonly T[] => {
          let all = true;
          for (const i of items) if (session.leases.get(i.jobId) !== i.leaseId) all = false;
          if (all) return items;
          return items.filter((i) => {
            if (session.leases.get(i.jobId) === i.leaseId) return true;
            refused.push(this.notHeld(kind, i.jobId, i.leaseId));
            return false;
          });
        };
        const readers: ((result: FlushResult) => SettleOutcome)[] = [];
        for (const a of held('ack', acks)) readers.push(this.planAck(batch, a, now));
        for (const n of held('nack', nacks)) readers.push(this.planNack(batch, n, now));
        for (const e of held('extend', extends_)) readers.push(this.planExtend(batch, e, now));
        for (const r of held('release', releases)) readers.push(this.planRelease(batch, r, now));
        return (result) => {
          const out = readers.map((read) => read(result));
          let acked = 0;
          for (const o of out) if (o.kind === 'ack' && !o.errorCode) acked++;
          if (acked > 0) this.throughput.record(now, acked, 0);
          for (const r of refused) out.push(r);
          // The owners now: a released job may be leased again before this commit is durable.
          // (The lease may belong to another stream of the same worker after a reconnect.)
          return { outcomes: out, owners: out.map((o) => this.leaseOwners.get(o.jobId)) };
        };
      },
      done: (error, settled) => {
        if (error || !settled) {
          const known = storeErrorToDomain(error);
          const code = known?.code ?? 'UNAVAILABLE';
          const message = known?.message ?? `store commit failed: ${error?.message ?? 'unknown'}`;
          const all = [
            ...acks.map((a) => ({ kind: 'ack' as const, jobId: a.jobId, leaseId: a.leaseId })),
            ...nacks.map((n) => ({ kind: 'nack' as const, jobId: n.jobId, leaseId: n.leaseId })),
            ...extends_.map((e) => ({ kind: 'extend' as const, jobId: e.jobId, leaseId: e.leaseId })),
            ...releases.map((r) => ({ kind: 'release' as const, jobId: r.jobId, leaseId: r.leaseId })),
          ];
          for (const s of all) session.settled({ ...s, errorCode: code, message });
          return;
        }
        const { outcomes, owners } = settled;
        for (let i = 0; i < outcomes.length; i++) {
          const o = outcomes[i]!;
          if (!o.errorCode && o.kind !== 'extend') {
            const owner = owners[i];
            if (owner?.leaseEnded(o.jobId, o.leaseId) && this.leaseOwners.get(o.jobId) === owner) this.leaseOwners.delete(o.jobId);
          }
          session.settled(o);
        }
        this.checkLeasesEmpty();
      },
    });
  }

  /**
   * A delivery this stream cannot be sent (its payload has no wire form for it). The job
   * fails alone: it goes to the dead letter queue with the reason, and the stream gets its
   * credit back, so neither the stream nor the other jobs of the message pay for it.
   */
  undeliverable(session: ConsumeSession, job: ClaimedJob, reason: string): void {
    if (session.leases.get(job.id) !== job.lease_id) return;
    session.leases.delete(job.id);
    session.credit.refund();
    if (this.leaseOwners.get(job.id) === session) this.leaseOwners.delete(job.id);
    this.log.error({ jobId: job.id, queue: job.queue, streamId: session.id, reason }, 'delivery cannot be encoded: job dead-lettered');
    this.commits.submit({
      plan: (batch, now) => {
        const error = { attempt: job.attempt, message: reason, at: now, nonRetryable: true };
        const at = batch.addFail({ id: job.id, leaseId: job.lease_id, attempt: job.attempt, maxAttempts: job.max_attempts, state: JobState.Dead, runAt: now, error });
        return (result) => {
          if (result.fails[at]) this.recordChange({ jobId: job.id, state: JobState.Dead, attempt: job.attempt, error: reason, at: now });
        };
      },
      done: () => this.checkLeasesEmpty(),
    });
  }

  /** The answer to a settle quoting a lease this stream does not hold. */
  private notHeld(kind: SettleOutcome['kind'], jobId: string, leaseId: string): SettleOutcome {
    const current = this.store.stateAndLease(jobId);
    if (current?.state === JobState.Active && current.lease_id === leaseId) {
      return {
        kind,
        jobId,
        leaseId,
        errorCode: 'FAILED_PRECONDITION',
        message: `lease ${quote(leaseId)} of job ${quote(jobId)} is held by another Consume stream: settles and heartbeats are accepted only on the stream the job was delivered to`,
        state: current.state,
      };
    }
    return staleLease(kind, jobId, leaseId, current);
  }

  /**
   * The settles of every message in the flush go to the store together, one statement per kind
   * (the common case, a worker acking what it was sent, is one statement for all its acks).
   * Each plan adds its command; its reader answers from the result. A settle that matched
   * nothing is answered from the job's state now, read in the same transaction.
   */
  private planAck(batch: FlushBatchBuilder, a: AckInput, now: number): (result: FlushResult) => SettleOutcome {
    const at = batch.addAck({ id: a.jobId, leaseId: a.leaseId, result: a.result });
    return (result) => {
      const job = result.acks[at];
      if (job === undefined) return staleLease('ack', a.jobId, a.leaseId, this.store.stateAndLease(a.jobId));
      this.limits.leaseEnded(a.jobId, false);
      this.metrics.tally(job.queue).completed++;
      this.metrics.observeRun(job.queue, now - job.started_at);
      if (this.log.isLevelEnabled('debug')) this.log.debug({ ...jobLogFields(a.jobId, job.queue, job.metadata), attempt: job.attempt, leaseId: a.leaseId }, 'job acked');
      this.recordChange({ jobId: a.jobId, state: JobState.Completed, attempt: job.attempt, result: a.result, at: now });
      return { kind: 'ack', jobId: a.jobId, leaseId: a.leaseId, state: JobState.Completed };
    };
  }

  /**
   * The retry-or-dead decision needs the job's attempt, max_attempts and retry policy: read here,
   * in the flush's transaction (SQLite). The fail command carries the attempt and max_attempts it
   * was decided from and changes nothing if either moved.
   */
  private planNack(batch: FlushBatchBuilder, n: NackInput, now: number): (result: FlushResult) => SettleOutcome {
    const ctx = this.store.failureContext(n.jobId, n.leaseId);
    if (!ctx) return () => staleLease('nack', n.jobId, n.leaseId, this.store.stateAndLease(n.jobId));
    const dies = n.nonRetryable || ctx.attempt >= ctx.max_attempts;
    const policy = this.retryPolicy(ctx.queue, ctx.retry ? (JSON.parse(ctx.retry) as PartialRetryPolicy) : undefined);
    const delay = n.retryAfterMs > 0 ? n.retryAfterMs : backoffDelayMs(policy, ctx.attempt);
    const state = dies ? JobState.Dead : JobState.Scheduled;
    const runAt = dies ? now : now + delay;
    const message = n.error || '(no error message)';
    const error = { attempt: ctx.attempt, message, at: now, nonRetryable: n.nonRetryable };
    const at = batch.addFail({ id: n.jobId, leaseId: n.leaseId, attempt: ctx.attempt, maxAttempts: ctx.max_attempts, state, runAt, error });
    return (result) => {
      if (!result.fails[at]) return staleLease('nack', n.jobId, n.leaseId, this.store.stateAndLease(n.jobId));
      this.limits.leaseEnded(n.jobId, !dies);
      if (!dies) this.scheduledTimer.armAt(runAt);
      const tally = this.metrics.tally(ctx.queue);
      if (dies) tally.deadLettered++;
      else tally.retried++;
      if (this.log.isLevelEnabled('debug')) {
        this.log.debug({ ...jobLogFields(n.jobId, ctx.queue, ctx.metadata), attempt: ctx.attempt, leaseId: n.leaseId, error: message, state }, 'job nacked');
      }
      this.throughput.record(now, 0, 1);
      this.recordChange({ jobId: n.jobId, state, attempt: ctx.attempt, error: message, at: now });
      return { kind: 'nack', jobId: n.jobId, leaseId: n.leaseId, state };
    };
  }

  private planExtend(batch: FlushBatchBuilder, e: ExtendInput, now: number): (result: FlushResult) => SettleOutcome {
    const at = batch.addExtend({ id: e.jobId, leaseId: e.leaseId, extendMs: e.extendMs, progress: e.progress });
    return (result) => {
      const extended = result.extends[at];
      if (!extended) return staleLease('extend', e.jobId, e.leaseId, this.store.stateAndLease(e.jobId));
      if (e.progress !== null) this.recordChange({ jobId: e.jobId, state: JobState.Active, attempt: extended.attempt, progress: e.progress, at: now });
      return { kind: 'extend', jobId: e.jobId, leaseId: e.leaseId, state: JobState.Active, deadline: extended.deadline };
    };
  }

  /** A worker gives a job back unrun (or abandons it while closing): the attempt is refunded. */
  private planRelease(batch: FlushBatchBuilder, r: ReleaseInput, now: number): (result: FlushResult) => SettleOutcome {
    const reason = r.reason || 'released by the worker';
    const at = batch.addRelease({ id: r.jobId, leaseId: r.leaseId, reason, countsAsAttempt: false });
    return (result) => {
      const released = result.releases[at];
      if (!released) return staleLease('release', r.jobId, r.leaseId, this.store.stateAndLease(r.jobId));
      this.limits.leaseEnded(r.jobId, false);
      this.dispatcher.markReady(released.queue, released.type);
      if (this.log.isLevelEnabled('debug')) {
        this.log.debug({ ...jobLogFields(r.jobId, released.queue, released.metadata), leaseId: r.leaseId, state: released.state, reason }, 'job released');
      }
      this.recordChange({ jobId: r.jobId, state: released.state, attempt: released.attempt, at: now });
      return { kind: 'release', jobId: r.jobId, leaseId: r.leaseId, state: released.state };
    };
  }

  /** Watch events are sent only after the commit that made them true. */
  private recordChange(change: JobChange): void {
    if (this.watchers.isWatched(change.jobId)) this.uncommittedChanges.push(change);
  }

  /** The queue's retention over the broker's (0 = no limit). */
  retentionPolicy(queue: string): RetentionPolicy {
    const q = this.queues.get(queue);
    return {
      maxAgeMs: q?.retentionMaxAgeMs ?? this.config.retentionMaxAgeMs,
      maxCount: q?.retentionMaxCount ?? this.config.retentionMaxCount,
    };
  }

  /** The job's policy fields over the queue's over the broker's defaults. */
  private retryPolicy(queue: string, job: PartialRetryPolicy | undefined): RetryPolicy {
    const defaults = {
      initialMs: this.config.retryInitialMs,
      multiplier: this.config.retryMultiplier,
      maxMs: this.config.retryMaxMs,
      jitter: this.config.retryJitter,
    };
    return resolveRetryPolicy(defaults, this.queues.get(queue)?.retry, job);
  }

  /** An attempt that ended without a settle (lease expired, stream lost): retried or dead. */
  private countLostAttempt(released: { state: JobState; queue: string }): void {
    const tally = this.metrics.tally(released.queue);
    if (released.state === JobState.Dead) tally.deadLettered++;
    else tally.retried++;
  }

  private onDelivered(claims: readonly Claim[]): void {
    let earliest = Infinity;
    const now = this.clock.now();
    let queue = '';
    let tally = undefined as ReturnType<BrokerMetrics['tally']> | undefined;
    const debug = this.log.isLevelEnabled('debug');
    for (const { session, job } of claims) {
      if (debug) {
        this.log.debug(
          { ...jobLogFields(job.id, job.queue, job.metadata), attempt: job.attempt, leaseId: job.lease_id, workerId: session.subscription.workerId, streamId: session.id },
          'job delivered',
        );
      }
      if (job.queue !== queue || !tally) (queue = job.queue), (tally = this.metrics.tally(queue));
      tally.started++;
      this.metrics.observeWait(queue, now - job.run_at);
      this.leaseOwners.set(job.id, session);
      if (job.lease_expires_at < earliest) earliest = job.lease_expires_at;
      if (this.watchers.isWatched(job.id)) {
        this.watchers.emit({ jobId: job.id, state: JobState.Active, attempt: job.attempt, at: now });
      }
    }
    this.leaseTimer.armAt(earliest);
  }

  private flushOutboxes(): void {
    if (this.outboxes.size === 0) return;
    const sessions = [...this.outboxes];
    this.outboxes.clear();
    for (const s of sessions) s.flushOutbox();
  }

  // --- timers ----------------------------------------------------------------------------

  private promoteDueJobs(): void {
    this.commits.submit({
      plan: (batch, now) => {
        const owner = batch.addPromote({ limit: TIMER_BATCH });
        return (result) => {
          const { promoted } = result;
          if (owner) {
            for (const { id, queue, type, attempt } of promoted) {
              this.limits.retryEnded(id);
              this.dispatcher.markReady(queue, type);
              this.recordChange({ jobId: id, state: JobState.Pending, attempt, at: now });
            }
          }
          return promoted.length === TIMER_BATCH ? now : this.store.nextRunAt();
        };
      },
      done: (error, next) => {
        if (error) return this.scheduledTimer.armAt(this.clock.now() + 1000);
        this.scheduledTimer.armAt(next);
      },
    });
  }

  private expireLeases(): void {
    this.commits.submit({
      plan: (batch, now) => {
        const owner = batch.addExpire({ limit: TIMER_BATCH });
        return (result) => {
          const expired = owner ? result.expired : [];
          const results = expired.map(({ id, leaseId, released }) => {
            this.limits.leaseEnded(id, false);
            this.countLostAttempt(released);
            this.throughput.record(now, 0, 1);
            if (released.state === JobState.Pending) this.dispatcher.markReady(released.queue, released.type);
            this.recordChange({ jobId: id, state: released.state, attempt: released.attempt, error: 'lease expired', at: now });
            // The owner now: the job may be leased again before this commit is durable.
            const holder = this.leaseOwners.get(id);
            return { id, leaseId, released, owner: holder?.leases.get(id) === leaseId ? holder : undefined };
          });
          return { results, next: result.expired.length === TIMER_BATCH ? now : this.store.nextLeaseExpiry() };
        };
      },
      done: (error, r) => {
        if (error || !r) return this.leaseTimer.armAt(this.clock.now() + 1000);
        for (const { id, leaseId, released, owner } of r.results) {
          if (owner) {
            // leaseEnded is false when the job came back to the same stream under a new lease.
            if (owner.leaseEnded(id, leaseId) && this.leaseOwners.get(id) === owner) this.leaseOwners.delete(id);
            owner.revoked({ jobId: id, leaseId, reason: 'lease_expired' });
          }
          if (this.log.isLevelEnabled('debug')) {
            this.log.debug({ ...jobLogFields(id, released.queue, released.metadata), leaseId, state: released.state }, 'job lease expired');
          }
        }
        this.leaseTimer.armAt(r.next);
        this.checkLeasesEmpty();
      },
    });
  }

  // --- admin -----------------------------------------------------------------------------

  /**
   * A queue exists once a job was enqueued to it or it was created by PauseQueue/UpdateQueue
   * with `createIfMissing`. Anything else is NOT_FOUND, so a typo does not make a new queue.
   */
  private assertQueueExists(name: string, createIfMissing: boolean): void {
    if (createIfMissing || this.queues.has(name)) return;
    throw notFound(`queue ${name} not found (queues exist once a job was enqueued to them; set create_if_missing to create it)`);
  }

  async setPaused(name: string, paused: boolean, createIfMissing = false): Promise<QueueInfo> {
    this.assertQueueExists(name, paused && createIfMissing);
    await this.commits.run((now) => {
      this.store.ensureQueue(name, now);
      this.store.setQueuePaused(name, paused);
    });
    this.queues.refresh(name);
    if (!paused) this.dispatcher.markReady(name);
    for (const session of this.sessions.values()) {
      if (session.subscription.queues.includes(name)) session.queueNotice({ queue: name, paused });
    }
    this.commits.schedule();
    this.log.info({ queue: name, paused }, paused ? 'queue paused' : 'queue resumed');
    return this.reads.getQueue(name);
  }

  async updateQueue(
    name: string,
    changes: {
      maxAttempts?: number;
      retry?: PartialRetryPolicy;
      leaseTimeoutMs?: number;
      retentionMaxAgeMs?: number;
      retentionMaxCount?: number;
      limits?: QueueLimits;
      maxQueued?: number;
      maxQueuedPerGroup?: number;
    },
    createIfMissing = false,
  ): Promise<QueueInfo> {
    this.assertQueueExists(name, createIfMissing);
    await this.commits.run((now) => {
      this.store.ensureQueue(name, now);
      if (changes.retentionMaxAgeMs !== undefined || changes.retentionMaxCount !== undefined) {
        this.store.setQueueRetention(name, changes.retentionMaxAgeMs, changes.retentionMaxCount);
      }
      this.store.updateQueueDefaults(name, {
        maxAttempts: changes.maxAttempts ?? null,
        // Field by field: fields not set in the update keep their current value.
        retry: changes.retry ? JSON.stringify({ ...this.queues.get(name)?.retry, ...changes.retry }) : null,
        leaseTimeoutMs: changes.leaseTimeoutMs ?? null,
        // Admission caps: undefined = keep, 0 = back to the broker's default.
        maxQueued: changes.maxQueued ?? null,
        maxQueuedPerGroup: changes.maxQueuedPerGroup ?? null,
      });
      if (changes.limits) {
        // Limits replace the previous ones as a whole. The mirror changes inside the flush, so
        // every later flush inserts and dispatches under the new limits (jobs without a group
        // key must get the key '' from the same commit on).
        this.store.limits.setQueueLimits(name, limitsToJson(changes.limits));
        if (hasGroupPolicy(changes.limits)) this.store.limits.assignDefaultGroup(name);
        this.queues.refresh(name);
        this.limits.sync(name);
      }
      // One rule for every queue default: it applies to the queue's unfinished jobs that did
      // not set their own (retry policies are read at failure time, these two are rewritten).
      return this.store.applyQueueDefaults(name, { maxAttempts: changes.maxAttempts, leaseTimeoutMs: changes.leaseTimeoutMs });
    }).then((jobs) => {
      if (jobs > 0) this.log.info({ queue: name, jobs }, 'new queue defaults applied to unfinished jobs');
    });
    this.queues.refresh(name);
    if (changes.limits) {
      this.log.info({ queue: name, limits: changes.limits }, 'queue limits changed');
    }
    return this.reads.getQueue(name);
  }

  /**
   * Deletes a queue that has no scheduled, pending, active or dead jobs: work is never thrown
   * away by deleting its queue, and dead letters are only removed by an explicit purge.
   * Completed and cancelled jobs (history) are deleted with it.
   */
  async deleteQueue(name: string): Promise<{ deletedJobs: number }> {
    if (!this.queues.has(name)) throw notFound(`queue ${name} not found`);
    try {
      const deletedJobs = await this.commits.run(() => {
        const counts = emptyCounts();
        for (const { state, n } of this.store.countsForQueue(name)) counts[state] = n;
        const blocking = (['scheduled', 'pending', 'active', 'dead'] as const).filter((state) => counts[state] > 0);
        if (blocking.length > 0) {
          const what = blocking.map((state) => `${counts[state]} ${state}`).join(', ');
          const hint = blocking.includes('dead') ? '; purge its dead letters first' : '; cancel or finish them first';
          throw failedPrecondition(`queue ${name} still has ${what} job(s)${hint}`);
        }
        // Forgotten inside the write, so an enqueue later in the same flush re-creates the row.
        this.queues.forget(name);
        return this.store.deleteQueue(name);
      });
      this.log.info({ queue: name, deletedJobs }, 'queue deleted');
      return { deletedJobs };
    } finally {
      // Rolled back (or re-created by an enqueue in the same flush): mirror what the store has.
      this.queues.refresh(name);
      this.limits.sync(name);
    }
  }

  async replayDeadLetters(selection: DeadLetterSelection): Promise<number> {
    await this.assertDeadLetterSelection(selection);
    const replayed = await this.commits.run((now) => {
      const rows = this.store.replayDead(selection, now);
      for (const { queue, type } of rows) this.dispatcher.markReady(queue, type);
      return rows;
    });
    this.log.info({ count: replayed.length, selection }, 'dead letters replayed');
    return replayed.length;
  }

  async purgeDeadLetters(selection: DeadLetterSelection): Promise<number> {
    await this.assertDeadLetterSelection(selection);
    const purged = await this.commits.run(() => this.store.purgeDead(selection));
    this.log.info({ count: purged, selection }, 'dead letters purged');
    return purged;
  }

  private async assertDeadLetterSelection(selection: DeadLetterSelection & { all?: boolean }): Promise<void> {
    if (selection.ids?.length) {
      for (const id of selection.ids) {
        const job = await this.reads.store.stateAndLease(id);
        if (!job) throw notFound(`job ${quote(id)} not found`);
        if (job.state !== JobState.Dead) throw failedPrecondition(`job ${quote(id)} is ${job.state}, not dead`);
      }
    }
  }

  /**
   * Writes a consistent snapshot of the database to `path` (absolute, new, in an existing
   * directory on the broker host) while the broker keeps serving. One at a time.
   */
  async backup(path: string): Promise<{ path: string; bytes: number; durationMs: number }> {
    this.assertAccepting();
    const target = validateBackupPath(path, this.config.dataFile);
    if (this.backupInFlight) throw failedPrecondition('a backup is already running; wait for it to finish');
    const started = performance.now();
    this.log.info({ path: target }, 'backup started');
    const running = backupDatabase(this.db, target);
    this.backupInFlight = running;
    try {
      const { bytes } = await running;
      const durationMs = Math.round(performance.now() - started);
      this.log.info({ path: target, bytes, durationMs }, 'backup written');
      return { path: target, bytes, durationMs };
    } catch (error) {
      this.log.error({ err: error, path: target }, 'backup failed');
      throw error instanceof SluiceError ? error : new SluiceError('INTERNAL', `backup failed: ${(error as Error).message}`);
    } finally {
      this.backupInFlight = undefined;
    }
  }

  listSessions(): ConsumeSession[] {
    return [...this.sessions.values()];
  }

  // --- shutdown --------------------------------------------------------------------------

  private checkLeasesEmpty(): void {
    if (this.leaseOwners.size > 0 || this.leasesEmptyWaiters.length === 0) return;
    const waiters = this.leasesEmptyWaiters;
    this.leasesEmptyWaiters = [];
    for (const w of waiters) w();
  }

  /**
   * Graceful phase: stop deliveries, tell workers to drain and accept their settles until
   * every lease is settled or the grace period ends.
   */
  async drain(graceMs: number): Promise<void> {
    if (this.stateValue !== 'serving') return;
    this.setState('draining');
    this.dispatcher.disable();
    for (const s of this.sessions.values()) s.drain(graceMs);
    this.commits.schedule();
    if (this.leaseOwners.size > 0) {
      this.log.info({ inFlight: this.leaseOwners.size, graceMs }, 'draining: waiting for in-flight jobs');
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, graceMs);
        this.leasesEmptyWaiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /**
   * Forceful phase: give back the leases still held (without counting the attempt: the
   * job did not fail, the broker left) and close the store.
   */
  async stop(): Promise<void> {
    if (this.stateValue === 'stopped') return;
    // The backup copies through this connection: let it finish before closing it.
    await this.backupInFlight?.catch(() => {});
    if (this.stateValue === 'serving') {
      this.dispatcher.disable();
      this.stateValue = 'draining';
    }
    const remaining = this.leaseOwners.size;
    for (const session of [...this.sessions.values()]) {
      const leases = [...session.leases];
      session.closed = true;
      this.sessions.delete(session.id);
      if (leases.length > 0) this.releaseLeases(session, leases, 'broker shut down before the job was settled', false);
    }
    if (remaining > 0) this.log.warn({ jobs: remaining }, 'released unsettled leases at shutdown');
    this.schedules.stop();
    this.retention.stop();
    this.commits.close();
    this.scheduledTimer.stop();
    this.leaseTimer.stop();
    this.limits.stop();
    this.admission.stop();
    this.walSync?.close();
    closeDatabase(this.db);
    this.setState('stopped');
  }
}

function staleLease(kind: SettleOutcome['kind'], jobId: string, leaseId: string, current: Pick<JobRow, 'state' | 'lease_id'> | undefined): SettleOutcome {
  if (!current) return { kind, jobId, leaseId, errorCode: 'NOT_FOUND', message: `job ${quote(jobId)} not found` };
  const why =
    current.state === JobState.Active
      ? 'the job was redelivered under a newer lease'
      : `the job is ${current.state}${current.state === JobState.Cancelled ? '' : ' (lease expired, released or already settled)'}`;
  return { kind, jobId, leaseId, errorCode: 'FAILED_PRECONDITION', message: `lease ${quote(leaseId)} is not current for job ${quote(jobId)}: ${why}`, state: current.state };
}

function toSluiceError(error: unknown): SluiceError {
  if (error instanceof SluiceError) return error;
  const known = storeErrorToDomain(error);
  if (known) return known;
  const message = (error as Error).message ?? String(error);
  if (/UNIQUE constraint failed: jobs\.queue, jobs\.dedup_key/.test(message)) return invalidArgument('dedup key conflict');
  return new SluiceError('INTERNAL', message);
}
