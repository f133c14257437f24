/**
 * Counts the slots held per key against a limit (pure, no I/O). A slot is held by one job
 * id: an active job, or (with per-key ordering) a job waiting for its retry backoff. Keys
 * with no slot held have no entry, so memory follows the keys in use, not the keys seen.
 */
export class ConcurrencyLimiter {
  private readonly byKey = new Map<string, number>();
  /** job id -> key of the slot it holds. */
  private readonly holders = new Map<string, string>();

  constructor(private limitValue: number) {}

  get limit(): number {
    return this.limitValue;
  }

  set limit(value: number) {
    this.limitValue = value;
  }

  held(key: string): number {
    return this.byKey.get(key) ?? 0;
  }

  hasRoom(key: string): boolean {
    return this.held(key) < this.limitValue;
  }

  room(key: string): number {
    return Math.max(0, this.limitValue - this.held(key));
  }

  holds(jobId: string): boolean {
    return this.holders.has(jobId);
  }

  keyOf(jobId: string): string | undefined {
    return this.holders.get(jobId);
  }

  /** The job takes a slot of `key` (idempotent per job id). */
  acquire(jobId: string, key: string): void {
    if (this.holders.has(jobId)) return;
    this.holders.set(jobId, key);
    this.byKey.set(key, this.held(key) + 1);
  }

  /** The job gives its slot back; returns the key it held, if any. */
  release(jobId: string): string | undefined {
    const key = this.holders.get(jobId);
    if (key === undefined) return undefined;
    this.holders.delete(jobId);
    const n = this.held(key) - 1;
    if (n > 0) this.byKey.set(key, n);
    else this.byKey.delete(key);
    return key;
  }

  /** Keys with a slot held (for memory checks and explain). */
  get keys(): number {
    return this.byKey.size;
  }

  get size(): number {
    return this.holders.size;
  }
}
