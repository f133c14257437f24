import { describe, expect, it } from 'vitest';
import { BinaryWriter } from '@bufbuild/protobuf/wire';
import { ConsumeRequest, ConsumeResponse, type Delivery } from '../clients/typescript/src/gen/sluice/v1/worker.js';
import { decodeConsumeResponse } from '../clients/typescript/src/consume-decoding.js';
import { encodeConsumeRequest } from '../clients/typescript/src/consume-encoding.js';
import { encodeHot } from '../src/grpc/consume-encoding.js';
import type { ClaimedJob } from '../src/store/job-store.js';

// Deterministic pseudo-random choices, so a failure names a reproducible case.
let seed = 11;
const rand = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
const maybe = <T>(p: number, f: () => T): T | undefined => (rand() < p ? f() : undefined);
const times = <T>(max: number, f: (i: number) => T): T[] => Array.from({ length: Math.floor(rand() * (max + 1)) }, (_, i) => f(i));

const STRINGS = ['', 'a', 'email', 'é-ünï', '漢字キュー', '😀 emoji', '\ufeffbom', 'x'.repeat(32), 'x'.repeat(33), 'y'.repeat(127), 'z'.repeat(200), 'lone \ud800 surrogate'];
const UINTS = [0, 1, 127, 128, 300, 16_383, 16_384, 2 ** 21, 2 ** 28 - 1, 2 ** 28, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1];
const INT32S = [0, 1, 3, 127, 128, 2 ** 31 - 1, -1, -2, -(2 ** 31)];
const DATES = [new Date(0), new Date(1), new Date(999), new Date(1_764_633_600_123), new Date(4_102_444_800_999), new Date(-1), new Date(-86_400_000_123), new Date(8.64e15)];
const VALUES: unknown[] = [null, 0, 1.5, -3, 'text', 'ünï', true, false, [], [1, 'a', null], {}, { a: { b: [1, { c: 'd' }] } }];
const PAYLOADS = ['', '{}', '{"i":1}', '{"text":"héllo ✓"}', JSON.stringify({ big: 'p'.repeat(1500) })];

function randomDelivery(): Delivery {
  return {
    jobId: pick(STRINGS),
    leaseId: pick(STRINGS),
    queue: pick(STRINGS),
    type: pick(STRINGS),
    payload: maybe(0.2, () => pick(VALUES)),
    payloadJson: Buffer.from(pick(PAYLOADS)),
    attempt: pick(UINTS),
    maxAttempts: pick(UINTS),
    deadline: maybe(0.8, () => pick(DATES)),
    leaseTimeoutMs: pick(UINTS),
    metadata: Object.fromEntries(times(3, () => [pick(STRINGS), pick(STRINGS)])),
    priority: pick(INT32S),
    createdAt: maybe(0.8, () => pick(DATES)),
    progress: maybe(0.2, () => pick(VALUES)),
    groupKey: pick(STRINGS),
  };
}

function randomResponse(): ConsumeResponse {
  return {
    subscribed: maybe(0.1, () => ({ streamId: pick(STRINGS), maxCredit: pick(UINTS) })),
    deliveries: times(5, randomDelivery),
    settled: times(4, () => ({
      jobId: pick(STRINGS),
      leaseId: pick(STRINGS),
      kind: pick(INT32S),
      code: pick(UINTS),
      message: pick(STRINGS),
      state: pick(INT32S),
      deadline: maybe(0.4, () => pick(DATES)),
    })),
    revoked: times(2, () => ({ jobId: pick(STRINGS), leaseId: pick(STRINGS), reason: pick(INT32S) })),
    drain: maybe(0.1, () => ({ graceMs: pick(UINTS) })),
    stopped: maybe(0.1, () => ({})),
    queueNotices: times(2, () => ({ queue: pick(STRINGS), paused: rand() < 0.5 })),
  };
}

/** Decodes with both decoders: the same message, or both throw. */
function expectSameDecoding(bytes: Uint8Array, label: string): void {
  let expected: ConsumeResponse | Error;
  try {
    expected = ConsumeResponse.decode(bytes);
  } catch (error) {
    expected = error as Error;
  }
  if (expected instanceof Error) {
    expect(() => decodeConsumeResponse(Buffer.from(bytes)), label).toThrow();
    return;
  }
  expect(decodeConsumeResponse(Buffer.from(bytes)), label).toEqual(expected);
}

/** An unknown field (numbers 16-20 and 1000) of each wire type the decoders skip. */
function unknownField(): Uint8Array {
  const w = new BinaryWriter();
  const field = pick([16, 17, 20, 1000]);
  switch (pick([0, 1, 2, 5])) {
    case 0:
      w.tag(field, 0).uint64(pick([0n, 1n, 300n, 2n ** 63n]));
      break;
    case 1:
      w.tag(field, 1).fixed64(123456789n);
      break;
    case 2:
      w.tag(field, 2).bytes(Buffer.from(pick(STRINGS)));
      break;
    default:
      w.tag(field, 5).fixed32(42);
  }
  return w.finish();
}

describe('hand-written ConsumeResponse decoding (worker)', () => {
  it('reads every field exactly as the generated decoder, over many random messages', () => {
    for (let round = 0; round < 400; round++) {
      const bytes = ConsumeResponse.encode(randomResponse()).finish();
      expectSameDecoding(bytes, `round ${round}`);
    }
  });

  it('reads what the broker writes by hand', () => {
    const job: ClaimedJob = {
      seq: 7, id: '0193a1b2-c3d4-7000-8000-000000000007', queue: 'email', type: 'welcome', payload: '{"to":"ü@example.com"}',
      metadata: '{"traceparent":"00-abc-01"}', attempt: 1, max_attempts: 3, lease_timeout_ms: 30_000,
      lease_expires_at: 1_764_633_630_123, priority: 2, created_at: 1_764_633_600_123, progress: null, group_key: 'tenant-1',
      lease_id: 'b00t.1k.7', run_at: 1_764_633_600_123,
    };
    const bytes = encodeHot({ deliveries: [job, { ...job, seq: 8, group_key: null, metadata: null }], settled: [{ kind: 'ack', jobId: job.id, leaseId: 'b00t.1j.6', state: 'completed' as never }], revoked: [] }, true)!;
    expectSameDecoding(bytes, 'broker hot encoding');
    const decoded = decodeConsumeResponse(bytes);
    expect(decoded.deliveries[0]!.payloadJson.toString('utf8')).toBe(job.payload);
    expect(decoded.deliveries[0]!.metadata).toEqual({ traceparent: '00-abc-01' });
  });

  it('skips unknown fields of every wire type, at the top level and inside nested messages', () => {
    for (let round = 0; round < 200; round++) {
      const message = randomResponse();
      const w = new BinaryWriter();
      w.raw(unknownField());
      for (const d of message.deliveries) {
        // The delivery re-framed with unknown fields before and after its own.
        w.tag(2, 2).bytes(Buffer.concat([unknownField(), Buffer.from(deliveryBody(d)), unknownField()]));
      }
      w.raw(ConsumeResponse.encode({ ...message, deliveries: [] }).finish());
      w.raw(unknownField());
      expectSameDecoding(w.finish(), `round ${round}`);
    }
  });

  it('falls back to the generated decoder for unusual or malformed input, with the same outcome', () => {
    for (let round = 0; round < 300; round++) {
      const bytes = Buffer.from(ConsumeResponse.encode(randomResponse()).finish());
      if (bytes.length === 0) continue;
      // Truncated, and one byte changed.
      expectSameDecoding(bytes.subarray(0, Math.floor(rand() * bytes.length)), `truncated ${round}`);
      const flipped = Buffer.from(bytes);
      flipped[Math.floor(rand() * flipped.length)] = Math.floor(rand() * 256);
      expectSameDecoding(flipped, `flipped ${round}`);
    }
    // A group, an end-group tag, a zero tag, an overlong varint.
    expectSameDecoding(Buffer.from([0x83, 0x01, 0x84, 0x01]), 'group');
    expectSameDecoding(Buffer.from([0x12, 0x02, 0x0c, 0x00]), 'end group inside a delivery');
    expectSameDecoding(Buffer.from([0x00]), 'zero tag');
    expectSameDecoding(Buffer.from([0x12, 0x0c, 0x38, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0x00]), 'overlong uint32');
  });
});

function emptyResponse(): ConsumeResponse {
  return { subscribed: undefined, deliveries: [], settled: [], revoked: [], drain: undefined, stopped: undefined, queueNotices: [] };
}

function deliveryBody(d: Delivery): Uint8Array {
  const bytes = ConsumeResponse.encode({ ...emptyResponse(), deliveries: [d] }).finish();
  // tag (1 byte) + length varint, then the body.
  let pos = 1;
  while (bytes[pos]! & 0x80) pos++;
  return bytes.subarray(pos + 1);
}

function randomRequest(): ConsumeRequest {
  return {
    subscribe: maybe(0.05, () => ({ queues: ['q'], types: [], workerId: pick(STRINGS), labels: { a: 'b' }, rawJsonPayloads: true })),
    credit: pick([0, 0, 1, 50, 100, 127, 128, 10_000, 2 ** 31 - 1, -1, -(2 ** 31)]),
    acks: times(6, () => ({ jobId: pick(STRINGS), leaseId: pick(STRINGS), result: maybe(0.3, () => pick(VALUES)) })),
    nacks: times(2, () => ({ jobId: pick(STRINGS), leaseId: pick(STRINGS), error: pick(STRINGS), nonRetryable: rand() < 0.5, retryAfterMs: pick(UINTS) })),
    extends: times(2, () => ({ jobId: pick(STRINGS), leaseId: pick(STRINGS), extendMs: pick(UINTS), progress: maybe(0.4, () => pick(VALUES)) })),
    stop: rand() < 0.1,
    releases: times(2, () => ({ jobId: pick(STRINGS), leaseId: pick(STRINGS), reason: pick(STRINGS) })),
  };
}

describe('hand-written ConsumeRequest encoding (worker)', () => {
  it('writes exactly the generated encoder’s bytes, over many random messages', () => {
    for (let round = 0; round < 400; round++) {
      const m = randomRequest();
      const expected = Buffer.from(ConsumeRequest.encode(m).finish());
      expect(encodeConsumeRequest(m).equals(expected), `round ${round}: ${JSON.stringify(m)}`).toBe(true);
    }
  });

  it('refuses what the generated encoder refuses (a uint32 out of range)', () => {
    const m: ConsumeRequest = { subscribe: undefined, credit: 0, acks: [], nacks: [], extends: [{ jobId: 'j', leaseId: 'l', extendMs: 2 ** 32, progress: undefined }], stop: false, releases: [] };
    expect(() => ConsumeRequest.encode(m)).toThrow();
    expect(() => encodeConsumeRequest(m)).toThrow();
    expect(encodeConsumeRequest({ ...m, extends: [] }).length).toBe(0);
  });
});
