import { JobState } from '../domain/job-state.js';
import { parseJobId } from '../domain/job-id.js';
import {
  LEASE_EXPIRED_REASON,
  type AckCommand, type ClaimCommand, type EnqueueCommand, type EnqueueOutcome, type ExpireCommand, type ExpiredLease, type ExtendCommand,
  type FailCommand, type FlushBatch, type FlushResult, type PromoteCommand, type PromotedJob, type ReleaseCommand,
} from './flush-batch.js';
import type { JobStore } from './job-store.js';
import { PartialInsertError } from './store-errors.js';
import type { ClaimedJob, CompletedJob, ReleasedJob } from './types.js';

/**
 * A FlushBatch run on SQLite: the SQLite side of step 2 (docs/design/postgres-store.md, 3.2 and
 * section 4), with the semantics of PostgresFlushExecutor (pg-flush.ts) and built from JobStore's
 * existing statements, in the batch's fixed order (new queues, acks, fails, extends, releases,
 * expire, promote, enqueues, claims). Synchronous, and run inside the caller's transaction (the group commit's
 * flush): it opens none of its own except a savepoint per atomic enqueue command. The broker's
 * command ops run through it (broker/group-commit.ts; the dispatcher still claims with its own
 * closure); test/store.flush-conformance.test.ts runs the same batches through both executors and
 * compares every answer and row.
 *
 * Where the two stores cannot agree (documented in the conformance test and the design): the
 * statement times (PostgreSQL's now(), SQLite's batch.now), seqs (identities skip values that
 * SQLite reuses), U+0000 in text (PostgreSQL stores U+FFFD) and in keys (PostgreSQL refuses the
 * job), and an enqueue command PostgreSQL had to isolate, which commits after its flush.
 * `ready` is ignored: one broker, nobody to notify.
 */
export class SqliteFlushExecutor {
  constructor(private readonly store: JobStore) {}

  execute(batch: FlushBatch): FlushResult {
    const { store } = this;
    const { now } = batch;
    for (const queue of batch.newQueues) store.ensureQueue(queue, now);
    const acks = batch.acks.length > 0 ? this.acks(batch.acks, now) : [];
    const fails = batch.fails.map((f) => this.fail(f, now));
    const extends_ = batch.extends.map((e) => this.extend(e, now));
    const releases = batch.releases.map((r) => this.release(r, now));
    const expired = batch.expire ? this.expire(batch.expire, now) : [];
    const promoted = batch.promote ? this.promote(batch.promote, now) : [];
    const enqueues = batch.enqueues.map((command) => this.enqueue(command, now));
    const claims = batch.claims.map((claim) => this.claim(claim, now));
    return { enqueues, acks, fails, extends: extends_, releases, promoted, expired, claims };
  }

  /**
   * The broker's lease timer as one command: expiredLeases (deadline <= now, earliest first, ties
   * by seq as its index orders them), then release each as an attempt with outcome 'expired'.
   * One writer, so every lease found is released; in seq order, as pg-writes' expireLeases answers.
   */
  private expire(e: ExpireCommand, now: number): ExpiredLease[] {
    const reason = e.reason ?? LEASE_EXPIRED_REASON;
    const out: ExpiredLease[] = [];
    for (const { id, lease_id } of this.store.expiredLeases(now, rowLimit(e.limit))) {
      const released = this.store.release(id, lease_id, reason, true, now, 'expired');
      if (released) out.push({ id, leaseId: lease_id, released });
    }
    return bySeq(out);
  }

  /** JobStore.promoteDue (run_at <= now, oldest first), in seq order as pg-writes' promoteDue answers. */
  private promote(p: PromoteCommand, now: number): PromotedJob[] {
    return bySeq(this.store.promoteDue(now, rowLimit(p.limit)));
  }

  private acks(acks: readonly AckCommand[], now: number): (CompletedJob | undefined)[] {
    // completeMany answers a repeated job one input at a time, so the first input quoting the lease wins, as on PostgreSQL.
    return this.store.completeMany(acks, now);
  }

  /**
   * PostgreSQL's failMany guard (lease id, attempt and max_attempts) from failureContext, read in
   * this transaction, so nothing can change between the read and the write. A repeat of an
   * applied input finds the job no longer active: the first input that passes wins.
   */
  private fail(f: FailCommand, now: number): boolean {
    if (f.state !== JobState.Scheduled && f.state !== JobState.Dead) throw new RangeError(`a nack leaves a job scheduled or dead, not ${String(f.state)}`);
    const context = this.store.failureContext(f.id, f.leaseId);
    if (!context || context.attempt !== f.attempt || context.max_attempts !== f.maxAttempts) return false;
    return this.store.fail(f.id, f.leaseId, { state: f.state, runAt: f.runAt, error: f.error }, now).ok;
  }

  /**
   * One statement per heartbeat: repeats of one lease each succeed, each with its own deadline,
   * and the row keeps the last deadline and the last non-null progress, which is what
   * pg-writes' extendMany folds them to.
   */
  private extend(e: ExtendCommand, now: number): { deadline: number; attempt: number } | undefined {
    const r = this.store.extend(e.id, e.leaseId, e.extendMs, e.progress, now);
    return r.ok ? r.value : undefined;
  }

  /** A repeat of a released lease finds the job no longer active: the first input wins, as releaseMany's DISTINCT ON. */
  private release(r: ReleaseCommand, now: number): ReleasedJob | undefined {
    const outcome = r.outcome ?? 'released';
    if (outcome !== 'expired' && outcome !== 'released') throw new RangeError(`a lease ends expired or released, not ${String(outcome)}`);
    return this.store.release(r.id, r.leaseId, r.reason, r.countsAsAttempt, now, outcome);
  }

  /**
   * One command as the broker's insertJobs runs it (without admission and queue defaults, which
   * the broker applies before it builds the command): runs of keyless jobs through insertMany,
   * a keyed job after the rows before it, looked up (findUnfinishedByDedupKey) and inserted
   * alone, so a command may deduplicate against itself. Atomic: in a savepoint, so a failure
   * takes back only this command, and every job gets its error. Otherwise a failed multi-row
   * statement (it undid itself) is retried row by row and each job gets its own outcome.
   */
  private enqueue(command: EnqueueCommand, now: number): EnqueueOutcome[] {
    const { jobs, states } = command;
    if (jobs.length !== states.length) throw new RangeError(`${jobs.length} jobs but ${states.length} states`);
    for (let i = 0; i < states.length; i++) {
      const state = states[i];
      if (state !== JobState.Pending && state !== JobState.Scheduled) throw new RangeError(`input ${i}: a new job is pending or scheduled, not ${String(state)}`);
    }
    if (!command.atomic) return this.insertJobs(command, now, false);
    try {
      return this.store.db.transaction(() => this.insertJobs(command, now, true))();
    } catch (error) {
      const e = error instanceof Error ? error : new Error(String(error));
      return jobs.map(() => ({ error: e }));
    }
  }

  /** broker.ts insertJobs' loop over one command; atomic: the first error is thrown (the savepoint rolls back). */
  private insertJobs({ jobs, states }: EnqueueCommand, now: number, atomic: boolean): EnqueueOutcome[] {
    const { store } = this;
    const out: EnqueueOutcome[] = new Array(jobs.length);
    let run: number[] = [];
    const insertRun = () => {
      if (run.length === 0) return;
      const batch = run;
      run = [];
      let ids: string[];
      try {
        // The common case, a command without dedup keys, is one run of all its jobs: no copies.
        const whole = batch.length === jobs.length;
        ids = store.insertMany(whole ? jobs : batch.map((i) => jobs[i]!), whole ? states : batch.map((i) => states[i]!), now);
      } catch (error) {
        // Atomic: the command's savepoint undoes the chunks that went through.
        if (atomic) throw error instanceof PartialInsertError ? error.cause : error;
        // insertMany runs one statement per chunk (32, 8, then single rows); a failed one undoes
        // only itself and the chunks before it stay: those jobs are in, the rest go one by one.
        const done = error instanceof PartialInsertError ? error.insertedIds : [];
        batch.forEach((i, k) => (out[i] = k < done.length ? { id: done[k]!, state: states[i]!, deduplicated: false } : this.insertOne(i, jobs, states, now)));
        return;
      }
      batch.forEach((i, k) => (out[i] = { id: ids[k]!, state: states[i]!, deduplicated: false }));
    };
    for (let i = 0; i < jobs.length; i++) {
      const job = jobs[i]!;
      if (job.dedupKey === null) {
        run.push(i);
        continue;
      }
      insertRun();
      const existing = store.findUnfinishedByDedupKey(job.queue, job.dedupKey);
      if (existing) {
        out[i] = { id: existing.id, state: existing.state, deduplicated: true };
        continue;
      }
      if (atomic) out[i] = { id: store.insert(job, states[i]!, now), state: states[i]!, deduplicated: false };
      else out[i] = this.insertOne(i, jobs, states, now);
    }
    insertRun();
    return out;
  }

  private insertOne(i: number, jobs: EnqueueCommand['jobs'], states: EnqueueCommand['states'], now: number): EnqueueOutcome {
    try {
      return { id: this.store.insert(jobs[i]!, states[i]!, now), state: states[i]!, deduplicated: false };
    } catch (error) {
      return { error: error instanceof Error ? error : new Error(String(error)) };
    }
  }

  /**
   * The dispatcher's claim in the shape of PostgreSQL's claimForSlots: the next ready jobs
   * (peekReady, in delivery order), the i-th to slot i (lease id = its prefix + seq), one
   * JobStore.claim per run of consecutive slots of one prefix and worker. Nothing from a paused
   * queue (PostgreSQL's claim checks the committed flag; here one primary-key read, so a pause
   * written earlier in this transaction counts too). Jobs in slot order.
   */
  private claim(claim: ClaimCommand, now: number): ClaimedJob[] {
    const { store } = this;
    const { slots } = claim;
    if (slots.length === 0) return [];
    if (store.getQueue(claim.queue)?.paused) return [];
    const refs = store.peekReady(claim.queue, slots.length, claim.types);
    const out: ClaimedJob[] = [];
    for (let start = 0; start < refs.length; ) {
      const { prefix, workerId } = slots[start]!;
      let end = start + 1;
      while (end < refs.length && slots[end]!.prefix === prefix && slots[end]!.workerId === workerId) end++;
      const seqs = refs.slice(start, end).map((r) => r.seq);
      // claim's rows come in no particular order: put them back in the slots' order.
      const bySeq = new Map(store.claim(seqs, prefix, workerId, now).map((j) => [j.seq, j]));
      for (const seq of seqs) {
        const job = bySeq.get(seq);
        if (job) out.push(job);
      }
      start = end;
    }
    return out;
  }
}

function rowLimit(n: number): number {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`not a row count: ${n}`);
  return n;
}

function bySeq<T extends { id: string }>(rows: T[]): T[] {
  const seq = (id: string) => parseJobId(id)?.seq ?? 0;
  return rows.sort((a, b) => seq(a.id) - seq(b.id));
}
