/**
 * The redis-server behind BullMQ in `--compare bullmq`: a fresh server per run on a temp dir,
 * AOF on with `appendfsync everysec` (Redis's recommended durable setting: an acknowledged
 * write can be lost for up to about a second on power loss), no RDB snapshots, listening on
 * 127.0.0.1 only, stopped by its pid.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { Redis } from 'ioredis';
import { procStatusBytes } from '../broker-process.js';
import { Tail, track } from '../children.js';
import { wallNow } from '../protocol.js';

/** The server binary: $SLUICE_BENCH_REDIS_SERVER or redis-server on PATH (scripts/install-redis.sh installs it). */
function redisServerPath(): string {
  return process.env.SLUICE_BENCH_REDIS_SERVER || 'redis-server';
}

/** A port free right now on 127.0.0.1 (redis-server cannot pick one itself: port 0 turns TCP off). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

export class RedisProcess {
  private stopping = false;
  private peakSampledRss = 0;
  private sampler: NodeJS.Timeout | undefined;
  readonly failure: Promise<never>;
  private readonly exited: Promise<void>;

  private constructor(
    private readonly child: ChildProcess,
    readonly port: number,
    private readonly output: Tail,
    /** Wall-clock times of the spawn and of "Ready to accept connections" (after loading the AOF). */
    readonly spawnedAt: number,
    readonly readyAt: number,
  ) {
    this.exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    this.failure = new Promise<never>((_, reject) => {
      child.once('exit', (code, signal) => {
        if (!this.stopping) reject(new Error(`redis-server (pid ${child.pid}) exited unexpectedly (code ${code}, signal ${signal})\n${this.output.toString()}`));
      });
    });
    this.failure.catch(() => {});
    const sample = () => (this.peakSampledRss = Math.max(this.peakSampledRss, this.rss()));
    sample();
    this.sampler = setInterval(sample, 100);
    this.sampler.unref();
  }

  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  get pid(): number {
    return this.child.pid!;
  }

  /** Starts redis-server with its data in `dir` and resolves once it accepts connections. */
  static async start(dir: string): Promise<RedisProcess> {
    mkdirSync(dir, { recursive: true });
    // The free port can be taken between the probe and the bind: try again a few times.
    for (let attempt = 1; ; attempt++) {
      try {
        return await RedisProcess.startOn(dir, await freePort());
      } catch (error) {
        if (attempt >= 3 || !/Address already in use/i.test(String(error))) throw error;
      }
    }
  }

  private static async startOn(dir: string, port: number): Promise<RedisProcess> {
    const args = ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--appendonly', 'yes', '--appendfsync', 'everysec', '--save', '', '--daemonize', 'no', '--logfile', ''];
    const spawnedAt = wallNow();
    const child = spawn(redisServerPath(), args, { stdio: ['ignore', 'pipe', 'pipe'] });
    track(child);
    const output = new Tail();
    child.stderr!.setEncoding('utf8').on('data', (c: string) => output.push(c));
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`redis-server did not get ready within 30 s\n${output.toString()}`)), 30_000);
      child.stdout!.setEncoding('utf8').on('data', (c: string) => {
        output.push(c);
        if (output.toString().includes('Ready to accept connections')) {
          clearTimeout(timer);
          resolve();
        }
      });
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`redis-server exited during start (code ${code}, signal ${signal})\n${output.toString()}`));
      });
      child.once('error', (e) => {
        clearTimeout(timer);
        const hint = (e as NodeJS.ErrnoException).code === 'ENOENT' ? ' (install it: scripts/install-redis.sh, or set SLUICE_BENCH_REDIS_SERVER)' : '';
        reject(new Error(`cannot start ${redisServerPath()}: ${e.message}${hint}`));
      });
    });
    return new RedisProcess(child, port, output, spawnedAt, wallNow());
  }

  /** Resident memory of redis-server now, in bytes. */
  rss(): number {
    return procStatusBytes(this.pid, 'VmRSS') ?? 0;
  }

  peakRss(): number {
    return Math.max(this.peakSampledRss, procStatusBytes(this.pid, 'VmHWM') ?? 0);
  }

  /** `INFO memory` used_memory: what Redis's allocator holds for data and overhead, in bytes. */
  async usedMemory(): Promise<number> {
    const client = new Redis({ host: '127.0.0.1', port: this.port, lazyConnect: true });
    try {
      await client.connect();
      const info = await client.info('memory');
      const m = /^used_memory:(\d+)/m.exec(info);
      if (!m) throw new Error('INFO memory has no used_memory');
      return Number(m[1]);
    } finally {
      client.disconnect();
    }
  }

  guard<T>(work: Promise<T>): Promise<T> {
    return Promise.race([work, this.failure]);
  }

  /** SIGTERM (redis-server flushes the AOF and exits) and wait; SIGKILL after `timeoutMs`. */
  async stop(timeoutMs = 30_000): Promise<void> {
    if (this.sampler) clearInterval(this.sampler);
    this.stopping = true;
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), timeoutMs);
    await this.exited;
    clearTimeout(timer);
  }
}
