import type { JobState } from '../domain/job-state.js';

/** A change of one job, as seen by WatchJob subscribers. JSON fields hold JSON text. */
export interface JobChange {
  jobId: string;
  state: JobState;
  attempt: number;
  progress?: string | null;
  result?: string | null;
  error?: string | null;
  at: number;
}

export type JobListener = (change: JobChange) => void;

/** WatchJob subscribers by job id. Emitting for a job nobody watches is one map lookup. */
export class JobWatchers {
  private readonly listeners = new Map<string, Set<JobListener>>();

  watch(jobId: string, listener: JobListener): () => void {
    let set = this.listeners.get(jobId);
    if (!set) this.listeners.set(jobId, (set = new Set()));
    set.add(listener);
    return () => {
      set.delete(listener);
      if (set.size === 0 && this.listeners.get(jobId) === set) this.listeners.delete(jobId);
    };
  }

  isWatched(jobId: string): boolean {
    return this.listeners.has(jobId);
  }

  emit(change: JobChange): void {
    const set = this.listeners.get(change.jobId);
    if (!set) return;
    for (const listener of [...set]) listener(change);
  }
}
