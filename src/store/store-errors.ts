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
