/**
 * Smoke test of `sluice bench` (issue 4): a tiny run of W1-W4 through the real CLI, checking
 * only that every metric came out as a positive number. No timing assertions: this machine's
 * speed is not what the test is about.
 *
 * Runs the compiled CLI: `npm test` builds first; run `npm run build` before running this file alone.
 */
import { execFile } from 'node:child_process';
import { rmSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { tempDir } from './helpers/broker.js';
import { assertBuildFresh, CLI_PATH, REPO_ROOT } from './helpers/child-broker.js';

interface Row {
  workload: string;
  metric: string;
  unit: string;
  values: number[];
  median: number;
  min: number;
  max: number;
  durability: string;
}

let dir: string | undefined;
afterEach(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});

function runBench(args: string[]): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    // On timeout execFile sends SIGTERM; the bench then kills its broker and role processes.
    execFile(process.execPath, [CLI_PATH, 'bench', ...args], { cwd: REPO_ROOT, timeout: 100_000, maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
      if (error) reject(new Error(`bench failed: ${error.message}\n--- stderr ---\n${stderr}`));
      else resolve({ stdout, stderr });
    });
  });
}

describe('sluice bench', () => {
  it('runs W1-W4 with tiny job counts and reports a positive number for every metric', async () => {
    assertBuildFresh();
    dir = tempDir('bench-smoke');
    const { stdout } = await runBench(['--jobs', '500', '--runs', '1', '--json', '--workload', 'W1,W2,W3,W4', '--data-dir', dir]);
    const report = JSON.parse(stdout) as { settings: { synchronous: string }; system: { node: string }; results: Row[] };

    expect(report.settings.synchronous).toBe('FULL');
    expect(report.system.node).toBe(process.version);
    const names = report.results.map((r) => `${r.workload} / ${r.metric}`);
    for (const expected of [
      'W1 batch enqueue 500 / throughput',
      'W1 drain 500 / throughput',
      'W1 / broker peak RSS',
      'W2 single enqueue 500 / throughput',
      'W2 / broker peak RSS',
      'W3 end to end 500 / throughput',
      'W3 / broker peak RSS',
      'W4 latency @500/s / p50',
      'W4 latency @500/s / p90',
      'W4 latency @500/s / p99',
      'W4 latency @500/s / max',
    ]) {
      expect(names).toContain(expected);
    }
    for (const row of report.results) {
      expect(row.values, `${row.workload} / ${row.metric}`).toHaveLength(1);
      for (const v of [row.median, row.min, row.max, ...row.values]) {
        expect(Number.isFinite(v) && v > 0, `${row.workload} / ${row.metric} = ${v}`).toBe(true);
      }
      expect(row.durability).toBe('synchronous=FULL');
    }
  }, 120_000);
});
