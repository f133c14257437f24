import pg from 'pg';
import type {
  AckCommand, ClaimCommand, EnqueueCommand, EnqueueOutcome, ExpireCommand, ExpiredLease, ExtendCommand, FailCommand, FlushBatch, FlushResult,
  PromoteCommand, PromotedJob, ReleaseCommand,
} from '../flush-batch.js';
import type { ClaimedJob, CompletedJob, NewJob, ReleasedJob } from '../types.js';

/**
 * The statements a flush is made of, one per command kind (flush-statements.ts wires
 * pg-writes.ts, pg-claims.ts and ready-notifier.ts). Each sends one query when called, before
 * its first await, and matches nothing instead of failing on stale input: that is what lets the
 * executor queue them all at once. An enqueue may send more queries once its first answer is
 * back (the lookup of dedup keys already held): `enqueueMayQueryAgain` says when, so the
 * executor holds the COMMIT back for those.
 */
export interface FlushStatements {
  ensureQueues(db: pg.ClientBase, queues: readonly string[], now: number): Promise<unknown>;
  /** A job this store cannot hold (checked before anything is sent), or undefined. */
  refusedJob(job: NewJob): Error | undefined;
  enqueue(db: pg.ClientBase, command: EnqueueCommand, now: number): Promise<EnqueueOutcome[]>;
  enqueueMayQueryAgain(command: EnqueueCommand): boolean;
  /** The enqueue failed because of its jobs (not the connection or the server): isolate the command. */
  isEnqueueInputError(error: unknown): boolean;
  acks(db: pg.ClientBase, acks: readonly AckCommand[], now: number): Promise<(CompletedJob | undefined)[]>;
  fails(db: pg.ClientBase, fails: readonly FailCommand[], now: number): Promise<boolean[]>;
  extends(db: pg.ClientBase, extends_: readonly ExtendCommand[], now: number): Promise<({ deadline: number; attempt: number } | undefined)[]>;
  releases(db: pg.ClientBase, releases: readonly ReleaseCommand[], now: number): Promise<(ReleasedJob | undefined)[]>;
  /** Leases past the database's now, released as attempts with outcome 'expired' (one statement). */
  expire(db: pg.ClientBase, expire: ExpireCommand): Promise<ExpiredLease[]>;
  /** Due scheduled jobs made pending (one statement). */
  promote(db: pg.ClientBase, promote: PromoteCommand): Promise<PromotedJob[]>;
  claim(db: pg.ClientBase, claim: ClaimCommand): Promise<ClaimedJob[]>;
  /** The NOTIFY of 3.5 for queues that gained ready jobs. */
  notify(db: pg.ClientBase, queues: readonly string[]): Promise<unknown>;
}

/**
 * The flush failed: the connection or the server failed, or a statement that must not fail
 * did. `maybeCommitted`: the COMMIT had been sent when it happened and its answer did not
 * say rollback (the connection broke, or a step failed outside SQL after the server had its
 * whole pipeline), so its changes may be in the database; callers must say so, never claim a
 * rollback.
 */
export class FlushFailedError extends Error {
  override readonly name = 'FlushFailedError';
  constructor(
    message: string,
    override readonly cause: unknown,
    readonly maybeCommitted: boolean,
  ) {
    super(message);
  }
}

/** PostgreSQL's "current transaction is aborted, commands ignored until end of transaction block". */
const IN_FAILED_TRANSACTION = '25P02';

const serverError = (error: unknown): error is pg.DatabaseError => error instanceof pg.DatabaseError;
const messageOf = (error: unknown): string => (error instanceof Error ? error.message : String(error));

type Settled = { ok: true; value: unknown } | { ok: false; error: unknown };

function settle(p: Promise<unknown>): Promise<Settled> {
  return p.then(
    (value) => ({ ok: true as const, value }),
    (error: unknown) => ({ ok: false as const, error }),
  );
}

/** deadlock_detected and serialization_failure: the server rolled the transaction back; running it again is safe. */
const TRANSIENT = new Set(['40P01', '40001']);
const TRANSIENT_RETRIES = 3;

function isTransient(error: FlushFailedError): boolean {
  return !error.maybeCommitted && serverError(error.cause) && TRANSIENT.has(error.cause.code ?? '');
}

/** One statement of a pipelined transaction and where its answer goes. */
interface Step {
  promise: Promise<unknown>;
  /** The batch's enqueue command, for an enqueue step (the only kind that may fail on its input). */
  enqueue?: number;
  apply(value: unknown): void;
}

/** An enqueue command as sent: the jobs the store can hold, and where each outcome goes. */
interface PreparedEnqueue {
  command: EnqueueCommand;
  /** Index in the original command of each job sent. */
  sent: number[];
  /** Outcomes known before sending (jobs refused by refusedJob). */
  outcomes: EnqueueOutcome[];
}

/**
 * Runs a FlushBatch as one transaction on one pipelined connection (node-postgres
 * `pipeline: true`): BEGIN, one statement per command kind, the NOTIFY and the COMMIT all leave
 * before the first answer comes back, so a flush costs one round trip however many ops it
 * carries (design 3.2: 1.35x a sequential flush on a local socket, 3x at a 2.4 ms round trip).
 * A flush whose enqueues carry dedup keys takes a second round trip when a key is already held
 * (the lookup of its holder): the COMMIT then follows the last answer. The COMMIT's answer means
 * durable (synchronous_commit on): the broker answers producers and confirms settles from it.
 *
 * A failed statement aborts the whole transaction: PostgreSQL ignores the rest (25P02) and turns
 * the COMMIT into a rollback. Only an enqueue can fail on its input (a job the database refuses);
 * the executor then runs the flush again without that command, and the command alone (each job
 * of a non-atomic one in a transaction of its own, so each gets its own outcome, as SQLite's
 * row-by-row retry does), so one bad job costs the other ops a round trip and nothing else. Jobs
 * the store cannot hold at all (refusedJob: U+0000 in a key) get their error without being sent.
 * Any other failure fails the whole flush with FlushFailedError.
 *
 * The connection belongs to this executor, one flush at a time (the group commit runs one flush
 * at a time).
 */
export class PostgresFlushExecutor {
  /** Flushes, the transactions they ran (one each unless an enqueue was isolated), and the isolated enqueue commands. */
  readonly stats = { flushes: 0, transactions: 0, isolatedEnqueues: 0 };

  /** Why the connection is unusable, once it broke (an error or its end): every later flush fails at once. */
  private broken: Error | undefined;

  constructor(
    private readonly db: pg.ClientBase,
    private readonly statements: FlushStatements,
  ) {
    db.on('error', (error: Error) => (this.broken ??= error));
    db.on('end', () => (this.broken ??= new Error('the connection ended')));
  }

  /** The connection broke: the owner must open a new one (and a new executor). */
  get usable(): boolean {
    return this.broken === undefined;
  }

  async execute(batch: FlushBatch): Promise<FlushResult> {
    if (this.broken) throw new FlushFailedError(`flush not run: the connection to PostgreSQL broke (${messageOf(this.broken)})`, this.broken, false);
    this.stats.flushes++;
    const prepared = batch.enqueues.map((command) => this.prepare(command));
    const result: FlushResult = { enqueues: prepared.map((p) => p.outcomes), acks: [], fails: [], extends: [], releases: [], promoted: [], expired: [], claims: [] };
    let included = prepared.flatMap((p, i) => (p.sent.length > 0 ? [i] : []));
    const isolated: number[] = [];
    for (let conflicts = 0; ; ) {
      let failed: { command: number } | undefined;
      try {
        failed = await this.runTransaction(batch, prepared, included, result);
      } catch (error) {
        // A deadlock with another broker's flush (two new dedup keys inserted in opposite orders) or
        // a serialization failure: the server rolled this one back, and it may simply run again.
        if (error instanceof FlushFailedError && isTransient(error) && ++conflicts <= TRANSIENT_RETRIES) continue;
        throw error;
      }
      if (failed === undefined) break;
      isolated.push(failed.command);
      included = included.filter((i) => i !== failed.command);
    }
    for (const i of isolated) await this.enqueueAlone(prepared[i]!, batch);
    return result;
  }

  /** Sets aside the jobs the store cannot hold; an atomic command with one fails whole. */
  private prepare(command: EnqueueCommand): PreparedEnqueue {
    const outcomes: EnqueueOutcome[] = new Array(command.jobs.length);
    const sent: number[] = [];
    command.jobs.forEach((job, j) => {
      const refused = this.statements.refusedJob(job);
      if (refused) outcomes[j] = { error: refused };
      else sent.push(j);
    });
    if (sent.length === command.jobs.length) return { command, sent, outcomes };
    if (command.atomic) {
      const error = outcomes.find((o) => o !== undefined && 'error' in o) as { error: Error };
      return { command, sent: [], outcomes: command.jobs.map(() => error) };
    }
    const jobs = sent.map((j) => command.jobs[j]!);
    const states = sent.map((j) => command.states[j]!);
    return { command: { jobs, states, atomic: false }, sent, outcomes };
  }

  /**
   * One pipelined transaction with the enqueue commands in `included`. Returns undefined once
   * committed (answers written into `result`), or the enqueue command whose jobs made it roll
   * back, with the error.
   */
  private async runTransaction(
    batch: FlushBatch,
    prepared: readonly PreparedEnqueue[],
    included: readonly number[],
    result: FlushResult,
  ): Promise<{ command: number; error: Error } | undefined> {
    const { db, statements: s } = this;
    const { now } = batch;
    this.stats.transactions++;
    const steps: Step[] = [];
    const begin = db.query('BEGIN');
    if (batch.newQueues.length > 0) steps.push({ promise: s.ensureQueues(db, batch.newQueues, now), apply: () => {} });
    if (batch.acks.length > 0) steps.push({ promise: s.acks(db, batch.acks, now), apply: (v) => (result.acks = v as FlushResult['acks']) });
    if (batch.fails.length > 0) steps.push({ promise: s.fails(db, batch.fails, now), apply: (v) => (result.fails = v as boolean[]) });
    if (batch.extends.length > 0) steps.push({ promise: s.extends(db, batch.extends, now), apply: (v) => (result.extends = v as FlushResult['extends']) });
    if (batch.releases.length > 0) steps.push({ promise: s.releases(db, batch.releases, now), apply: (v) => (result.releases = v as FlushResult['releases']) });
    // The timers in flush-batch.ts's order: after the settles and releases, before enqueues and claims.
    if (batch.expire) steps.push({ promise: s.expire(db, batch.expire), apply: (v) => (result.expired = v as ExpiredLease[]) });
    if (batch.promote) steps.push({ promise: s.promote(db, batch.promote), apply: (v) => (result.promoted = v as PromotedJob[]) });
    let followUps = false;
    for (const i of included) {
      const p = prepared[i]!;
      if (s.enqueueMayQueryAgain(p.command)) followUps = true;
      steps.push({ promise: s.enqueue(db, p.command, now), enqueue: i, apply: (v) => placeOutcomes(p, v as EnqueueOutcome[], result.enqueues[i]!) });
    }
    const claims: ClaimedJob[][] = new Array(batch.claims.length);
    const sendTail = () => {
      batch.claims.forEach((claim, k) => steps.push({ promise: s.claim(db, claim), apply: (v) => (claims[k] = v as ClaimedJob[]) }));
      if (batch.ready.length > 0) steps.push({ promise: s.notify(db, batch.ready), apply: () => {} });
    };
    const answers = () => Promise.all([settle(begin), Promise.all(steps.map((step) => settle(step.promise)))]);
    let end: Promise<Settled> | undefined;
    let commitSent = false;
    let began: Settled;
    let outcomes: Settled[];
    if (!followUps) {
      // Everything, the COMMIT included, leaves in one write: one round trip.
      sendTail();
      end = settle(db.query('COMMIT'));
      commitSent = true;
      [began, outcomes] = await answers();
    } else {
      // An enqueue may look up held dedup keys once its insert answered: the claims (which would
      // change the holders' states under the lookup, unlike SQLite where enqueues answer before any
      // claim) and the COMMIT go after it, in a second write.
      [began, outcomes] = await answers();
      if (began.ok && outcomes.every((o) => o.ok) && !this.broken) {
        const first = steps.length;
        sendTail();
        end = settle(db.query('COMMIT'));
        commitSent = true;
        const tail = await Promise.all(steps.slice(first).map((step) => settle(step.promise)));
        outcomes = [...outcomes, ...tail];
      } else {
        end = settle(db.query('ROLLBACK'));
      }
    }
    const failed = !began.ok || outcomes.some((o) => !o.ok);
    const ended = await end;
    const committed = ended.ok && (ended.value as pg.QueryResult).command === 'COMMIT';

    if (this.broken) {
      // Whatever reached the server before the break is its business: a sent COMMIT may have been applied.
      const cause = this.broken;
      throw new FlushFailedError(`flush failed: the connection to PostgreSQL broke (${messageOf(cause)})`, cause, commitSent);
    }
    if (!failed && committed) {
      for (let k = 0; k < steps.length; k++) steps[k]!.apply((outcomes[k] as { value: unknown }).value);
      result.claims = claims;
      return undefined;
    }
    if (!failed) {
      // Every statement answered and the server refused the COMMIT (a rollback).
      const error = ended.ok ? new Error(`the transaction ended with ${(ended.value as pg.QueryResult).command}`) : ended.error;
      throw new FlushFailedError(`flush failed at COMMIT: ${messageOf(error)}`, error, false);
    }
    // BEGIN refused means the statements ran outside a transaction, each committing on its own.
    if (!began.ok) throw new FlushFailedError(`flush failed at BEGIN: ${messageOf(began.error)}`, began.error, true);
    // The cause is the first failure in the order sent; the ones after it only saw the aborted transaction.
    const cause = outcomes.findIndex((o) => !o.ok && !(serverError(o.error) && o.error.code === IN_FAILED_TRANSACTION));
    const error = cause === -1 ? new Error('the transaction was aborted') : (outcomes[cause] as { error: unknown }).error;
    // A step failed outside SQL (reading its answer) while the server had nothing to refuse: the COMMIT went through.
    if (committed) throw new FlushFailedError(`flush failed after it committed: ${messageOf(error)}`, error, true);
    const step = cause === -1 ? undefined : steps[cause]!;
    if (step?.enqueue !== undefined && s.isEnqueueInputError(error)) return { command: step.enqueue, error: error as Error };
    throw new FlushFailedError(`flush failed: ${messageOf(error)}`, error, false);
  }

  /**
   * An enqueue command whose statement failed, on its own: atomic, one error for every job;
   * otherwise each job in a transaction of its own, so the good ones commit.
   */
  private async enqueueAlone(p: PreparedEnqueue, batch: FlushBatch): Promise<void> {
    this.stats.isolatedEnqueues++;
    const { command } = p;
    const single = command.atomic || command.jobs.length === 1;
    const parts: PreparedEnqueue[] = single
      ? [p]
      : command.jobs.map((job, k) => ({ command: { jobs: [job], states: [command.states[k]!], atomic: true }, sent: [p.sent[k]!], outcomes: p.outcomes }));
    for (const part of parts) {
      // Its jobs commit after the flush's NOTIFY went out (other brokers may have looked and found
      // nothing): the ready queues it writes to are notified again, at its own commit.
      const ready = batch.ready.filter((queue) => part.command.jobs.some((job) => job.queue === queue));
      const alone: FlushBatch = { now: batch.now, newQueues: batch.newQueues, enqueues: [part.command], acks: [], fails: [], extends: [], releases: [], claims: [], ready };
      const r: FlushResult = { enqueues: [p.outcomes], acks: [], fails: [], extends: [], releases: [], promoted: [], expired: [], claims: [] };
      const failed = await this.runTransaction(alone, [part], [0], r);
      // Refused alone: its error for each of its jobs (an atomic command: all of them).
      if (failed) for (const j of part.sent) p.outcomes[j] = { error: failed.error };
    }
  }
}

/** Writes the statement's outcomes (for the jobs sent) into the command's outcome list. */
function placeOutcomes(p: PreparedEnqueue, sentOutcomes: readonly EnqueueOutcome[], into: EnqueueOutcome[]): void {
  for (let k = 0; k < p.sent.length; k++) into[p.sent[k]!] = sentOutcomes[k]!;
}
