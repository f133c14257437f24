/**
 * `--compare bullmq`: pairs each Sluice result with BullMQ's result for the same workload and
 * metric and states one ratio per row, oriented so that > 1 always means Sluice is better:
 * Sluice / BullMQ for throughput (jobs/s), BullMQ / Sluice for latency (ms) and memory or
 * disk (MB).
 */
import type { ResultRow } from './table.js';

export const RATIO_CONVENTION = 'ratio > 1 means Sluice is better: Sluice/BullMQ for jobs/s, BullMQ/Sluice for ms and MB';

export interface ComparisonRow {
  workload: string;
  metric: string;
  unit: string;
  sluice: number | undefined;
  bullmq: number | undefined;
  /** Oriented ratio of the medians (see RATIO_CONVENTION); undefined unless both are there. */
  ratio: number | undefined;
}

/** The oriented ratio of two medians. */
export function orientedRatio(unit: string, sluice: number, bullmq: number): number {
  return unit === 'jobs/s' ? sluice / bullmq : bullmq / sluice;
}

/**
 * One row per workload + metric of either system, in first-seen order (Sluice's first), with
 * both medians and the ratio where both systems measured it.
 */
export function compareResults(rows: readonly ResultRow[]): ComparisonRow[] {
  const out = new Map<string, ComparisonRow>();
  for (const row of rows) {
    const key = `${row.workload}\u0000${row.metric}`;
    let c = out.get(key);
    if (!c) out.set(key, (c = { workload: row.workload, metric: row.metric, unit: row.unit, sluice: undefined, bullmq: undefined, ratio: undefined }));
    if (row.system === 'bullmq') c.bullmq = row.median;
    else c.sluice = row.median;
  }
  for (const c of out.values()) {
    if (c.sluice !== undefined && c.bullmq !== undefined) c.ratio = orientedRatio(c.unit, c.sluice, c.bullmq);
  }
  return [...out.values()];
}

/** "1.52x", or "-" when a side is missing. */
export function formatRatio(ratio: number | undefined): string {
  return ratio === undefined || !Number.isFinite(ratio) ? '-' : `${ratio.toFixed(2)}x`;
}
