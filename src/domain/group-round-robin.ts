/**
 * Round-robin over the groups of one queue and priority level, without keeping the groups in
 * memory. The ring is the ordered set of group keys that have a ready job, read from an index
 * one seek at a time (`next`), so 100,000 groups cost nothing until they are visited; the only
 * state is the cursor (the last key served). Pure: the caller supplies the ring and decides,
 * per visit, how many jobs the group may start (its weight, its rate and concurrency limits).
 */
export interface RingWalk {
  /** The last key visited before this walk; undefined = start of the ring. */
  cursor: string | undefined;
  /** Jobs wanted in total. */
  want: number;
  /** Most groups visited in one walk, so one walk never blocks the loop for long. */
  maxVisits: number;
  /** The first key after `after` (undefined: the first key) that has a ready job, or undefined at the end. */
  next(after: string | undefined): string | undefined;
  /** Jobs this group may start on this turn (0 = blocked). */
  weight(key: string): number;
  /** Start up to `max` jobs of the group; returns how many started (0 = blocked or empty). */
  serve(key: string, max: number): number;
}

export interface RingWalkResult {
  cursor: string | undefined;
  taken: number;
  visits: number;
  /**
   * Why the walk stopped: `filled` (want met), `idle` (a full lap started nothing, or the ring
   * is empty: nothing more until something changes), `budget` (maxVisits reached: resume).
   */
  stop: 'filled' | 'idle' | 'budget';
}

export function walkRing(walk: RingWalk): RingWalkResult {
  let cursor = walk.cursor;
  let taken = 0;
  let visits = 0;
  let wrapsWithoutVisit = 0;
  // key -> total taken when the key was last found blocked: meeting it again with the same
  // total means a whole lap started nothing.
  const blockedAt = new Map<string, number>();
  while (taken < walk.want) {
    if (visits >= walk.maxVisits) return { cursor, taken, visits, stop: 'budget' };
    const key = walk.next(cursor);
    if (key === undefined) {
      if (cursor === undefined || ++wrapsWithoutVisit > 1) return { cursor, taken, visits, stop: 'idle' };
      cursor = undefined;
      continue;
    }
    wrapsWithoutVisit = 0;
    visits++;
    cursor = key;
    const max = Math.min(walk.weight(key), walk.want - taken);
    const n = max > 0 ? walk.serve(key, max) : 0;
    if (n > 0) {
      taken += n;
      continue;
    }
    if (blockedAt.get(key) === taken) return { cursor, taken, visits, stop: 'idle' };
    blockedAt.set(key, taken);
  }
  return { cursor, taken, visits, stop: 'filled' };
}
