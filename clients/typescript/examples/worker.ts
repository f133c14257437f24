// Runs handlers for both queues until SIGTERM/SIGINT, then drains: in-flight jobs finish and
// are acknowledged, anything still running after 10 s is handed back to the broker.
import { NonRetryableError, Worker } from '@sluice/client';
import { setTimeout as sleep } from 'node:timers/promises';
import { address, type Jobs } from './jobs.js';

const worker = new Worker<Jobs, 'email' | 'pdf'>({
  address,
  queues: ['email', 'pdf'],
  concurrency: 4,
  shutdownTimeoutMs: 10_000,
  handlers: {
    // Welcome emails are quick and important (enqueued at high priority).
    welcome: async (job) => {
      await sleep(20, undefined, { signal: job.signal });
      return { sentTo: job.payload.to };
    },
  },
  // PDF exports are slow (low priority); report 13 is broken and report 7 is flaky.
  handler: async (job) => {
    if (job.queue !== 'pdf') throw new NonRetryableError(`unexpected job type ${job.type}`);
    const { reportId, pages } = job.payload;
    if (reportId === 13) throw new NonRetryableError('report 13 does not exist');
    if (reportId === 7 && job.attempt < 3) throw new Error(`renderer timed out (attempt ${job.attempt})`);
    for (let page = 1; page <= pages; page++) {
      await sleep(10, undefined, { signal: job.signal });
      await job.progress({ page, of: pages });
    }
    return { url: `https://files.example.com/report-${reportId}.pdf` };
  },
});

worker.on('ready', () => console.log(`[worker] connected to ${address}`));
worker.on('completed', (job) => console.log(`[worker] ${job.queue}/${job.id} completed on attempt ${job.attempt}`));
worker.on('failed', (job, error, state) => console.log(`[worker] ${job.queue}/${job.id} failed on attempt ${job.attempt}: ${error.message} -> ${state}`));
worker.on('error', (error) => console.error(`[worker] ${error.message}`));
// A paused queue delivers nothing: say so, or the example just waits (resume it with ResumeQueue).
worker.on('paused', (queue) => console.log(`[worker] queue ${queue} is paused: no jobs from it until it is resumed (npx sluice queue resume ${queue})`));
worker.on('resumed', (queue) => console.log(`[worker] queue ${queue} resumed`));
worker.on('closing', () => console.log('[worker] closing: finishing in-flight jobs'));

await worker.run();
console.log('[worker] closed');
