/**
 * Acceptance 7: idle cost. With 10,000 schedules whose next fire is an hour away, a broker
 * child process uses no measurable CPU over 10 s (one timer for the earliest fire; no scan),
 * and startup with them stays under 1 s. The measured numbers are printed.
 *
 * Runs the compiled broker: `npm test` builds first; run `npm run build` before running this
 * file alone.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { Broker } from '../src/broker/broker.js';
import { systemClock } from '../src/domain/clock.js';
import { createLogger } from '../src/log.js';
import { tempDir, testConfig } from './helpers/broker.js';
import { killChildBrokers, startChildBroker } from './helpers/child-broker.js';
import { SCHEDULE_DEFAULTS } from '../src/broker/schedules.js';
import { parseEnqueueRequest } from '../src/grpc/enqueue-input.js';
import { EnqueueRequest } from '../clients/typescript/src/gen/sluice/v1/producer.js';

const SCHEDULES = 10_000;
let dir: string | undefined;
afterEach(async () => {
  await killChildBrokers();
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});

/** user + system CPU of a process so far, in ms (Linux /proc; clock ticks of 10 ms). */
function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10; // utime, stime (fields 14 and 15)
}

/** Constructs and starts a broker on the file in this process: the broker's own startup cost. */
async function timeStartup(dataFile: string): Promise<number> {
  const config = testConfig(dataFile);
  const t0 = performance.now();
  const broker = new Broker(config, systemClock, createLogger('silent'));
  broker.start();
  await broker.schedules.idle();
  const ms = performance.now() - t0;
  await broker.stop();
  return ms;
}

describe('idle cost of many schedules', () => {
  it(`${SCHEDULES} schedules an hour away: no measurable CPU over 10 s, startup under 1 s`, async () => {
    dir = tempDir('sluice-idle-');
    const dataFile = join(dir, 'sluice.db');
    const emptyFile = join(dir, 'empty.db');

    // Create them through the broker's own operation, in one process, then stop it.
    const minute = new Date().getUTCMinutes();
    const creator = new Broker(testConfig(dataFile), systemClock, createLogger('silent'));
    creator.start();
    const job = parseEnqueueRequest(EnqueueRequest.fromPartial({ queue: 'reports', payload: { report: 'hourly' } }), creator.config);
    const created = Date.now();
    for (let i = 0; i < SCHEDULES; i += 500) {
      await Promise.all(
        Array.from({ length: Math.min(500, SCHEDULES - i) }, (_, k) =>
          creator.schedules.create(
            { name: `report-${i + k}`, cron: `${minute} * * * *`, timezone: 'UTC', job, startAt: null, endAt: null, ...SCHEDULE_DEFAULTS },
            false,
          ),
        ),
      );
    }
    const createMs = Date.now() - created;
    const next = (await creator.schedules.list(1))[0]!.next_fire_at!;
    expect(next - Date.now()).toBeGreaterThan(50 * 60_000); // the earliest fire is ~an hour away
    await creator.stop();

    const empty = new Broker(testConfig(emptyFile), systemClock, createLogger('silent'));
    empty.start();
    await empty.stop();
    const startEmptyMs = await timeStartup(emptyFile);
    const startManyMs = await timeStartup(dataFile);

    const spawned = performance.now();
    // V8's memory reducer runs one or two compacting GCs ~8 s after start-up, once, whatever
    // the broker holds (seen: 50-110 ms of CPU, within this window); it is not the broker's idle
    // work, which this measures, so the child runs without it.
    const child = await startChildBroker({ dataFile, http: false, nodeArgs: ['--no-memory-reducer'] });
    const spawnToListenMs = performance.now() - spawned;
    // Let start-up work (module loading, JIT, first GC) settle, then measure a quiet window.
    await new Promise((r) => setTimeout(r, 1000));
    const before = cpuMs(child.pid);
    await new Promise((r) => setTimeout(r, 10_000));
    const idleCpuMs = cpuMs(child.pid) - before;
    await child.close();

    console.log(
      `[schedules.idle] ${SCHEDULES} schedules: created in ${createMs} ms; broker startup ${startManyMs.toFixed(1)} ms ` +
        `(empty store ${startEmptyMs.toFixed(1)} ms); child spawn to listening ${spawnToListenMs.toFixed(0)} ms; ` +
        `idle CPU over 10 s: ${idleCpuMs} ms (10 ms resolution)`,
    );
    expect(startManyMs).toBeLessThan(1000);
    // "No measurable CPU": at most a few clock ticks (10 ms each) in 10 s.
    expect(idleCpuMs).toBeLessThanOrEqual(50);
  }, 180_000);
});
