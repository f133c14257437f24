/**
 * Entry point of a bench role process, forked by the orchestrator (role-process.ts). It loads
 * the client, says `loaded`, runs the one task it is sent, replies `result` or `error`, exits.
 */
import type { ChildMessage, ParentMessage, Task } from './protocol.js';
import { consume, enqueueBatch, enqueuePaced, enqueueSingle } from './roles.js';

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

async function run(task: Task): Promise<void> {
  switch (task.role) {
    case 'enqueue-batch':
      return send({ type: 'result', result: await enqueueBatch(task) });
    case 'enqueue-single':
      return send({ type: 'result', result: await enqueueSingle(task) });
    case 'enqueue-paced':
      return send({ type: 'result', result: await enqueuePaced(task) });
    case 'consume':
      return send({ type: 'result', result: await consume(task, () => void send({ type: 'ready' })) });
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
process.once('message', (m: ParentMessage) => {
  if (m.type !== 'start') return void failAndExit(new Error(`unexpected message ${JSON.stringify(m)}`));
  run(m.task).then(
    () => process.exit(0),
    (e) => void failAndExit(e),
  );
});
void send({ type: 'loaded' });
