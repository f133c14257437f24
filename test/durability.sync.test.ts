import { afterEach, describe, expect, it } from 'vitest';
import { startTestBroker, type TestBroker } from './helpers/broker.js';

let b: TestBroker | undefined;
afterEach(async () => {
  await b?.close();
  b = undefined;
});

describe('durability modes', () => {
  it('FULL (default): SQLite commits without fsync and the broker fsyncs the WAL before answering', async () => {
    b = await startTestBroker();
    const { broker } = b.running;
    expect(broker.config.synchronous).toBe('FULL');
    expect(broker.db.pragma('synchronous', { simple: true })).toBe(1); // NORMAL
    const before = broker.commits.stats.syncs;
    const { id } = await b.api.enqueue({ queue: 'durable', payload: { n: 1 } });
    // The answer came after at least one fsync of the log that holds the job.
    expect(broker.commits.stats.syncs).toBeGreaterThan(before);
    expect((await b.api.getJob(id)).payload).toEqual({ n: 1 });
  });

  it('EXTRA: SQLite fsyncs inside every commit itself, the broker adds none', async () => {
    b = await startTestBroker({ synchronous: 'EXTRA' });
    const { broker } = b.running;
    expect(broker.db.pragma('synchronous', { simple: true })).toBe(3); // EXTRA
    await b.api.enqueue({ queue: 'durable', payload: { n: 1 } });
    expect(broker.commits.stats.syncs).toBe(0);
  });
});
