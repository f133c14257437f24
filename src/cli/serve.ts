import { Command, InvalidArgumentError, Option } from 'commander';
import { SETTINGS, resolveConfig, type BrokerConfig } from '../config.js';
import { examples } from './connection.js';
import { usageError } from './exit.js';

/** `sluice serve`: the broker itself. */
export function serveCommand(): Command {
  const serve = new Command('serve').description('run the broker (every setting also reads a SLUICE_* environment variable; flags win)');

  for (const s of SETTINGS) {
    const option = new Option(s.flag, s.description).default(s.default);
    // A flag without a value (--insecure): commander would take any value of its variable as
    // true (SLUICE_INSECURE=0 too), so the variable is parsed in the action, strictly.
    if (!s.flag.includes('<')) {
      serve.addOption(option);
      continue;
    }
    option.env(s.env);
    option.argParser((raw: string) => {
      try {
        return s.parse(raw);
      } catch (error) {
        // A bad setting is a usage error (exit 2), like any other bad flag value.
        throw new InvalidArgumentError((error as Error).message);
      }
    });
    serve.addOption(option);
  }
  examples(serve, 'sluice serve', 'sluice serve --data-file /var/lib/sluice/sluice.db --http-address 127.0.0.1:8080', 'SLUICE_LOG_LEVEL=debug sluice serve');

  serve.action(async (options: Partial<BrokerConfig>) => {
    // Loaded here, not at the top: client commands start faster without the broker's modules.
    const { createLogger } = await import('../log.js');
    const { startSluice } = await import('../sluice.js');
    for (const s of SETTINGS) {
      const raw = process.env[s.env];
      if (s.flag.includes('<') || raw === undefined || serve.getOptionValueSource(s.key) !== 'default') continue;
      try {
        (options as Record<string, unknown>)[s.key] = s.parse(raw);
      } catch (error) {
        throw usageError(`${s.env}: ${(error as Error).message}`);
      }
    }
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
    // SIGHUP re-reads the auth file and the TLS certificates (a failed reload keeps the old ones).
    process.on('SIGHUP', () => running.security.reload('SIGHUP'));
  });
  return serve;
}
