import {
  EnqueueRequest,
  EnqueueStreamRequest,
  EnqueueStreamResponse,
  type EnqueueResult,
} from './gen/sluice/v1/producer.js';

/**
 * Hand-written codecs for the producer's side of EnqueueStream (the broker has its own for
 * the other side). They write and read the same bytes as the generated code, one buffer per
 * message and no writer forks; jobs with a payload Value, run_at, retry or metadata are
 * encoded by the generated encoder, and an answer in an unexpected shape is read by the
 * generated decoder.
 */
export function encodeEnqueueStreamRequest(request: EnqueueStreamRequest): Buffer {
  const { seq, jobs } = request;
  const sizes = new Array<number>(jobs.length);
  const generated: (Uint8Array | undefined)[] = new Array(jobs.length);
  let size = seq !== 0 ? 1 + varintSize(seq) : 0;
  for (let i = 0; i < jobs.length; i++) {
    const job = jobs[i]!;
    let body: number;
    if (isCommon(job)) body = commonJobSize(job);
    else body = (generated[i] = EnqueueRequest.encode(job).finish()).length;
    sizes[i] = body;
    size += 1 + varintSize(body) + body;
  }
  const out = Buffer.allocUnsafe(size);
  let pos = 0;
  if (seq !== 0) {
    out[pos++] = 0x08;
    pos = writeVarint(out, pos, seq);
  }
  for (let i = 0; i < jobs.length; i++) {
    out[pos++] = 0x12;
    pos = writeVarint(out, pos, sizes[i]!);
    const bytes = generated[i];
    if (bytes) {
      out.set(bytes, pos);
      pos += bytes.length;
      continue;
    }
    const job = jobs[i]!;
    if (job.queue !== '') pos = writeString(out, pos, 0x0a, job.queue);
    if (job.type !== '') pos = writeString(out, pos, 0x12, job.type);
    if (job.payloadJson.length !== 0) {
      out[pos++] = 0x22;
      pos = writeVarint(out, pos, job.payloadJson.length);
      out.set(job.payloadJson, pos);
      pos += job.payloadJson.length;
    }
    if (job.priority !== 0) pos = writeUint(out, pos, 0x28, job.priority);
    if (job.delayMs !== 0) pos = writeUint(out, pos, 0x30, job.delayMs);
    if (job.maxAttempts !== 0) pos = writeUint(out, pos, 0x40, job.maxAttempts);
    if (job.leaseTimeoutMs !== 0) pos = writeUint(out, pos, 0x50, job.leaseTimeoutMs);
    if (job.dedupKey !== '') pos = writeString(out, pos, 0x62, job.dedupKey);
    if (job.groupKey !== '') pos = writeString(out, pos, 0x6a, job.groupKey);
  }
  return out;
}

/** Only scalar, string and payload_json fields, each a non-negative integer where numeric. */
function isCommon(job: EnqueueRequest): boolean {
  if (job.payload !== undefined || job.runAt !== undefined || job.retry !== undefined) return false;
  for (const _ in job.metadata) return false;
  return isUint32(job.priority) && isUint32(job.delayMs) && isUint32(job.maxAttempts) && isUint32(job.leaseTimeoutMs);
}

function isUint32(v: number): boolean {
  return v >= 0 && v <= 0xffffffff && Math.floor(v) === v;
}

function commonJobSize(job: EnqueueRequest): number {
  let n = 0;
  if (job.queue !== '') n += stringFieldSize(job.queue);
  if (job.type !== '') n += stringFieldSize(job.type);
  if (job.payloadJson.length !== 0) n += 1 + varintSize(job.payloadJson.length) + job.payloadJson.length;
  if (job.priority !== 0) n += 1 + varintSize(job.priority);
  if (job.delayMs !== 0) n += 1 + varintSize(job.delayMs);
  if (job.maxAttempts !== 0) n += 1 + varintSize(job.maxAttempts);
  if (job.leaseTimeoutMs !== 0) n += 1 + varintSize(job.leaseTimeoutMs);
  if (job.dedupKey !== '') n += stringFieldSize(job.dedupKey);
  if (job.groupKey !== '') n += stringFieldSize(job.groupKey);
  return n;
}

/** The broker's answer: read by hand in the shape the broker writes, else by the generated decoder. */
export function decodeEnqueueStreamResponse(buf: Buffer): EnqueueStreamResponse {
  return decodeCommonResponse(buf) ?? EnqueueStreamResponse.decode(buf);
}

function decodeCommonResponse(buf: Buffer): EnqueueStreamResponse | undefined {
  const end = buf.length;
  let seq = 0;
  const results: EnqueueResult[] = [];
  let pos = 0;
  while (pos < end) {
    const tag = buf[pos++]!;
    if (tag === 0x12) {
      const len = readVarint(buf, pos, end, 4);
      const start = varintEnd;
      if (len < 0 || start + len > end) return undefined;
      const result = decodeResult(buf, start, start + len);
      if (!result) return undefined;
      results.push(result);
      pos = start + len;
    } else if (tag === 0x08) {
      seq = readVarint(buf, pos, end, 7);
      if (seq < 0) return undefined;
      pos = varintEnd;
    } else {
      return undefined;
    }
  }
  return { seq, results };
}

function decodeResult(buf: Buffer, pos: number, end: number): EnqueueResult | undefined {
  const result: EnqueueResult = { id: '', deduplicated: false, state: 0, error: undefined };
  while (pos < end) {
    const tag = buf[pos++]!;
    if (tag === 0x0a || tag === 0x22) {
      const len = readVarint(buf, pos, end, 4);
      if (len < 0 || varintEnd + len > end) return undefined;
      const start = varintEnd;
      pos = start + len;
      if (tag === 0x0a) result.id = text(buf, start, pos);
      else {
        const error = decodeError(buf, start, pos);
        if (!error) return undefined;
        result.error = error;
      }
    } else if (tag === 0x10 || tag === 0x18) {
      // deduplicated as 0/1, state as a small enum value; anything else: the generated decoder.
      const value = readVarint(buf, pos, end, 1);
      if (value < 0) return undefined;
      pos = varintEnd;
      if (tag === 0x10) {
        if (value > 1) return undefined;
        result.deduplicated = value === 1;
      } else result.state = value;
    } else {
      return undefined;
    }
  }
  return result;
}

function decodeError(buf: Buffer, pos: number, end: number): NonNullable<EnqueueResult['error']> | undefined {
  const error = { code: 0, message: '', retryAfterMs: 0 };
  while (pos < end) {
    const tag = buf[pos++]!;
    if (tag === 0x12) {
      const len = readVarint(buf, pos, end, 4);
      if (len < 0 || varintEnd + len > end) return undefined;
      error.message = text(buf, varintEnd, varintEnd + len);
      pos = varintEnd + len;
    } else if (tag === 0x08 || tag === 0x18) {
      const value = readVarint(buf, pos, end, 5);
      if (value < 0 || value > 0xffffffff) return undefined;
      pos = varintEnd;
      if (tag === 0x08) error.code = value;
      else error.retryAfterMs = value;
    } else {
      return undefined;
    }
  }
  return error;
}

/** As the generated decoder reads strings: ASCII as is, anything else by a lenient UTF-8 decoder that keeps a leading U+FEFF. */
const utf8 = new TextDecoder('utf-8', { ignoreBOM: true });

function text(buf: Buffer, start: number, end: number): string {
  for (let i = start; i < end; i++) if (buf[i]! > 0x7f) return utf8.decode(buf.subarray(start, end));
  return buf.toString('latin1', start, end);
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

function writeUint(out: Buffer, pos: number, tag: number, v: number): number {
  out[pos++] = tag;
  return writeVarint(out, pos, v);
}

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

/** Where the last readVarint ended. */
let varintEnd = 0;

/** A varint of at most `maxBytes` bytes at `pos`, or -1 (longer, or past `end`). */
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
