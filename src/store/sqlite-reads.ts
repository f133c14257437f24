import type { JobStore } from './job-store.js';
import type { ScheduleStore } from './schedule-store.js';
import type { StoreReads } from './store-reads.js';
import { storeFileSizes } from './file-sizes.js';

/**
 * StoreReads over the SQLite stores: each method runs the store's synchronous statement at
 * the call and hands back an already settled promise (async functions: a statement that
 * throws becomes a rejection, as a remote backend's failure would). No SQL of its own.
 */
export class SqliteReads implements StoreReads {
  constructor(
    private readonly jobs: JobStore,
    private readonly schedules: ScheduleStore,
    private readonly dataFile: string,
  ) {}

  async getJob(id: string) {
    return this.jobs.get(id);
  }

  async stateAndLease(id: string) {
    return this.jobs.stateAndLease(id);
  }

  async listJobs(...args: Parameters<JobStore['list']>) {
    return this.jobs.list(...args);
  }

  async countsByQueueAndState() {
    return this.jobs.countsByQueueAndState();
  }

  async countsForQueue(queue: string) {
    return this.jobs.countsForQueue(queue);
  }

  async oldestPendingRunAt(queue: string) {
    return this.jobs.oldestPendingRunAt(queue);
  }

  async pendingHeads() {
    return this.jobs.pendingHeads();
  }

  async deadLetterSummary(queue: string | undefined, limit: number) {
    return this.jobs.deadLetterSummary(queue, limit);
  }

  async readyAhead(...args: Parameters<JobStore['limits']['readyAhead']>) {
    return this.jobs.limits.readyAhead(...args);
  }

  async groupAhead(...args: Parameters<JobStore['limits']['groupAhead']>) {
    return this.jobs.limits.groupAhead(...args);
  }

  async retryingInGroup(queue: string, groupKey: string) {
    return this.jobs.limits.retryingInGroup(queue, groupKey);
  }

  async getSchedule(id: string) {
    return this.schedules.get(id);
  }

  async getScheduleByName(name: string) {
    return this.schedules.getByName(name);
  }

  async listSchedules(limit: number, afterName?: string) {
    return this.schedules.list(limit, afterName);
  }

  async listScheduleRuns(scheduleId: string, limit: number, beforeSeq?: number) {
    return this.schedules.listRuns(scheduleId, limit, beforeSeq);
  }

  async getScheduleRun(seq: number) {
    return this.schedules.getRun(seq);
  }

  async storeSizes() {
    return storeFileSizes(this.dataFile);
  }
}
