import type { BrokerConfig } from './config.js';
import { Broker, type BrokerOptions } from './broker/broker.js';
import { systemClock, type Clock } from './domain/clock.js';
import { createLogger, type Logger } from './log.js';
import { startGrpcServer, type GrpcServer } from './grpc/server.js';
import { startHttpServer, type HttpServer } from './http/http-server.js';
import { createSecurity, type Security } from './auth/security.js';

export interface RunningSluice {
  broker: Broker;
  grpcPort: number;
  /** undefined when HTTP is off. */
  httpPort: number | undefined;
  /** host:port that clients dial. */
  address: string;
  /** Auth and TLS: `security.reload('SIGHUP')`, and their 'reloaded' events for tests. */
  security: Security;
  /**
   * Two-phase, idempotent shutdown: drain (health NOT_SERVING, `drain` to workers, settles
   * accepted until graceMs) then stop (release what is left, close the store). Calling
   * `forceNow()` while draining skips the rest of the grace period.
   */
  shutdown(graceMs?: number): Promise<void>;
  forceNow(): void;
}

export interface StartOptions extends BrokerOptions {
  clock?: Clock;
  logger?: Logger;
}

/** Starts a broker with its gRPC and HTTP listeners. */
export async function startSluice(config: BrokerConfig, options: StartOptions = {}): Promise<RunningSluice> {
  const log = options.logger ?? createLogger(config.logLevel);
  // Before the store opens: a refused or broken security setup starts nothing.
  const security = createSecurity(config, log);
  const broker = new Broker(config, options.clock ?? systemClock, log, options);
  broker.start();
  let grpc: GrpcServer;
  let http: HttpServer | undefined;
  try {
    grpc = await startGrpcServer(broker, config.grpcAddress, log, security);
    if (config.httpAddress !== 'off') http = await startHttpServer(broker, config.httpAddress, log, security);
  } catch (error) {
    security.close();
    await broker.stop();
    throw error;
  }
  broker.onStateChange((state) => grpc.setServing(state === 'serving'));
  grpc.setWritable(!broker.writeHealth.degraded);
  broker.writeHealth.onChange((reason) => grpc.setWritable(!reason));

  let shuttingDown: Promise<void> | undefined;
  let force: (() => void) | undefined;
  const host = config.grpcAddress.slice(0, config.grpcAddress.lastIndexOf(':'));
  return {
    broker,
    grpcPort: grpc.port,
    httpPort: http?.port,
    security,
    address: `${host === '0.0.0.0' || host === '' ? '127.0.0.1' : host}:${grpc.port}`,
    forceNow: () => force?.(),
    shutdown(graceMs = config.shutdownGraceMs) {
      shuttingDown ??= (async () => {
        const forced = new Promise<void>((resolve) => (force = resolve));
        await Promise.race([broker.drain(graceMs), forced]);
        await broker.stop();
        security.close();
        grpc.server.forceShutdown();
        if (http) {
          const closed = new Promise<void>((resolve) => http!.server.close(() => resolve()));
          http.server.closeAllConnections();
          await closed;
        }
        log.info('broker stopped');
      })();
      return shuttingDown;
    },
  };
}
