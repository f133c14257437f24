import { GIVE_UP, WireReader } from './wire-reader.js';
import {
  ConsumeResponse,
  type Delivery,
  type QueueNotice,
  type Revoke,
  type SettleResult,
} from './gen/sluice/v1/worker.js';

/**
 * ConsumeResponse read by hand: the worker's hot path (a message of deliveries and settle
 * results per broker flush). The generated decoder makes a BinaryReader call per field, a
 * BigInt per timestamp (int64 seconds), a `new Array` per short string and a copy of every
 * payload; here fields are read straight from the received bytes, timestamps as plain
 * numbers, and `payloadJson` is a view of the received message, not a copy.
 *
 * The result is exactly what `ConsumeResponse.decode` returns for the same bytes
 * (test/client.consume-codec.test.ts compares both over random and malformed messages).
 * Unknown fields are skipped as the generated decoder skips them. Whatever this reader does
 * not handle the same way (a known field with an unexpected wire type, groups, a 32-bit
 * varint longer than 5 bytes, a negative or huge timestamp, a truncated message) makes it
 * give up, and the generated decoder reads the whole message instead, so rare or malformed
 * input decodes (or fails) exactly as before.
 */
export function decodeConsumeResponse(bytes: Uint8Array): ConsumeResponse {
  const buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const fast = new FastReader(buf).response();
  return fast ?? ConsumeResponse.decode(bytes);
}

class FastReader extends WireReader {
  response(): ConsumeResponse | undefined {
    try {
      return this.consumeResponse(this.buf.length);
    } catch (error) {
      if (error === GIVE_UP) return undefined;
      throw error;
    }
  }

  // --- messages ------------------------------------------------------------------------------

  private consumeResponse(end: number): ConsumeResponse {
    const m: ConsumeResponse = {
      subscribed: undefined,
      deliveries: [],
      settled: [],
      revoked: [],
      drain: undefined,
      stopped: undefined,
      queueNotices: [],
    };
    while (this.pos < end) {
      const tag = this.tag();
      switch (tag) {
        case 10: {
          const e = this.lengthEnd();
          let streamId = '';
          let maxCredit = 0;
          while (this.pos < e) {
            const t = this.tag();
            if (t === 10) streamId = this.string();
            else if (t === 16) maxCredit = this.uint32();
            else this.skip(t);
          }
          this.endAt(e);
          m.subscribed = { streamId, maxCredit };
          break;
        }
        case 18:
          m.deliveries.push(this.delivery(this.lengthEnd()));
          break;
        case 26:
          m.settled.push(this.settleResult(this.lengthEnd()));
          break;
        case 34:
          m.revoked.push(this.revoke(this.lengthEnd()));
          break;
        case 42: {
          const e = this.lengthEnd();
          let graceMs = 0;
          while (this.pos < e) {
            const t = this.tag();
            if (t === 8) graceMs = this.uint32();
            else this.skip(t);
          }
          this.endAt(e);
          m.drain = { graceMs };
          break;
        }
        case 50: {
          const e = this.lengthEnd();
          while (this.pos < e) this.skip(this.tag());
          this.endAt(e);
          m.stopped = {};
          break;
        }
        case 58:
          m.queueNotices.push(this.queueNotice(this.lengthEnd()));
          break;
        default:
          this.skip(tag);
      }
    }
    this.endAt(end);
    return m;
  }

  private delivery(end: number): Delivery {
    const d: Delivery = {
      jobId: '',
      leaseId: '',
      queue: '',
      type: '',
      payload: undefined,
      payloadJson: EMPTY,
      attempt: 0,
      maxAttempts: 0,
      deadline: undefined,
      leaseTimeoutMs: 0,
      metadata: {},
      priority: 0,
      createdAt: undefined,
      progress: undefined,
      groupKey: '',
    };
    while (this.pos < end) {
      const tag = this.tag();
      switch (tag) {
        case 10:
          d.jobId = this.string();
          break;
        case 18:
          d.leaseId = this.string();
          break;
        case 26:
          d.queue = this.string();
          break;
        case 34:
          d.type = this.string();
          break;
        case 42:
          d.payload = this.value(2);
          break;
        case 50: {
          const e = this.lengthEnd();
          // A view of the received message: the payload is parsed once and never written to.
          d.payloadJson = this.buf.subarray(this.pos, e);
          this.pos = e;
          break;
        }
        case 56:
          d.attempt = this.uint32();
          break;
        case 64:
          d.maxAttempts = this.uint32();
          break;
        case 74:
          d.deadline = this.timestamp();
          break;
        case 80:
          d.leaseTimeoutMs = this.uint32();
          break;
        case 90: {
          const e = this.lengthEnd();
          let key = '';
          let value = '';
          while (this.pos < e) {
            const t = this.tag();
            if (t === 10) key = this.string();
            else if (t === 18) value = this.string();
            else this.skip(t);
          }
          this.endAt(e);
          d.metadata[key] = value;
          break;
        }
        case 96:
          d.priority = this.uint32() | 0;
          break;
        case 106:
          d.createdAt = this.timestamp();
          break;
        case 114:
          d.progress = this.value(2);
          break;
        case 122:
          d.groupKey = this.string();
          break;
        default:
          this.skip(tag);
      }
    }
    this.endAt(end);
    return d;
  }

  private settleResult(end: number): SettleResult {
    const r: SettleResult = { jobId: '', leaseId: '', kind: 0, code: 0, message: '', state: 0, deadline: undefined };
    while (this.pos < end) {
      const tag = this.tag();
      switch (tag) {
        case 10:
          r.jobId = this.string();
          break;
        case 18:
          r.leaseId = this.string();
          break;
        case 24:
          r.kind = this.uint32() | 0;
          break;
        case 32:
          r.code = this.uint32();
          break;
        case 42:
          r.message = this.string();
          break;
        case 48:
          r.state = this.uint32() | 0;
          break;
        case 58:
          r.deadline = this.timestamp();
          break;
        default:
          this.skip(tag);
      }
    }
    this.endAt(end);
    return r;
  }

  private revoke(end: number): Revoke {
    const r: Revoke = { jobId: '', leaseId: '', reason: 0 };
    while (this.pos < end) {
      const tag = this.tag();
      if (tag === 10) r.jobId = this.string();
      else if (tag === 18) r.leaseId = this.string();
      else if (tag === 24) r.reason = this.uint32() | 0;
      else this.skip(tag);
    }
    this.endAt(end);
    return r;
  }

  private queueNotice(end: number): QueueNotice {
    const n: QueueNotice = { queue: '', paused: false };
    while (this.pos < end) {
      const tag = this.tag();
      if (tag === 10) n.queue = this.string();
      else if (tag === 16) n.paused = this.bool();
      else this.skip(tag);
    }
    this.endAt(end);
    return n;
  }

  /** google.protobuf.Timestamp as the generated code turns it into a Date. */
  private timestamp(): Date {
    const end = this.lengthEnd();
    let seconds = 0;
    let nanos = 0;
    while (this.pos < end) {
      const tag = this.tag();
      if (tag === 8) seconds = this.int64();
      else if (tag === 16) nanos = this.uint32() | 0;
      else this.skip(tag);
    }
    this.endAt(end);
    return new Date(seconds * 1_000 + nanos / 1_000_000);
  }
}

const EMPTY = Buffer.alloc(0);
