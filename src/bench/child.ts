/**
 * Entry point of a bench role process, forked by the orchestrator (role-process.ts). It loads
 * the client (Sluice's, or BullMQ's when started with the argument `bullmq`), says `loaded`,
 * runs the one task it is sent, replies `result` or `error`, exits.
 */
import type { ChildMessage, ParentMessage, Task } from './protocol.js';

type Roles = typeof import('./roles.js');

function send(message: ChildMessage): Promise<void> {
  return new Promise((resolve) => {
    if (!process.send || !process.connected) return resolve();
    process.send(message, undefined, {}, () => resolve());
  });
}

async function failAndExit(error: unknown): Promise<never> {
  const e = error instanceof Error ? error : new Error(String(error));
  process.stderr.write(`bench role failed: ${e.stack ?? e.message}\n`);
  await send({ type: 'error', message: e.message, ...(e.stack ? { stack: e.stack } : {}) });
  process.exit(1);
}

let onStop: (() => void) | undefined;
let stopRequested = false;

async function run(roles: Pick<Roles, 'enqueueBatch' | 'enqueueSingle' | 'enqueuePaced' | 'consume'>, task: Task): Promise<void> {
  switch (task.role) {
    case 'enqueue-batch':
      return send({ type: 'result', result: await roles.enqueueBatch(task) });
    case 'enqueue-single':
      return send({ type: 'result', result: await roles.enqueueSingle(task) });
    case 'enqueue-paced':
      return send({ type: 'result', result: await roles.enqueuePaced(task) });
    case 'consume': {
      const control = {
        ready: () => void send({ type: 'ready' }),
        progress: (completed: number) => void send({ type: 'progress', completed }),
        onStop: (stop: () => void) => {
          onStop = stop;
          if (stopRequested) stop();
        },
      };
      return send({ type: 'result', result: await roles.consume(task, control) });
    }
  }
}

if (!process.send) {
  process.stderr.write('src/bench/child.js is started by `sluice bench`, not by hand\n');
  process.exit(2);
}
process.on('uncaughtException', (e) => void failAndExit(e));
process.on('unhandledRejection', (e) => void failAndExit(e));
// The orchestrator owns our lifetime: it kills us on Ctrl-C, and if it goes away we go too.
process.on('SIGINT', () => {});
process.on('disconnect', () => process.exit(1));
const roles = process.argv[2] === 'bullmq' ? await import('./bullmq/roles.js') : await import('./roles.js');
let started = false;
process.on('message', (m: ParentMessage) => {
  if (m.type === 'stop') {
    stopRequested = true;
    onStop?.();
    return;
  }
  if (m.type !== 'start' || started) return void failAndExit(new Error(`unexpected message ${JSON.stringify(m)}`));
  started = true;
  run(roles, m.task).then(
    () => process.exit(0),
    (e) => void failAndExit(e),
  );
});
void send({ type: 'loaded' });
