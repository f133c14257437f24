import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { ALL_JOB_STATES, type JobState } from '../domain/job-state.js';

/** Lifecycle events counted per queue. */
export interface QueueTally {
  enqueued: number;
  started: number;
  completed: number;
  retried: number;
  deadLettered: number;
  cancelled: number;
}

/**
 * What the broker answers at scrape time (cheap reads: in-memory state and the kept counts).
 * Store reads are async (store/store-reads.ts); prom-client awaits a collect that returns a promise.
 */
export interface MetricsSource {
  /** Jobs per (queue, state), from the counts the store keeps by trigger (no table scan). */
  queueCounts(): Promise<{ queue: string; state: JobState; n: number }[]>;
  /** Age in ms of the oldest ready (pending) job per queue, by a few index seeks. */
  oldestPendingAgeMs(): Promise<{ queue: string; ageMs: number }[]>;
  activeLeases(): number;
  connectedStreams(): number;
  /** Unused credit plus unsettled deliveries over all streams. */
  outstandingCredit(): { unused: number; unsettled: number };
  /** Sizes in bytes of the database file and its write-ahead log. */
  fileSizes(): Promise<{ db: number; wal: number }>;
}

const TALLY_FIELDS: readonly (keyof QueueTally)[] = ['enqueued', 'started', 'completed', 'retried', 'deadLettered', 'cancelled'];

/** Seconds, from 1 ms to ~30 min: queue wait and handler run time. */
const JOB_SECONDS_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800];
/** Seconds, from 50 us to 1 s: one commit or one fsync. */
const STORE_SECONDS_BUCKETS = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1];
/** Write operations in one group commit. */
const BATCH_BUCKETS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000];

/**
 * The broker's Prometheus metrics. Labels are only `queue` (and `state`): never job ids or
 * group keys, so the series count stays bounded by the number of queues.
 *
 * The hot path never touches prom-client for counters (its `inc` hashes the label set on
 * every call): it bumps plain numbers in a per-queue tally, and each counter copies the
 * increase since the last scrape when it is collected. Gauges are read from the source at
 * scrape time. Histograms are observed directly with one cached label object per queue.
 */
export class BrokerMetrics {
  readonly registry = new Registry();
  private readonly tallies = new Map<string, QueueTally>();
  /** What each counter has already been given, per queue. */
  private readonly exported = new Map<string, QueueTally>();
  private readonly labels = new Map<string, { queue: string }>();
  private readonly wait: Histogram<'queue'>;
  private readonly run: Histogram<'queue'>;
  private readonly batch: Histogram;
  private readonly commit: Histogram;
  private readonly fsync: Histogram;

  constructor(source: MetricsSource, options: { processMetrics: boolean }) {
    const registers = [this.registry];
    const counter = (field: keyof QueueTally, name: string, help: string) => {
      const metrics = this;
      new Counter({
        name,
        help,
        labelNames: ['queue'],
        registers,
        collect() {
          for (const [queue, tally] of metrics.tallies) {
            const done = metrics.exportedFor(queue);
            const delta = tally[field] - done[field];
            if (delta > 0) {
              this.inc(metrics.labelsFor(queue), delta);
              done[field] = tally[field];
            } else if (delta === 0 && tally[field] === 0) {
              this.inc(metrics.labelsFor(queue), 0); // the series exists from the queue's first event
            }
          }
        },
      });
    };
    counter('enqueued', 'sluice_jobs_enqueued_total', 'Jobs accepted by Enqueue, EnqueueBatch and EnqueueStream (not deduplicated ones)');
    counter('started', 'sluice_jobs_started_total', 'Deliveries to workers (each delivery is an attempt)');
    counter('completed', 'sluice_jobs_completed_total', 'Jobs acknowledged by a worker');
    counter('retried', 'sluice_jobs_retried_total', 'Failed attempts that will be retried (nack, lease expired, worker stream lost)');
    counter('deadLettered', 'sluice_jobs_dead_lettered_total', 'Jobs moved to the dead letter queue');
    counter('cancelled', 'sluice_jobs_cancelled_total', 'Jobs cancelled by a producer or operator');

    new Gauge({
      name: 'sluice_queue_jobs',
      help: 'Jobs per queue and state (kept counts, read at scrape time)',
      labelNames: ['queue', 'state'],
      registers,
      async collect() {
        const counts = await source.queueCounts();
        this.reset();
        const seen = new Set<string>();
        for (const { queue, state, n } of counts) {
          if (!seen.has(queue)) {
            seen.add(queue);
            for (const s of ALL_JOB_STATES) this.set({ queue, state: s }, 0);
          }
          this.set({ queue, state }, n);
        }
      },
    });
    new Gauge({
      name: 'sluice_queue_oldest_pending_age_seconds',
      help: 'Age of the oldest job ready to run per queue (0 when none is waiting)',
      labelNames: ['queue'],
      registers,
      async collect() {
        const ages = await source.oldestPendingAgeMs();
        this.reset();
        for (const { queue, ageMs } of ages) this.set({ queue }, ageMs / 1000);
      },
    });
    new Gauge({
      name: 'sluice_leases_active',
      help: 'Jobs leased to worker streams right now',
      registers,
      collect() {
        this.set(source.activeLeases());
      },
    });
    new Gauge({
      name: 'sluice_streams_connected',
      help: 'Open Consume streams',
      registers,
      collect() {
        this.set(source.connectedStreams());
      },
    });
    new Gauge({
      name: 'sluice_credit_outstanding',
      help: 'Credit granted by workers and not yet used (kind="unused") or used by unsettled deliveries (kind="unsettled")',
      labelNames: ['kind'],
      registers,
      collect() {
        const { unused, unsettled } = source.outstandingCredit();
        this.set({ kind: 'unused' }, unused);
        this.set({ kind: 'unsettled' }, unsettled);
      },
    });
    new Gauge({
      name: 'sluice_store_file_bytes',
      help: 'Size of the SQLite database file (file="db") and of its write-ahead log (file="wal")',
      labelNames: ['file'],
      registers,
      async collect() {
        const { db, wal } = await source.fileSizes();
        this.set({ file: 'db' }, db);
        this.set({ file: 'wal' }, wal);
      },
    });

    this.wait = new Histogram({
      name: 'sluice_job_wait_seconds',
      help: 'Enqueue-to-start latency: from when a job was ready to run (enqueue, or its run_at) to its delivery',
      labelNames: ['queue'],
      buckets: JOB_SECONDS_BUCKETS,
      registers,
    });
    this.run = new Histogram({
      name: 'sluice_job_run_seconds',
      help: 'Run time of completed attempts: from delivery to the ack',
      labelNames: ['queue'],
      buckets: JOB_SECONDS_BUCKETS,
      registers,
    });
    this.batch = new Histogram({
      name: 'sluice_store_commit_batch_ops',
      help: 'Write operations (enqueue calls, settle messages, timer batches) in one group commit',
      buckets: BATCH_BUCKETS,
      registers,
    });
    this.commit = new Histogram({
      name: 'sluice_store_commit_seconds',
      help: 'Time to run and commit one group-commit transaction',
      buckets: STORE_SECONDS_BUCKETS,
      registers,
    });
    this.fsync = new Histogram({
      name: 'sluice_store_fsync_seconds',
      help: 'Time of one fsync of the write-ahead log (synchronous=FULL; each covers every commit before it)',
      buckets: STORE_SECONDS_BUCKETS,
      registers,
    });
    if (options.processMetrics) collectDefaultMetrics({ register: this.registry });
  }

  /** The tally of a queue, to bump on the hot path. */
  tally(queue: string): QueueTally {
    let t = this.tallies.get(queue);
    if (!t) this.tallies.set(queue, (t = emptyTally()));
    return t;
  }

  observeWait(queue: string, ms: number): void {
    this.wait.observe(this.labelsFor(queue), ms > 0 ? ms / 1000 : 0);
  }

  observeRun(queue: string, ms: number): void {
    this.run.observe(this.labelsFor(queue), ms > 0 ? ms / 1000 : 0);
  }

  observeFlush(ops: number, commitMs: number): void {
    this.batch.observe(ops);
    this.commit.observe(commitMs / 1000);
  }

  observeSync(ms: number): void {
    this.fsync.observe(ms / 1000);
  }

  /** The Prometheus text exposition. */
  async text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  private labelsFor(queue: string): { queue: string } {
    let l = this.labels.get(queue);
    if (!l) this.labels.set(queue, (l = { queue }));
    return l;
  }

  private exportedFor(queue: string): QueueTally {
    let t = this.exported.get(queue);
    if (!t) this.exported.set(queue, (t = emptyTally()));
    return t;
  }
}

function emptyTally(): QueueTally {
  const t = {} as QueueTally;
  for (const f of TALLY_FIELDS) t[f] = 0;
  return t;
}
