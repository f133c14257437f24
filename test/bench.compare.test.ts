/**
 * `--compare bullmq`'s ratio table (src/bench/compare.ts): pure logic, no timings. The ratio is
 * oriented so that > 1 always means Sluice is better.
 */
import { describe, expect, it } from 'vitest';
import { compareResults, formatRatio, orientedRatio } from '../src/bench/compare.js';
import { split } from '../src/bench/scaling.js';
import type { ResultRow } from '../src/bench/table.js';

function row(system: 'sluice' | 'bullmq', workload: string, metric: string, unit: string, median: number): ResultRow {
  return { system, workload, metric, unit, values: [median], median, min: median, max: median, durability: system };
}

describe('bench comparison', () => {
  it('divides Sluice by BullMQ for throughput and BullMQ by Sluice for latency and memory', () => {
    expect(orientedRatio('jobs/s', 30_000, 10_000)).toBe(3);
    expect(orientedRatio('ms', 2, 4)).toBe(2);
    expect(orientedRatio('MB', 200, 50)).toBe(0.25);
  });

  it('pairs rows by workload and metric, keeps one-sided rows without a ratio, in first-seen order', () => {
    const rows = [
      row('sluice', 'W2 single enqueue 50k', 'throughput', 'jobs/s', 15_000),
      row('sluice', 'W4 latency @500/s', 'p99', 'ms', 3),
      row('sluice', 'W5 1M queued', 'WAL file', 'MB', 8),
      row('bullmq', 'W4 latency @500/s', 'p99', 'ms', 6),
      row('bullmq', 'W2 single enqueue 50k', 'throughput', 'jobs/s', 10_000),
      row('bullmq', 'W5 1M queued', 'redis used_memory after enqueue', 'MB', 900),
    ];
    expect(compareResults(rows)).toEqual([
      { workload: 'W2 single enqueue 50k', metric: 'throughput', unit: 'jobs/s', sluice: 15_000, bullmq: 10_000, ratio: 1.5 },
      { workload: 'W4 latency @500/s', metric: 'p99', unit: 'ms', sluice: 3, bullmq: 6, ratio: 2 },
      { workload: 'W5 1M queued', metric: 'WAL file', unit: 'MB', sluice: 8, bullmq: undefined, ratio: undefined },
      { workload: 'W5 1M queued', metric: 'redis used_memory after enqueue', unit: 'MB', sluice: undefined, bullmq: 900, ratio: undefined },
    ]);
  });

  it('formats a ratio, and a missing one as a dash', () => {
    expect(formatRatio(1.5)).toBe('1.50x');
    expect(formatRatio(undefined)).toBe('-');
    expect(formatRatio(Infinity)).toBe('-');
  });

  it('spreads worker streams over processes in near-equal slices', () => {
    const streams = Array.from({ length: 10 }, (_, i) => i);
    expect(split(streams, 4).map((s) => s.length)).toEqual([2, 3, 2, 3]);
    expect(split(streams, 4).flat()).toEqual(streams);
    expect(split([7], 4)).toEqual([[7]]);
  });
});
