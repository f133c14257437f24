import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startTestBroker, type TestBroker } from '../../../test/helpers/broker.js';
import { InvalidArgumentError, ResourceExhaustedError, Worker } from '../src/index.js';
import { collectUntil } from './helpers.js';

let b: TestBroker;
const workers: Worker<any, any>[] = [];
beforeEach(async () => {
  b = await startTestBroker({ maxStreams: 1 });
});
afterEach(async () => {
  await Promise.all(workers.splice(0).map((w) => w.close({ timeoutMs: 200 })));
  await b.close();
});

function start(queues: string[]): Worker<any, any> {
  const w = new Worker({ address: b.running.address, queues, shutdownSignals: [], reconnect: { initialMs: 50, maxMs: 200 }, handler: () => undefined });
  workers.push(w);
  return w;
}

describe('Worker errors', () => {
  it('reports the broker stream limit as ResourceExhaustedError (not UnavailableError) and keeps retrying', async () => {
    const first = start(['q']);
    const ready = collectUntil(first, 'ready', (items) => items.length >= 1);
    void first.run();
    await ready;
    const second = start(['q']);
    const errors = collectUntil(second, 'error', (items) => items.length >= 1);
    void second.run();
    const [[error]] = (await errors) as [[Error]];
    expect(error).toBeInstanceOf(ResourceExhaustedError);
    expect(error.message).toMatch(/--max-streams/);
    // Not fatal: once the first worker leaves, the second gets its stream.
    const secondReady = collectUntil(second, 'ready', (items) => items.length >= 1, 30_000);
    await first.close();
    await secondReady;
    expect(second.state).toBe('running');
  });

  it('rejects run() with the typed error of a subscription the broker refuses for good, and ends closed', async () => {
    const w = start(['not a valid queue!']);
    w.on('error', () => undefined);
    await expect(w.run()).rejects.toBeInstanceOf(InvalidArgumentError);
    expect(w.state).toBe('closed');
  });
});
