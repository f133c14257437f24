import { randomUUID } from 'node:crypto';
import type { Clock } from '../domain/clock.js';
import { compileCron, validateTimezone } from '../domain/cron.js';
import { SluiceError, invalidArgument, notFound } from '../domain/errors.js';
import { validateQueueName } from '../domain/names.js';
import type { Logger } from '../log.js';
import { isDuplicateName, type ScheduleStore } from '../store/schedule-store.js';
import type { StoreReads } from '../store/store-reads.js';
import type { CatchUpPolicy, OverlapPolicy, RunRow, ScheduleRow } from '../store/types.js';
import type { GroupCommit } from './group-commit.js';
import { nextFireTime, upcomingFireTimes } from './schedule-plan.js';
import { parseTemplate, serializeTemplate, type JobTemplate } from './schedule-template.js';
import type { Scheduler } from './scheduler.js';

/** What a caller declares; validated at the edge, checked again here (cron, zone, ranges). */
export interface ScheduleDefinition {
  name: string;
  cron: string;
  /** IANA zone; '' means UTC. */
  timezone: string;
  job: JobTemplate;
  startAt: number | null;
  endAt: number | null;
  catchUp: CatchUpPolicy;
  /** Most missed fire times run (catch_up=all) or recorded. */
  catchUpLimit: number;
  overlap: OverlapPolicy;
  /** Run history rows kept. */
  historyLimit: number;
}

export type ScheduleRef = { id: string; name?: undefined } | { name: string; id?: undefined };

export const SCHEDULE_DEFAULTS = { catchUp: 'skip', catchUpLimit: 100, overlap: 'allow', historyLimit: 100 } as const;
export const MAX_CATCH_UP_LIMIT = 10_000;
export const MAX_HISTORY_LIMIT = 100_000;
export const MAX_UPCOMING = 100;

/**
 * Schedule operations (one implementation for gRPC, HTTP and CLI). Every write goes through
 * the group commit; the scheduler is told when a next fire time may have moved earlier.
 */
export class ScheduleManager {
  constructor(
    private readonly store: ScheduleStore,
    /** Reads outside a write (get, list, runs): async, see store/store-reads.ts. */
    private readonly reads: StoreReads,
    private readonly scheduler: Scheduler,
    private readonly commits: GroupCommit,
    private readonly clock: Clock,
    private readonly log: Logger,
  ) {}

  start(): void {
    this.scheduler.start();
  }

  stop(): void {
    this.scheduler.stop();
  }

  /** Resolves once no fire is in progress. */
  idle(): Promise<void> {
    return this.scheduler.idle();
  }

  async create(def: ScheduleDefinition, paused: boolean): Promise<ScheduleRow> {
    checkDefinition(def);
    const row = await this.write((now) => {
      if (this.store.getByName(def.name)) throw alreadyExists(def.name);
      const row = newRow(def, paused, now);
      this.store.insert(row);
      return row;
    });
    this.log.info({ scheduleId: row.id, schedule: row.name, cron: row.cron, timezone: row.timezone }, 'schedule created');
    this.scheduler.armAt(row.paused ? null : row.next_fire_at);
    return row;
  }

  /**
   * Creates the schedule or replaces the definition of the one with this name (its id, run
   * history, last fire and paused flag stay: an operator's pause survives an application's
   * boot-time declaration). The same definition twice changes nothing.
   */
  async upsert(def: ScheduleDefinition): Promise<{ row: ScheduleRow; created: boolean }> {
    checkDefinition(def);
    const result = await this.write((now) => {
      const existing = this.store.getByName(def.name);
      if (!existing) {
        const row = newRow(def, false, now);
        this.store.insert(row);
        return { row, created: true };
      }
      return { row: this.replace(existing, def, now), created: false };
    });
    if (result.created) this.log.info({ scheduleId: result.row.id, schedule: result.row.name }, 'schedule created (upsert)');
    this.scheduler.armAt(result.row.paused ? null : result.row.next_fire_at);
    return result;
  }

  /** Changes the given fields of the definition. */
  async update(ref: ScheduleRef, changes: Partial<ScheduleDefinition>): Promise<ScheduleRow> {
    const row = await this.write((now) => {
      const existing = this.resolve(ref);
      const def = { ...definitionOf(existing), ...changes };
      checkDefinition(def);
      if (def.name !== existing.name && this.store.getByName(def.name)) throw alreadyExists(def.name);
      return this.replace(existing, def, now);
    });
    this.scheduler.armAt(row.paused ? null : row.next_fire_at);
    return row;
  }

  async setPaused(ref: ScheduleRef, paused: boolean): Promise<ScheduleRow> {
    const row = await this.write((now) => {
      const existing = this.resolve(ref);
      if (Boolean(existing.paused) === paused) return existing;
      // Resuming starts at the next future fire time: fires due while paused are not run.
      const next = paused ? existing.next_fire_at : this.firstFire(existing, now);
      this.store.setPaused(existing.id, paused, next ?? null, now);
      return this.store.get(existing.id)!;
    });
    this.log.info({ scheduleId: row.id, schedule: row.name, paused }, paused ? 'schedule paused' : 'schedule resumed');
    this.scheduler.armAt(row.paused ? null : row.next_fire_at);
    return row;
  }

  /** Deletes the schedule and its run history; the jobs it created stay. */
  async delete(ref: ScheduleRef): Promise<void> {
    const row = await this.write(() => {
      const existing = this.resolve(ref);
      this.store.delete(existing.id);
      return existing;
    });
    this.log.info({ scheduleId: row.id, schedule: row.name }, 'schedule deleted');
  }

  async get(ref: ScheduleRef): Promise<ScheduleRow> {
    const row = ref.id !== undefined ? await this.reads.getSchedule(ref.id) : await this.reads.getScheduleByName(ref.name!);
    if (!row) throw scheduleNotFound(ref);
    return row;
  }

  list(limit: number, afterName?: string): Promise<ScheduleRow[]> {
    return this.reads.listSchedules(limit, afterName);
  }

  /** The next `n` fire times (from the stored next one; empty when none is left). */
  upcoming(row: ScheduleRow, n: number): number[] {
    if (n <= 0) return [];
    return upcomingFireTimes(compileCron(row.cron, row.timezone), row.next_fire_at ?? undefined, Math.min(n, MAX_UPCOMING), row.end_at);
  }

  /** An extra run now, recorded as manual; the overlap policy does not apply, paused does not stop it. */
  async trigger(ref: ScheduleRef): Promise<RunRow> {
    const seq = await this.write((now) => {
      const row = this.resolve(ref);
      return this.scheduler.fireOnce(row, now, 'manual', now);
    });
    return (await this.reads.getScheduleRun(seq!))!;
  }

  async runs(ref: ScheduleRef, limit: number, beforeSeq?: number): Promise<RunRow[]> {
    return this.reads.listScheduleRuns((await this.get(ref)).id, limit, beforeSeq);
  }

  /** The latest runs of a schedule just read (a listing's rows): no lookup of the schedule again. */
  recentRuns(row: ScheduleRow, limit: number): Promise<RunRow[]> {
    return this.reads.listScheduleRuns(row.id, limit);
  }

  private write<T>(work: (now: number) => T): Promise<T> {
    return this.commits.run((now) => {
      try {
        return this.store.db.transaction(() => work(now))();
      } catch (error) {
        if (isDuplicateName(error)) throw new SluiceError('ALREADY_EXISTS', 'a schedule with this name already exists');
        throw error;
      }
    });
  }

  private resolve(ref: ScheduleRef): ScheduleRow {
    const row = ref.id !== undefined ? this.store.get(ref.id) : this.store.getByName(ref.name!);
    if (!row) throw scheduleNotFound(ref);
    return row;
  }

  private replace(existing: ScheduleRow, def: ScheduleDefinition, now: number): ScheduleRow {
    const timingChanged =
      existing.cron !== def.cron.trim() ||
      existing.timezone !== def.timezone ||
      existing.start_at !== def.startAt ||
      existing.end_at !== def.endAt;
    const row: ScheduleRow = {
      ...existing,
      ...columnsOf(def),
      updated_at: now,
    };
    // A new timing starts after now and after the last fire, so no fire time runs twice.
    if (timingChanged) row.next_fire_at = this.firstFire(row, now) ?? null;
    const same = JSON.stringify({ ...existing, updated_at: 0 }) === JSON.stringify({ ...row, updated_at: 0 });
    if (same) return existing;
    this.store.update(row);
    return row;
  }

  private firstFire(row: Pick<ScheduleRow, 'cron' | 'timezone' | 'last_fire_at' | 'start_at' | 'end_at'>, now: number): number | undefined {
    return nextFireTime(compileCron(row.cron, row.timezone), Math.max(now, row.last_fire_at ?? -Infinity), row.start_at, row.end_at);
  }
}

function scheduleNotFound(ref: ScheduleRef): SluiceError {
  return notFound(ref.id !== undefined ? `schedule ${ref.id} not found` : `schedule named ${JSON.stringify(ref.name)} not found`);
}

function alreadyExists(name: string): SluiceError {
  return new SluiceError('ALREADY_EXISTS', `a schedule named ${JSON.stringify(name)} already exists (UpsertSchedule replaces it)`);
}

function columnsOf(def: ScheduleDefinition): Omit<ScheduleRow, 'id' | 'paused' | 'next_fire_at' | 'last_fire_at' | 'created_at' | 'updated_at'> {
  return {
    name: def.name,
    cron: def.cron.trim(),
    timezone: def.timezone,
    template: serializeTemplate(def.job),
    start_at: def.startAt,
    end_at: def.endAt,
    catch_up: def.catchUp,
    catch_up_limit: def.catchUpLimit,
    overlap: def.overlap,
    history_limit: def.historyLimit,
  };
}

function newRow(def: ScheduleDefinition, paused: boolean, now: number): ScheduleRow {
  const cols = columnsOf(def);
  const next = nextFireTime(compileCron(cols.cron, cols.timezone), now, cols.start_at, cols.end_at);
  return { id: `sch_${randomUUID()}`, ...cols, paused: paused ? 1 : 0, next_fire_at: next ?? null, last_fire_at: null, created_at: now, updated_at: now };
}

export function definitionOf(row: ScheduleRow): ScheduleDefinition {
  return {
    name: row.name,
    cron: row.cron,
    timezone: row.timezone,
    job: parseTemplate(row.template),
    startAt: row.start_at,
    endAt: row.end_at,
    catchUp: row.catch_up,
    catchUpLimit: row.catch_up_limit,
    overlap: row.overlap,
    historyLimit: row.history_limit,
  };
}

/** The checks every view gets, whatever validated the input before. */
function checkDefinition(def: ScheduleDefinition): void {
  validateQueueName(def.name, 'name');
  def.timezone = validateTimezone(def.timezone);
  compileCron(def.cron, def.timezone);
  validateQueueName(def.job.queue, 'job.queue');
  if (def.startAt !== null && def.endAt !== null && def.endAt <= def.startAt) throw invalidArgument('end_at must be after start_at');
  if (!Number.isInteger(def.catchUpLimit) || def.catchUpLimit < 1 || def.catchUpLimit > MAX_CATCH_UP_LIMIT) {
    throw invalidArgument(`catch_up_limit must be 1..${MAX_CATCH_UP_LIMIT}, got ${def.catchUpLimit}`);
  }
  if (!Number.isInteger(def.historyLimit) || def.historyLimit < 1 || def.historyLimit > MAX_HISTORY_LIMIT) {
    throw invalidArgument(`history_limit must be 1..${MAX_HISTORY_LIMIT}, got ${def.historyLimit}`);
  }
}
