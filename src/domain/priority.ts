import { invalidArgument } from './errors.js';

/**
 * Priority levels as stored: a larger number is delivered first. The numbers equal the
 * proto enum values, so the wire value is stored as is.
 */
export const Priority = { Low: 1, Normal: 2, High: 3, Critical: 4 } as const;
export type Priority = (typeof Priority)[keyof typeof Priority];

/** Wire value -> stored level; 0 (unspecified) means normal. Unknown values are rejected. */
export function priorityFromWire(value: number | undefined): Priority {
  if (value === undefined || value === 0) return Priority.Normal;
  if (value === Priority.Low || value === Priority.Normal || value === Priority.High || value === Priority.Critical) {
    return value;
  }
  throw invalidArgument(`unknown priority ${value}: use PRIORITY_LOW, PRIORITY_NORMAL, PRIORITY_HIGH or PRIORITY_CRITICAL`);
}
