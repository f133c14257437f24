import { describe, expect, it } from 'vitest';
import { BinaryWriter } from '@bufbuild/protobuf/wire';
import { ConsumeRequest } from '../clients/typescript/src/gen/sluice/v1/worker.js';
import { decodeConsumeRequest } from '../src/grpc/consume-decoding.js';
import { encodeConsumeRequest } from '../clients/typescript/src/consume-encoding.js';

// Deterministic pseudo-random choices, so a failure names a reproducible case.
let seed = 23;
const rand = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
const maybe = <T>(p: number, f: () => T): T | undefined => (rand() < p ? f() : undefined);
const times = <T>(max: number, f: () => T): T[] => Array.from({ length: Math.floor(rand() * (max + 1)) }, f);

const STRINGS = ['', 'a', '0193a1b2-c3d4-7000-8000-000000000007', 'b00t.1k.7', 'é-ünï', '漢字', '😀', '\ufeffbom', 'x'.repeat(33), 'z'.repeat(200)];
const UINTS = [0, 1, 127, 128, 16_384, 2 ** 28, 2 ** 31, 2 ** 32 - 1];
const VALUES: unknown[] = [null, 0, 1.5, 'text', true, [], [1, 'a'], {}, { a: { b: [1, { c: 'd' }] } }];

function randomRequest(): ConsumeRequest {
  return {
    subscribe: maybe(0.05, () => ({ queues: ['q', 'r'], types: ['t'], workerId: pick(STRINGS), labels: { a: 'b' }, rawJsonPayloads: rand() < 0.5 })),
    credit: pick([0, 0, 1, 50, 100, 128, 10_000, 2 ** 31 - 1, -1, -(2 ** 31)]),
    acks: times(6, () => ({ jobId: pick(STRINGS), leaseId: pick(STRINGS), result: maybe(0.3, () => pick(VALUES)) })),
    nacks: times(2, () => ({ jobId: pick(STRINGS), leaseId: pick(STRINGS), error: pick(STRINGS), nonRetryable: rand() < 0.5, retryAfterMs: pick(UINTS) })),
    extends: times(2, () => ({ jobId: pick(STRINGS), leaseId: pick(STRINGS), extendMs: pick(UINTS), progress: maybe(0.4, () => pick(VALUES)) })),
    stop: rand() < 0.1,
    releases: times(2, () => ({ jobId: pick(STRINGS), leaseId: pick(STRINGS), reason: pick(STRINGS) })),
  };
}

/** Decodes with both decoders: the same message, or both throw. */
function expectSameDecoding(bytes: Uint8Array, label: string): void {
  let expected: ConsumeRequest | Error;
  try {
    expected = ConsumeRequest.decode(bytes);
  } catch (error) {
    expected = error as Error;
  }
  if (expected instanceof Error) {
    expect(() => decodeConsumeRequest(Buffer.from(bytes)), label).toThrow();
    return;
  }
  expect(decodeConsumeRequest(Buffer.from(bytes)), label).toEqual(expected);
}

function unknownField(): Uint8Array {
  const w = new BinaryWriter();
  const field = pick([8, 9, 15, 1000]);
  switch (pick([0, 1, 2, 5])) {
    case 0:
      w.tag(field, 0).uint64(pick([0n, 300n, 2n ** 63n]));
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

describe('hand-written ConsumeRequest decoding (broker)', () => {
  it('reads every field exactly as the generated decoder, over many random messages', () => {
    for (let round = 0; round < 400; round++) {
      const m = randomRequest();
      expectSameDecoding(ConsumeRequest.encode(m).finish(), `round ${round}`);
      // The worker's own encoding of the same message, too.
      expectSameDecoding(encodeConsumeRequest(m), `round ${round} (worker encoding)`);
    }
  });

  it('skips unknown fields of every wire type, at the top level and inside acks', () => {
    for (let round = 0; round < 200; round++) {
      const m = randomRequest();
      const w = new BinaryWriter();
      w.raw(unknownField());
      for (const a of m.acks) {
        const body = ConsumeRequest.encode({ ...m, subscribe: undefined, credit: 0, acks: [a], nacks: [], extends: [], stop: false, releases: [] }).finish();
        let pos = 1;
        while (body[pos]! & 0x80) pos++;
        w.tag(3, 2).bytes(Buffer.concat([unknownField(), body.subarray(pos + 1), unknownField()]));
      }
      w.raw(ConsumeRequest.encode({ ...m, acks: [] }).finish());
      w.raw(unknownField());
      expectSameDecoding(w.finish(), `round ${round}`);
    }
  });

  it('gives unusual or malformed input to the generated decoder, with the same outcome', () => {
    for (let round = 0; round < 300; round++) {
      const bytes = Buffer.from(ConsumeRequest.encode(randomRequest()).finish());
      if (bytes.length === 0) continue;
      expectSameDecoding(bytes.subarray(0, Math.floor(rand() * bytes.length)), `truncated ${round}`);
      const flipped = Buffer.from(bytes);
      flipped[Math.floor(rand() * flipped.length)] = Math.floor(rand() * 256);
      expectSameDecoding(flipped, `flipped ${round}`);
    }
    expectSameDecoding(Buffer.from([0x1b, 0x1c]), 'group');
    expectSameDecoding(Buffer.from([0x1a, 0x02, 0x0c, 0x00]), 'end group inside an ack');
    expectSameDecoding(Buffer.from([0x00]), 'zero tag');
    expectSameDecoding(Buffer.from([0x10, 0xff, 0xff, 0xff, 0xff, 0x7f]), 'credit with bits beyond 32');
  });
});
