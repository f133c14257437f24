#!/usr/bin/env node
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

program.parseAsync(process.argv).catch((error: Error) => {
  console.error(`sluice: ${error.message}`);
  process.exit(1);
});
