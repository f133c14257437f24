import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { GroupCommit, type LogSync } from '../src/broker/group-commit.js';
import { openDatabase, type Db } from '../src/store/database.js';
import { systemClock } from '../src/domain/clock.js';
import { tempDir } from './helpers/broker.js';

/**
 * The order of commit, delivery, fsync and answer. The store is a real SQLite file; only the
 * moment the log's fsync completes is in the test's hands (a real fsync finishes on its own).
 */
class HeldSync implements LogSync {
  readonly waiting: ((error: Error | null) => void)[] = [];
  syncNowCalls = 0;
  sync(done: (error: Error | null) => void): void {
    this.waiting.push(done);
  }
  syncNow(): void {
    this.syncNowCalls++;
  }
  /** Completes the fsync in flight. */
  finish(error: Error | null = null): void {
    const done = this.waiting.shift();
    if (!done) throw new Error('no fsync in flight');
    done(error);
  }
}

const dirs: string[] = [];
const dbs: Db[] = [];
afterEach(() => {
  for (const db of dbs.splice(0)) if (db.open) db.close();
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function setup(): { db: Db; sync: HeldSync; commits: GroupCommit; events: string[]; failures: Error[] } {
  const dir = tempDir();
  dirs.push(dir);
  const { db } = openDatabase(join(dir, 'sluice.db'), 'NORMAL');
  dbs.push(db);
  db.exec('CREATE TABLE t (v TEXT)');
  const sync = new HeldSync();
  const events: string[] = [];
  const failures: Error[] = [];
  const commits = new GroupCommit(db, systemClock, () => {}, sync, (e) => failures.push(e));
  commits.setHooks({
    beforeCommit: () => ({
      committed: () => events.push('committed'),
      rolledBack: () => events.push('rolled back'),
      durable: () => events.push('durable'),
    }),
    afterFlush: () => events.push('flushed'),
  });
  return { db, sync, commits, events, failures };
}

function insert(commits: GroupCommit, db: Db, v: string, events: string[]): Promise<void> {
  return commits.run(() => void db.prepare('INSERT INTO t (v) VALUES (?)').run(v)).then(() => void events.push(`answered ${v}`));
}

describe('group commit with the fsync off the event loop', () => {
  it('delivers after the commit but answers only after the fsync that covers it', async () => {
    const { db, sync, commits, events } = setup();
    const answered = insert(commits, db, 'a', events);
    commits.flush();
    // Committed and visible, outboxes written (deliveries leave), nobody answered yet.
    expect(events).toEqual(['committed', 'flushed']);
    expect(db.prepare('SELECT count(*) AS n FROM t').get()).toEqual({ n: 1 });
    expect(sync.waiting).toHaveLength(1);

    sync.finish();
    await answered;
    // Answered (the promise settles a microtask later), watch events sent, outboxes written again
    // with the settle confirmations.
    expect(events).toEqual(['committed', 'flushed', 'durable', 'flushed', 'answered a']);
    expect(commits.stats.syncs).toBe(1);
  });

  it('tells an op its commit is made before the fsync ends, and only when its work succeeded', async () => {
    const { db, sync, commits, events } = setup();
    const ok = commits.run(
      () => void db.prepare('INSERT INTO t (v) VALUES (?)').run('a'),
      () => events.push('a committed'),
    );
    const bad = commits.run(
      () => {
        throw new Error('bad item');
      },
      () => events.push('bad committed'),
    );
    commits.flush();
    expect(events).toEqual(['committed', 'flushed', 'a committed']);
    expect(sync.waiting).toHaveLength(1); // the fsync was started first
    sync.finish();
    await ok;
    await expect(bad).rejects.toThrow('bad item'); // answered after the fsync, like every op of the flush
    expect(events).toEqual(['committed', 'flushed', 'a committed', 'durable', 'flushed']);
  });

  it('keeps flushing during an fsync; one later fsync covers every commit made meanwhile', async () => {
    const { db, sync, commits, events } = setup();
    const a = insert(commits, db, 'a', events);
    commits.flush();
    const b = insert(commits, db, 'b', events);
    commits.flush();
    const c = insert(commits, db, 'c', events);
    commits.flush();
    expect(db.prepare('SELECT count(*) AS n FROM t').get()).toEqual({ n: 3 });
    expect(sync.waiting).toHaveLength(1); // one at a time

    sync.finish(); // covers a only: it started before b and c committed
    await a;
    expect(events.filter((e) => e.startsWith('answered'))).toEqual(['answered a']);
    expect(sync.waiting).toHaveLength(1); // the next one starts at once, for b and c

    sync.finish();
    await Promise.all([b, c]);
    expect(events.filter((e) => e.startsWith('answered'))).toEqual(['answered a', 'answered b', 'answered c']);
    expect(commits.stats).toMatchObject({ commits: 3, syncs: 2 });
  });

  it('on close, fsyncs in line and answers everything still waiting', async () => {
    const { db, sync, commits, events } = setup();
    const a = insert(commits, db, 'a', events);
    commits.flush();
    const b = insert(commits, db, 'b', events);
    commits.close();
    await Promise.all([a, b]);
    expect(sync.syncNowCalls).toBe(1);
    expect(events.filter((e) => e.startsWith('answered'))).toEqual(['answered a', 'answered b']);
    sync.finish(); // the fsync that was in flight ends later: nothing is answered twice
    await expect(commits.run(() => 1)).rejects.toThrow(/broker is stopped/);
  });

  it('when an fsync fails, fails what waits for it, refuses later writes and reports the failure', async () => {
    const { db, sync, commits, events, failures } = setup();
    const a = insert(commits, db, 'a', events);
    commits.flush();
    const b = insert(commits, db, 'b', events);
    commits.flush();
    sync.finish(new Error('EIO: i/o error, fsync'));
    await expect(a).rejects.toThrow(/fsync failed: EIO/);
    await expect(b).rejects.toThrow(/fsync failed: EIO/);
    await expect(commits.run(() => 1)).rejects.toMatchObject({ code: 'UNAVAILABLE' });
    expect(failures.map((e) => e.message)).toEqual(['EIO: i/o error, fsync']);
    expect(events).not.toContain('durable');
  });
});
