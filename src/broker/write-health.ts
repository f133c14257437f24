import { isDiskFull, DISK_FULL_MESSAGE } from '../store/store-errors.js';

/**
 * Whether the store currently accepts writes. A flush that fails with SQLITE_FULL (the whole
 * transaction, or one op in it) marks the broker degraded; the next flush in which a write
 * succeeds clears it. Health reports NOT_SERVING for writes while degraded (server.ts), and
 * the log says why once per change, not once per failed write.
 */
export class WriteHealth {
  private reason: string | undefined;
  private readonly listeners: ((reason: string | undefined) => void)[] = [];

  constructor(private readonly log: { error(o: object, m: string): void; info(o: object, m: string): void }) {}

  /** undefined while writes succeed; else why they fail. */
  get degraded(): string | undefined {
    return this.reason;
  }

  onChange(listener: (reason: string | undefined) => void): void {
    this.listeners.push(listener);
  }

  /** One flush's outcome: the transaction's error, or its ops' errors and whether anything was written. */
  observe(error: Error | undefined, opErrors: readonly (Error | undefined)[], wrote: boolean): void {
    if (isDiskFull(error) || opErrors.some(isDiskFull)) return this.set(DISK_FULL_MESSAGE);
    if (!error && wrote) this.set(undefined);
  }

  /** Writes failed outside a flush (recovery at start). */
  failed(error: unknown): void {
    if (isDiskFull(error)) this.set(DISK_FULL_MESSAGE);
  }

  private set(reason: string | undefined): void {
    if (reason === this.reason) return;
    this.reason = reason;
    if (reason) this.log.error({ reason }, 'store writes fail: serving reads; health NOT_SERVING for writes until they succeed');
    else this.log.info({}, 'store writes succeed again');
    for (const l of this.listeners) l(reason);
  }
}
