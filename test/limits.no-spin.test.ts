import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { tempDir } from './helpers/broker.js';
import { killChildBrokers, startChildBroker } from './helpers/child-broker.js';
import { AckingWorkers, enqueueJobs, setLimits } from './helpers/limits.js';

afterEach(async () => {
  await killChildBrokers();
});

/** CPU time (user + system, ms) a process has used, from /proc (clock ticks of 10 ms). */
function cpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

describe('rate-limited waits do not spin (acceptance 2, broker CPU)', () => {
  it('a broker whose only work is a group limited to 2/s with 200 jobs ready uses little CPU over 5 s, waking on a timer per token', async () => {
    const broker = await startChildBroker({ dataFile: join(tempDir(), 'sluice.db'), http: false });
    await setLimits(broker.api, 'wait', { groupRate: { count: 2, intervalMs: 1000, burst: 1 } });
    await enqueueJobs(broker.api, Array.from({ length: 200 }, (_, i) => ({ queue: 'wait', payload: { i }, groupKey: 'A' })));
    const workers = new AckingWorkers(broker.api, { queues: ['wait'] }, { credit: 50 });
    await workers.until(() => workers.started.length >= 2, 'the first tokens');

    const before = cpuMs(broker.pid);
    const startedBefore = workers.started.length;
    const t0 = performance.now();
    await new Promise((r) => setTimeout(r, 5000)); // the measurement window itself, not a race
    const elapsed = performance.now() - t0;
    const used = cpuMs(broker.pid) - before;
    const delivered = workers.started.length - startedBefore;
    workers.close();
    console.log(`broker CPU over ${Math.round(elapsed)} ms of a rate-limited wait: ${used} ms (${delivered} jobs started, one per token)`);
    // One job per token keeps coming (the timer works) ...
    expect(delivered).toBeGreaterThanOrEqual(5);
    expect(delivered).toBeLessThanOrEqual(Math.ceil((elapsed / 1000) * 2) + 1);
    // ... and the broker is idle in between: a busy loop would burn ~5000 ms here.
    expect(used).toBeLessThan(500);
  }, 60_000);
});
