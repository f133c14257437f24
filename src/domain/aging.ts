/**
 * Starvation guard by aging: a ready job is served one priority level higher for every
 * `agingMs` it has been ready (capped at the top level). Ties go to the older job (lower seq),
 * so an aged `low` job overtakes the `high` jobs that arrived after it became high itself.
 * Pure: the dispatcher peeks the head of each level and merges with this order.
 */
export const TOP_PRIORITY = 4;

export function effectivePriority(priority: number, readySince: number, now: number, agingMs: number | undefined): number {
  if (!agingMs || now <= readySince) return priority;
  return Math.min(TOP_PRIORITY, priority + Math.floor((now - readySince) / agingMs));
}

export interface AgingCandidate {
  seq: number;
  priority: number;
  /** When the job became ready (its run_at). */
  readyAt: number;
}

/** The first `limit` candidates in service order: effective level first, then FIFO. */
export function orderWithAging<T extends AgingCandidate>(candidates: T[], now: number, agingMs: number | undefined, limit: number): T[] {
  const keyed = candidates.map((c) => ({ c, level: effectivePriority(c.priority, c.readyAt, now, agingMs) }));
  keyed.sort((a, b) => b.level - a.level || a.c.seq - b.c.seq);
  return keyed.slice(0, limit).map((k) => k.c);
}
