import { chmodSync, closeSync, existsSync, openSync } from 'node:fs';
import Database from 'better-sqlite3';
import { migrate } from './migrations.js';
import { WalSync } from './wal-sync.js';

export type Db = Database.Database;
export type Synchronous = 'OFF' | 'NORMAL' | 'FULL' | 'EXTRA';

/** An open store: the connection, and for `synchronous=FULL` the broker's own WAL fsync. */
export interface OpenStore {
  db: Db;
  /** Set when commits are made durable by the group commit, off the event loop (FULL). */
  walSync: WalSync | undefined;
}

/** The only place SQLite is opened. */
export function openDatabase(file: string, synchronous: Synchronous = 'FULL'): OpenStore {
  const onDisk = file !== ':memory:' && file !== '';
  // Payloads are data: owner-only files. Creating the file 0600 first also makes SQLite
  // create its -wal and -shm 0600 (it copies the database file's mode); files left by an
  // older version are tightened too.
  if (onDisk) {
    if (!existsSync(file)) closeSync(openSync(file, 'a', 0o600));
    ownerOnly(file);
  }
  const db = new Database(file);
  // WAL: readers never block the writer and a commit is one append + fsync of the log.
  // (An in-memory database answers "memory": nothing to make durable.)
  const wal = db.pragma('journal_mode = WAL', { simple: true }) === 'wal';
  if (onDisk) for (const f of [`${file}-wal`, `${file}-shm`]) if (existsSync(f)) ownerOnly(f);
  // FULL: nothing is acknowledged before the WAL holding it is fsynced, so an acknowledged
  // enqueue or ack survives power loss. SQLite's own FULL fsyncs inside COMMIT on the event
  // loop; the broker gets the same guarantee with SQLite at NORMAL and its own fsync of the
  // WAL on the thread pool before answering (wal-sync.ts). EXTRA stays SQLite's, in line.
  const ownSync = synchronous === 'FULL' && wal;
  db.pragma(`synchronous = ${ownSync ? 'NORMAL' : synchronous}`);
  // One connection, one writer: a lock wait can only mean another process opened the file.
  db.pragma('busy_timeout = 5000');
  // Temporary b-trees (ORDER BY in admin listings) stay in memory.
  db.pragma('temp_store = MEMORY');
  // 4 MiB page cache. The hot set is small whatever the backlog (the tail of the table and of
  // jobs_ready where enqueues append, the head of jobs_ready and jobs_leases where dispatch
  // reads); other pages come from the OS cache. A larger cache only fills up with pages of
  // freshly inserted jobs and shows up as broker RSS: 64 MiB cost ~55 MB after 1M enqueues,
  // 8 MiB ~4 MB more than 4 MiB (docs/performance.md, "Memory bounds").
  db.pragma('cache_size = -4096');
  // Checkpoint every ~4 MiB of WAL (1000 pages) so the log does not grow under steady load.
  db.pragma('wal_autocheckpoint = 1000');
  db.pragma('foreign_keys = ON');
  migrate(db);
  return { db, walSync: ownSync ? new WalSync(file) : undefined };
}

function ownerOnly(path: string): void {
  chmodSync(path, 0o600);
}

/** Checkpoint and truncate the WAL so the file is self-contained, then close. */
export function closeDatabase(db: Db): void {
  if (!db.open) return;
  db.pragma('wal_checkpoint(TRUNCATE)');
  db.close();
}
