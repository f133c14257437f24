import Database from 'better-sqlite3';
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { status } from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { JobState } from '../clients/typescript/src/gen/sluice/v1/job.js';
import type { ConsumeResponse } from '../clients/typescript/src/gen/sluice/v1/worker.js';
import { startTestBroker, tempDir, type TestBroker } from './helpers/broker.js';
import { expectStatus } from './helpers/expect-status.js';

const brokers: TestBroker[] = [];
afterEach(async () => {
  for (const b of brokers.splice(0).reverse()) await b.close();
});

describe('online backup', () => {
  it('writes a valid snapshot under load; a broker started on it serves every job acknowledged before the backup began', async () => {
    const b = await startTestBroker();
    brokers.push(b);
    const queue = 'backup-load';
    // Enough data that the backup takes many steps (100 pages each) while the load runs.
    const filler = 'x'.repeat(400);
    for (let i = 0; i < 10; i++) {
      await b.api.enqueueBatch(Array.from({ length: 200 }, (_, k) => ({ queue: 'backup-filler', payload: { i, k, filler } })), true);
    }

    // A worker acking everything it gets, granting credit back as it goes.
    const completed = new Set<string>();
    const worker = b.api.consumer({ queues: [queue], workerId: 'backup-worker' }, 50);
    worker.call.on('data', (m: ConsumeResponse) => {
      if (m.deliveries.length > 0) worker.send({ acks: m.deliveries.map((d) => ({ jobId: d.jobId, leaseId: d.leaseId })), credit: m.deliveries.length });
      for (const s of m.settled) if (s.code === status.OK && s.state === JobState.JOB_STATE_COMPLETED) completed.add(s.jobId);
    });
    // Three producers enqueueing in a loop until told to stop.
    const enqueued: string[] = [];
    let stop = false;
    const producers = Array.from({ length: 3 }, async (_, p) => {
      for (let n = 0; !stop; n++) {
        const { id } = await b.api.enqueue({ queue, payload: { p, n, filler } });
        enqueued.push(id);
      }
    });
    await worker.until(() => completed.size >= 100, '100 completions before the backup');

    const acknowledgedBefore = [...enqueued];
    const completedBefore = [...completed];
    const dir = tempDir('sluice-backup-');
    const path = join(dir, 'snapshot.db');
    // The backup copies a hundred pages per event-loop turn: other work runs between its steps.
    let turns = 0;
    let spinning = true;
    const spin = () => {
      turns++;
      if (spinning) setImmediate(spin);
    };
    setImmediate(spin);
    const backup = await b.api.backup(path);
    spinning = false;
    stop = true;
    await Promise.all(producers);
    worker.cancel();

    expect(backup.path).toBe(path);
    expect(backup.bytes).toBeGreaterThan(1_000_000);
    expect(turns).toBeGreaterThan(2); // the event loop kept turning while the backup ran
    expect(readdirSync(dir)).toEqual(['snapshot.db']); // no temporary file left behind

    const check = new Database(path, { readonly: true });
    expect(check.pragma('integrity_check', { simple: true })).toBe('ok');
    check.close();

    // Restore: start a broker on the backup file.
    const restored = await startTestBroker({ dataFile: path }, { dir });
    brokers.push(restored);
    for (const id of acknowledgedBefore) expect((await restored.api.getJob(id)).id).toBe(id);
    for (const id of completedBefore) expect((await restored.api.getJob(id)).state).toBe(JobState.JOB_STATE_COMPLETED);
    expect((await restored.api.getQueue('backup-filler')).counts?.pending).toBe(2000);
  });

  it('refuses a relative path, an existing file, a missing directory and the live database', async () => {
    const b = await startTestBroker();
    brokers.push(b);
    const dir = tempDir('sluice-backup-');
    await expectStatus(b.api.backup('relative/backup.db'), status.INVALID_ARGUMENT, 'absolute');
    await expectStatus(b.api.backup(''), status.INVALID_ARGUMENT, 'required');
    const existing = join(dir, 'exists.db');
    writeFileSync(existing, 'keep me');
    await expectStatus(b.api.backup(existing), status.ALREADY_EXISTS, 'already exists');
    await expectStatus(b.api.backup(join(dir, 'missing', 'backup.db')), status.FAILED_PRECONDITION, 'does not exist');
    await expectStatus(b.api.backup(b.dataFile), status.INVALID_ARGUMENT, 'live database');
    expect(existsSync(join(dir, 'missing'))).toBe(false);
  });
});
