import type { Broker } from '../../src/broker/broker.js';
import type { JobRow } from '../../src/store/job-store.js';
import { unary, type SluiceClients } from '../../clients/typescript/src/connect.js';
import type { DeepPartial } from '../../clients/typescript/src/gen/sluice/v1/job.js';
import {
  CreateScheduleRequest,
  GetScheduleRequest,
  ListScheduleRunsRequest,
  UpdateScheduleRequest,
  UpsertScheduleRequest,
  type ListScheduleRunsResponse,
  type ListSchedulesRequest,
  type ListSchedulesResponse,
  type Schedule,
  type ScheduleRun,
  type UpsertScheduleResponse,
} from '../../clients/typescript/src/gen/sluice/v1/schedule.js';
import type { ManualClock } from './manual-clock.js';

/** Promise wrappers over the generated ScheduleService client. */
export class ScheduleApi {
  constructor(readonly clients: SluiceClients) {}

  private get c() {
    return this.clients.schedules;
  }

  create(req: DeepPartial<CreateScheduleRequest>): Promise<Schedule> {
    return unary(this.c.createSchedule, this.c, CreateScheduleRequest.fromPartial(req));
  }

  upsert(req: DeepPartial<UpsertScheduleRequest>): Promise<UpsertScheduleResponse> {
    return unary(this.c.upsertSchedule, this.c, UpsertScheduleRequest.fromPartial(req));
  }

  update(req: DeepPartial<UpdateScheduleRequest>): Promise<Schedule> {
    return unary(this.c.updateSchedule, this.c, UpdateScheduleRequest.fromPartial(req));
  }

  get(req: DeepPartial<GetScheduleRequest>): Promise<Schedule> {
    return unary(this.c.getSchedule, this.c, GetScheduleRequest.fromPartial(req));
  }

  list(): Promise<Schedule[]> {
    return unary<ListSchedulesRequest, ListSchedulesResponse>(this.c.listSchedules, this.c, { pageSize: 1000, pageToken: '' }).then((r) => r.schedules);
  }

  trigger(name: string): Promise<ScheduleRun> {
    return unary(this.c.triggerSchedule, this.c, { id: '', name });
  }

  pause(name: string): Promise<Schedule> {
    return unary(this.c.pauseSchedule, this.c, { id: '', name });
  }

  resume(name: string): Promise<Schedule> {
    return unary(this.c.resumeSchedule, this.c, { id: '', name });
  }

  delete(name: string): Promise<unknown> {
    return unary(this.c.deleteSchedule, this.c, { id: '', name });
  }

  /** Every run, oldest first (follows the pages). */
  async runs(name: string): Promise<ScheduleRun[]> {
    const all: ScheduleRun[] = [];
    let pageToken = '';
    do {
      const page: ListScheduleRunsResponse = await unary(this.c.listScheduleRuns, this.c, ListScheduleRunsRequest.fromPartial({ name, pageSize: 1000, pageToken }));
      all.push(...page.runs);
      pageToken = page.nextPageToken;
    } while (pageToken);
    return all.reverse();
  }
}

/**
 * Moves a manual clock to `until`, running each broker timer at its time and waiting for the
 * fires it starts to commit, so every fire happens at the time the timer was armed for.
 */
export async function runClockUntil(clock: ManualClock, broker: Broker, until: number): Promise<void> {
  await broker.schedules.idle();
  while (clock.runNext(until)) await broker.schedules.idle();
  clock.set(Math.max(clock.now(), until));
}

/** Jobs of a queue, oldest first (in-process broker). */
export async function jobsOf(broker: Broker, queue: string): Promise<JobRow[]> {
  return (await broker.reads.listJobs({ queue }, 100_000)).reverse();
}

export function fireTimeOf(job: Pick<JobRow, 'metadata'>): string {
  return (JSON.parse(job.metadata ?? '{}') as Record<string, string>)['sluice.fire_time']!;
}
