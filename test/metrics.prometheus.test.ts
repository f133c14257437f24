import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import parsePrometheusTextFormat, { type MetricFamily } from 'parse-prometheus-text-format';
import { JobState } from '../clients/typescript/src/gen/sluice/v1/job.js';
import { startTestBroker, type TestBroker } from './helpers/broker.js';

const QUEUE = 'metrics-q';
let b: TestBroker;

beforeAll(async () => {
  b = await startTestBroker({ httpAddress: '127.0.0.1:0' });
});
afterAll(async () => {
  await b.close();
});

async function scrape(): Promise<{ text: string; families: Map<string, MetricFamily> }> {
  const res = await fetch(`http://127.0.0.1:${b.running.httpPort}/metrics`);
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
  const text = await res.text();
  const families = new Map(parsePrometheusTextFormat(text).map((f) => [f.name, f]));
  return { text, families };
}

function value(families: Map<string, MetricFamily>, name: string, labels: Record<string, string> = {}): number {
  const family = families.get(name);
  if (!family) throw new Error(`metric ${name} missing`);
  const sample = family.metrics.find((m) => Object.entries(labels).every(([k, v]) => m.labels?.[k] === v));
  if (!sample) throw new Error(`metric ${name}${JSON.stringify(labels)} missing`);
  return Number(sample.value);
}

/**
 * Observations of a histogram series. The parser keeps a histogram's type and buckets but
 * merges labelled series, so the count is read from its `_count` sample line.
 */
function histogramCount(text: string, families: Map<string, MetricFamily>, name: string, labels: Record<string, string> = {}): number {
  if (families.get(name)?.type !== 'HISTOGRAM') throw new Error(`histogram ${name} missing`);
  const labelText = Object.entries(labels).map(([k, v]) => `${k}="${v}"`).join(',');
  const line = text.split('\n').find((l) => l.startsWith(`${name}_count${labelText ? `{${labelText}}` : ''} `));
  if (!line) throw new Error(`no ${name}_count line for ${labelText}`);
  return Number(line.slice(line.lastIndexOf(' ') + 1));
}

describe('Prometheus /metrics', () => {
  it('shows the exact counters and depths of a scripted workload: 100 enqueued, 80 completed, 10 retried, 10 dead', async () => {
    const jobs = Array.from({ length: 100 }, (_, i) => ({ queue: QUEUE, payload: { i }, maxAttempts: 5 }));
    const { results } = await b.api.enqueueBatch(jobs, true);
    expect(results).toHaveLength(100);

    const worker = b.api.consumer({ queues: [QUEUE], workerId: 'metrics-worker' }, 100);
    const deliveries = await worker.waitForDeliveries(100);
    // While all 100 are leased: the gauges of the streams and leases.
    let { text, families } = await scrape();
    expect(value(families, 'sluice_leases_active')).toBe(100);
    expect(value(families, 'sluice_streams_connected')).toBe(1);
    expect(value(families, 'sluice_credit_outstanding', { kind: 'unsettled' })).toBe(100);
    expect(value(families, 'sluice_queue_jobs', { queue: QUEUE, state: 'active' })).toBe(100);

    worker.send({
      acks: deliveries.slice(0, 80).map((d) => ({ jobId: d.jobId, leaseId: d.leaseId })),
      nacks: [
        // Retried, far in the future so they stay scheduled while we scrape.
        ...deliveries.slice(80, 90).map((d) => ({ jobId: d.jobId, leaseId: d.leaseId, error: 'try later', nonRetryable: false, retryAfterMs: 3_600_000 })),
        ...deliveries.slice(90).map((d) => ({ jobId: d.jobId, leaseId: d.leaseId, error: 'poison', nonRetryable: true, retryAfterMs: 0 })),
      ],
    });
    const settled = await worker.waitForSettled(100);
    expect(settled.every((s) => s.code === 0)).toBe(true);
    expect(settled.filter((s) => s.state === JobState.JOB_STATE_DEAD)).toHaveLength(10);

    ({ text, families } = await scrape());
    const q = { queue: QUEUE };
    expect(value(families, 'sluice_jobs_enqueued_total', q)).toBe(100);
    expect(value(families, 'sluice_jobs_started_total', q)).toBe(100);
    expect(value(families, 'sluice_jobs_completed_total', q)).toBe(80);
    expect(value(families, 'sluice_jobs_retried_total', q)).toBe(10);
    expect(value(families, 'sluice_jobs_dead_lettered_total', q)).toBe(10);
    expect(value(families, 'sluice_jobs_cancelled_total', q)).toBe(0);
    expect(value(families, 'sluice_queue_jobs', { queue: QUEUE, state: 'completed' })).toBe(80);
    expect(value(families, 'sluice_queue_jobs', { queue: QUEUE, state: 'scheduled' })).toBe(10);
    expect(value(families, 'sluice_queue_jobs', { queue: QUEUE, state: 'dead' })).toBe(10);
    expect(value(families, 'sluice_queue_jobs', { queue: QUEUE, state: 'pending' })).toBe(0);
    expect(value(families, 'sluice_queue_jobs', { queue: QUEUE, state: 'active' })).toBe(0);
    expect(value(families, 'sluice_leases_active')).toBe(0);

    // Histograms have observations.
    expect(histogramCount(text, families, 'sluice_job_wait_seconds', q)).toBe(100);
    expect(histogramCount(text, families, 'sluice_job_run_seconds', q)).toBe(80);
    expect(histogramCount(text, families, 'sluice_store_commit_batch_ops')).toBeGreaterThan(0);
    expect(histogramCount(text, families, 'sluice_store_commit_seconds')).toBeGreaterThan(0);
    expect(histogramCount(text, families, 'sluice_store_fsync_seconds')).toBeGreaterThan(0);

    // Store files and default process metrics.
    expect(value(families, 'sluice_store_file_bytes', { file: 'db' })).toBeGreaterThan(0);
    expect(families.has('process_cpu_user_seconds_total')).toBe(true);
    expect(families.has('nodejs_eventloop_lag_seconds')).toBe(true);
    worker.cancel();
  });

  it('reports the age of the oldest ready job per queue', async () => {
    await b.api.enqueue({ queue: 'metrics-waiting', payload: {} });
    const { families } = await scrape();
    expect(value(families, 'sluice_queue_oldest_pending_age_seconds', { queue: 'metrics-waiting' })).toBeGreaterThanOrEqual(0);
    expect(value(families, 'sluice_queue_jobs', { queue: 'metrics-waiting', state: 'pending' })).toBe(1);
  });

  it('labels series only by queue, state and fixed kinds: never a job id or group key', async () => {
    await b.api.enqueue({ queue: 'metrics-groups', payload: {}, groupKey: 'tenant-secret-42' });
    const { text, families } = await scrape();
    expect(text).not.toContain('tenant-secret-42');
    const allowed = new Set(['queue', 'state', 'kind', 'file', 'le', 'type', 'version', 'major', 'minor', 'patch', 'space']);
    for (const family of families.values()) {
      if (!family.name.startsWith('sluice_')) continue;
      for (const m of family.metrics) for (const label of Object.keys(m.labels ?? {})) expect(allowed).toContain(label);
    }
  });
});
