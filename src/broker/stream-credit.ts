import { invalidArgument } from '../domain/errors.js';

/**
 * Credit accounting for one Consume stream. Pure: no I/O, no clocks.
 *
 * A grant adds to `available`; each delivery moves one unit from available to outstanding;
 * a settle (or a lease the broker takes back) removes one outstanding. Credit is not
 * returned by a settle: the worker grants again when it has room, usually in the same
 * message as the ack. Hence deliveries never exceed grants, and outstanding never exceeds
 * granted minus settled.
 */
export class StreamCredit {
  private unused = 0;
  private inFlight = 0;

  constructor(readonly max: number) {}

  get available(): number {
    return this.unused;
  }

  get outstanding(): number {
    return this.inFlight;
  }

  grant(n: number): void {
    if (!Number.isInteger(n) || n < 0) throw invalidArgument(`credit must be a whole number >= 0, got ${n}`);
    if (this.unused + this.inFlight + n > this.max) {
      throw invalidArgument(
        `credit ${n} would exceed this stream's maximum of ${this.max} (unused ${this.unused} + unsettled ${this.inFlight}); ` +
          `grant credit as jobs are settled instead`,
      );
    }
    this.unused += n;
  }

  /** Uses one credit for a delivery; false when none is left. */
  take(): boolean {
    if (this.unused === 0) return false;
    this.unused--;
    this.inFlight++;
    return true;
  }

  /** The worker stops taking work: forget credit not used yet. */
  dropUnused(): void {
    this.unused = 0;
  }

  /** A delivery could not be made after all (commit failed): give its credit back. */
  refund(): void {
    this.inFlight--;
    this.unused++;
  }

  /** A delivered job left this stream (settled, expired, cancelled). */
  settled(): void {
    if (this.inFlight > 0) this.inFlight--;
  }
}
