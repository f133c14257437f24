import { statSync } from 'node:fs';

/** Sizes in bytes of the database file and its write-ahead log (0 for a file that does not exist, e.g. ":memory:"). */
export function storeFileSizes(dataFile: string): { db: number; wal: number } {
  return { db: sizeOf(dataFile), wal: sizeOf(`${dataFile}-wal`) };
}

function sizeOf(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}
