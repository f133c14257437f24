import type { Db } from '../store/database.js';
import type { Clock } from '../domain/clock.js';
import { unavailable } from '../domain/errors.js';
import { FlushBatchBuilder, type FlushBatch, type FlushResult } from '../store/flush-batch.js';

/**
 * A unit of work run inside a shared transaction. `done` is called once the commit is durable.
 * Either a closure (`work`) that runs its own statements, or commands (`plan`) that the flush
 * runs together with every other op's, one statement per kind (store/flush-batch.ts).
 */
export type WriteOp<T = unknown> = ClosureOp<T> | CommandOp<T>;

/** An op that runs its own statements inside the flush's transaction (rare writes, cron, admin). */
export interface ClosureOp<T = unknown> extends OpAnswer<T> {
  work(now: number): T;
  plan?: undefined;
}

/**
 * An op made of commands (the hot path: enqueue, settles). `plan` adds them to the flush's
 * batch and returns how to read its answer from the batch's result; both run inside the
 * transaction. A plan that throws adds nothing (its commands are taken back) and fails only
 * its op.
 */
export interface CommandOp<T = unknown> extends OpAnswer<T> {
  plan(batch: FlushBatchBuilder, now: number): (result: FlushResult) => T;
  work?: undefined;
}

/** Runs a batch of commands inside the caller's transaction (store/sqlite-flush.ts). */
export interface FlushExecutor {
  execute(batch: FlushBatch): FlushResult;
}

interface OpAnswer<T> {
  /**
   * The transaction holding `work` committed (visible, maybe not yet durable): the op may
   * prepare its answer now, while the fsync runs, and send it from `done`. Not called when
   * `work` threw or the commit failed.
   */
  committed?(value: T): void;
  done(error: Error | undefined, value: T | undefined): void;
}

/** What the last step of a flush does once the transaction's fate is known. */
export interface AfterCommit {
  /** Committed (visible; maybe not yet on disk). */
  committed(): void;
  rolledBack(): void;
  /** The commit is on disk (with the broker's own fsync, later than `committed`). */
  durable?(): void;
}

export interface FlushHooks {
  /** Runs last inside the transaction (the dispatcher claims jobs here). */
  beforeCommit(now: number): AfterCommit;
  /** Runs after every flush, committed or not, and after every fsync (session outboxes are written here). */
  afterFlush(): void;
  /** Each flush's outcome (write health): the transaction's error, or the ops' results. */
  flushed?(error: Error | undefined, results: readonly { error?: Error }[]): void;
}

/** fsyncs the log of committed transactions (store/wal-sync.ts). */
export interface LogSync {
  sync(done: (error: Error | null) => void): void;
  syncNow(): void;
}

/** Timings for metrics (metrics/broker-metrics.ts); called only when set. */
export interface CommitObserver {
  /** A transaction with `ops` write operations committed in `ms`. */
  flushed(ops: number, ms: number): void;
  /** One fsync of the log took `ms`. */
  synced(ms: number): void;
}

/** A committed flush waiting for its fsync. */
interface Unsynced {
  ops: WriteOp<any>[];
  results: { error?: Error; value?: unknown }[];
  afterCommit: AfterCommit | undefined;
}

/**
 * Group commit. better-sqlite3 is synchronous: a flush runs every queued op in one
 * transaction while new requests pile up in the sockets, and the next flush takes all of
 * them. Batches therefore grow with load by themselves, without a linger timer that would
 * add latency at light load. An op is answered (`done`) only once its commit is durable.
 *
 * With a `LogSync` (synchronous=FULL) the commit does not fsync; the fsync runs on the
 * thread pool, one at a time, each covering every commit made before it started. Meanwhile
 * the event loop keeps flushing. Deliveries leave right after the commit, before the fsync:
 * a lease is soft state (a restarted broker releases every lease it finds), so a power loss
 * can at worst run a job again, which at-least-once delivery allows; answers to producers
 * and settle confirmations wait for the fsync.
 */
export class GroupCommit {
  private ops: WriteOp<any>[] = [];
  private scheduled = false;
  private flushing = false;
  private hooks: FlushHooks | undefined;
  private observer: CommitObserver | undefined;
  private closed = false;
  private closing = false;
  /** Committed flushes not yet covered by an fsync, and those covered by the one in flight. */
  private unsynced: Unsynced[] = [];
  private syncing: Unsynced[] | undefined;
  /** The fsync failed: nothing more can be made durable. */
  private syncFailure: Error | undefined;
  /** Commits so far and ops in them, for metrics and tests. */
  readonly stats = { commits: 0, ops: 0, failures: 0, syncs: 0 };

  /** The flush transaction, wrapped once (better-sqlite3 builds a wrapper per call: ~10 us). */
  private readonly runInTransaction: (ops: WriteOp<any>[], results: { error?: Error; value?: unknown }[], now: number) => void;
  /** Set inside the transaction, so a failed COMMIT can still roll the hooks back. */
  private afterCommit: AfterCommit | undefined;
  /** A batch runs in a savepoint (wrapped once, like the flush transaction). */
  private readonly inSavepoint: (run: () => FlushResult) => FlushResult;
  private executor: FlushExecutor | undefined;

  constructor(
    db: Db,
    private readonly clock: Clock,
    private readonly onCommitError: (error: Error) => void,
    private readonly logSync?: LogSync,
    /** The log could not be fsynced: the broker must stop (what was committed may not be on disk). */
    private readonly onSyncFailure: (error: Error) => void = () => {},
  ) {
    this.runInTransaction = db.transaction((ops: WriteOp<any>[], results: { error?: Error; value?: unknown }[], now: number) => {
      // Consecutive command ops share one batch; a closure op runs at its turn, after the batch
      // before it, so the ops' writes keep the order in which they were submitted.
      let segment: number[] | undefined;
      for (let i = 0; i < ops.length; i++) {
        const op = ops[i]!;
        if (op.plan) {
          (segment ??= []).push(i);
          continue;
        }
        if (segment) this.runSegment(ops, segment, results, now), (segment = undefined);
        try {
          results[i] = { value: op.work(now) };
        } catch (error) {
          // A failed statement rolls back only itself; multi-statement ops use savepoints.
          results[i] = { error: error as Error };
        }
      }
      if (segment) this.runSegment(ops, segment, results, now);
      this.afterCommit = this.hooks?.beforeCommit(now);
    });
    this.inSavepoint = db.transaction((run: () => FlushResult) => run());
  }

  /** Command ops run with this (set by the owner before the first flush). */
  setExecutor(executor: FlushExecutor): void {
    this.executor = executor;
  }

  /**
   * Command ops `at` of `ops`: planned into one batch, run, and each answered from its slice.
   * The batch runs in a savepoint, so an op answered with an error leaves none of its writes.
   * If a batch of several ops fails, each op runs again alone, so one op's failure (a broker
   * bug, a statement the store refuses) does not fail the others. Plans may therefore run
   * twice, so they only read and compute; what an op changes in the broker's memory (hints,
   * timers, metrics) its reader does, once, on the result.
   */
  private runSegment(ops: WriteOp<any>[], at: readonly number[], results: { error?: Error; value?: unknown }[], now: number): void {
    const failure = this.runBatch(ops, at, results, now);
    if (!failure) return;
    if (at.length === 1) return void (results[at[0]!] = { error: failure });
    for (const i of at) {
      const alone = this.runBatch(ops, [i], results, now);
      if (alone) results[i] = { error: alone };
    }
  }

  /** The batch's error if it failed (its savepoint rolled back, no op answered); else every op has its result. */
  private runBatch(ops: WriteOp<any>[], at: readonly number[], results: { error?: Error; value?: unknown }[], now: number): Error | undefined {
    const batch = new FlushBatchBuilder(now);
    const readers: { i: number; read: (result: FlushResult) => unknown }[] = [];
    for (const i of at) {
      const mark = batch.mark();
      try {
        readers.push({ i, read: (ops[i] as CommandOp).plan(batch, now) });
      } catch (error) {
        batch.reset(mark);
        results[i] = { error: error as Error };
      }
    }
    if (readers.length === 0) return undefined;
    let result: FlushResult;
    try {
      const executor = this.executor;
      if (!executor) throw new Error('GroupCommit: a command op was submitted before setExecutor');
      result = this.inSavepoint(() => executor.execute(batch));
    } catch (error) {
      return error as Error;
    }
    for (const { i, read } of readers) {
      try {
        results[i] = { value: read(result) };
      } catch (error) {
        results[i] = { error: error as Error };
      }
    }
    return undefined;
  }

  setHooks(hooks: FlushHooks): void {
    this.hooks = hooks;
  }

  setObserver(observer: CommitObserver): void {
    this.observer = observer;
  }

  submit<T>(op: WriteOp<T>): void {
    if (this.closed) return op.done(this.refusal(), undefined);
    this.ops.push(op);
    this.schedule();
  }

  /** Runs what is queued and makes it durable, then refuses further work (the store is about to close). */
  close(): void {
    this.closing = true; // the last flush must not start an fsync of its own on the thread pool
    this.flush();
    this.closed = true;
    const waiting = [...(this.syncing ?? []), ...this.unsynced];
    this.syncing = undefined;
    this.unsynced = [];
    if (waiting.length === 0 || this.syncFailure) return;
    try {
      this.logSync!.syncNow();
    } catch (error) {
      return this.failSync(waiting, error as Error);
    }
    this.completeDurable(waiting);
  }

  /** Promise form for RPC handlers; `committed` as in WriteOp. */
  run<T>(work: (now: number) => T, committed?: (value: T) => void): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.submit<T>({ work, committed, done: (error, value) => (error ? reject(error) : resolve(value as T)) });
    });
  }

  /** Promise form of a command op (CommandOp.plan). */
  runPlanned<T>(plan: CommandOp<T>['plan'], committed?: (value: T) => void): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.submit<T>({ plan, committed, done: (error, value) => (error ? reject(error) : resolve(value as T)) });
    });
  }

  /** Asks for a flush even without ops (e.g. credit arrived: the dispatcher should run). */
  schedule(): void {
    if (this.scheduled || this.closed) return;
    this.scheduled = true;
    setImmediate(() => this.flush());
  }

  /** Runs everything queued now. Reentrant calls (from a `done`) are deferred to the next tick. */
  flush(): void {
    this.scheduled = false;
    if (this.closed) return;
    if (this.flushing) return this.schedule();
    this.flushing = true;
    const ops = this.ops;
    this.ops = [];
    const now = this.clock.now();
    const results: { error?: Error; value?: unknown }[] = new Array(ops.length);
    this.afterCommit = undefined;
    let afterCommit: AfterCommit | undefined;
    const started = this.observer && ops.length > 0 ? performance.now() : 0;
    try {
      this.runInTransaction(ops, results, now);
      afterCommit = this.afterCommit as AfterCommit | undefined;
      this.stats.commits++;
      this.stats.ops += ops.length;
      this.hooks?.flushed?.(undefined, results);
      if (started > 0) this.observer!.flushed(ops.length, performance.now() - started);
    } catch (error) {
      this.stats.failures++;
      this.onCommitError(error as Error);
      (this.afterCommit as AfterCommit | undefined)?.rolledBack();
      this.hooks?.flushed?.(error as Error, []);
      for (const op of ops) op.done(error as Error, undefined);
      this.flushing = false;
      this.hooks?.afterFlush();
      return;
    }
    if (this.logSync) {
      afterCommit?.committed();
      this.flushing = false;
      this.hooks?.afterFlush();
      if (ops.length > 0 || afterCommit?.durable) this.unsynced.push({ ops, results, afterCommit });
      this.startSync();
      // The fsync is on the thread pool now: answers are prepared in its shadow.
      this.announceCommitted(ops, results);
      return;
    }
    this.announceCommitted(ops, results);
    this.answer(ops, results);
    afterCommit?.committed();
    afterCommit?.durable?.();
    this.flushing = false;
    this.hooks?.afterFlush();
  }

  get pending(): number {
    return this.ops.length;
  }

  /** One fsync at a time; each covers every commit made before it starts. */
  private startSync(): void {
    if (this.syncing || this.unsynced.length === 0 || this.closing || this.closed) return;
    const batch = (this.syncing = this.unsynced);
    this.unsynced = [];
    const started = this.observer ? performance.now() : 0;
    this.logSync!.sync((error) => {
      if (this.syncing !== batch) return; // close() made it durable already
      this.syncing = undefined;
      if (error) return this.failSync(batch, error);
      this.stats.syncs++;
      if (started > 0) this.observer!.synced(performance.now() - started);
      this.completeDurable(batch);
      this.hooks?.afterFlush();
      this.startSync();
    });
  }

  private completeDurable(batch: Unsynced[]): void {
    for (const { ops, results, afterCommit } of batch) {
      this.answer(ops, results);
      afterCommit?.durable?.();
    }
  }

  private announceCommitted(ops: WriteOp<any>[], results: { error?: Error; value?: unknown }[]): void {
    for (let i = 0; i < ops.length; i++) {
      const op = ops[i]!;
      const r = results[i]!;
      if (!op.committed || r.error) continue;
      try {
        op.committed(r.value);
      } catch (error) {
        this.onCommitError(error as Error);
      }
    }
  }

  private answer(ops: WriteOp<any>[], results: { error?: Error; value?: unknown }[]): void {
    for (let i = 0; i < ops.length; i++) {
      const r = results[i]!;
      try {
        ops[i]!.done(r.error, r.value);
      } catch (error) {
        this.onCommitError(error as Error);
      }
    }
  }

  /**
   * An fsync failed: the kernel may have dropped the pages it could not write, so committed
   * changes may be missing on disk and a retry cannot tell. Like PostgreSQL, stop: every
   * waiting op fails, later ops are refused, and the owner restarts from what the disk holds.
   */
  private failSync(batch: Unsynced[], error: Error): void {
    this.syncFailure = error;
    this.closed = true;
    const refusal = this.refusal();
    for (const { ops } of [...batch, ...this.unsynced]) for (const op of ops) op.done(refusal, undefined);
    this.unsynced = [];
    for (const op of this.ops.splice(0)) op.done(refusal, undefined);
    this.onSyncFailure(error);
  }

  private refusal(): Error {
    return this.syncFailure
      ? unavailable(`the broker cannot write to disk (fsync failed: ${this.syncFailure.message}); it must be restarted`)
      : unavailable('broker is stopped');
  }
}
