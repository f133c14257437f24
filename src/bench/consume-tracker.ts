/**
 * The bookkeeping of a consume role, shared by the Sluice and the BullMQ worker roles so both
 * count, time and fail in exactly the same way: distinct completions, redeliveries, latency
 * from the enqueue() call (payload.t) to handler start, and a stall timeout.
 */
import { percentileSorted } from './stats.js';
import { wallNow, type ConsumeResult, type ConsumeTask, type LatencyWindow } from './protocol.js';

interface Stamped {
  t: number;
  warm?: boolean;
}

export class ConsumeTracker {
  private readonly seen = new Set<string>();
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
          this.fail(new Error(`stalled: no job completed for ${task.stallTimeoutMs} ms (${this.seen.size} of ${task.expect || 'all'} done)`));
        }
      }, 500),
    );
    if (task.progressMs) this.timers.push(setInterval(() => progress(this.seen.size), task.progressMs));
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
    if (this.seen.has(id)) {
      this.duplicates++;
      return;
    }
    this.seen.add(id);
    if (this.seen.size === 1) this.firstCompletionAt = now;
    this.lastCompletionAt = now;
    if (this.seen.size === this.task.expect) this.finish();
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
      completed: this.seen.size,
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
