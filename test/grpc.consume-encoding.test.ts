import { describe, expect, it } from 'vitest';
import { ConsumeResponse } from '../clients/typescript/src/gen/sluice/v1/worker.js';
import { encodeHot } from '../src/grpc/consume-encoding.js';
import { toResponse } from '../src/grpc/worker-service.js';
import type { Outgoing, SettleOutcome } from '../src/broker/consume-session.js';
import type { ClaimedJob } from '../src/store/job-store.js';
import { JobState } from '../src/domain/job-state.js';
import type { ErrorCode } from '../src/domain/errors.js';

// Deterministic pseudo-random choices, so a failure names a reproducible case.
let seed = 7;
const rand = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
const bigInt = () => pick([0, 1, 127, 128, 300, 16_383, 16_384, 2 ** 21, 2 ** 31 - 1, 2 ** 32 - 1]);

const STRINGS = ['', 'a', 'email', 'é-ünï', '漢字キュー', '😀 emoji', 'x'.repeat(63), 'y'.repeat(64), 'z'.repeat(200), 'mixed é'.repeat(30)];
const PAYLOADS = ['{}', '{"i":1}', '{"text":"héllo ✓","n":[1,2,3]}', JSON.stringify({ big: 'p'.repeat(1500) }), '"😀"', 'null'];
const METADATA = [null, '{}', '{"traceparent":"00-abc-01"}', '{"k":"","":"v","ü":"✓","long":"' + 'm'.repeat(300) + '"}'];
const TIMES = [0, 1, 999, 1000, 1_764_633_600_123, 1_764_633_600_000, 4_102_444_800_999];
const ERROR_CODES: (ErrorCode | undefined)[] = [undefined, 'FAILED_PRECONDITION', 'INVALID_ARGUMENT', 'UNAVAILABLE', 'NOT_FOUND'];
const STATES: (JobState | undefined)[] = [undefined, JobState.Completed, JobState.Active, JobState.Scheduled, JobState.Dead, JobState.Pending];

function randomJob(i: number): ClaimedJob {
  return {
    seq: i + 1,
    id: pick(['', `0${i}-k3j2`, 'job-' + 'i'.repeat(70)]),
    lease_id: pick(['', `abcd1234.${i.toString(36)}.${i}`, 'é-lease']),
    queue: pick(STRINGS),
    type: pick(STRINGS),
    payload: pick(PAYLOADS),
    metadata: pick(METADATA),
    attempt: bigInt(),
    max_attempts: bigInt(),
    lease_timeout_ms: bigInt(),
    lease_expires_at: pick(TIMES),
    priority: pick([0, 1, 2, 3]),
    created_at: pick(TIMES),
    progress: null,
    group_key: pick([null, '', 'tenant-1', 'grüppe']),
    run_at: pick(TIMES),
  };
}

function randomSettle(): SettleOutcome {
  const errorCode = pick(ERROR_CODES);
  return {
    kind: pick(['ack', 'nack', 'extend', 'release'] as const),
    jobId: pick(STRINGS),
    leaseId: pick(STRINGS),
    ...(errorCode ? { errorCode } : {}),
    ...(rand() < 0.5 ? { message: pick(STRINGS) } : {}),
    ...(rand() < 0.7 ? { state: pick(STATES) } : {}),
    ...(rand() < 0.4 ? { deadline: pick(TIMES) } : {}),
  };
}

function decodeBoth(out: Outgoing): { hot: ConsumeResponse; generic: ConsumeResponse } {
  const bytes = encodeHot(out, true);
  expect(bytes).toBeDefined();
  return {
    hot: ConsumeResponse.decode(bytes!),
    generic: ConsumeResponse.decode(ConsumeResponse.encode(toResponse(out, true)).finish()),
  };
}

describe('hand-written ConsumeResponse encoding', () => {
  it('decodes with the generated decoder exactly as the generated encoding does, over many field combinations', () => {
    for (let round = 0; round < 200; round++) {
      const out: Outgoing = {
        deliveries: Array.from({ length: Math.floor(rand() * 6) }, (_, i) => randomJob(round * 10 + i)),
        settled: Array.from({ length: Math.floor(rand() * 5) }, randomSettle),
        revoked: Array.from({ length: Math.floor(rand() * 3) }, () => ({
          jobId: pick(STRINGS),
          leaseId: pick(STRINGS),
          reason: pick(['cancelled', 'lease_expired'] as const),
        })),
      };
      const { hot, generic } = decodeBoth(out);
      expect(hot, `round ${round}`).toEqual(generic);
    }
  });

  it('writes the payload bytes as stored, and an empty message as zero bytes', () => {
    const job = randomJob(1);
    job.payload = '{"s":"ünïcødé 😀"}';
    const { hot } = decodeBoth({ deliveries: [job], settled: [], revoked: [] });
    expect(Buffer.from(hot.deliveries[0]!.payloadJson).toString('utf8')).toBe(job.payload);
    expect(encodeHot({ deliveries: [], settled: [], revoked: [] }, true)!.length).toBe(0);
  });

  it('leaves the rare messages to the generated encoder (Value payloads, progress, drain, stop, queue notices)', () => {
    const job = randomJob(2);
    expect(encodeHot({ deliveries: [job], settled: [], revoked: [] }, false)).toBeUndefined();
    expect(encodeHot({ deliveries: [{ ...job, progress: '{"p":1}' }], settled: [], revoked: [] }, true)).toBeUndefined();
    expect(encodeHot({ deliveries: [], settled: [], revoked: [], drainGraceMs: 10 }, true)).toBeUndefined();
    expect(encodeHot({ deliveries: [], settled: [], revoked: [], stopped: true }, true)).toBeUndefined();
    expect(encodeHot({ deliveries: [], settled: [], revoked: [], queueNotices: [{ queue: 'q', paused: true }] }, true)).toBeUndefined();
    expect(encodeHot({ deliveries: [{ ...job, metadata: '{"n":1}' }], settled: [], revoked: [] }, true)).toBeUndefined();
  });
});
