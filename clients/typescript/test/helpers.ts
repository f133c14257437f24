import { spawn, type ChildProcess } from 'node:child_process';
import type { EventEmitter } from 'node:events';
import { fileURLToPath } from 'node:url';
import { assertBuildFresh } from '../../../test/helpers/child-broker.js';
import { withTimeout } from '../../../test/helpers/api.js';

/**
 * Collects an emitter's events (their argument lists) until `done` holds for what was
 * collected; rejects after `timeoutMs` with what arrived so far.
 */
export function collectUntil(emitter: EventEmitter<any>, event: string, done: (items: unknown[][]) => boolean, timeoutMs = 10_000): Promise<unknown[][]> {
  const items: unknown[][] = [];
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      emitter.off(event, on);
      reject(new Error(`timed out waiting for "${event}" events (have ${items.length})`));
    }, timeoutMs);
    const on = (...args: unknown[]) => {
      items.push(args);
      if (done(items)) {
        clearTimeout(timer);
        emitter.off(event, on);
        resolve(items);
      }
    };
    emitter.on(event, on);
  });
}

/** A resolvable promise, for handlers that a test finishes at a moment it chooses. */
export function gate<T = void>(): { promise: Promise<T>; open(value: T): void } {
  let open!: (value: T) => void;
  const promise = new Promise<T>((resolve) => (open = resolve));
  return { promise, open };
}

export interface WorkerEvent {
  event: string;
  id?: string;
  attempt?: number;
  reason?: string;
  message?: string;
}

/** The worker fixture running in a child process; its JSON-line events are collected. */
export interface ChildWorker {
  process: ChildProcess;
  events: WorkerEvent[];
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  waitFor(match: (e: WorkerEvent) => boolean, what: string, timeoutMs?: number): Promise<WorkerEvent>;
  stderr(): string;
}

const live = new Set<ChildProcess>();

export function startChildWorker(env: Record<string, string>): ChildWorker {
  assertBuildFresh();
  const script = fileURLToPath(new URL('./fixtures/worker-process.mjs', import.meta.url));
  const child = spawn(process.execPath, [script], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  live.add(child);
  const events: WorkerEvent[] = [];
  let waiters: { match: (e: WorkerEvent) => boolean; resolve: (e: WorkerEvent) => void }[] = [];
  let partial = '';
  let err = '';
  child.stderr!.setEncoding('utf8').on('data', (c: string) => (err += c));
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    partial += chunk;
    let nl: number;
    while ((nl = partial.indexOf('\n')) >= 0) {
      const e = JSON.parse(partial.slice(0, nl)) as WorkerEvent;
      partial = partial.slice(nl + 1);
      events.push(e);
      waiters = waiters.filter((w) => (w.match(e) ? (w.resolve(e), false) : true));
    }
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => {
      live.delete(child);
      resolve({ code, signal });
    }),
  );
  return {
    process: child,
    events,
    exited,
    stderr: () => err,
    waitFor(match, what, timeoutMs = 10_000) {
      const seen = events.find(match);
      if (seen) return Promise.resolve(seen);
      return withTimeout(new Promise<WorkerEvent>((resolve) => waiters.push({ match, resolve })), timeoutMs, `${what} (worker stderr: ${err.slice(-2000)})`);
    },
  };
}

/** SIGKILLs child workers a test left running (use in afterEach). */
export async function killChildWorkers(): Promise<void> {
  const all = [...live];
  live.clear();
  await Promise.all(all.map((c) => new Promise((resolve) => (c.exitCode !== null || c.signalCode !== null ? resolve(null) : (c.once('exit', resolve), c.kill('SIGKILL'))))));
}
