/**
 * The reconnection loop shared by the PostgreSQL store and the ready listener
 * (src/store/postgres/reconnector.ts), on its own: what the two PostgreSQL suites cannot reach
 * with a real server. The attempt count starts again after a success (the next loss waits the
 * initial delay again), and close() while an attempt is in flight drops that attempt's failure
 * instead of reporting and retrying it. (Backoff growth and close() while a retry is pending are
 * covered against PostgreSQL in postgres.ready-notifier.test.ts and postgres.store.test.ts.)
 *
 * The attempts are promises the test settles; time is a TestClock, so no timer races an assertion.
 */
import { expect, test } from 'vitest';
import { Reconnector } from '../src/store/postgres/reconnector.js';
import { TestClock } from './helpers/clock.js';

interface Attempt {
  settled: Promise<void>;
  resolve(): void;
  reject(error: Error): void;
}

/** A Reconnector without jitter whose attempts the test settles, and the callbacks it made, in order. */
function harness() {
  const clock = new TestClock(0);
  const calls: string[] = [];
  const attempts: Attempt[] = [];
  const reconnector = new Reconnector({
    policy: { initialMs: 100, multiplier: 2, maxMs: 1_000, jitter: 0 },
    clock,
    connect: () => {
      let resolve!: () => void;
      let reject!: (error: Error) => void;
      const attempt = new Promise<void>((res, rej) => ([resolve, reject] = [res, rej]));
      // Registered after the reconnector's own handlers (it calls then() on the returned promise
      // first), so awaiting `settled` means the reconnector has reacted to the outcome.
      attempts.push({ settled: Promise.resolve().then(() => attempt.then(() => {}, () => {})), resolve, reject });
      return attempt;
    },
    onScheduled: (attempt, delayMs) => calls.push(`scheduled ${attempt} in ${delayMs}`),
    onConnected: (n) => calls.push(`connected after ${n}`),
    onFailed: (error, attempt) => calls.push(`failed ${attempt}: ${(error as Error).message}`),
  });
  return { clock, calls, attempts, reconnector };
}

test('attempts count since the last success: after a reconnect the next loss is attempt 1 at the initial delay again', async () => {
  const { clock, calls, attempts, reconnector } = harness();
  reconnector.schedule();
  expect(reconnector.attempts).toBe(1);
  expect(clock.pendingTimers).toBe(1);
  expect(attempts).toHaveLength(0); // not before its delay

  clock.advance(100);
  expect(attempts).toHaveLength(1);
  attempts[0]!.reject(new Error('refused'));
  await attempts[0]!.settled;
  expect(reconnector.attempts).toBe(2);

  clock.advance(199);
  expect(attempts).toHaveLength(1);
  clock.advance(1);
  expect(attempts).toHaveLength(2);
  attempts[1]!.resolve();
  await attempts[1]!.settled;
  expect(reconnector.attempts).toBe(0);
  expect(clock.pendingTimers).toBe(0);

  reconnector.schedule();
  expect(calls).toEqual(['scheduled 1 in 100', 'failed 1: refused', 'scheduled 2 in 200', 'connected after 2', 'scheduled 1 in 100']);
});

test('close() while an attempt is in flight: its failure is neither reported nor retried, and schedule() does nothing more', async () => {
  const { clock, calls, attempts, reconnector } = harness();
  reconnector.schedule();
  clock.advance(100);
  expect(attempts).toHaveLength(1);

  reconnector.close();
  attempts[0]!.reject(new Error('ended by close'));
  await attempts[0]!.settled;
  reconnector.schedule();
  clock.advance(60_000);

  expect(calls).toEqual(['scheduled 1 in 100']);
  expect(clock.pendingTimers).toBe(0);
  expect(attempts).toHaveLength(1);
});
