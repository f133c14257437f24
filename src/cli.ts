#!/usr/bin/env node
import { tmpdir } from 'node:os';
import { Command, Option } from 'commander';
import { SETTINGS, resolveConfig, type BrokerConfig } from './config.js';
import { createLogger } from './log.js';
import { startSluice } from './sluice.js';

const program = new Command()
  .name('sluice')
  .description('Durable job broker: one process, one SQLite file, gRPC streams to workers.')
  .showHelpAfterError();

const serve = program
  .command('serve')
  .description('run the broker (every setting also reads a SLUICE_* environment variable; flags win)');

for (const s of SETTINGS) {
  const option = new Option(s.flag, s.description).default(s.default).env(s.env);
  option.argParser((raw: string) => {
    try {
      return s.parse(raw);
    } catch (error) {
      throw new Error(`${s.flag.split(' ')[0]}: ${(error as Error).message}`);
    }
  });
  serve.addOption(option);
}

serve.action(async (options: Partial<BrokerConfig>) => {
  const config = resolveConfig(options, {});
  const log = createLogger(config.logLevel);
  const running = await startSluice(config, { logger: log });
  log.info({ dataFile: config.dataFile, grpc: running.address, httpPort: running.httpPort, synchronous: config.synchronous }, 'sluice serving');

  // An fsync failure leaves the disk in doubt: exit at once and let the supervisor restart
  // the broker, which recovers from what the disk holds (nothing unacknowledged is promised).
  running.broker.onFatal(() => process.exit(1));

  let signals = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    signals++;
    if (signals === 1) {
      log.info({ signal, graceMs: config.shutdownGraceMs }, 'shutting down gracefully (send again to force)');
      running.shutdown().then(
        () => process.exit(0),
        (error) => {
          log.fatal({ err: error }, 'shutdown failed');
          process.exit(1);
        },
      );
    } else {
      log.warn({ signal }, 'second signal: forcing shutdown');
      running.forceNow();
    }
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
});

program
  .command('bench')
  .description('benchmark: start a broker, producer and worker processes on a temp data file, run workloads W1-W4 (W5 with --workload W5 or --all), print median/min/max')
  .option('--workload <ids>', 'workloads to run, comma separated (W1 batch enqueue + drain, W2 single enqueues, W3 end to end, W4 latency at 500 jobs/s, W5 1M queued + restart)', parseWorkloads)
  .option('--all', 'run W1-W5')
  .option('--runs <n>', 'repetitions of each workload', positiveInteger('--runs'), 3)
  .option('--jobs <n>', 'jobs in W1-W3 (W4 sends jobs/10 at 500/s, W5 enqueues 20 x jobs)', positiveInteger('--jobs'), 50_000)
  .option('--synchronous <mode>', "the broker's SQLite synchronous mode: FULL, NORMAL, EXTRA, OFF", parseSynchronous, 'FULL')
  .option('--data-dir <dir>', 'directory for the temporary data files', tmpdir())
  .option('--json', 'print machine-readable results instead of the table')
  .action(async (options: { workload?: string[]; all?: boolean; runs: number; jobs: number; synchronous: string; dataDir: string; json?: boolean }) => {
    const { benchMain } = await import('./bench/run.js');
    const { DEFAULT_WORKLOADS, WORKLOAD_IDS } = await import('./bench/workloads.js');
    const workloads = options.all ? [...WORKLOAD_IDS] : ((options.workload ?? [...DEFAULT_WORKLOADS]) as (typeof WORKLOAD_IDS)[number][]);
    await benchMain({ workloads, runs: options.runs, jobs: options.jobs, synchronous: options.synchronous, dataDir: options.dataDir, json: options.json ?? false });
  });

function positiveInteger(flag: string): (raw: string) => number {
  return (raw) => {
    const n = Number(raw);
    if (!Number.isInteger(n) || n < 1) throw new Error(`${flag}: expected a positive integer, got ${JSON.stringify(raw)}`);
    return n;
  };
}

function parseSynchronous(raw: string): string {
  const mode = raw.toUpperCase();
  if (!['FULL', 'NORMAL', 'EXTRA', 'OFF'].includes(mode)) throw new Error(`--synchronous: expected FULL, NORMAL, EXTRA or OFF, got ${JSON.stringify(raw)}`);
  return mode;
}

/** "W1,w3" -> ['W1', 'W3'] in W1..W5 order; repeated flags add up. */
function parseWorkloads(raw: string, previous: string[] = []): string[] {
  const known = ['W1', 'W2', 'W3', 'W4', 'W5'];
  const ids = raw.split(',').map((s) => s.trim().toUpperCase()).filter(Boolean);
  for (const id of ids) if (!known.includes(id)) throw new Error(`--workload: unknown workload ${JSON.stringify(id)} (expected ${known.join(', ')})`);
  return known.filter((k) => previous.includes(k) || ids.includes(k));
}

program.parseAsync(process.argv).catch((error: Error) => {
  console.error(`sluice: ${error.message}`);
  process.exit(1);
});
