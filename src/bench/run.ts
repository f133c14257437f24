/**
 * `sluice bench`: runs the workloads (workloads.ts) `runs` times each against brokers it starts
 * itself, then prints one table (or JSON) with the median, min and max of every metric.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { installCleanup, killAll } from './children.js';
import { compareResults } from './compare.js';
import type { BenchSystem } from './role-process.js';
import { summarize } from './stats.js';
import { systemInfo } from './system.js';
import { renderReport, type BenchReport, type ResultRow } from './table.js';
import { BULLMQ_WORKLOADS, DEFAULT_SOAK_SECONDS, removeDataFile, WORKLOADS, type Sample, type WorkloadId } from './workloads.js';

export interface BenchOptions {
  workloads: WorkloadId[];
  runs: number;
  jobs: number;
  synchronous: string;
  json: boolean;
  /** Where the temporary data files go (a new directory inside it). */
  dataDir: string;
  /** 'bullmq': run the workloads BullMQ can also run against BullMQ too, round by round. */
  compare?: 'bullmq';
  /** S4: how long the soak lasts, and its rate (default half of a measured W3 maximum). */
  soakSeconds?: number;
  rate?: number;
}

/** What each system's rows say about durability. */
const DURABILITY: Record<BenchSystem, (synchronous: string) => string> = {
  sluice: (synchronous) => `synchronous=${synchronous}`,
  bullmq: () => 'Redis AOF everysec',
};

export async function runBench(options: BenchOptions): Promise<BenchReport> {
  const began = performance.now();
  // Taken first: the commit that was built, before anyone changes the tree during the run.
  const system = systemInfo();
  const tmp = mkdtempSync(join(options.dataDir, 'sluice-bench-'));
  installCleanup(() => rmSync(tmp, { recursive: true, force: true }));
  const note = (message: string) => process.stderr.write(`bench: ${message}\n`);
  const systems: BenchSystem[] = options.compare ? ['sluice', options.compare] : ['sluice'];
  note(`data in ${tmp}; workloads ${options.workloads.join(', ')}; ${options.runs} run(s); jobs ${options.jobs}; synchronous=${options.synchronous}${options.compare ? `; compared with ${options.compare}` : ''}`);
  const settings = { jobs: options.jobs, synchronous: options.synchronous, soakSeconds: options.soakSeconds ?? DEFAULT_SOAK_SECONDS, ...(options.rate ? { rate: options.rate } : {}) };

  const samples: { system: BenchSystem; samples: Sample[] }[] = [];
  try {
    // Rounds outermost, then the systems (all of Sluice's workloads, then all of BullMQ's), so
    // slow drifts of a shared machine spread over every workload and both systems.
    for (let run = 1; run <= options.runs; run++) {
      for (const system of systems) {
        for (const id of options.workloads) {
          if (system === 'bullmq' && !BULLMQ_WORKLOADS.has(id)) continue;
          const dataFile = join(tmp, `${system}-${id}-run${run}.db`);
          note(`${system === 'bullmq' ? 'BullMQ ' : ''}${id} run ${run}/${options.runs}`);
          try {
            const runNote = system === 'bullmq' ? (m: string) => note(`[bullmq] ${m}`) : note;
            samples.push({ system, samples: await WORKLOADS[id]({ settings, dataFile, note: runNote, system }) });
          } finally {
            removeDataFile(dataFile);
          }
        }
      }
    }
  } finally {
    killAll();
    rmSync(tmp, { recursive: true, force: true });
  }

  // Group by workload + metric, keeping first-seen order.
  const rows = new Map<string, ResultRow>();
  for (const { system, samples: runSamples } of samples) {
    for (const sample of runSamples) {
      const key = `${system}\u0000${sample.workload}\u0000${sample.metric}`;
      let row = rows.get(key);
      if (!row) {
        row = { workload: sample.workload, metric: sample.metric, unit: sample.unit, values: [], durability: DURABILITY[system](options.synchronous), median: 0, min: 0, max: 0 };
        if (options.compare) row.system = system;
        rows.set(key, row);
      }
      row.values.push(sample.value);
    }
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
      ...(options.compare ? { compare: options.compare } : {}),
    },
    results: [...rows.values()],
    ...(options.compare ? { comparison: compareResults([...rows.values()]) } : {}),
  };
}

export async function benchMain(options: BenchOptions): Promise<void> {
  const report = await runBench(options);
  process.stdout.write(options.json ? `${JSON.stringify(report, null, 2)}\n` : `${renderReport(report)}\n`);
}
