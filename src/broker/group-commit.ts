import type { Db } from '../store/database.js';
import type { Clock } from '../domain/clock.js';
import { unavailable } from '../domain/errors.js';

/** A unit of work run inside a shared transaction. `done` is called after the commit. */
export interface WriteOp<T = unknown> {
  work(now: number): T;
  done(error: Error | undefined, value: T | undefined): void;
}

/** What the last step of a flush does once the transaction's fate is known. */
export interface AfterCommit {
  committed(): void;
  rolledBack(): void;
}

export interface FlushHooks {
  /** Runs last inside the transaction (the dispatcher claims jobs here). */
  beforeCommit(now: number): AfterCommit;
  /** Runs after every flush, committed or not (session outboxes are written here). */
  afterFlush(): void;
}

/**
 * Group commit. better-sqlite3 is synchronous, so while one transaction commits (and
 * fsyncs) the event loop is blocked and new requests pile up in the sockets; the next
 * flush takes all of them in one transaction. Batches therefore grow with load by
 * themselves, without a linger timer that would add latency at light load. An op is
 * answered (`done`) only after the commit that contains it.
 */
export class GroupCommit {
  private ops: WriteOp<any>[] = [];
  private scheduled = false;
  private flushing = false;
  private hooks: FlushHooks | undefined;
  private closed = false;
  /** Commits so far and ops in them, for metrics and tests. */
  readonly stats = { commits: 0, ops: 0, failures: 0 };

  /** The flush transaction, wrapped once (better-sqlite3 builds a wrapper per call: ~10 us). */
  private readonly runInTransaction: (ops: WriteOp<any>[], results: { error?: Error; value?: unknown }[], now: number) => void;
  /** Set inside the transaction, so a failed COMMIT can still roll the hooks back. */
  private afterCommit: AfterCommit | undefined;

  constructor(
    db: Db,
    private readonly clock: Clock,
    private readonly onCommitError: (error: Error) => void,
  ) {
    this.runInTransaction = db.transaction((ops: WriteOp<any>[], results: { error?: Error; value?: unknown }[], now: number) => {
      for (let i = 0; i < ops.length; i++) {
        try {
          results[i] = { value: ops[i]!.work(now) };
        } catch (error) {
          // A failed statement rolls back only itself; multi-statement ops use savepoints.
          results[i] = { error: error as Error };
        }
      }
      this.afterCommit = this.hooks?.beforeCommit(now);
    });
  }

  setHooks(hooks: FlushHooks): void {
    this.hooks = hooks;
  }

  submit<T>(op: WriteOp<T>): void {
    if (this.closed) return op.done(unavailable('broker is stopped'), undefined);
    this.ops.push(op);
    this.schedule();
  }

  /** Runs what is queued, then refuses further work (the store is about to close). */
  close(): void {
    this.flush();
    this.closed = true;
  }

  /** Promise form for RPC handlers. */
  run<T>(work: (now: number) => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.submit<T>({ work, done: (error, value) => (error ? reject(error) : resolve(value as T)) });
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
    try {
      this.runInTransaction(ops, results, now);
      afterCommit = this.afterCommit as AfterCommit | undefined;
      this.stats.commits++;
      this.stats.ops += ops.length;
    } catch (error) {
      this.stats.failures++;
      this.onCommitError(error as Error);
      (this.afterCommit as AfterCommit | undefined)?.rolledBack();
      for (const op of ops) op.done(error as Error, undefined);
      this.flushing = false;
      this.hooks?.afterFlush();
      return;
    }
    for (let i = 0; i < ops.length; i++) {
      const r = results[i]!;
      try {
        ops[i]!.done(r.error, r.value);
      } catch (error) {
        this.onCommitError(error as Error);
      }
    }
    afterCommit?.committed();
    this.flushing = false;
    this.hooks?.afterFlush();
  }

  get pending(): number {
    return this.ops.length;
  }
}
