/**
 * The bookkeeping of a consume role, shared by the Sluice and the BullMQ worker roles so both
 * count, time and fail in exactly the same way: distinct completions, redeliveries, latency
 * from the enqueue() call (payload.t) to handler start, and a stall timeout.
 */
import { percentileSorted } from './stats.js';
import { wallNow, type ConsumeResult, type ConsumeTask, type LatencyWindow } from './protocol.js';

interface Stamped {
  n: number;
  t: number;
  warm?: boolean;
}

/** Which payload indexes completed: one bit each, grown by doubling. */
class SeenBits {
  private bits = new Uint8Array(1024);
  size = 0;

  /** Marks `n`; false if it was marked already. */
  add(n: number): boolean {
    const byte = n >>> 3;
    if (byte >= this.bits.length) {
      const grown = new Uint8Array(Math.max(this.bits.length * 2, byte + 1));
      grown.set(this.bits);
      this.bits = grown;
    }
    const mask = 1 << (n & 7);
    if (this.bits[byte]! & mask) return false;
    this.bits[byte]! |= mask;
    this.size++;
    return true;
  }
}

export class ConsumeTracker {
  /** Completed jobs, by id, or by payload index with `uniquePayloadIndex`. */
  private readonly seenIds = new Set<string>();
  private readonly seenIndexes = new SeenBits();
  private readonly latenciesMs: number[] = [];
  private readonly windows: LatencyWindow[] = [];
  private window: { startAt: number; values: number[] } | undefined;
  private duplicates = 0;
  private failures = 0;
  private firstStartAt = 0;
  private firstCompletionAt = 0;
  private lastCompletionAt = 0;
  private lastProgressAt = wallNow();
  private failure: Error | undefined;
  private finish!: () => void;
  private readonly timers: NodeJS.Timeout[] = [];
  /** Resolves when `expect` jobs completed, the orchestrator said stop, or something failed. */
  readonly done = new Promise<void>((resolve) => (this.finish = resolve));

  constructor(
    private readonly task: ConsumeTask,
    progress: (completed: number) => void,
  ) {
    this.timers.push(
      setInterval(() => {
        if (wallNow() - this.lastProgressAt > task.stallTimeoutMs) {
          this.fail(new Error(`stalled: no job completed for ${task.stallTimeoutMs} ms (${this.completedCount} of ${task.expect || 'all'} done)`));
        }
      }, 500),
    );
    if (task.progressMs) this.timers.push(setInterval(() => progress(this.completedCount), task.progressMs));
  }

  /** A handler started on a job with this payload. */
  started(payload: unknown): void {
    const now = wallNow();
    if (this.firstStartAt === 0) this.firstStartAt = now;
    const p = payload as Stamped;
    if (!this.task.recordLatency || p.warm) return;
    const latency = now - p.t;
    if (!this.task.windowMs) {
      this.latenciesMs.push(latency);
      return;
    }
    if (this.window && now - this.window.startAt >= this.task.windowMs) this.closeWindow();
    this.window ??= { startAt: now, values: [] };
    this.window.values.push(latency);
  }

  /** A job's completion is durable (Sluice: ack confirmed; BullMQ: moved to completed). */
  completed(id: string, payload: unknown): void {
    const now = wallNow();
    this.lastProgressAt = now;
    if ((payload as Stamped).warm) return;
    if (!this.firstSeen(id, payload as Stamped)) {
      this.duplicates++;
      return;
    }
    if (this.completedCount === 1) this.firstCompletionAt = now;
    this.lastCompletionAt = now;
    if (this.completedCount === this.task.expect) this.finish();
  }

  private get completedCount(): number {
    return this.task.uniquePayloadIndex ? this.seenIndexes.size : this.seenIds.size;
  }

  /** Records a completion; false if this job had completed before. */
  private firstSeen(id: string, payload: Stamped): boolean {
    if (this.task.uniquePayloadIndex) return this.seenIndexes.add(payload.n);
    if (this.seenIds.has(id)) return false;
    this.seenIds.add(id);
    return true;
  }

  /** The orchestrator's `stop`: the total across processes is reached. */
  stop(): void {
    this.finish();
  }

  fail(error: Error): void {
    this.failures++;
    this.failure ??= error;
    this.finish();
  }

  /** Stops the timers; throws the first failure, or returns the result. */
  result(): ConsumeResult {
    for (const t of this.timers) clearInterval(t);
    if (this.failure) throw this.failure;
    if (this.window) this.closeWindow();
    return {
      completed: this.completedCount,
      duplicates: this.duplicates,
      failures: this.failures,
      firstStartAt: this.firstStartAt,
      firstCompletionAt: this.firstCompletionAt,
      lastCompletionAt: this.lastCompletionAt,
      latenciesMs: this.latenciesMs,
      ...(this.task.windowMs ? { windows: this.windows } : {}),
    };
  }

  private closeWindow(): void {
    const w = this.window!;
    this.window = undefined;
    const sorted = w.values.sort((a, b) => a - b);
    this.windows.push({ startAt: w.startAt, count: sorted.length, p50: percentileSorted(sorted, 50), p99: percentileSorted(sorted, 99) });
  }
}
