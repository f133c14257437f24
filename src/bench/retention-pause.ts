/**
 * Measures the longest pause retention causes: a database with N expired completed jobs (1M
 * by default), one retention pass, the longest batch inside its transaction and the event
 * loop's longest delay while the pass runs.
 *
 *   node dist/src/bench/retention-pause.js [jobs] [batchSize]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { Broker } from '../broker/broker.js';
import { resolveConfig } from '../config.js';
import { createLogger } from '../log.js';
import { systemClock } from '../domain/clock.js';
import { openDatabase, closeDatabase } from '../store/database.js';

const jobs = Number(process.argv[2] ?? 1_000_000);
const batchSize = Number(process.argv[3] ?? 500);
const dir = mkdtempSync(join(tmpdir(), 'sluice-retention-'));
const dataFile = join(dir, 'sluice.db');
const DAY = 24 * 3_600_000;
const finished = Date.now() - 30 * DAY;

try {
  const { db, walSync } = openDatabase(dataFile, 'NORMAL');
  const t0 = performance.now();
  db.prepare(`INSERT INTO queues (name, created_at) VALUES ('old', ?)`).run(finished);
  // Rows shaped like real completed jobs (payload, result, one history entry).
  db.prepare(`WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)
    INSERT INTO jobs (queue, type, state, priority, payload, run_at, attempt, max_attempts, lease_timeout_ms, worker_id,
      result, created_at, started_at, finished_at, updated_at, history)
    SELECT 'old', 'bench', 'completed', 2, '{"n":' || i || ',"to":"someone@example.com"}', ?, 1, 25, 30000, 'w-1',
      '{"ok":true}', ?, ?, ?, ?, json_array('a', 1, 'w-1', 'abcd1234.1.' || i, ?, NULL, ?, 'acked')
    FROM n`).run(jobs, finished, finished, finished, finished, finished, finished, finished);
  walSync?.close();
  closeDatabase(db);
  console.log(`seeded ${jobs} completed jobs finished 30 days ago in ${Math.round(performance.now() - t0)} ms`);

  const config = resolveConfig({ dataFile, httpAddress: 'off', logLevel: 'warn', retentionIntervalMs: 0, retentionBatchSize: batchSize }, {});
  const broker = new Broker(config, systemClock, createLogger('warn'));
  broker.start();
  const delay = monitorEventLoopDelay({ resolution: 1 });
  delay.enable();
  const started = performance.now();
  const pass = await broker.retention.runPass();
  const tookMs = performance.now() - started;
  delay.disable();
  console.log(
    JSON.stringify({
      jobs,
      batchSize,
      deleted: pass.deleted,
      batches: pass.batches,
      passSeconds: Math.round(tookMs / 100) / 10,
      longestBatchMs: Math.round(pass.longestBatchMs * 10) / 10,
      eventLoopDelayMaxMs: Math.round((delay.max / 1e6) * 10) / 10,
      eventLoopDelayP99Ms: Math.round((delay.percentile(99) / 1e6) * 10) / 10,
      remaining: (await broker.reads.listQueues()).find((q) => q.settings.name === 'old')?.counts.completed,
    }),
  );
  await broker.stop();
} finally {
  rmSync(dir, { recursive: true, force: true });
}
