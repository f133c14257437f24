/** The bench report: one Markdown table (pastes into docs/performance.md as is). */
import { formatRatio, RATIO_CONVENTION, type ComparisonRow } from './compare.js';
import type { Summary } from './stats.js';
import type { SystemInfo } from './system.js';

export interface ResultRow extends Summary {
  workload: string;
  metric: string;
  unit: string;
  /** One value per run, in run order. */
  values: number[];
  durability: string;
  /** Which system produced it: 'sluice' (default) or 'bullmq' (--compare bullmq). */
  system?: string;
}

export interface BenchReport {
  system: SystemInfo;
  settings: { workloads: string[]; runs: number; jobs: number; synchronous: string; durationSeconds: number; loadAverageAtEnd: number; compare?: string };
  results: ResultRow[];
  /** With --compare bullmq: both medians and the oriented ratio per workload and metric. */
  comparison?: ComparisonRow[];
}

export function formatValue(value: number, unit: string): string {
  if (!Number.isFinite(value)) return String(value);
  if (unit === 'jobs/s') return Math.round(value).toLocaleString('en-US');
  if (unit === 'MB') return value.toFixed(1);
  return value < 1 ? value.toFixed(2) : value < 100 ? value.toFixed(1) : Math.round(value).toLocaleString('en-US');
}

function markdownTable(header: string[], rows: string[][], rightAligned: Set<number>): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const pad = (cells: string[]) => `| ${cells.map((c, i) => (rightAligned.has(i) ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join(' | ')} |`;
  const rule = `|${widths.map((w, i) => (rightAligned.has(i) ? `${'-'.repeat(w + 1)}:` : '-'.repeat(w + 2))).join('|')}|`;
  return [pad(header), rule, ...rows.map(pad)].join('\n');
}

export function renderReport(report: BenchReport): string {
  const { system: s, settings } = report;
  const lines = [
    `Sluice bench, ${s.date}, commit ${s.commit}`,
    `node ${s.node} on ${s.os}; ${s.cpus} x ${s.cpu}; ${s.memoryGiB} GiB RAM; load average ${s.loadAverageAtStart} at start, ${settings.loadAverageAtEnd} at end`,
    `workloads ${settings.workloads.join(', ')}; ${settings.runs} run(s) each; jobs ${settings.jobs}; broker synchronous=${settings.synchronous}; took ${Math.round(settings.durationSeconds)} s`,
    '',
  ];
  if (report.comparison) {
    lines.push(
      `Side by side with BullMQ (Redis AOF appendfsync everysec), medians of ${settings.runs} interleaved round(s); ${RATIO_CONVENTION}`,
      '',
      markdownTable(
        ['workload', 'metric', 'Sluice', 'BullMQ', 'ratio'],
        report.comparison.map((c) => [c.workload, `${c.metric} (${c.unit})`, c.sluice === undefined ? '-' : formatValue(c.sluice, c.unit), c.bullmq === undefined ? '-' : formatValue(c.bullmq, c.unit), formatRatio(c.ratio)]),
        new Set([2, 3, 4]),
      ),
      '',
      'Every run:',
      '',
    );
  }
  const bySystem = report.comparison !== undefined;
  const rows = report.results.map((r) => [
    ...(bySystem ? [r.system ?? 'sluice'] : []),
    r.workload,
    `${r.metric} (${r.unit})`,
    formatValue(r.median, r.unit),
    formatValue(r.min, r.unit),
    formatValue(r.max, r.unit),
    r.durability,
  ]);
  const header = ['workload', 'metric', 'median', 'min', 'max', 'durability'];
  lines.push(markdownTable(bySystem ? ['system', ...header] : header, rows, new Set(bySystem ? [3, 4, 5] : [2, 3, 4])));
  const peak = report.results.filter((r) => /^W[123]$/.test(r.workload) && r.metric === 'broker peak RSS' && (r.system ?? 'sluice') === 'sluice');
  if (peak.length > 0) {
    const all = peak.flatMap((r) => r.values);
    lines.push('', `Broker peak RSS during W1-W3: ${formatValue(Math.max(...all), 'MB')} MB`);
  }
  return lines.join('\n');
}
