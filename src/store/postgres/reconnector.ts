import { startTimer, type Clock } from '../../domain/clock.js';
import { backoffDelayMs, type RetryPolicy } from '../../domain/backoff.js';

/**
 * The reconnection loop shared by the PostgreSQL store's write connection and the ready
 * listener's LISTEN connection: after a loss, retry an async connect with capped, jittered
 * backoff (backoffDelayMs) until one attempt succeeds or close() is called.
 *
 * It knows nothing of connections, logs or events: its owner passes the attempt (`connect`) and
 * hears of each step through the callbacks, so each owner keeps its own log messages, events and
 * bookkeeping (why the connection was lost, the promise close() waits for).
 */
export interface ReconnectorOptions {
  /** Delay before each attempt (1-based attempt numbers, counted since the last success). */
  policy: RetryPolicy;
  /** Timers for the delay (Clock.setTimer); setTimeout by default. */
  clock?: Clock | undefined;
  /** Jitter source, for tests. */
  random?: (() => number) | undefined;
  /** One attempt; rejects when it fails. Not called after close(). */
  connect(): Promise<void>;
  /** Attempt `attempt` is scheduled to run after `delayMs` (called once its timer is armed). */
  onScheduled?(attempt: number, delayMs: number): void;
  /** An attempt succeeded, the `attempts`-th since the loss; the count is back to 0. */
  onConnected?(attempts: number): void;
  /** Attempt `attempt` failed (never called after close()); the next attempt is scheduled right after. */
  onFailed?(error: unknown, attempt: number): void;
}

export class Reconnector {
  private attempt = 0;
  private cancelTimer: (() => void) | undefined;
  private closed = false;

  constructor(private readonly options: ReconnectorOptions) {}

  /** Attempts scheduled since the last success (0 while connected). */
  get attempts(): number {
    return this.attempt;
  }

  /** The connection was lost (or an attempt failed): arm the timer of the next attempt. A no-op after close(). */
  schedule(): void {
    if (this.closed) return;
    this.attempt += 1;
    const attempt = this.attempt;
    const delayMs = backoffDelayMs(this.options.policy, attempt, this.options.random);
    this.cancelTimer = startTimer(this.options.clock, () => this.run(attempt), delayMs);
    this.options.onScheduled?.(attempt, delayMs);
  }

  /**
   * Cancels a pending attempt and schedules none again. An attempt already running is not
   * stopped (its owner ends it), but its failure is not reported nor retried.
   */
  close(): void {
    this.closed = true;
    this.cancelTimer?.();
    this.cancelTimer = undefined;
  }

  private run(attempt: number): void {
    this.cancelTimer = undefined;
    if (this.closed) return;
    void this.options.connect().then(
      () => {
        const attempts = this.attempt;
        this.attempt = 0;
        this.options.onConnected?.(attempts);
      },
      (error: unknown) => {
        if (this.closed) return;
        this.options.onFailed?.(error, attempt);
        this.schedule();
      },
    );
  }
}
