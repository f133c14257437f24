/**
 * Every process the bench starts (broker, producers, workers) is registered here, so that
 * an error, Ctrl-C or SIGTERM kills them by pid and no broker is left running.
 */
import type { ChildProcess } from 'node:child_process';

const live = new Set<ChildProcess>();
let installed = false;

export function track(child: ChildProcess): void {
  live.add(child);
  child.once('exit', () => live.delete(child));
}

/** SIGKILLs every tracked child still running. Synchronous: safe in an 'exit' handler. */
export function killAll(): void {
  for (const child of live) {
    if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
      try {
        process.kill(child.pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
  }
  live.clear();
}

/** Kills the children on exit and on SIGINT/SIGTERM (then runs `onSignal`, e.g. temp cleanup). */
export function installCleanup(onSignal: () => void): void {
  if (installed) return;
  installed = true;
  process.once('exit', killAll);
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      process.stderr.write(`\nbench: ${signal}, stopping children\n`);
      killAll();
      onSignal();
      process.exit(signal === 'SIGINT' ? 130 : 143);
    });
  }
}

/** Keeps the last `max` characters of a stream, for error messages. */
export class Tail {
  private text = '';
  constructor(private readonly max = 8_000) {}
  push(chunk: string): void {
    this.text += chunk;
    if (this.text.length > 2 * this.max) this.text = this.text.slice(-this.max);
  }
  toString(): string {
    return this.text.slice(-this.max);
  }
}
