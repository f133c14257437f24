import type { Clock } from '../domain/clock.js';
import { compileCron } from '../domain/cron.js';
import { SluiceError } from '../domain/errors.js';
import { parseJobId } from '../domain/job-id.js';
import { JobState } from '../domain/job-state.js';
import { formatJobId } from '../domain/job-id.js';
import type { Logger } from '../log.js';
import { isDuplicateFire, type RunKind, type ScheduleRow, type ScheduleStore } from '../store/schedule-store.js';
import type { EnqueueInput } from './broker.js';
import { DeadlineTimer } from './deadline-timer.js';
import type { GroupCommit } from './group-commit.js';
import { planFires } from './schedule-plan.js';
import { jobFromTemplate, parseTemplate } from './schedule-template.js';

/** Inserts one job inside the current flush, the way Enqueue does (broker.insertJobInFlush). */
export type InsertJob = (input: EnqueueInput, now: number) => { id: string; deduplicated: boolean };

export interface SchedulerOptions {
  store: ScheduleStore;
  commits: GroupCommit;
  insertJob: InsertJob;
  clock: Clock;
  log: Logger;
  /** How late a fire time may be reached and still count as on time (not missed). */
  misfireGraceMs: number;
  /**
   * The timer never sleeps longer than this, so a wall-clock jump is noticed (and its missed
   * fires handled by the catch-up policy) within this time. One indexed read per wake-up.
   */
  maxSleepMs?: number;
}

/** Schedules fired per flush, so one flush never blocks the loop for long. */
const FIRE_BATCH = 100;
const DEFAULT_MAX_SLEEP_MS = 60_000;
const RETRY_AFTER_FAILURE_MS = 1000;

/**
 * Test hook for crash tests: `SLUICE_TEST_CRASH_AT_FIRE=N` SIGKILLs this process at its N-th
 * scheduled fire, after the job row is inserted and before the schedule is advanced (inside
 * the same uncommitted transaction). The test harness sets it on child brokers only.
 */
const CRASH_AT_FIRE = Number(process.env.SLUICE_TEST_CRASH_AT_FIRE ?? 0);

/**
 * Fires cron schedules. One timer for the earliest next fire time of all active schedules
 * (read from an index, never by scanning or parsing every schedule); at each wake-up the due
 * schedules fire in one group-commit flush. Every fire writes its job, its run record and the
 * schedule's new next fire time in one transaction (a savepoint per schedule), and the
 * UNIQUE (schedule_id, fire_time) index makes a second job for a fire time impossible. The
 * same code path decides catch-up at start (the stored next fire time is in the past) and
 * after a clock jump.
 */
export class Scheduler {
  private readonly timer: DeadlineTimer;
  private readonly maxSleepMs: number;
  private firing = false;
  private stopped = true;
  private idleWaiters: (() => void)[] = [];
  private fires = 0;

  constructor(private readonly o: SchedulerOptions) {
    this.maxSleepMs = o.maxSleepMs ?? DEFAULT_MAX_SLEEP_MS;
    this.timer = new DeadlineTimer(o.clock, () => this.wake());
  }

  start(): void {
    this.stopped = false;
    this.wake();
  }

  stop(): void {
    this.stopped = true;
    this.timer.stop();
    this.notifyIdle();
  }

  /** A schedule's next fire time may now be earlier than the armed one. */
  armAt(at: number | null | undefined): void {
    if (at === null || at === undefined || this.stopped) return;
    this.timer.armAt(Math.min(at, this.o.clock.now() + this.maxSleepMs));
  }

  /** Resolves once no fire is in progress (tests with a manual clock wait on this). */
  idle(): Promise<void> {
    if (!this.firing) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private wake(): void {
    if (this.stopped || this.firing) return;
    const now = this.o.clock.now();
    const next = this.o.store.nextDue();
    if (next === undefined) return this.notifyIdle();
    if (next > now) {
      this.timer.armAt(Math.min(next, now + this.maxSleepMs));
      return this.notifyIdle();
    }
    this.firing = true;
    this.o.commits.submit({
      work: (at) => this.fireDue(at),
      done: (error, result) => {
        this.firing = false;
        if (error || !result || result.failed > 0) {
          if (error) this.o.log.error({ err: error }, 'schedule fires not committed; retrying');
          this.timer.armAt(this.o.clock.now() + RETRY_AFTER_FAILURE_MS);
          return this.notifyIdle();
        }
        this.wake();
      },
    });
  }

  private notifyIdle(): void {
    if (this.firing || this.idleWaiters.length === 0) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }

  /** Runs inside the flush transaction. */
  private fireDue(now: number): { failed: number } {
    const due = this.o.store.due(now, FIRE_BATCH);
    let failed = 0;
    for (const row of due) {
      try {
        this.o.store.db.transaction(() => this.fireSchedule(row, now))();
      } catch (error) {
        failed++;
        this.o.log.error({ err: error, scheduleId: row.id, schedule: row.name }, 'schedule could not fire; retrying in 1 s');
      }
    }
    return { failed };
  }

  private fireSchedule(row: ScheduleRow, now: number): void {
    const spec = compileCron(row.cron, row.timezone);
    const plan = planFires(
      {
        nextFireAt: row.next_fire_at!,
        lastFireAt: row.last_fire_at,
        catchUp: row.catch_up,
        catchUpLimit: row.catch_up_limit,
        startAt: row.start_at,
        endAt: row.end_at,
      },
      spec,
      now,
      this.o.misfireGraceMs,
    );
    if (plan.skipped.length > 0 || plan.run.length > 1) {
      this.o.log.info(
        { scheduleId: row.id, schedule: row.name, run: plan.run.length, skipped: plan.skipped.length, catchUp: row.catch_up },
        'schedule catching up on missed fire times',
      );
    }
    for (const { time, reason } of plan.skipped) this.recordSkip(row, time, 'scheduled', reason, now);
    for (const time of plan.run) this.fireOnce(row, time, 'scheduled', now);
    if (!this.o.store.advance(row.id, row.next_fire_at, plan.next ?? null, plan.last ?? null, now)) {
      throw new Error(`schedule ${row.id} changed while it was firing`);
    }
    this.o.store.trimRuns(row.id, row.history_limit);
  }

  /**
   * One run: a job (unless the overlap policy says no), recorded with its fire time. Returns
   * the run's seq, or undefined when the fire time already had a run.
   */
  fireOnce(row: ScheduleRow, fireTime: number, kind: RunKind, now: number): number | undefined {
    if (kind === 'scheduled') {
      const blocked = this.overlapBlock(row);
      if (blocked) return this.recordSkip(row, fireTime, kind, blocked, now);
    }
    const template = parseTemplate(row.template);
    try {
      return this.o.store.db.transaction(() => {
        const job = this.o.insertJob(jobFromTemplate(template, row, fireTime, kind), now);
        if (kind === 'scheduled' && CRASH_AT_FIRE > 0 && ++this.fires === CRASH_AT_FIRE) {
          // The job row exists in the open transaction; the schedule is not advanced yet.
          process.kill(process.pid, 'SIGKILL');
        }
        const key = parseJobId(job.id)!;
        const reason = job.deduplicated ? `deduplicated: job ${job.id} with the same dedup_key was still unfinished` : null;
        const seq = this.o.store.insertRun(
          { scheduleId: row.id, fireTime, kind, outcome: 'enqueued', reason, jobSeq: key.seq, jobCreatedAt: key.createdAt },
          now,
        );
        this.o.log.debug({ scheduleId: row.id, schedule: row.name, jobId: job.id, queue: template.queue, fireTime: new Date(fireTime).toISOString(), kind }, 'schedule fired');
        return seq;
      })();
    } catch (error) {
      if (isDuplicateFire(error)) {
        // The savepoint took the job back with it: the fire time keeps its one job.
        this.o.log.error({ scheduleId: row.id, schedule: row.name, fireTime }, 'fire time already has a run; no second job created');
        return undefined;
      }
      if (error instanceof SluiceError && error.code !== 'INTERNAL') {
        return this.recordSkip(row, fireTime, kind, `the job could not be enqueued: ${error.message}`, now);
      }
      throw error;
    }
  }

  private recordSkip(row: ScheduleRow, fireTime: number, kind: RunKind, reason: string, now: number): number | undefined {
    try {
      const seq = this.o.store.db.transaction(() =>
        this.o.store.insertRun({ scheduleId: row.id, fireTime, kind, outcome: 'skipped', reason, jobSeq: null, jobCreatedAt: null }, now),
      )();
      this.o.log.info({ scheduleId: row.id, schedule: row.name, fireTime: new Date(fireTime).toISOString(), reason }, 'schedule fire skipped');
      return seq;
    } catch (error) {
      if (isDuplicateFire(error)) return undefined;
      throw error;
    }
  }

  /** Why the overlap policy holds this fire back, or undefined to fire. */
  private overlapBlock(row: ScheduleRow): string | undefined {
    if (row.overlap === 'allow') return undefined;
    const unfinished = this.o.store.unfinishedJobs(row.id);
    const describe = (u: (typeof unfinished)[number]) =>
      `job ${formatJobId(u.job_seq, u.job_created_at)} (fire time ${new Date(u.fire_time).toISOString()}) is still ${u.state}`;
    if (row.overlap === 'skip' && unfinished.length > 0) return `overlap=skip: ${describe(unfinished[unfinished.length - 1]!)}`;
    if (row.overlap === 'queue_one') {
      const waiting = unfinished.find((u) => u.state !== JobState.Active);
      if (waiting) return `overlap=queue_one: one run is already waiting: ${describe(waiting)}`;
    }
    return undefined;
  }
}
