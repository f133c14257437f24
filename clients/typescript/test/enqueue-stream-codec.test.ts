import { describe, expect, it } from 'vitest';
import { decodeEnqueueStreamResponse, encodeEnqueueStreamRequest } from '../src/enqueue-stream-codec.js';
import { EnqueueRequest, EnqueueStreamRequest, EnqueueStreamResponse, type EnqueueResult } from '../src/gen/sluice/v1/producer.js';
import type { Priority } from '../src/gen/sluice/v1/job.js';

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
}

const STRINGS = ['', 'emails', 'bench-w2', 'naïve-☃', '\uFEFFbom', 'q'.repeat(200)];

function randomJob(r: () => number, rare: number): EnqueueRequest {
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(r() * xs.length)]!;
  return {
    queue: pick(STRINGS),
    type: pick(STRINGS),
    payload: r() < rare ? { a: 1, b: ['x', null] } : undefined,
    payloadJson: r() < 0.1 ? Buffer.alloc(0) : Buffer.from(JSON.stringify({ n: Math.floor(r() * 1e9), s: pick(STRINGS) })),
    priority: (r() < rare ? -1 : pick([0, 1, 2, 3, 4])) as Priority,
    delayMs: pick([0, 1, 1000, 2 ** 27, 2 ** 32 - 1]),
    runAt: r() < rare ? new Date(1_700_000_000_123) : undefined,
    maxAttempts: pick([0, 3, 1_000_000]),
    retry: r() < rare ? { initialMs: 100, multiplier: 2, maxMs: 1000, jitter: 0.1 } : undefined,
    leaseTimeoutMs: pick([0, 50, 30_000]),
    metadata: r() < rare ? { traceparent: '00-abc-def-01', 'ü': 'ß' } : {},
    dedupKey: r() < 0.2 ? pick(STRINGS) : '',
    groupKey: r() < 0.2 ? pick(STRINGS) : '',
  };
}

function randomResult(r: () => number): EnqueueResult {
  if (r() < 0.3) {
    const messages = ['', 'queue is at its cap', 'naïve ☃ 🎉', 'x'.repeat(300)];
    return { id: '', deduplicated: false, state: 0, error: { code: Math.floor(r() * 17), message: messages[Math.floor(r() * 4)]!, retryAfterMs: r() < 0.5 ? 0 : Math.floor(r() * 2 ** 32) } };
  }
  return { id: r() < 0.05 ? '' : `0190f${Math.floor(r() * 1e6)}-7000-8000-${Math.floor(r() * 1e12)}`, deduplicated: r() < 0.3, state: Math.floor(r() * 7), error: undefined };
}

const SEQS = [0, 1, 127, 128, 2 ** 31, 2 ** 40, Number.MAX_SAFE_INTEGER];

describe('EnqueueStream codecs of the producer', () => {
  it('encode requests to the same bytes as the generated encoder, jobs with rare fields included', () => {
    const r = rng(7);
    for (let n = 0; n < 400; n++) {
      const rare = n % 3 === 0 ? 0.1 : 0;
      const request = { seq: SEQS[n % SEQS.length]!, jobs: Array.from({ length: Math.floor(r() * 40) }, () => randomJob(r, rare)) };
      const ours = encodeEnqueueStreamRequest(request);
      expect(ours.equals(Buffer.from(EnqueueStreamRequest.encode(request).finish())), `case ${n}`).toBe(true);
    }
  });

  it('decode answers into the same objects as the generated decoder', () => {
    const r = rng(8);
    for (let n = 0; n < 400; n++) {
      const response = { seq: SEQS[n % SEQS.length]!, results: Array.from({ length: Math.floor(r() * 60) }, () => randomResult(r)) };
      const bytes = Buffer.from(EnqueueStreamResponse.encode(response).finish());
      expect(decodeEnqueueStreamResponse(bytes), `case ${n}`).toEqual(EnqueueStreamResponse.decode(bytes));
    }
  });

  it('leave answers in an unexpected shape to the generated decoder', () => {
    const one = Buffer.from(EnqueueStreamResponse.encode({ seq: 3, results: [{ id: 'a', deduplicated: true, state: 2, error: undefined }] }).finish());
    const withUnknown = Buffer.concat([one, Buffer.from([0x18, 0x05])]); // field 3, unknown to this version
    expect(decodeEnqueueStreamResponse(withUnknown)).toEqual(EnqueueStreamResponse.decode(withUnknown));
    for (let cut = 1; cut < one.length; cut++) {
      const prefix = one.subarray(0, cut);
      let generated: unknown;
      try {
        generated = EnqueueStreamResponse.decode(prefix);
      } catch (error) {
        generated = error;
      }
      if (generated instanceof Error) expect(() => decodeEnqueueStreamResponse(prefix)).toThrow();
      else expect(decodeEnqueueStreamResponse(prefix)).toEqual(generated);
    }
    expect(EnqueueRequest.decode(encodeEnqueueStreamRequest({ seq: 0, jobs: [] }))).toBeDefined();
  });
});
