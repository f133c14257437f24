import { describe, expect, it } from 'vitest';
import { encodeEnqueueStreamResponse } from '../src/grpc/enqueue-stream-codec.js';
import { EnqueueStreamResponse, type EnqueueResult } from '../clients/typescript/src/gen/sluice/v1/producer.js';

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
