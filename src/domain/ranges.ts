import { invalidArgument } from './errors.js';

/**
 * Documented ranges of the numeric request fields (proto/README.md "Limits"). The wire types
 * are 32-bit, so a negative number sent by a client (or a 64-bit value) arrives wrapped: -1
 * in a uint32 field reads as 4294967295, 49 days of delay. Every duration therefore stops at
 * 2^31 - 1 ms (24.8 days; use run_at for later times), below any wrapped negative value.
 */
export const MAX_DURATION_MS = 2_147_483_647;

/** A whole number within min..max, or INVALID_ARGUMENT naming the field and the range. */
export function inRange(value: number, field: string, min: number, max: number): number {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw invalidArgument(`${field} must be a whole number in ${min}..${max}, got ${value}`);
  }
  return value;
}
