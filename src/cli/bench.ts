import { tmpdir } from 'node:os';
import { Command, InvalidArgumentError } from 'commander';
import { examples } from './connection.js';
import { positiveInt } from './parse.js';

/** `sluice bench`: the benchmark (docs/performance.md). */
export function benchCommand(): Command {
  const bench = new Command('bench')
    .description(
      'benchmark: start a broker, producer and worker processes on a temp data file, run workloads W1-W4 (W5 with --workload W5 or --all), print median/min/max; --compare bullmq runs them against BullMQ on a local redis-server too',
    )
    .option(
      '--workload <ids>',
      'workloads to run, comma separated (W1 batch enqueue + drain, W2 single enqueues, W3 end to end, W4 latency at 500 jobs/s, W5 1M queued + restart, W6 tenants with group rate limits + 100k group keys; scaling: S1 1/10/100/1,000 worker streams, S2 1,000 queues, S3 1M scheduled jobs, S4 soak)',
      parseWorkloads,
    )
    .option('--all', 'run W1-W6')
    .option('--compare <system>', 'also run W1-W5 against this system, round by round, and print the ratios (only: bullmq; needs redis-server, see scripts/install-redis.sh)', parseCompare)
    .option('--runs <n>', 'repetitions (rounds) of each workload', positiveInt, 3)
    .option('--jobs <n>', 'jobs in W1-W3, S1, S2 (W4 sends jobs/10 at 500/s, W5 and S3 enqueue 20 x jobs)', positiveInt, 50_000)
    .option('--soak-seconds <n>', 'S4: how long the soak runs', positiveInt, 600)
    .option('--rate <n>', 'S4: jobs/s of the soak (default: half of a W3 maximum measured first)', positiveInt)
    .option('--synchronous <mode>', "the broker's SQLite synchronous mode: FULL, NORMAL, EXTRA, OFF", parseSynchronous, 'FULL')
    .option('--data-dir <dir>', 'directory for the temporary data files', tmpdir())
    .option('--json', 'print machine-readable results instead of the table')
    .action(
      async (options: {
        workload?: string[];
        all?: boolean;
        compare?: 'bullmq';
        runs: number;
        jobs: number;
        soakSeconds: number;
        rate?: number;
        synchronous: string;
        dataDir: string;
        json?: boolean;
      }) => {
        const { benchMain } = await import('../bench/run.js');
        const { ALL_WORKLOADS, DEFAULT_WORKLOADS, WORKLOAD_IDS } = await import('../bench/workloads.js');
        const workloads = options.all ? [...ALL_WORKLOADS] : ((options.workload ?? [...DEFAULT_WORKLOADS]) as (typeof WORKLOAD_IDS)[number][]);
        await benchMain({
          workloads,
          runs: options.runs,
          jobs: options.jobs,
          synchronous: options.synchronous,
          dataDir: options.dataDir,
          json: options.json ?? false,
          ...(options.compare ? { compare: options.compare } : {}),
          soakSeconds: options.soakSeconds,
          ...(options.rate ? { rate: options.rate } : {}),
        });
      },
    );
  return examples(
    bench,
    'sluice bench',
    'flock /tmp/sluice-bench.lock npm run bench -- --workload W3 --runs 3',
    'flock /tmp/sluice-bench.lock npm run bench -- --compare bullmq',
    'flock /tmp/sluice-bench.lock npm run bench -- --workload S1,S2,S3 --runs 1',
  );
}

function parseSynchronous(raw: string): string {
  const mode = raw.toUpperCase();
  if (!['FULL', 'NORMAL', 'EXTRA', 'OFF'].includes(mode)) throw new InvalidArgumentError('expected FULL, NORMAL, EXTRA or OFF.');
  return mode;
}

function parseCompare(raw: string): 'bullmq' {
  if (raw.toLowerCase() !== 'bullmq') throw new InvalidArgumentError('the only system to compare with is bullmq.');
  return 'bullmq';
}

/** "W1,w3" -> ['W1', 'W3'] in W1..W6, S1..S4 order; repeated flags add up. */
function parseWorkloads(raw: string, previous: string[] = []): string[] {
  const known = ['W1', 'W2', 'W3', 'W4', 'W5', 'W6', 'S1', 'S2', 'S3', 'S4'];
  const ids = raw.split(',').map((s) => s.trim().toUpperCase()).filter(Boolean);
  for (const id of ids) if (!known.includes(id)) throw new InvalidArgumentError(`unknown workload ${JSON.stringify(id)} (expected ${known.join(', ')}).`);
  return known.filter((k) => previous.includes(k) || ids.includes(k));
}
