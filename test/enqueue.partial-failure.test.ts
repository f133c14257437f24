/**
 * A non-atomic batch whose insert fails part-way: every other job is stored exactly once and
 * answered with its own id, the failed one gets its error. JobStore.insertMany writes a long run
 * in several statements (32, 8 and 1 rows); a failure in a later statement leaves the earlier
 * ones in place. It used to say nothing about them, and the broker's row-by-row retry inserted
 * those jobs a second time; it now throws PartialInsertError with their ids, and the retry starts
 * after them. The failure is a real SQLite one: a trigger that aborts the insert of one marked
 * job, added to a real broker's database when it opens.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { JobState } from '../src/domain/job-state.js';
import { closeDatabase, openDatabase, type Db } from '../src/store/database.js';
import { JobStore } from '../src/store/job-store.js';
import { PartialInsertError } from '../src/store/store-errors.js';
import type { NewJob } from '../src/store/types.js';
import { startTestBroker, tempDir, type TestBroker } from './helpers/broker.js';

const POISON = `CREATE TRIGGER poison BEFORE INSERT ON jobs WHEN NEW.type = 'poison' BEGIN SELECT RAISE(ABORT, 'poisoned job'); END`;

function newJob(type: string): NewJob {
  return {
    queue: 'q', type, payload: '{}', metadata: null, priority: 2, runAt: 1_764_000_000_000, maxAttempts: 3, retry: null,
    leaseTimeoutMs: 30_000, dedupKey: null, groupKey: null, inherits: 0,
  };
}

describe('JobStore.insertMany failing part-way', () => {
  it('names the rows of the statements that went through, and the failed statement left nothing', () => {
    const dir = tempDir();
    const db = openDatabase(join(dir, 's.db'), 'NORMAL').db;
    try {
      db.exec(POISON);
      const store = new JobStore(db);
      const seqs = () => (db.prepare('SELECT seq FROM jobs ORDER BY seq').all() as { seq: number }[]).map((r) => r.seq);
      // 34 rows: statements of 32, 1 and 1; the poisoned row is the 33rd, in the second statement.
      const jobs = Array.from({ length: 34 }, (_, i) => newJob(i === 32 ? 'poison' : 'ok'));
      let error: unknown;
      try {
        store.insertMany(jobs, jobs.map(() => JobState.Pending), 1);
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(PartialInsertError);
      expect((error as PartialInsertError).message).toContain('poisoned job');
      const ids = (error as PartialInsertError).insertedIds;
      expect(ids).toHaveLength(32);
      expect(ids.map((id) => Number.parseInt(id.slice(-12), 16))).toEqual(seqs());
      // A failing first statement: nothing inserted, nothing named.
      db.exec('DELETE FROM jobs');
      const first = Array.from({ length: 32 }, (_, i) => newJob(i === 5 ? 'poison' : 'ok'));
      expect(() => store.insertMany(first, first.map(() => JobState.Pending), 1)).toThrow(expect.objectContaining({ insertedIds: [] }));
      expect(seqs()).toEqual([]);
    } finally {
      closeDatabase(db);
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('Enqueue of a batch with one job the store refuses', () => {
  let broker: TestBroker | undefined;
  afterEach(async () => {
    await broker?.close();
    broker = undefined;
  });

  it('non-atomic: stores every other job once and answers each with its own outcome', async () => {
    let db: Db | undefined;
    broker = await startTestBroker({}, { onDatabaseOpen: (d) => ((db = d), d.exec(POISON)) });
    const items = Array.from({ length: 34 }, (_, i) => ({ queue: 'q', type: i === 32 ? 'poison' : 'ok', payload: { i } }));
    const { results } = await broker.api.enqueueBatch(items, false);
    expect(results).toHaveLength(34);
    expect(results[32]!.error?.message).toContain('poisoned job');
    const ok = results.filter((_, i) => i !== 32);
    expect(ok.every((r) => r.id !== '' && r.error === undefined)).toBe(true);
    expect(new Set(ok.map((r) => r.id)).size).toBe(33);
    const rows = db!.prepare(`SELECT json_extract(payload, '$.i') AS i FROM jobs ORDER BY seq`).all() as { i: number }[];
    expect(rows.map((r) => r.i)).toEqual(items.map((_, i) => i).filter((i) => i !== 32));
  });

  it('atomic: stores none of them (an unknown store error: INTERNAL, as before)', async () => {
    let db: Db | undefined;
    broker = await startTestBroker({}, { onDatabaseOpen: (d) => ((db = d), d.exec(POISON)) });
    const items = Array.from({ length: 34 }, (_, i) => ({ queue: 'q', type: i === 32 ? 'poison' : 'ok', payload: { i } }));
    await expect(broker.api.enqueueBatch(items, true)).rejects.toMatchObject({ code: 13 });
    expect((db!.prepare('SELECT count(*) AS n FROM jobs').get() as { n: number }).n).toBe(0);
  });
});
