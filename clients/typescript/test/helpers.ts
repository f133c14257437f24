import type { EventEmitter } from 'node:events';

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
