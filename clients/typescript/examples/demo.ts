// One command for the whole example: starts the worker as a child process, runs the producer,
// then stops the worker with SIGTERM (a graceful drain). Needs a broker: `npm start` at the repo root.
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { produce } from './producer.js';

const worker = fork(fileURLToPath(new URL('./worker.js', import.meta.url)), { stdio: 'inherit' });
try {
  const summary = await produce();
  console.log(`[demo] summary ${JSON.stringify(summary)}`);
} finally {
  worker.kill('SIGTERM');
  await new Promise((resolve) => worker.once('exit', resolve));
}
