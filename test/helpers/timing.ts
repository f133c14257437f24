import type { ConsumeResponse } from '../../clients/typescript/src/gen/sluice/v1/worker.js';
import type { JobEvent } from '../../clients/typescript/src/gen/sluice/v1/producer.js';
import type { SluiceClients } from '../../clients/typescript/src/connect.js';
import type { TestConsumer } from './api.js';
import { withTimeout } from './api.js';

/**
 * Records, per delivery, the local time its message arrived (Date.now(), the same clock
 * the in-process broker uses). Keyed by `${jobId}#${attempt}`. Attach right after creating
 * the consumer: no message can arrive before the current turn of the event loop ends.
 */
export function recordReceiveTimes(worker: TestConsumer): Map<string, number> {
  const times = new Map<string, number>();
  worker.call.on('data', (m: ConsumeResponse) => {
    const now = Date.now();
    for (const d of m.deliveries) times.set(`${d.jobId}#${d.attempt}`, now);
  });
  return times;
}

export interface ReceivedEvent {
  event: JobEvent;
  receivedAt: number;
}

/**
 * Opens WatchJob and resolves with every event received up to and including the first one
 * `until` accepts, then cancels the stream.
 */
export function watchUntil(clients: SluiceClients, id: string, until: (e: JobEvent) => boolean, timeoutMs = 10_000): Promise<ReceivedEvent[]> {
  const call = clients.producer.watchJob({ id });
  const events: ReceivedEvent[] = [];
  const done = new Promise<ReceivedEvent[]>((resolve, reject) => {
    call.on('data', (event: JobEvent) => {
      events.push({ event, receivedAt: Date.now() });
      if (until(event)) {
        resolve(events);
        call.cancel();
      }
    });
    call.on('error', (e: Error & { code?: number }) => {
      if (e.code !== 1) reject(e); // 1 = CANCELLED, by us
    });
    call.on('end', () => reject(new Error(`WatchJob for ${id} ended before the awaited event; got ${JSON.stringify(events.map((e) => e.event.state))}`)));
  });
  return withTimeout(done, timeoutMs, `a WatchJob event for ${id}`).finally(() => call.cancel());
}
