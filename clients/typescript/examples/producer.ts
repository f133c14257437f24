// Enqueues welcome emails (high priority) and PDF exports (low priority), then follows each
// job to its final state and prints a summary.
import { Producer, type EnqueuedJob } from '@sluice/client';
import { address, type Jobs } from './jobs.js';

export async function produce(): Promise<Record<string, number>> {
  const producer = new Producer<Jobs>({ address });
  try {
    const jobs: Promise<EnqueuedJob>[] = [];
    for (const reportId of [1, 7, 13, 21]) {
      jobs.push(producer.enqueue('pdf', { reportId, pages: 3 }, { priority: 'low', maxAttempts: 4, backoff: { initialMs: 200, jitter: 0.2 } }));
    }
    for (const name of ['ada', 'grace', 'linus']) {
      jobs.push(producer.enqueue('email', { to: `${name}@example.com`, name }, { type: 'welcome', priority: 'high' }));
    }
    // These calls were made together, so they travelled in one EnqueueBatch RPC.
    const enqueued = await Promise.all(jobs);
    console.log(`[producer] enqueued ${enqueued.length} jobs in ${producer.batchRpcCount} RPC(s)`);

    const finals = await Promise.all(
      enqueued.map(async ({ id }) => {
        let last = '';
        for await (const event of producer.watch(id)) last = event.state;
        return last;
      }),
    );
    const summary: Record<string, number> = {};
    for (const state of finals) summary[state] = (summary[state] ?? 0) + 1;
    for (const { id } of enqueued) {
      const job = await producer.getJob(id);
      const errors = job.errors.map((e) => `#${e.attempt} ${e.message}`).join('; ');
      console.log(`[producer] ${job.queue}/${job.type || '-'} ${job.state} after ${job.attempt} attempt(s)${errors ? ` (errors: ${errors})` : ''}`);
    }
    return summary;
  } finally {
    await producer.close();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  console.log('[producer] summary', await produce());
}
