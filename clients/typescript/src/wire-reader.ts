import { BinaryReader } from '@bufbuild/protobuf/wire';
import { Value } from './gen/google/protobuf/struct.js';

/**
 * Protobuf wire primitives for the hand-written Consume decoders (the worker's
 * consume-decoding.ts, the broker's src/grpc/consume-decoding.ts). Each reads exactly what
 * the generated (ts-proto over @bufbuild/protobuf) reader reads for well-formed input, and
 * throws GIVE_UP for anything it does not handle the same way (a truncated field, a varint
 * longer than the field's fast form, groups, end-group or zero tags): the caller then decodes
 * the whole message with the generated decoder, so unusual or malformed input behaves exactly
 * as before.
 */
export const GIVE_UP = Symbol('give up');

// The decoder the generated code uses for non-ASCII strings (BinaryReader's default).
const utf8 = new TextDecoder('utf-8', { ignoreBOM: true });

/** Buffer's own latin1Slice: what toString('latin1') ends in, without its argument handling (~2x cheaper for ids). */
type Latin1Buffer = Buffer & { latin1Slice(start: number, end: number): string };
const HAS_LATIN1_SLICE = typeof (Buffer.prototype as Partial<Latin1Buffer>).latin1Slice === 'function';

export class WireReader {
  pos = 0;

  constructor(protected readonly buf: Buffer) {}

  /**
   * google.protobuf.Value (rare on the consume stream: payloads travel as JSON text): the
   * generated reader, told the nesting `depth` the generated decoder would be at, so its
   * recursion limit for deeply nested values is the same.
   */
  protected value(depth: number): unknown {
    const end = this.lengthEnd();
    const reader = new BinaryReader(this.buf.subarray(this.pos, end));
    (reader as unknown as { __tsProtoDecodeDepth: number }).__tsProtoDecodeDepth = depth;
    let value: unknown;
    try {
      value = Value.unwrap(Value.decode(reader, end - this.pos));
    } catch {
      // Malformed: the generated decoder reads the whole message and fails (or not) its own way.
      throw GIVE_UP;
    }
    this.pos = end;
    return value;
  }

  // --- wire primitives -------------------------------------------------------------------------

  /** A tag; 0 and end-group tags stop the generated decoder mid-message: not handled here. */
  protected tag(): number {
    const tag = this.uint32();
    if (tag === 0 || (tag & 7) === 4) throw GIVE_UP;
    return tag;
  }

  /** A varint of at most 5 bytes, as the generated uint32() reads it (low 32 bits, unsigned). */
  protected uint32(): number {
    const buf = this.buf;
    let pos = this.pos;
    // Bytes past the end read as undefined (0 here); the bounds check at the end catches them.
    let b = buf[pos++]!;
    let v = b & 0x7f;
    if (b >= 0x80) {
      b = buf[pos++]!;
      v |= (b & 0x7f) << 7;
      if (b >= 0x80) {
        b = buf[pos++]!;
        v |= (b & 0x7f) << 14;
        if (b >= 0x80) {
          b = buf[pos++]!;
          v |= (b & 0x7f) << 21;
          if (b >= 0x80) {
            b = buf[pos++]!;
            // A 5th byte above 0x0f carries bits beyond 32 (or continues: a negative int32
            // enum, 10 bytes): the generated reader's business.
            if (b > 0x0f) throw GIVE_UP;
            v = (v | (b << 28)) >>> 0;
          }
        }
      }
    }
    if (pos > buf.length) throw GIVE_UP;
    this.pos = pos;
    return v;
  }

  /** A non-negative int64 of at most 7 bytes (exact as a number); anything else is left to the generated reader. */
  protected int64(): number {
    const buf = this.buf;
    let pos = this.pos;
    let b = buf[pos++]!;
    let v = b & 0x7f;
    if (b >= 0x80) {
      b = buf[pos++]!;
      v |= (b & 0x7f) << 7;
      if (b >= 0x80) {
        b = buf[pos++]!;
        v |= (b & 0x7f) << 14;
        if (b >= 0x80) {
          b = buf[pos++]!;
          v |= (b & 0x7f) << 21;
          if (b >= 0x80) {
            // Bits 28 and up: arithmetic, not 32-bit bit operations.
            b = buf[pos++]!;
            v += (b & 0x7f) * 0x1000_0000;
            if (b >= 0x80) {
              b = buf[pos++]!;
              v += (b & 0x7f) * 0x8_0000_0000;
              if (b >= 0x80) {
                b = buf[pos++]!;
                v += (b & 0x7f) * 0x400_0000_0000;
                if (b >= 0x80) throw GIVE_UP;
              }
            }
          }
        }
      }
    }
    if (pos > buf.length) throw GIVE_UP;
    this.pos = pos;
    return v;
  }

  protected bool(): boolean {
    const b = this.buf[this.pos];
    if (b === undefined || b >= 0x80) throw GIVE_UP;
    this.pos++;
    return b !== 0;
  }

  /** Reads a length prefix and returns where that field ends. */
  protected lengthEnd(): number {
    const len = this.uint32();
    const end = this.pos + len;
    if (end > this.buf.length) throw GIVE_UP;
    return end;
  }

  /** A nested message must end exactly at its length (a field running past it is malformed). */
  protected endAt(end: number): void {
    if (this.pos !== end) throw GIVE_UP;
  }

  protected string(): string {
    const end = this.lengthEnd();
    const buf = this.buf;
    const start = this.pos;
    this.pos = end;
    for (let i = start; i < end; i++) {
      if (buf[i]! > 0x7f) return utf8.decode(buf.subarray(start, end));
    }
    return HAS_LATIN1_SLICE ? (buf as Latin1Buffer).latin1Slice(start, end) : buf.toString('latin1', start, end);
  }

  /** Skips an unknown field of wire type varint, 64-bit, length-delimited or 32-bit. */
  protected skip(tag: number): void {
    switch (tag & 7) {
      case 0: {
        const buf = this.buf;
        let n = 0;
        while (true) {
          if (this.pos >= buf.length || ++n > 10) throw GIVE_UP;
          if (buf[this.pos++]! < 0x80) break;
        }
        return;
      }
      case 1:
        this.pos += 8;
        break;
      case 2:
        this.pos = this.lengthEnd();
        return;
      case 5:
        this.pos += 4;
        break;
      default:
        throw GIVE_UP;
    }
    if (this.pos > this.buf.length) throw GIVE_UP;
  }
}
