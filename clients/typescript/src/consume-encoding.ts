import { Value } from './gen/google/protobuf/struct.js';
import { ConsumeRequest } from './gen/sluice/v1/worker.js';

/**
 * ConsumeRequest written by hand: the worker's acks, nacks, extends, releases and credit (one
 * message per event-loop turn). The generated encoder forks a BinaryWriter per nested message
 * and copies its chunks together at the end; here sizes are computed first and every field is
 * written once into one buffer. The bytes are exactly the generated encoder's
 * (test/client.consume-codec.test.ts compares them). The subscribe message (once per stream)
 * and values the generated encoder would refuse (a uint32 out of range) take the generated
 * path; results and progress values (google.protobuf.Value) are encoded by the generated code
 * and embedded.
 */
export function encodeConsumeRequest(m: ConsumeRequest): Buffer {
  return encodeHot(m) ?? Buffer.from(ConsumeRequest.encode(m).finish());
}

function encodeHot(m: ConsumeRequest): Buffer | undefined {
  if (m.subscribe !== undefined || !isInt32(m.credit)) return undefined;
  let total = m.credit !== 0 ? 1 + varintSize(m.credit >>> 0, m.credit < 0) : 0;
  const { acks, nacks, extends: exts, releases } = m;
  // Sizes of the nested messages, in writing order; values' bytes alongside.
  const sizes: number[] = [];
  const values: (Uint8Array | undefined)[] = [];
  for (const a of acks) {
    const value = a.result === undefined ? undefined : Value.encode(Value.wrap(a.result)).finish();
    values.push(value);
    const n = stringField(a.jobId) + stringField(a.leaseId) + (value ? 1 + varintSize(value.length) + value.length : 0);
    sizes.push(n);
    total += 1 + varintSize(n) + n;
  }
  for (const x of nacks) {
    if (!isUint32(x.retryAfterMs)) return undefined;
    const n = stringField(x.jobId) + stringField(x.leaseId) + stringField(x.error) + (x.nonRetryable ? 2 : 0) + uintField(x.retryAfterMs);
    sizes.push(n);
    total += 1 + varintSize(n) + n;
  }
  for (const e of exts) {
    if (!isUint32(e.extendMs)) return undefined;
    const value = e.progress === undefined ? undefined : Value.encode(Value.wrap(e.progress)).finish();
    values.push(value);
    const n = stringField(e.jobId) + stringField(e.leaseId) + uintField(e.extendMs) + (value ? 1 + varintSize(value.length) + value.length : 0);
    sizes.push(n);
    total += 1 + varintSize(n) + n;
  }
  if (m.stop) total += 2;
  for (const r of releases) {
    const n = stringField(r.jobId) + stringField(r.leaseId) + stringField(r.reason);
    sizes.push(n);
    total += 1 + varintSize(n) + n;
  }

  const w = new Writer(total);
  if (m.credit !== 0) {
    w.byte(16);
    if (m.credit < 0) w.negativeInt32(m.credit);
    else w.varint(m.credit);
  }
  let s = 0;
  let v = 0;
  for (const a of acks) {
    w.byte(26).varint(sizes[s++]!).string(10, a.jobId).string(18, a.leaseId);
    const value = values[v++];
    if (value) w.byte(26).varint(value.length).bytes(value);
  }
  for (const x of nacks) {
    w.byte(34).varint(sizes[s++]!).string(10, x.jobId).string(18, x.leaseId).string(26, x.error);
    if (x.nonRetryable) w.byte(32).byte(1);
    w.uint(40, x.retryAfterMs);
  }
  for (const e of exts) {
    w.byte(42).varint(sizes[s++]!).string(10, e.jobId).string(18, e.leaseId).uint(24, e.extendMs);
    const value = values[v++];
    if (value) w.byte(34).varint(value.length).bytes(value);
  }
  if (m.stop) w.byte(48).byte(1);
  for (const r of releases) {
    w.byte(58).varint(sizes[s++]!).string(10, r.jobId).string(18, r.leaseId).string(26, r.reason);
  }
  if (w.pos !== total) throw new Error(`ConsumeRequest encoding: wrote ${w.pos} bytes, sized ${total}`);
  return w.buf;
}

const isInt32 = (v: number): boolean => Number.isInteger(v) && v >= -0x8000_0000 && v <= 0x7fff_ffff;
const isUint32 = (v: number): boolean => Number.isInteger(v) && v >= 0 && v <= 0xffff_ffff;

/** Bytes of a varint; a negative int32 is sign-extended to 10 bytes, as protobuf requires. */
function varintSize(v: number, negative = false): number {
  if (negative) return 10;
  let n = 1;
  while (v >= 0x80) {
    v = Math.floor(v / 128);
    n++;
  }
  return n;
}

/** A string field with a one-byte tag: 0 bytes when empty. */
function stringField(s: string): number {
  if (s.length === 0) return 0;
  const len = utf8Length(s);
  return 1 + varintSize(len) + len;
}

/** A varint field with a one-byte tag: 0 bytes when 0. */
function uintField(v: number): number {
  return v === 0 ? 0 : 1 + varintSize(v);
}

function utf8Length(s: string): number {
  if (s.length < 64) {
    let ascii = true;
    for (let i = 0; i < s.length; i++) {
      if (s.charCodeAt(i) > 0x7f) {
        ascii = false;
        break;
      }
    }
    if (ascii) return s.length;
  }
  return Buffer.byteLength(s, 'utf8');
}

class Writer {
  readonly buf: Buffer;
  pos = 0;

  constructor(size: number) {
    this.buf = Buffer.allocUnsafe(size);
  }

  byte(b: number): this {
    this.buf[this.pos++] = b;
    return this;
  }

  varint(v: number): this {
    while (v >= 0x80) {
      this.buf[this.pos++] = (v % 128) | 0x80;
      v = Math.floor(v / 128);
    }
    this.buf[this.pos++] = v;
    return this;
  }

  /** A negative int32: its 64-bit two's complement as a 10-byte varint. */
  negativeInt32(v: number): this {
    let lo = v >>> 0;
    for (let i = 0; i < 4; i++) {
      this.buf[this.pos++] = (lo & 0x7f) | 0x80;
      lo >>>= 7;
    }
    // Bits 28-31 of the low word and the high word's first bits (all ones).
    this.buf[this.pos++] = (lo & 0x0f) | 0x70 | 0x80;
    for (let i = 0; i < 4; i++) this.buf[this.pos++] = 0xff;
    this.buf[this.pos++] = 0x01;
    return this;
  }

  string(tag: number, s: string): this {
    if (s.length === 0) return this;
    this.buf[this.pos++] = tag;
    const len = utf8Length(s);
    if (len === s.length && len < 0x80) {
      // Short ASCII (job and lease ids): a loop is cheaper than a call into C++.
      const buf = this.buf;
      let pos = this.pos;
      buf[pos++] = len;
      for (let i = 0; i < len; i++) buf[pos++] = s.charCodeAt(i);
      this.pos = pos;
    } else {
      this.varint(len);
      this.pos += this.buf.write(s, this.pos, 'utf8');
    }
    return this;
  }

  uint(tag: number, v: number): this {
    if (v === 0) return this;
    this.buf[this.pos++] = tag;
    return this.varint(v);
  }

  bytes(b: Uint8Array): this {
    this.buf.set(b, this.pos);
    this.pos += b.length;
    return this;
  }
}
