import type { EnqueueResult } from '../../clients/typescript/src/gen/sluice/v1/producer.js';

/**
 * A hand-written encoder for EnqueueStreamResponse, the answer to every EnqueueStream
 * message. It writes the same bytes as the generated encoder (fields in number order,
 * proto3 defaults left out) into one buffer sized up front, without the generated code's
 * writer forks and per-field calls; the broker encodes each answer while the commit's fsync
 * runs (enqueue-stream.ts), and sends the bytes as they are once it is durable.
 */
export function encodeEnqueueStreamResponse(seq: number, results: readonly EnqueueResult[]): Buffer {
  // Sizes first: each result's body, then the whole message.
  const bodies = new Array<number>(results.length);
  let size = seq !== 0 ? 1 + varintSize(seq) : 0;
  for (let i = 0; i < results.length; i++) {
    const body = resultSize(results[i]!);
    bodies[i] = body;
    size += 1 + varintSize(body) + body;
  }
  const out = Buffer.allocUnsafe(size);
  let pos = 0;
  if (seq !== 0) {
    out[pos++] = 0x08;
    pos = writeVarint(out, pos, seq);
  }
  for (let i = 0; i < results.length; i++) {
    const r = results[i]!;
    out[pos++] = 0x12;
    pos = writeVarint(out, pos, bodies[i]!);
    if (r.id !== '') pos = writeString(out, pos, 0x0a, r.id);
    if (r.deduplicated) {
      out[pos++] = 0x10;
      out[pos++] = 1;
    }
    if (r.state !== 0) {
      out[pos++] = 0x18;
      pos = writeVarint(out, pos, r.state);
    }
    const e = r.error;
    if (e) {
      out[pos++] = 0x22;
      pos = writeVarint(out, pos, errorSize(e));
      if (e.code !== 0) {
        out[pos++] = 0x08;
        pos = writeVarint(out, pos, e.code);
      }
      if (e.message !== '') pos = writeString(out, pos, 0x12, e.message);
      if (e.retryAfterMs !== 0) {
        out[pos++] = 0x18;
        pos = writeVarint(out, pos, e.retryAfterMs);
      }
    }
  }
  return out;
}

function resultSize(r: EnqueueResult): number {
  let n = 0;
  if (r.id !== '') n += stringFieldSize(r.id);
  if (r.deduplicated) n += 2;
  if (r.state !== 0) n += 1 + varintSize(r.state);
  if (r.error) {
    const e = errorSize(r.error);
    n += 1 + varintSize(e) + e;
  }
  return n;
}

function errorSize(e: NonNullable<EnqueueResult['error']>): number {
  let n = 0;
  if (e.code !== 0) n += 1 + varintSize(e.code);
  if (e.message !== '') n += stringFieldSize(e.message);
  if (e.retryAfterMs !== 0) n += 1 + varintSize(e.retryAfterMs);
  return n;
}

function stringFieldSize(s: string): number {
  const bytes = Buffer.byteLength(s, 'utf8');
  return 1 + varintSize(bytes) + bytes;
}

function writeString(out: Buffer, pos: number, tag: number, s: string): number {
  out[pos++] = tag;
  const bytes = Buffer.byteLength(s, 'utf8');
  pos = writeVarint(out, pos, bytes);
  return pos + out.write(s, pos, bytes, 'utf8');
}

/** Bytes of a non-negative integer (up to 2^53) as a varint; enum values are never negative here. */
function varintSize(v: number): number {
  let n = 1;
  while (v >= 0x80) {
    v = Math.floor(v / 128);
    n++;
  }
  return n;
}

function writeVarint(out: Buffer, pos: number, v: number): number {
  while (v >= 0x80) {
    out[pos++] = (v % 128) | 0x80;
    v = Math.floor(v / 128);
  }
  out[pos++] = v;
  return pos;
}
