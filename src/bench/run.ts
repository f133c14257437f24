/**
 * `sluice bench`: runs the workloads (workloads.ts) `runs` times each against brokers it starts
 * itself, then prints one table (or JSON) with the median, min and max of every metric.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { installCleanup, killAll } from './children.js';
import { summarize } from './stats.js';
import { systemInfo } from './system.js';
import { renderReport, type BenchReport, type ResultRow } from './table.js';
import { removeDataFile, WORKLOADS, type Sample, type WorkloadId } from './workloads.js';

export interface BenchOptions {
  workloads: WorkloadId[];
  runs: number;
  jobs: number;
  synchronous: string;
  json: boolean;
  /** Where the temporary data files go (a new directory inside it). */
  dataDir: string;
}

export async function runBench(options: BenchOptions): Promise<BenchReport> {
  const began = performance.now();
  // Taken first: the commit that was built, before anyone changes the tree during the run.
  const system = systemInfo();
  const tmp = mkdtempSync(join(options.dataDir, 'sluice-bench-'));
  installCleanup(() => rmSync(tmp, { recursive: true, force: true }));
  const note = (message: string) => process.stderr.write(`bench: ${message}\n`);
  note(`data in ${tmp}; workloads ${options.workloads.join(', ')}; ${options.runs} run(s); jobs ${options.jobs}; synchronous=${options.synchronous}`);

  const samples: Sample[][] = [];
  try {
    // Runs outermost, so slow drifts of a shared machine spread over every workload.
    for (let run = 1; run <= options.runs; run++) {
      for (const id of options.workloads) {
        const dataFile = join(tmp, `${id}-run${run}.db`);
        note(`${id} run ${run}/${options.runs}`);
        try {
          samples.push(await WORKLOADS[id]({ settings: { jobs: options.jobs, synchronous: options.synchronous }, dataFile, note }));
        } finally {
          removeDataFile(dataFile);
        }
      }
    }
  } finally {
    killAll();
    rmSync(tmp, { recursive: true, force: true });
  }

  // Group by workload + metric, keeping first-seen order.
  const rows = new Map<string, ResultRow>();
  for (const sample of samples.flat()) {
    const key = `${sample.workload}\u0000${sample.metric}`;
    let row = rows.get(key);
    if (!row) {
      row = { workload: sample.workload, metric: sample.metric, unit: sample.unit, values: [], durability: `synchronous=${options.synchronous}`, median: 0, min: 0, max: 0 };
      rows.set(key, row);
    }
    row.values.push(sample.value);
  }
  for (const row of rows.values()) Object.assign(row, summarize(row.values));

  return {
    system,
    settings: {
      workloads: options.workloads,
      runs: options.runs,
      jobs: options.jobs,
      synchronous: options.synchronous,
      durationSeconds: (performance.now() - began) / 1000,
      loadAverageAtEnd: Math.round(loadavg()[0]! * 100) / 100,
    },
    results: [...rows.values()],
  };
}

export async function benchMain(options: BenchOptions): Promise<void> {
  const report = await runBench(options);
  process.stdout.write(options.json ? `${JSON.stringify(report, null, 2)}\n` : `${renderReport(report)}\n`);
}
