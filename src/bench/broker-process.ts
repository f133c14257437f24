/**
 * The broker under test: `node dist/src/cli.js serve` in a child process, as in production.
 * Memory is read from /proc/<pid>/status (VmRSS sampled, VmHWM = the kernel's peak).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseGrant } from '../auth/grants.js';
import { createTokenLine } from '../auth/tokens.js';
import { Tail, track } from './children.js';
import { wallNow } from './protocol.js';

const CLI_PATH = fileURLToPath(new URL('../cli.js', import.meta.url));

/**
 * The node flags `npm start` gives the broker (package.json is the one place they are set;
 * the Dockerfile repeats them), so the bench measures the broker as it runs.
 */
const BROKER_NODE_FLAGS: string[] = (() => {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { scripts?: { start?: string } };
    const [command, ...rest] = (pkg.scripts?.start ?? '').split(/\s+/);
    if (command !== 'node') return [];
    const script = rest.findIndex((w) => !w.startsWith('-'));
    return script === -1 ? [] : rest.slice(0, script);
  } catch {
    return [];
  }
})();

export interface BrokerOptions {
  dataFile: string;
  synchronous: string;
  /** 0 picks a free port (a restart passes the previous one, so waiting clients find it). */
  port: number;
  startTimeoutMs?: number;
}

/** A /proc/<pid>/status field in bytes (the kernel reports kB), or undefined once the process is gone. */
export function procStatusBytes(pid: number, field: 'VmRSS' | 'VmHWM'): number | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status);
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

export class BrokerProcess {
  readonly address: string;
  readonly port: number;
  /** Rejects if the broker exits before `stop()`; race it against every wait on the broker. */
  readonly failure: Promise<never>;
  private stopping = false;
  private peakSampledRss = 0;
  private sampler: NodeJS.Timeout | undefined;
  private readonly exited: Promise<void>;

  private constructor(
    private readonly child: ChildProcess,
    readonly spawnedAt: number,
    readonly listeningAt: number,
    port: number,
    private readonly output: Tail,
    exited: Promise<void>,
    failure: Promise<never>,
  ) {
    this.port = port;
    this.address = `127.0.0.1:${port}`;
    this.exited = exited;
    this.failure = failure;
  }

  get pid(): number {
    return this.child.pid!;
  }

  /** Spawns the broker and resolves once it logs "gRPC listening". */
  static async start(options: BrokerOptions): Promise<BrokerProcess> {
    const args = [
      // As `npm start` and the Dockerfile run it.
      ...BROKER_NODE_FLAGS,
      // Extra node flags for the broker only, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof" to
      // profile it under a workload (docs/performance.md).
      ...(process.env.SLUICE_BENCH_BROKER_NODE_ARGS ?? '').split(' ').filter(Boolean),
      CLI_PATH,
      'serve',
      '--data-file',
      options.dataFile,
      '--grpc-address',
      `127.0.0.1:${options.port}`,
      '--http-address',
      'off',
      '--synchronous',
      options.synchronous,
      '--log-level',
      'info',
      ...benchAuthArgs(options.dataFile),
    ];
    // Settings come from flags only: SLUICE_* variables of the caller must not leak in.
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('SLUICE_')));
    const spawnedAt = wallNow();
    const child = spawn(process.execPath, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    track(child);
    const output = new Tail();
    let stopping: () => boolean = () => false;
    let listening: ((port: number, at: number) => void) | undefined;
    let partial = '';
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      output.push(chunk);
      if (!listening) return;
      partial += chunk;
      let nl: number;
      while ((nl = partial.indexOf('\n')) >= 0) {
        const line = partial.slice(0, nl);
        partial = partial.slice(nl + 1);
        let log: { msg?: string; port?: number };
        try {
          log = JSON.parse(line) as typeof log;
        } catch {
          continue; // not a log line
        }
        if (log.msg === 'gRPC listening') {
          listening(Number(log.port), wallNow());
          listening = undefined;
          partial = '';
          return;
        }
      }
    });
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => output.push(chunk));
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    const failure = new Promise<never>((_, reject) => {
      child.once('exit', (code, signal) => {
        if (stopping()) return;
        setImmediate(() => reject(new Error(`broker (pid ${child.pid}) exited unexpectedly (code ${code}, signal ${signal})\n--- broker output ---\n${output.toString()}`)));
      });
      child.once('error', (e) => reject(new Error(`broker: ${e.message}`)));
    });
    failure.catch(() => {});

    const timeoutMs = options.startTimeoutMs ?? 120_000;
    let timer: NodeJS.Timeout | undefined;
    try {
      const [port, at] = await Promise.race([
        new Promise<[number, number]>((resolve) => (listening = (p, t) => resolve([p, t]))),
        failure,
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`broker did not log "gRPC listening" within ${timeoutMs} ms\n${output.toString()}`)), timeoutMs);
        }),
      ]);
      const broker = new BrokerProcess(child, spawnedAt, at, port, output, exited, failure);
      stopping = () => broker.stopping;
      broker.startSampling();
      return broker;
    } catch (error) {
      child.kill('SIGKILL');
      throw error;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Resident memory now, in bytes. */
  rss(): number {
    return procStatusBytes(this.pid, 'VmRSS') ?? 0;
  }

  /** Peak resident memory since start: the kernel's high-water mark, or the sampled peak. */
  peakRss(): number {
    return Math.max(this.peakSampledRss, procStatusBytes(this.pid, 'VmHWM') ?? 0);
  }

  /** Waits for `work`, failing at once if the broker dies meanwhile. */
  guard<T>(work: Promise<T>): Promise<T> {
    return Promise.race([work, this.failure]);
  }

  /** SIGTERM (graceful shutdown) and wait for the exit; SIGKILL after `timeoutMs`. */
  async stop(timeoutMs = 60_000): Promise<void> {
    this.stopSampling();
    if (this.stopping) return this.exited;
    this.stopping = true;
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), timeoutMs);
    await this.exited;
    clearTimeout(timer);
  }

  kill(): void {
    this.stopSampling();
    this.stopping = true;
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
  }

  private startSampling(): void {
    const sample = () => {
      this.peakSampledRss = Math.max(this.peakSampledRss, this.rss());
    };
    sample();
    this.sampler = setInterval(sample, 100);
    this.sampler.unref();
  }

  private stopSampling(): void {
    if (this.sampler) clearInterval(this.sampler);
    this.sampler = undefined;
  }
}

/**
 * SLUICE_BENCH_AUTH=1 measures the auth check on the hot path: the broker gets an auth file
 * with one token (produce, consume, admin), and the role processes (which inherit this
 * process's environment) send it.
 */
function benchAuthArgs(dataFile: string): string[] {
  if (process.env.SLUICE_BENCH_AUTH !== '1') return [];
  const { token, line } = createTokenLine('bench', ['produce', 'consume', 'admin'].map(parseGrant));
  const file = join(dirname(dataFile), 'bench-auth');
  writeFileSync(file, `${line}\n`, { mode: 0o600 });
  process.env.SLUICE_BENCH_TOKEN = token;
  process.stderr.write('bench: broker with --auth-file (one token: produce consume admin); clients send it\n');
  return ['--auth-file', file];
}
