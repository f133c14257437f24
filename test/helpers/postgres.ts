/**
 * A throwaway PostgreSQL cluster for tests: `initdb` + `pg_ctl` in a temp directory, unix socket
 * only (no TCP listener), trust authentication, superuser `sluice`, fsync on. The work is done by
 * scripts/pg-cluster.sh (one implementation for tests, benches and people), which also handles
 * running as root (initdb refuses root: the cluster then belongs to `postgres` or `nobody`).
 *
 * Where PostgreSQL is required: `SLUICE_TEST_POSTGRES=1` (set by .ci/run, which installs Debian's
 * `postgresql` when missing) or the server binaries are found. Tests that need a cluster check
 * `postgresRequired()`; a machine without PostgreSQL runs the SQLite suite only.
 *
 *   const pg = await startPostgres();           // ~1 s: initdb + start
 *   const url = await pg.createDatabase('t1');  // an empty database per test file or test
 *   ...
 *   await pg.stop();                             // fast shutdown, directory removed
 */
import { execFile, execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import pg from 'pg';
import { migratePostgres } from '../../src/store/postgres/migrations.js';

const run = promisify(execFile);
const SCRIPT = fileURLToPath(new URL('../../scripts/pg-cluster.sh', import.meta.url));

export interface PostgresCluster {
  /** The cluster directory: data/, the socket, server.log. */
  readonly dir: string;
  /** The directory holding the unix socket (node-postgres `host`). */
  readonly socketDir: string;
  /** Names the socket file only (`.s.PGSQL.<port>`); nothing listens on TCP. */
  readonly port: number;
  readonly user: string;
  /** Connection string for the `postgres` database. */
  readonly url: string;
  urlFor(database: string): string;
  /** A connected client (caller ends it). */
  connect(database?: string): Promise<pg.Client>;
  /** Creates an empty database and returns its connection string. */
  createDatabase(name: string): Promise<string>;
  /** Fast shutdown, then the directory is removed. Idempotent. */
  stop(): Promise<void>;
}

export interface StartPostgresOptions {
  /** Server settings (`-c name=value`), e.g. { synchronous_commit: 'off' } for a bench variant. */
  settings?: Record<string, string>;
  port?: number;
}

let binDirCache: string | null | undefined;

/** Where initdb and pg_ctl are, or undefined when PostgreSQL's server is not installed. */
export function postgresBinDir(): string | undefined {
  if (binDirCache === undefined) {
    try {
      binDirCache = execFileSync('bash', [SCRIPT, 'bindir'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim() || null;
    } catch {
      binDirCache = null;
    }
  }
  return binDirCache ?? undefined;
}

/** True when the PostgreSQL tests must run here (CI sets SLUICE_TEST_POSTGRES=1 and installs it). */
export function postgresRequired(): boolean {
  return process.env.SLUICE_TEST_POSTGRES === '1' || postgresBinDir() !== undefined;
}

/** Clusters still running, stopped synchronously if the process exits without `stop()`. */
const running = new Set<string>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const dir of running) {
      spawnSync('bash', [SCRIPT, 'stop', dir], { stdio: 'ignore' });
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

/**
 * vitest ends its worker processes with SIGTERM (then SIGKILL after 500 ms), which skips the
 * 'exit' hook above, so a cluster left to it (sharedPostgres) outlived every test run. A
 * detached watchdog holds the read end of a pipe from this process; the pipe closes however
 * this process ends, and the watchdog then stops the cluster and removes its directory (both
 * no-ops when stop() or the exit hook got there first).
 */
function reapWhenGone(dir: string): void {
  const watchdog = spawn('bash', ['-c', 'cat >/dev/null; bash "$1" stop "$2" >/dev/null 2>&1; rm -rf "$2"', 'pg-reaper', SCRIPT, dir], {
    detached: true,
    stdio: ['pipe', 'ignore', 'ignore'],
  });
  // Neither the child nor the pipe keeps this process alive.
  watchdog.unref();
  (watchdog.stdin as unknown as { unref(): void }).unref();
}

export async function startPostgres(options: StartPostgresOptions = {}): Promise<PostgresCluster> {
  if (postgresBinDir() === undefined) {
    throw new Error(
      'PostgreSQL server binaries (initdb, pg_ctl) not found: install them (Debian: apt-get install postgresql) ' +
        'or put their directory first on PATH; see scripts/pg-cluster.sh',
    );
  }
  const port = options.port ?? 5432;
  // As root the cluster runs as another user, who must reach the directory: /tmp is world-traversable.
  const parent = process.getuid?.() === 0 ? '/tmp' : tmpdir();
  const dir = mkdtempSync(join(parent, 'sluice-pg-'));
  // pg-cluster.sh appends each word after the port to the server's options: one "-c name=value" per word.
  const settings = Object.entries(options.settings ?? {}).map(([name, value]) => `-c ${name}=${value}`);
  installExitHook();
  running.add(dir);
  reapWhenGone(dir);
  try {
    await run('bash', [SCRIPT, 'start', dir, String(port), ...settings]);
  } catch (error) {
    spawnSync('bash', [SCRIPT, 'stop', dir], { stdio: 'ignore' });
    running.delete(dir);
    rmSync(dir, { recursive: true, force: true });
    const e = error as { stderr?: string; message: string };
    throw new Error(`could not start PostgreSQL in ${dir}: ${e.stderr?.trim() || e.message}`);
  }
  const urlFor = (database: string) => `postgresql://sluice@/${encodeURIComponent(database)}?host=${encodeURIComponent(dir)}&port=${port}`;
  const connect = async (database = 'postgres') => {
    const client = new pg.Client({ host: dir, port, user: 'sluice', database });
    await client.connect();
    return client;
  };
  let stopped: Promise<void> | undefined;
  return {
    dir,
    socketDir: dir,
    port,
    user: 'sluice',
    url: urlFor('postgres'),
    urlFor,
    connect,
    async createDatabase(name) {
      if (!/^[a-z_][a-z0-9_]*$/.test(name)) throw new Error(`database name must be a lowercase identifier: ${name}`);
      const admin = await connect();
      try {
        await admin.query(`CREATE DATABASE ${name}`);
      } finally {
        await admin.end();
      }
      return urlFor(name);
    },
    stop() {
      stopped ??= (async () => {
        try {
          await run('bash', [SCRIPT, 'stop', dir]);
        } finally {
          running.delete(dir);
          rmSync(dir, { recursive: true, force: true });
        }
      })();
      return stopped;
    },
  };
}

let shared: Promise<PostgresCluster> | undefined;

/**
 * One cluster per test process, started on first use and stopped when the process exits; give
 * each test file its own database (`createDatabase`) so files never see each other's rows.
 */
export function sharedPostgres(): Promise<PostgresCluster> {
  shared ??= startPostgres();
  return shared;
}

/** A database of its own for one test file, on the shared cluster (see testDatabase). */
export interface TestDatabase {
  readonly url: string;
  /** A connection used for setup and checks (migrations, seeding, raw queries). */
  readonly admin: pg.Client;
  /** A new connection, as another broker process would hold; ended by close(). */
  connect(): Promise<pg.Client>;
  /** A new schema migrated to the latest version, so tests in the file never see each other's rows. */
  freshSchema(): Promise<string>;
  /** Ends every connection it opened. */
  close(): Promise<void>;
}

/** Creates `<prefix>_<pid>_<n>` on the shared cluster; call close() in afterAll. */
export async function testDatabase(prefix: string): Promise<TestDatabase> {
  const cluster = await sharedPostgres();
  const url = await cluster.createDatabase(`${prefix}_${process.pid}_${Date.now() % 1e6}`);
  const clients: pg.Client[] = [];
  const connect = async (): Promise<pg.Client> => {
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    clients.push(client);
    return client;
  };
  const admin = await connect();
  let schemas = 0;
  return {
    url,
    admin,
    connect,
    async freshSchema() {
      const schema = `${prefix}_${++schemas}`;
      await migratePostgres(admin, { schema });
      return schema;
    },
    async close() {
      await Promise.all(clients.splice(0).map((c) => c.end()));
    },
  };
}
