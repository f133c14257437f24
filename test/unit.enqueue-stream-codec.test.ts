import { describe, expect, it } from 'vitest';
import { decodeCommonEnqueueStreamRequest, encodeEnqueueStreamResponse } from '../src/grpc/enqueue-stream-codec.js';
import {
  EnqueueRequest,
  EnqueueStreamRequest,
  EnqueueStreamResponse,
  type EnqueueResult,
} from '../clients/typescript/src/gen/sluice/v1/producer.js';
import type { Priority } from '../clients/typescript/src/gen/sluice/v1/job.js';

/** A small deterministic generator, so a failure names a reproducible case. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
}

const MESSAGES = ['', 'queue is at its cap (max_queued 10)', 'payload_json is not valid JSON: Unexpected token', 'naïve ☃ 日本 🎉', 'x'.repeat(300)];

function randomResult(r: () => number): EnqueueResult {
  if (r() < 0.3) {
    return {
      id: '',
      deduplicated: false,
      state: 0,
      error: {
        code: [0, 3, 7, 8, 14, 300][Math.floor(r() * 6)]!,
        message: MESSAGES[Math.floor(r() * MESSAGES.length)]!,
        retryAfterMs: r() < 0.5 ? 0 : Math.floor(r() * 2 ** 32),
      },
    };
  }
  return {
    id: r() < 0.05 ? '' : `0190f${Math.floor(r() * 1e6)}-7000-8000-${Math.floor(r() * 1e12)}`,
    deduplicated: r() < 0.3,
    state: Math.floor(r() * 7),
    error: undefined,
  };
}

describe('EnqueueStreamResponse encoder', () => {
  it('writes the same bytes as the generated encoder, and the generated decoder reads them back', () => {
    const r = rng(15);
    for (let n = 0; n < 500; n++) {
      const seq = [0, 1, 127, 128, 300, 2 ** 31, 2 ** 32 + 5, Number.MAX_SAFE_INTEGER][n % 8]!;
      const results = Array.from({ length: Math.floor(r() * 60) }, () => randomResult(r));
      const ours = encodeEnqueueStreamResponse(seq, results);
      const generated = Buffer.from(EnqueueStreamResponse.encode({ seq, results }).finish());
      expect(ours.equals(generated), `case ${n}`).toBe(true);
      expect(EnqueueStreamResponse.decode(ours)).toEqual({ seq, results });
    }
  });

  it('keeps an error whose fields are all defaults (an empty ItemError is still set)', () => {
    const results: EnqueueResult[] = [{ id: '', deduplicated: false, state: 0, error: { code: 0, message: '', retryAfterMs: 0 } }];
    expect(EnqueueStreamResponse.decode(encodeEnqueueStreamResponse(9, results)).results[0]!.error).toEqual({ code: 0, message: '', retryAfterMs: 0 });
  });
});

const STRINGS = ['', 'emails', 'bench-w2', 'naïve-☃', '\uFEFFbom', 'q'.repeat(200)];

function randomRequest(r: () => number, seq: number): EnqueueStreamRequest {
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(r() * xs.length)]!;
  // Most messages only in the common shape; the others with rare fields here and there.
  const rare = r() < 0.3 ? 0.05 : 0;
  const jobs = Array.from({ length: Math.floor(r() * 40) }, (): EnqueueRequest => ({
    queue: pick(STRINGS),
    type: pick(STRINGS),
    payload: r() < rare ? { a: 1, b: ['x'] } : undefined,
    payloadJson: r() < 0.1 ? Buffer.alloc(0) : Buffer.from(JSON.stringify({ n: Math.floor(r() * 1e9), s: pick(STRINGS) })),
    priority: (r() < rare ? -1 : pick([0, 1, 2, 3, 4, 99])) as Priority,
    delayMs: r() < rare ? pick([2 ** 31, 2 ** 32 - 1]) : pick([0, 1, 1000, 2 ** 27]),
    runAt: r() < rare ? new Date(1_700_000_000_123) : undefined,
    maxAttempts: pick([0, 3, 1_000_000]),
    retry: r() < rare ? { initialMs: 100, multiplier: 2, maxMs: 1000, jitter: 0.1 } : undefined,
    leaseTimeoutMs: pick([0, 50, 30_000]),
    metadata: r() < rare ? { traceparent: '00-abc-def-01' } : {},
    dedupKey: r() < 0.2 ? pick(STRINGS) : '',
    groupKey: r() < 0.2 ? pick(STRINGS) : '',
  }));
  return { seq, jobs };
}

describe('EnqueueStreamRequest decoder', () => {
  it('reads what the generated encoder writes into the same objects as the generated decoder, or defers to it', () => {
    const r = rng(42);
    let handled = 0;
    for (let n = 0; n < 500; n++) {
      const request = randomRequest(r, [0, 1, 300, 2 ** 40, 2 ** 49 + 1, Number.MAX_SAFE_INTEGER][n % 6]!);
      const bytes = Buffer.from(EnqueueStreamRequest.encode(request).finish());
      const generated = EnqueueStreamRequest.decode(bytes);
      const ours = decodeCommonEnqueueStreamRequest(bytes);
      if (ours) handled++;
      expect(ours ?? generated, `case ${n}`).toEqual(generated);
    }
    expect(handled).toBeGreaterThan(250); // the common shapes do take the fast path
  });

  it('defers unknown fields, odd encodings and malformed bytes to the generated decoder', () => {
    const job: EnqueueRequest = { ...EnqueueRequest.fromPartial({}), queue: 'q', payloadJson: Buffer.from('{"a":1}'), priority: 2, delayMs: 300 };
    const one = Buffer.from(EnqueueStreamRequest.encode({ seq: 7, jobs: [job] }).finish());
    expect(decodeCommonEnqueueStreamRequest(one)).toEqual(EnqueueStreamRequest.decode(one));
    for (let cut = 1; cut < one.length; cut++) {
      // A prefix is malformed (ours defers; the generated decoder throws) unless it ends at a field boundary.
      const prefix = one.subarray(0, cut);
      const ours = decodeCommonEnqueueStreamRequest(prefix);
      let generated: EnqueueStreamRequest | 'throws';
      try {
        generated = EnqueueStreamRequest.decode(prefix);
      } catch {
        generated = 'throws';
      }
      if (generated === 'throws') expect(ours, `cut ${cut}`).toBeUndefined();
      else if (ours) expect(ours, `cut ${cut}`).toEqual(generated);
    }
    expect(decodeCommonEnqueueStreamRequest(Buffer.concat([one, Buffer.from([0x18, 0x01])]))).toBeUndefined(); // unknown field 3
    expect(decodeCommonEnqueueStreamRequest(Buffer.from([0x08, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01]))).toBeUndefined(); // seq of 8 bytes
    expect(decodeCommonEnqueueStreamRequest(Buffer.from([0x12, 0x02, 0x28, 0xff]))).toBeUndefined(); // truncated varint inside a job
  });
});
