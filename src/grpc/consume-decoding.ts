import { GIVE_UP, WireReader } from '../../clients/typescript/src/wire-reader.js';
import { ConsumeRequest, type Ack, type Extend, type Nack, type Release } from '../../clients/typescript/src/gen/sluice/v1/worker.js';

/**
 * ConsumeRequest read by hand: a worker's acks and credit, one message per round trip. The
 * generated decoder costs a BinaryReader call per field and a `new Array` per short string;
 * this reads the fields straight from the received bytes and returns exactly what
 * `ConsumeRequest.decode` returns (test/grpc.consume-decoding.test.ts compares both over
 * random and malformed messages). The first message of a stream (subscribe), a negative
 * credit (a 10-byte varint) and anything unusual or malformed are decoded by the generated
 * decoder, with its outcome (wire-reader.ts).
 */
export function decodeConsumeRequest(bytes: Buffer): ConsumeRequest {
  return new RequestReader(bytes).request() ?? ConsumeRequest.decode(bytes);
}

class RequestReader extends WireReader {
  request(): ConsumeRequest | undefined {
    try {
      return this.consumeRequest(this.buf.length);
    } catch (error) {
      if (error === GIVE_UP) return undefined;
      throw error;
    }
  }

  private consumeRequest(end: number): ConsumeRequest {
    const m: ConsumeRequest = { subscribe: undefined, credit: 0, acks: [], nacks: [], extends: [], stop: false, releases: [] };
    while (this.pos < end) {
      const tag = this.tag();
      switch (tag) {
        case 10:
          // Subscribe: once per stream, with a map and repeated strings: the generated decoder.
          throw GIVE_UP;
        case 16:
          m.credit = this.uint32() | 0;
          break;
        case 26:
          m.acks.push(this.ack(this.lengthEnd()));
          break;
        case 34:
          m.nacks.push(this.nack(this.lengthEnd()));
          break;
        case 42:
          m.extends.push(this.extend(this.lengthEnd()));
          break;
        case 48:
          m.stop = this.bool();
          break;
        case 58:
          m.releases.push(this.release(this.lengthEnd()));
          break;
        default:
          this.skip(tag);
      }
    }
    this.endAt(end);
    return m;
  }

  private ack(end: number): Ack {
    const a: Ack = { jobId: '', leaseId: '', result: undefined };
    while (this.pos < end) {
      const tag = this.tag();
      if (tag === 10) a.jobId = this.string();
      else if (tag === 18) a.leaseId = this.string();
      else if (tag === 26) a.result = this.value(2);
      else this.skip(tag);
    }
    this.endAt(end);
    return a;
  }

  private nack(end: number): Nack {
    const n: Nack = { jobId: '', leaseId: '', error: '', nonRetryable: false, retryAfterMs: 0 };
    while (this.pos < end) {
      const tag = this.tag();
      if (tag === 10) n.jobId = this.string();
      else if (tag === 18) n.leaseId = this.string();
      else if (tag === 26) n.error = this.string();
      else if (tag === 32) n.nonRetryable = this.bool();
      else if (tag === 40) n.retryAfterMs = this.uint32();
      else this.skip(tag);
    }
    this.endAt(end);
    return n;
  }

  private extend(end: number): Extend {
    const e: Extend = { jobId: '', leaseId: '', extendMs: 0, progress: undefined };
    while (this.pos < end) {
      const tag = this.tag();
      if (tag === 10) e.jobId = this.string();
      else if (tag === 18) e.leaseId = this.string();
      else if (tag === 24) e.extendMs = this.uint32();
      else if (tag === 34) e.progress = this.value(2);
      else this.skip(tag);
    }
    this.endAt(end);
    return e;
  }

  private release(end: number): Release {
    const r: Release = { jobId: '', leaseId: '', reason: '' };
    while (this.pos < end) {
      const tag = this.tag();
      if (tag === 10) r.jobId = this.string();
      else if (tag === 18) r.leaseId = this.string();
      else if (tag === 26) r.reason = this.string();
      else this.skip(tag);
    }
    this.endAt(end);
    return r;
  }
}
