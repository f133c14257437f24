import { closeSync, fdatasync, fdatasyncSync, fsyncSync, openSync } from 'node:fs';
import { dirname } from 'node:path';

/**
 * The broker's own fsync of the SQLite write-ahead log, used for `synchronous=FULL`.
 *
 * SQLite's FULL mode fsyncs the WAL inside every COMMIT, on the thread that runs it: the
 * event loop, blocked ~0.2-0.5 ms per commit with nothing else moving. Instead SQLite runs
 * with `synchronous=NORMAL` (commits append to the WAL without fsync; checkpoints still sync
 * the WAL before copying it and the database after) and the group commit calls `sync`, which
 * fsyncs the WAL on libuv's thread pool, and answers the commit's requests only when it
 * returns. fsync makes every write made to the file before the call durable, whichever
 * descriptor wrote it, so an acknowledged change is on disk exactly as with FULL, while the
 * event loop runs the next flush during the fsync.
 *
 * The call is fdatasync, as SQLite's own unix VFS uses on Linux: it writes the file's data and
 * the metadata needed to read it back (its size, when the WAL grew), and skips what is not
 * (the modification time, which every WAL write changes). An fsync also committed the
 * filesystem journal for the new mtime; ext4 stamps it at a few ms resolution, so at load most
 * fsyncs paid for that journal commit (W4 p99 15.6/12.6/15.9 -> 13.3/10.6/11.2 ms, interleaved).
 */
export class WalSync {
  private readonly fd: number;
  private inFlight = 0;
  private closeRequested = false;

  /** The database must be open in WAL mode and read once, so that its `-wal` file exists. */
  constructor(dataFile: string) {
    this.fd = openSync(`${dataFile}-wal`, 'r');
    syncDirectory(dirname(dataFile));
  }

  /** fsyncs the WAL off the event loop; `done` runs on the event loop afterwards. */
  sync(done: (error: Error | null) => void): void {
    this.inFlight++;
    fdatasync(this.fd, (error) => {
      this.inFlight--;
      if (this.closeRequested && this.inFlight === 0) closeSync(this.fd);
      done(error);
    });
  }

  /** fsyncs the WAL now (shutdown). */
  syncNow(): void {
    fdatasyncSync(this.fd);
  }

  /** Closes the descriptor, once no fsync on the thread pool still uses it. */
  close(): void {
    if (this.closeRequested) return;
    this.closeRequested = true;
    if (this.inFlight === 0) closeSync(this.fd);
  }
}

/** Makes the directory entries (the database and its -wal file) durable. Not possible on every platform. */
function syncDirectory(dir: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(dir, 'r');
    fsyncSync(fd);
  } catch {
    // Windows cannot open a directory; its file system journals the entries itself.
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}
