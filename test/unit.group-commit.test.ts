import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { GroupCommit, type FlushExecutor, type LogSync } from '../src/broker/group-commit.js';
import type { FlushBatch, FlushResult } from '../src/store/flush-batch.js';
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

/**
 * A FlushExecutor on the test's table: each ack command inserts a row `ack:<id>` (one statement
 * per command, so a failed batch could leave some behind without its savepoint); an id 'poison'
 * makes the statement fail. Counts the batches it ran.
 */
class TableExecutor implements FlushExecutor {
  readonly batches: FlushBatch[] = [];
  constructor(private readonly db: Db) {}
  execute(batch: FlushBatch): FlushResult {
    this.batches.push({ ...batch, acks: [...batch.acks] });
    const insert = this.db.prepare('INSERT INTO t (v) VALUES (?)');
    const acks = batch.acks.map((a) => {
      if (a.id === 'poison') throw new Error('the store refused the poison ack');
      insert.run(`ack:${a.id}`);
      return { attempt: 1, queue: 'q', started_at: 0, metadata: null };
    });
    return { enqueues: [], acks, fails: [], extends: [], releases: [], promoted: [], expired: [], claims: [] };
  }
}

function ack(commits: GroupCommit, ...ids: string[]): Promise<string[]> {
  return commits.runPlanned((batch) => {
    const at = ids.map((id) => batch.addAck({ id, leaseId: 'l', result: null }));
    return (result) => at.map((i, k) => `${ids[k]}:${result.acks[i] ? 'acked' : 'missed'}`);
  });
}

describe('group commit with command ops', () => {
  function setupCommands() {
    const s = setup();
    const executor = new TableExecutor(s.db);
    s.commits.setExecutor(executor);
    const rows = () => (s.db.prepare('SELECT v FROM t ORDER BY rowid').all() as { v: string }[]).map((r) => r.v);
    return { ...s, executor, rows };
  }

  it('runs the commands of consecutive ops as one batch and answers each op from its slice', async () => {
    const { commits, sync, executor, rows } = setupCommands();
    const a = ack(commits, 'a1', 'a2');
    const b = ack(commits, 'b1');
    commits.flush();
    sync.finish();
    expect(await a).toEqual(['a1:acked', 'a2:acked']);
    expect(await b).toEqual(['b1:acked']);
    expect(executor.batches.map((x) => x.acks.map((c) => c.id))).toEqual([['a1', 'a2', 'b1']]);
    expect(rows()).toEqual(['ack:a1', 'ack:a2', 'ack:b1']);
  });

  it('keeps the submission order around a closure op: the batch before it runs first', async () => {
    const { db, commits, sync, executor, rows } = setupCommands();
    const a = ack(commits, 'a');
    const mid = insert(commits, db, 'closure', []);
    const b = ack(commits, 'b');
    commits.flush();
    sync.finish();
    await Promise.all([a, mid, b]);
    expect(rows()).toEqual(['ack:a', 'closure', 'ack:b']);
    expect(executor.batches).toHaveLength(2);
    expect(commits.stats.commits).toBe(1); // one transaction all the same
  });

  it("a failing batch of several ops is taken back and each op runs alone: only the failing op's answer is an error", async () => {
    const { commits, sync, executor, rows } = setupCommands();
    const good = ack(commits, 'g1', 'g2');
    const bad = ack(commits, 'x', 'poison');
    const after = ack(commits, 'h');
    commits.flush();
    sync.finish();
    expect(await good).toEqual(['g1:acked', 'g2:acked']);
    await expect(bad).rejects.toThrow('the store refused the poison ack');
    expect(await after).toEqual(['h:acked']);
    // The shared batch wrote g1, g2 and x before the poison failed; its savepoint took them back,
    // so no op's row is there twice and the bad op's x is not there at all.
    expect(rows()).toEqual(['ack:g1', 'ack:g2', 'ack:h']);
    expect(executor.batches.map((x) => x.acks.length)).toEqual([5, 2, 2, 1]);
  });

  it('a plan that throws adds none of its commands and fails only its op', async () => {
    const { commits, sync, executor } = setupCommands();
    const good = ack(commits, 'g');
    const thrown = commits.runPlanned((batch) => {
      batch.addAck({ id: 'half', leaseId: 'l', result: null });
      throw new Error('invalid settle');
    });
    commits.flush();
    sync.finish();
    expect(await good).toEqual(['g:acked']);
    await expect(thrown).rejects.toThrow('invalid settle');
    expect(executor.batches.map((x) => x.acks.map((c) => c.id))).toEqual([['g']]);
  });
});
