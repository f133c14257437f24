import { closeSync, existsSync, fsyncSync, openSync, renameSync, rmSync, statSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { basename, dirname, isAbsolute, join, normalize } from 'node:path';
import { SluiceError, invalidArgument } from '../domain/errors.js';
import type { Db } from './database.js';

/** Pages copied per step; the event loop runs between steps (~0.4 MB with 4 KiB pages, well under a millisecond). */
const PAGES_PER_STEP = 100;

/**
 * Checks a backup target given by an operator: an absolute path on the broker host, not an
 * existing file (a backup never overwrites anything), in a directory that exists.
 */
export function validateBackupPath(path: string, dataFile: string): string {
  if (!path) throw invalidArgument('path is required: an absolute file path on the broker host');
  if (path.length > 4096 || path.includes('\0')) throw invalidArgument('path is not a valid file path');
  if (!isAbsolute(path)) throw invalidArgument(`path must be absolute (on the broker host), got ${JSON.stringify(path.slice(0, 200))}`);
  const target = normalize(path);
  const source = normalize(dataFile);
  if (target === source || target === `${source}-wal` || target === `${source}-shm`) {
    throw invalidArgument('path is the live database (or its -wal/-shm file); choose a new file');
  }
  if (existsSync(target)) throw new SluiceError('ALREADY_EXISTS', `${target} already exists; a backup never overwrites a file`);
  const dir = dirname(target);
  let isDir = false;
  try {
    isDir = statSync(dir).isDirectory();
  } catch {
    // reported below
  }
  if (!isDir) throw new SluiceError('FAILED_PRECONDITION', `directory ${dir} does not exist on the broker host`);
  return target;
}

/**
 * Copies the database with SQLite's online backup API, a few pages per event-loop turn, so
 * the broker keeps serving. Writes made by the broker meanwhile go through the same
 * connection and are copied too: the file is a consistent snapshot as of the end of the
 * copy, holding everything committed before it started. It is written next to the target
 * under a temporary name, fsynced and renamed into place, so a failed or interrupted backup
 * never leaves a half-written file at `target`.
 */
export async function backupDatabase(db: Db, target: string): Promise<{ bytes: number }> {
  const temp = join(dirname(target), `.${basename(target)}.${randomBytes(4).toString('hex')}.partial`);
  try {
    await db.backup(temp, { progress: () => PAGES_PER_STEP });
    fsyncFile(temp);
    if (existsSync(target)) throw new SluiceError('ALREADY_EXISTS', `${target} appeared while the backup ran; the backup was not moved there`);
    renameSync(temp, target);
    fsyncFile(dirname(target));
  } catch (error) {
    rmSync(temp, { force: true });
    throw error;
  }
  return { bytes: statSync(target).size };
}

function fsyncFile(path: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(path, 'r');
    fsyncSync(fd);
  } catch (error) {
    // A directory cannot be opened on every platform; a file must sync.
    if (!statSync(path).isDirectory()) throw error;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}
