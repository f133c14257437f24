/**
 * A broker in a CHILD PROCESS (`node dist/src/cli.js serve ...`), for tests that need real
 * signals: SIGKILL (crash), SIGTERM (graceful shutdown), process exit codes.
 *
 * It runs the COMPILED build. `npm test` builds first (package.json `pretest`), so dist/ is
 * fresh there; when running single files with `npx vitest run test/<file>`, run
 * `npm run build` first. `startChildBroker` refuses to start (with that advice) when a
 * source file is newer than its compiled output, so a stale build never tests old code.
 *
 * Call `killChildBrokers()` in afterEach: it SIGKILLs whatever a test left running.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { connect, type SluiceClients } from '../../clients/typescript/src/connect.js';
import { Api, withTimeout } from './api.js';

/** Repository root, resolved from this file so tests work from any cwd. */
export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const CLI_PATH = join(REPO_ROOT, 'dist', 'src', 'cli.js');

/** One pino JSON line from the child's stdout. */
export interface LogLine {
  level: number;
  msg: string;
  [key: string]: unknown;
}

export interface ChildExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface ChildBrokerOptions {
  dataFile: string;
  /** Extra CLI flags, e.g. ['--shutdown-grace-ms', '500']. */
  args?: string[];
  /** Pass false to run with `--http-address off`. Default true (ephemeral port). */
  http?: boolean;
  /** How long to wait for the listeners to come up. */
  startTimeoutMs?: number;
  /** Extra environment for the child (test hooks such as SLUICE_TEST_CRASH_AT_FIRE). */
  env?: Record<string, string>;
  /** Flags for node itself, before the script (e.g. V8 flags a measurement needs). */
  nodeArgs?: string[];
}

export interface ChildBroker {
  readonly process: ChildProcess;
  readonly pid: number;
  /** host:port of the gRPC listener. */
  readonly address: string;
  readonly grpcPort: number;
  /** undefined with `http: false`. */
  readonly httpPort: number | undefined;
  /** Generated clients on one channel to this broker (closed by `close()`). */
  readonly clients: SluiceClients;
  readonly api: Api;
  /** Resolves when the process has exited. */
  readonly exited: Promise<ChildExit>;
  /** Set once the process has exited. */
  readonly exit: ChildExit | undefined;
  /** Parsed JSON log lines, in order. */
  readonly logs: LogLine[];
  /** Raw captured output. */
  readonly stdout: string;
  readonly stderr: string;
  kill(signal: NodeJS.Signals): boolean;
  /** Resolves with the first log line (past or future) that `match` accepts. */
  waitForLog(match: (line: LogLine) => boolean, what: string, timeoutMs?: number): Promise<LogLine>;
  /** Closes the clients and SIGKILLs the process if it still runs; awaits its exit. */
  close(): Promise<ChildExit>;
}

const live = new Set<ChildBroker>();
/**
 * Children still starting (not yet listening). A test that times out while awaiting
 * `startChildBroker` never gets a handle, so `killChildBrokers` ends these too: otherwise
 * the child would come up after the test's afterEach and run until the test process exits.
 */
const starting = new Map<ChildProcess, Promise<ChildExit>>();

/** SIGKILLs every child broker still running or still starting (use in afterEach). */
export async function killChildBrokers(): Promise<void> {
  const all = [...live];
  live.clear();
  const pending = [...starting];
  starting.clear();
  for (const [child] of pending) child.kill('SIGKILL');
  await Promise.all([...all.map((c) => c.close()), ...pending.map(([, exited]) => exited)]);
}

// Last resort if a test process dies without running its hooks.
process.once('exit', () => {
  for (const c of live) c.process.kill('SIGKILL');
  for (const child of starting.keys()) child.kill('SIGKILL');
});

let freshnessChecked = false;

/** Throws when dist/ is missing or older than a source file it is built from. */
export function assertBuildFresh(): void {
  if (freshnessChecked) return;
  if (!existsSync(CLI_PATH)) throw new Error(`${CLI_PATH} is missing: run \`npm run build\` before child-process tests (npm test does it)`);
  const stale: string[] = [];
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts')) {
        const rel = relative(REPO_ROOT, path);
        const out = join(REPO_ROOT, 'dist', rel.replace(/\.ts$/, '.js'));
        if (!existsSync(out) || statSync(out).mtimeMs < statSync(path).mtimeMs) stale.push(rel);
      }
    }
  };
  walk(join(REPO_ROOT, 'src'));
  walk(join(REPO_ROOT, 'clients', 'typescript', 'src'));
  if (stale.length > 0) {
    throw new Error(`dist/ is older than ${stale.slice(0, 5).join(', ')}${stale.length > 5 ? ' ...' : ''}: run \`npm run build\` (npm test does it)`);
  }
  freshnessChecked = true;
}

/** Starts `sluice serve` in a child process on ephemeral ports and waits until it listens. */
export async function startChildBroker(options: ChildBrokerOptions): Promise<ChildBroker> {
  assertBuildFresh();
  const http = options.http ?? true;
  const args = [
    ...(options.nodeArgs ?? []),
    CLI_PATH,
    'serve',
    '--data-file',
    options.dataFile,
    '--grpc-address',
    '127.0.0.1:0',
    '--http-address',
    http ? '127.0.0.1:0' : 'off',
    '--log-level',
    'info',
    ...(options.args ?? []),
  ];
  // Settings come from flags only: a SLUICE_* variable in the test environment must not leak in.
  const env = { ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('SLUICE_'))), ...options.env };
  const child = spawn(process.execPath, args, { cwd: REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });

  const logs: LogLine[] = [];
  let stdout = '';
  let stderr = '';
  let partial = '';
  let exit: ChildExit | undefined;
  let waiters: { match: (l: LogLine) => boolean; resolve: (l: LogLine) => void; reject: (e: Error) => void }[] = [];

  const describe = () => `\n--- stdout ---\n${stdout.slice(-4000)}\n--- stderr ---\n${stderr.slice(-4000)}`;

  const exited = new Promise<ChildExit>((resolve) => {
    child.on('exit', (code, signal) => {
      exit = { code, signal };
      resolve(exit);
      const pending = waiters;
      waiters = [];
      for (const w of pending) w.reject(new Error(`broker exited (code ${code}, signal ${signal}) before the awaited log line${describe()}`));
    });
  });
  child.stdout!.setEncoding('utf8');
  child.stdout!.on('data', (chunk: string) => {
    stdout += chunk;
    partial += chunk;
    let nl: number;
    while ((nl = partial.indexOf('\n')) >= 0) {
      const text = partial.slice(0, nl);
      partial = partial.slice(nl + 1);
      if (!text.trim()) continue;
      let line: LogLine;
      try {
        line = JSON.parse(text) as LogLine;
      } catch {
        continue; // not a log line
      }
      logs.push(line);
      const pending = waiters;
      waiters = [];
      for (const w of pending) {
        if (w.match(line)) w.resolve(line);
        else waiters.push(w);
      }
    }
  });
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (chunk: string) => (stderr += chunk));

  const waitForLog = (match: (line: LogLine) => boolean, what: string, timeoutMs = 30_000): Promise<LogLine> => {
    const seen = logs.find(match);
    if (seen) return Promise.resolve(seen);
    if (exit) return Promise.reject(new Error(`broker already exited (code ${exit.code}, signal ${exit.signal}); no log line for ${what}${describe()}`));
    let waiter!: (typeof waiters)[number];
    const p = new Promise<LogLine>((resolve, reject) => {
      waiter = { match, resolve, reject };
      waiters.push(waiter);
    });
    return withTimeout(p, timeoutMs, `${what}${describe()}`).finally(() => {
      waiters = waiters.filter((w) => w !== waiter);
    });
  };

  const startTimeout = options.startTimeoutMs ?? 60_000;
  let grpcLine: LogLine;
  let httpLine: LogLine | undefined;
  starting.set(child, exited);
  try {
    grpcLine = await waitForLog((l) => l.msg === 'gRPC listening', 'the child broker to log "gRPC listening"', startTimeout);
    if (http) httpLine = await waitForLog((l) => l.msg === 'HTTP listening', 'the child broker to log "HTTP listening"', startTimeout);
  } catch (error) {
    starting.delete(child);
    child.kill('SIGKILL');
    await exited;
    throw error;
  }
  if (!starting.delete(child)) {
    // killChildBrokers ran while this child was starting (the test had timed out): it is dead.
    await exited;
    throw new Error('the child broker was killed by killChildBrokers while it was starting');
  }
  const grpcPort = Number(grpcLine.port);
  const address = `127.0.0.1:${grpcPort}`;
  const clients = connect(address);
  let closing: Promise<ChildExit> | undefined;

  const broker: ChildBroker = {
    process: child,
    pid: child.pid!,
    address,
    grpcPort,
    httpPort: httpLine ? Number(httpLine.port) : undefined,
    clients,
    api: new Api(clients),
    exited,
    get exit() {
      return exit;
    },
    logs,
    get stdout() {
      return stdout;
    },
    get stderr() {
      return stderr;
    },
    kill: (signal) => (exit ? false : child.kill(signal)),
    waitForLog,
    close() {
      closing ??= (async () => {
        live.delete(broker);
        clients.close();
        if (!exit) child.kill('SIGKILL');
        return exited;
      })();
      return closing;
    },
  };
  live.add(broker);
  return broker;
}
