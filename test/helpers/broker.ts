import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { resolveConfig, type BrokerConfig } from '../../src/config.js';
import { startSluice, type RunningSluice } from '../../src/sluice.js';
import { createLogger } from '../../src/log.js';
import type { Clock } from '../../src/domain/clock.js';
import type { Db } from '../../src/store/database.js';
import type { Logger } from '../../src/log.js';
import { connect, type SluiceClients } from '../../clients/typescript/src/connect.js';
import { afterEach, beforeEach } from 'vitest';
import { Api } from './api.js';
import { TestClock } from './clock.js';

export interface TestBroker {
  running: RunningSluice;
  clients: SluiceClients;
  api: Api;
  dataFile: string;
  dir: string;
  /** Shuts the broker down and deletes its files. */
  close(): Promise<void>;
}

export function tempDir(prefix = 'sluice-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export function testConfig(dataFile: string, overrides: Partial<BrokerConfig> = {}): BrokerConfig {
  return resolveConfig(
    { dataFile, grpcAddress: '127.0.0.1:0', httpAddress: 'off', logLevel: process.env.SLUICE_TEST_LOG ? 'debug' : 'silent', ...overrides },
    {},
  );
}

/** A real broker in this process, on an ephemeral port, with a temp SQLite file. */
export async function startTestBroker(
  overrides: Partial<BrokerConfig> = {},
  options: { clock?: Clock; dir?: string; onDatabaseOpen?: (db: Db) => void; logger?: Logger } = {},
): Promise<TestBroker> {
  const dir = options.dir ?? tempDir();
  const dataFile = join(dir, 'sluice.db');
  const config = testConfig(dataFile, overrides);
  const running = await startSluice(config, { clock: options.clock, logger: options.logger ?? createLogger(config.logLevel), onDatabaseOpen: options.onDatabaseOpen });
  const clients = connect(running.address);
  let closed = false;
  return {
    running,
    clients,
    api: new Api(clients),
    dataFile,
    dir,
    async close() {
      if (closed) return;
      closed = true;
      clients.close();
      await running.shutdown(0);
      if (!options.dir) rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * A fresh broker for every test of the calling file, on a TestClock: its delay, lease and
 * retry timers fire only when the test moves the clock, so no assertion races real time.
 * Registers beforeEach/afterEach; read `broker` and `clock` inside tests.
 */
export function brokerPerTestOnTestClock(): { readonly broker: TestBroker; readonly clock: TestClock } {
  let current: { broker: TestBroker; clock: TestClock } | undefined;
  beforeEach(async () => {
    const clock = new TestClock();
    current = { broker: await startTestBroker({}, { clock }), clock };
  });
  afterEach(async () => {
    await current?.broker.close();
    current = undefined;
  });
  const started = () => {
    if (!current) throw new Error('the test broker starts in beforeEach: use it inside tests');
    return current;
  };
  return {
    get broker() {
      return started().broker;
    },
    get clock() {
      return started().clock;
    },
  };
}
