import { resourceExhausted, type SluiceError } from '../domain/errors.js';

/** SQLite could not grow the database or its log: the volume is full (or --max-page-count hit). */
export function isDiskFull(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return code === 'SQLITE_FULL';
}

export const DISK_FULL_MESSAGE =
  'the broker cannot write: its data volume is full (SQLITE_FULL); free disk space and writes resume by themselves (reads, acks of in-memory state and admin reads keep working)';

/** The domain error for a store failure a caller can act on, or undefined (a bug: INTERNAL). */
export function storeErrorToDomain(error: unknown): SluiceError | undefined {
  if (isDiskFull(error)) return resourceExhausted(DISK_FULL_MESSAGE);
  return undefined;
}

/**
 * JobStore.insertMany failed part-way: the statement that failed changed nothing, and the rows
 * of the statements before it are in the transaction (`insertedIds`, in input order). `cause` is
 * SQLite's error (SQLITE_FULL, a constraint).
 */
export class PartialInsertError extends Error {
  override readonly name = 'PartialInsertError';
  constructor(
    override readonly cause: unknown,
    readonly insertedIds: readonly string[],
  ) {
    super(cause instanceof Error ? cause.message : String(cause));
  }
}
