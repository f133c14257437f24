import type {
  EnqueueRequest,
  EnqueueResult,
  EnqueueStreamRequest,
  EnqueueStreamResponse,
  ProducerServiceService,
} from '../../clients/typescript/src/gen/sluice/v1/producer.js';

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

/**
 * A hand-written decoder for EnqueueStreamRequest, for the messages the client libraries
 * send: seq, and jobs with only scalar, string and payload_json fields. It gives the same
 * objects as the generated decoder (a test compares them), without a reader object, the
 * per-field calls, or the copy of each payload. Anything else (payload as a Value, run_at,
 * retry, metadata, unknown fields, unusual encodings, malformed bytes) returns undefined and
 * the message is decoded by the generated code, which stays the reference.
 */
export function decodeCommonEnqueueStreamRequest(buf: Buffer): EnqueueStreamRequest | undefined {
  const end = buf.length;
  let seq = 0;
  const jobs: EnqueueRequest[] = [];
  let pos = 0;
  while (pos < end) {
    const tag = buf[pos++]!;
    if (tag === 0x12) {
      const len = readVarint(buf, pos, end, 4);
      if (len < 0) return undefined;
      pos = varintEnd;
      const jobEnd = pos + len;
      if (jobEnd > end) return undefined;
      const job = decodeJob(buf, pos, jobEnd);
      if (!job) return undefined;
      jobs.push(job);
      pos = jobEnd;
    } else if (tag === 0x08) {
      // Up to 7 bytes: below 2^49, a safe integer.
      seq = readVarint(buf, pos, end, 7);
      if (seq < 0) return undefined;
      pos = varintEnd;
    } else {
      return undefined;
    }
  }
  return { seq, jobs };
}

function decodeJob(buf: Buffer, pos: number, end: number): EnqueueRequest | undefined {
  const job: EnqueueRequest = {
    queue: '',
    type: '',
    payload: undefined,
    payloadJson: EMPTY,
    priority: 0,
    delayMs: 0,
    runAt: undefined,
    maxAttempts: 0,
    retry: undefined,
    leaseTimeoutMs: 0,
    metadata: {},
    dedupKey: '',
    groupKey: '',
  };
  while (pos < end) {
    const tag = buf[pos++]!;
    if ((tag & 7) === 2) {
      const len = readVarint(buf, pos, end, 4);
      if (len < 0) return undefined;
      const start = varintEnd;
      pos = start + len;
      if (pos > end) return undefined;
      switch (tag) {
        case 0x0a:
          job.queue = text(buf, start, pos);
          break;
        case 0x12:
          job.type = text(buf, start, pos);
          break;
        case 0x22:
          // A view of the message's bytes (the generated decoder copies them).
          job.payloadJson = buf.subarray(start, pos);
          break;
        case 0x62:
          job.dedupKey = text(buf, start, pos);
          break;
        case 0x6a:
          job.groupKey = text(buf, start, pos);
          break;
        default:
          return undefined;
      }
    } else {
      // uint32 fields below 2^28, and priority as a small non-negative enum.
      const value = readVarint(buf, pos, end, tag === 0x28 ? 1 : 4);
      if (value < 0) return undefined;
      pos = varintEnd;
      switch (tag) {
        case 0x28:
          job.priority = value;
          break;
        case 0x30:
          job.delayMs = value;
          break;
        case 0x40:
          job.maxAttempts = value;
          break;
        case 0x50:
          job.leaseTimeoutMs = value;
          break;
        default:
          return undefined;
      }
    }
  }
  return job;
}

const EMPTY = Buffer.alloc(0);
/** As the generated decoder reads strings: ASCII as is, anything else by a lenient UTF-8 decoder that keeps a leading U+FEFF. */
const utf8 = new TextDecoder('utf-8', { ignoreBOM: true });

function text(buf: Buffer, start: number, end: number): string {
  for (let i = start; i < end; i++) if (buf[i]! > 0x7f) return utf8.decode(buf.subarray(start, end));
  return buf.toString('latin1', start, end);
}

/** Where the last readVarint ended (saves returning a pair). */
let varintEnd = 0;

/** A varint of at most `maxBytes` bytes starting at `pos`, or -1 (longer, or past `end`). */
function readVarint(buf: Buffer, pos: number, end: number, maxBytes: number): number {
  let value = 0;
  let scale = 1;
  for (let i = 0; i < maxBytes; i++) {
    if (pos >= end) return -1;
    const b = buf[pos++]!;
    value += (b & 0x7f) * scale;
    if (b < 0x80) {
      varintEnd = pos;
      return value;
    }
    scale *= 128;
  }
  return -1;
}

/**
 * The EnqueueStream method with these codecs: requests in the common shape are decoded by
 * hand (the others by the generated decoder), and answers encoded here go out as they are.
 */
export function withEnqueueStreamCodec(definition: typeof ProducerServiceService): typeof ProducerServiceService {
  const { requestDeserialize: decode, responseSerialize: serialize } = definition.enqueueStream;
  return {
    ...definition,
    enqueueStream: {
      ...definition.enqueueStream,
      requestDeserialize: (bytes: Buffer) => decodeCommonEnqueueStreamRequest(bytes) ?? decode(bytes),
      responseSerialize: (value: EnqueueStreamResponse) => (Buffer.isBuffer(value) ? value : serialize(value)),
    },
  };
}
