/**
 * `sluice workers` with a connected Worker, and `sluice watch` following a job until it
 * completes, through the compiled binary (`npm run build` first when running this file alone).
 */
import { describe, expect, it } from 'vitest';
import { Worker } from '../clients/typescript/src/index.js';
import { cliTestBroker, parseJson, startCli } from './helpers/cli.js';

// One broker for the file; `sluice` runs the compiled CLI against it.
const cli = cliTestBroker();
const sluice = cli.sluice;

function gate() {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => (open = resolve));
  return { promise, open };
}

interface EventJson {
  jobId: string;
  state: string;
  attempt: number;
  progress: unknown;
  result: unknown;
  error: string | null;
  at: string | null;
}

describe('sluice workers and sluice watch', () => {
  it('shows a connected worker with its job in flight, and watch follows that job live until it completes', async () => {
    const { id } = await cli.broker.api.enqueue({ queue: 'cli-work', payload: { n: 1 } });

    // Both watchers start before any worker exists: they print the pending state and wait.
    const watchJson = startCli(['watch', id, '--json'], { address: cli.broker.running.address });
    const watchText = startCli(['watch', id, '--exit-status'], { address: cli.broker.running.address });
    await Promise.all([watchJson.waitForOutput('"state":"pending"'), watchText.waitForOutput('pending')]);

    const started = gate();
    const release = gate();
    const worker = new Worker({
      address: cli.broker.running.address,
      queues: ['cli-work'],
      workerId: 'cli-worker-1',
      labels: { host: 'test' },
      shutdownSignals: [],
      handler: async (job) => {
        await job.progress({ step: 1 });
        started.open();
        await release.promise;
        return { done: true };
      },
    });
    const run = worker.run();
    try {
      await started.promise;
      const [text, doc] = await Promise.all([sluice('workers'), sluice('workers', '--json')]);
      expect(text.code, text.stderr).toBe(0);
      const lines = text.stdout.trimEnd().split('\n');
      expect(lines[0]).toMatch(/^WORKER\s+STREAM\s+QUEUES\s+TYPES\s+CREDIT\s+ACTIVE\s+CONNECTED\s+LAST SEEN\s+PEER$/);
      expect(lines).toHaveLength(2);
      expect(lines[1]).toMatch(/^cli-worker-1\s+\S+\s+cli-work\s+-\s+0\s+1\s+(now|\S.*ago)\s/);
      expect(doc.code, doc.stderr).toBe(0);
      const { workers } = parseJson<{ workers: Record<string, unknown>[] }>(doc);
      expect(workers).toEqual([
        {
          workerId: 'cli-worker-1',
          streamId: expect.any(String),
          queues: ['cli-work'],
          types: [],
          labels: { host: 'test' },
          credit: 0,
          activeJobIds: [id],
          connectedAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
          lastSeenAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
          peer: expect.any(String),
        },
      ]);
    } finally {
      release.open();
      await worker.close();
      await run;
    }

    const [j, t] = await Promise.all([watchJson.done, watchText.done]);
    expect(j.code, j.stderr).toBe(0);
    const events = j.stdout.trimEnd().split('\n').map((l) => JSON.parse(l) as EventJson);
    expect(events[0]).toMatchObject({ jobId: id, state: 'pending', attempt: 0 });
    expect(events.at(-1)).toMatchObject({ jobId: id, state: 'completed', attempt: 1, result: { done: true }, error: null });
    expect(events.map((e) => e.state)).toContain('active');
    expect(events.some((e) => JSON.stringify(e.progress) === '{"step":1}')).toBe(true);
    expect(Object.keys(events[0]!).sort()).toEqual(['at', 'attempt', 'error', 'jobId', 'progress', 'result', 'state']);

    expect(t.code, t.stderr).toBe(0);
    const lines = t.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^\S+Z\s+pending\s+attempt 0/);
    expect(lines.at(-1)).toMatch(/^\S+Z\s+completed\s+attempt 1\s+result \{"done":true\}\s+\(final\)$/);
  });

  it('watch of a finished job prints its final state and exits; --exit-status gives 3 for a dead job; no workers is an empty list', async () => {
    const { id } = await cli.broker.api.enqueue({ queue: 'cli-dead', payload: {} });
    const consumer = cli.broker.api.consumer({ queues: ['cli-dead'] }, 1);
    const [d] = await consumer.waitForDeliveries(1);
    consumer.nack(d!, 'boom', { nonRetryable: true });
    await consumer.waitForSettled(1);
    consumer.end();
    await consumer.status;

    const [plain, strict, missing, none] = await Promise.all([
      sluice('watch', id, '--json'),
      sluice('watch', id, '--exit-status'),
      sluice('watch', '01a00000-0000-7000-8000-000000000000'),
      sluice('workers', '--json'),
    ]);
    expect(plain.code, plain.stderr).toBe(0);
    expect(plain.stdout.trimEnd().split('\n').map((l) => JSON.parse(l) as EventJson)).toEqual([expect.objectContaining({ jobId: id, state: 'dead', attempt: 1 })]);
    expect(strict.code).toBe(3);
    expect(strict.stdout).toMatch(/dead\s+attempt 1\s+error boom\s+\(final\)/);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/^sluice: NOT_FOUND: /);
    expect(parseJson(none)).toEqual({ workers: [] });
  });
});
