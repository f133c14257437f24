import type { Statement } from 'better-sqlite3';
import type { Db } from './database.js';
import {
  runDurationMs,
  runJobId,
  type CatchUpPolicy,
  type NewRun,
  type OverlapPolicy,
  type RunKind,
  type RunOutcome,
  type RunRow,
  type ScheduleRow,
  type UnfinishedRunJob,
} from './types.js';

// The row types moved to types.ts (backend-neutral); re-exported for the modules that import them from here.
export { runDurationMs, runJobId, type CatchUpPolicy, type NewRun, type OverlapPolicy, type RunKind, type RunOutcome, type RunRow, type ScheduleRow, type UnfinishedRunJob };

const RUN_COLUMNS = `r.seq, r.schedule_id, r.fire_time, r.kind, r.outcome, r.reason, r.job_seq, r.job_created_at, r.created_at,
  j.state AS job_state, j.attempt AS job_attempt, j.started_at AS job_started_at, j.finished_at AS job_finished_at, j.last_error AS job_last_error`;

/** All schedule SQL: named statements prepared once, like the job store. */
export class ScheduleStore {
  private readonly s: Record<
    | 'insert'
    | 'update'
    | 'getById'
    | 'getByName'
    | 'list'
    | 'listAfter'
    | 'delete'
    | 'setPaused'
    | 'nextDue'
    | 'due'
    | 'advance'
    | 'insertRun'
    | 'getRun'
    | 'unfinishedJobs'
    | 'trimRuns'
    | 'listRuns'
    | 'listRunsBefore'
    | 'count',
    Statement
  >;

  constructor(readonly db: Db) {
    const p = (sql: string): Statement => db.prepare(sql);
    this.s = {
      insert: p(`INSERT INTO schedules (id, name, cron, timezone, template, paused, start_at, end_at, catch_up, catch_up_limit,
                   overlap, history_limit, next_fire_at, last_fire_at, created_at, updated_at)
                 VALUES (@id, @name, @cron, @timezone, @template, @paused, @start_at, @end_at, @catch_up, @catch_up_limit,
                   @overlap, @history_limit, @next_fire_at, @last_fire_at, @created_at, @updated_at)`),
      update: p(`UPDATE schedules SET name = @name, cron = @cron, timezone = @timezone, template = @template, start_at = @start_at,
                   end_at = @end_at, catch_up = @catch_up, catch_up_limit = @catch_up_limit, overlap = @overlap,
                   history_limit = @history_limit, next_fire_at = @next_fire_at, updated_at = @updated_at
                 WHERE id = @id`),
      getById: p(`SELECT * FROM schedules WHERE id = ?`),
      getByName: p(`SELECT * FROM schedules WHERE name = ?`),
      list: p(`SELECT * FROM schedules ORDER BY name LIMIT ?`),
      listAfter: p(`SELECT * FROM schedules WHERE name > ? ORDER BY name LIMIT ?`),
      delete: p(`DELETE FROM schedules WHERE id = ?`),
      setPaused: p(`UPDATE schedules SET paused = @paused, next_fire_at = @next_fire_at, updated_at = @now WHERE id = @id`),
      // MIN over the partial index: one seek, whatever the number of schedules.
      nextDue: p(`SELECT min(next_fire_at) AS t FROM schedules WHERE paused = 0 AND next_fire_at IS NOT NULL`).pluck(),
      due: p(`SELECT * FROM schedules WHERE paused = 0 AND next_fire_at IS NOT NULL AND next_fire_at <= ? ORDER BY next_fire_at LIMIT ?`),
      // Guarded: advances only from the fire time this flush read, so a schedule is never
      // moved twice for one fire time.
      advance: p(`UPDATE schedules SET next_fire_at = @next, last_fire_at = coalesce(@last, last_fire_at), updated_at = @now
                 WHERE id = @id AND next_fire_at IS @expected`),
      insertRun: p(`INSERT INTO schedule_runs (schedule_id, fire_time, kind, outcome, reason, job_seq, job_created_at, created_at)
                 VALUES (@scheduleId, @fireTime, @kind, @outcome, @reason, @jobSeq, @jobCreatedAt, @now) RETURNING seq`).pluck(),
      getRun: p(`SELECT ${RUN_COLUMNS} FROM schedule_runs r LEFT JOIN jobs j ON j.seq = r.job_seq AND j.created_at = r.job_created_at
                 WHERE r.seq = ?`),
      unfinishedJobs: p(`SELECT r.job_seq, r.job_created_at, r.fire_time, j.state FROM schedule_runs r
                 JOIN jobs j ON j.seq = r.job_seq AND j.created_at = r.job_created_at
                 WHERE r.schedule_id = ? AND r.job_seq IS NOT NULL AND j.state IN ('scheduled','pending','active')
                 ORDER BY r.seq`),
      // Keeps the newest @keep runs of a schedule.
      trimRuns: p(`DELETE FROM schedule_runs WHERE schedule_id = @id AND seq <
                   (SELECT seq FROM schedule_runs WHERE schedule_id = @id ORDER BY seq DESC LIMIT 1 OFFSET @keep - 1)`),
      listRuns: p(`SELECT ${RUN_COLUMNS} FROM schedule_runs r LEFT JOIN jobs j ON j.seq = r.job_seq AND j.created_at = r.job_created_at
                 WHERE r.schedule_id = ? ORDER BY r.seq DESC LIMIT ?`),
      listRunsBefore: p(`SELECT ${RUN_COLUMNS} FROM schedule_runs r LEFT JOIN jobs j ON j.seq = r.job_seq AND j.created_at = r.job_created_at
                 WHERE r.schedule_id = ? AND r.seq < ? ORDER BY r.seq DESC LIMIT ?`),
      count: p(`SELECT count(*) FROM schedules`).pluck(),
    };
  }

  insert(row: ScheduleRow): void {
    this.s.insert.run(row);
  }

  /** Replaces the definition (not paused, last_fire_at or created_at). */
  update(row: ScheduleRow): void {
    this.s.update.run(row);
  }

  get(id: string): ScheduleRow | undefined {
    return this.s.getById.get(id) as ScheduleRow | undefined;
  }

  getByName(name: string): ScheduleRow | undefined {
    return this.s.getByName.get(name) as ScheduleRow | undefined;
  }

  /** By name, after `afterName` (keyset pagination). */
  list(limit: number, afterName?: string): ScheduleRow[] {
    return (afterName === undefined ? this.s.list.all(limit) : this.s.listAfter.all(afterName, limit)) as ScheduleRow[];
  }

  count(): number {
    return this.s.count.get() as number;
  }

  /** Deletes the schedule and (by cascade) its run history; its jobs stay. */
  delete(id: string): boolean {
    return this.s.delete.run(id).changes === 1;
  }

  setPaused(id: string, paused: boolean, nextFireAt: number | null, now: number): void {
    this.s.setPaused.run({ id, paused: paused ? 1 : 0, next_fire_at: nextFireAt, now });
  }

  /** The earliest fire time of an active schedule, or undefined when none is armed. */
  nextDue(): number | undefined {
    return (this.s.nextDue.get() as number | null) ?? undefined;
  }

  due(now: number, limit: number): ScheduleRow[] {
    return this.s.due.all(now, limit) as ScheduleRow[];
  }

  /** False when the schedule is gone or its next fire time is no longer `expected`. */
  advance(id: string, expected: number | null, next: number | null, lastFire: number | null, now: number): boolean {
    return this.s.advance.run({ id, expected, next, last: lastFire, now }).changes === 1;
  }

  /** Throws a UNIQUE constraint error when the schedule already has a run for this fire time. */
  insertRun(run: NewRun, now: number): number {
    return this.s.insertRun.get({ ...run, now }) as number;
  }

  getRun(seq: number): RunRow | undefined {
    return this.s.getRun.get(seq) as RunRow | undefined;
  }

  unfinishedJobs(scheduleId: string): UnfinishedRunJob[] {
    return this.s.unfinishedJobs.all(scheduleId) as UnfinishedRunJob[];
  }

  trimRuns(scheduleId: string, keep: number): void {
    this.s.trimRuns.run({ id: scheduleId, keep });
  }

  /** Newest first, before `beforeSeq` (keyset pagination). */
  listRuns(scheduleId: string, limit: number, beforeSeq?: number): RunRow[] {
    return (beforeSeq === undefined ? this.s.listRuns.all(scheduleId, limit) : this.s.listRunsBefore.all(scheduleId, beforeSeq, limit)) as RunRow[];
  }
}

/** True for the error SQLite raises when a fire time already has its run. */
export function isDuplicateFire(error: unknown): boolean {
  return /UNIQUE constraint failed: schedule_runs\.schedule_id, schedule_runs\.fire_time/.test((error as Error)?.message ?? '');
}

/** True for a duplicate schedule name. */
export function isDuplicateName(error: unknown): boolean {
  return /UNIQUE constraint failed: schedules\.name/.test((error as Error)?.message ?? '');
}
