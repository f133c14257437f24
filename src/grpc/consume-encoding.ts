import type { ClaimedJob } from '../store/job-store.js';
import type { Outgoing, RevokeNotice, SettleOutcome } from '../broker/consume-session.js';
import { Revoke_Reason, SettleResult_Kind } from '../../clients/typescript/src/gen/sluice/v1/worker.js';
import { stateToWire } from './convert.js';
import { grpcCode } from './status.js';

/**
 * ConsumeResponse written by hand for the hot case: deliveries with raw JSON payloads,
 * settle results and revokes, nothing else. The generated encoder builds a Delivery object,
 * two Dates, a Buffer copy of the payload and a fork per nested message for every job; here
 * sizes are computed first and every field goes straight into one buffer (the payload text
 * is written as UTF-8 where it lands). The bytes decode to what the generated encoder would
 * produce for the same message (test/grpc.consume-encoding.test.ts checks field by field);
 * anything else (google.protobuf.Value payloads, progress, drain, stop, queue notices) takes
 * the generated path: `encodeHot` returns undefined.
 */
export function encodeHot(out: Outgoing, rawJson: boolean): Buffer | undefined {
  if (!rawJson || out.drainGraceMs !== undefined || out.stopped || (out.queueNotices && out.queueNotices.length > 0)) return undefined;
  const deliveries = out.deliveries;
  const sizes = new Array<number>(deliveries.length);
  let total = 0;
  for (let i = 0; i < deliveries.length; i++) {
    const job = deliveries[i]!;
    if (job.progress !== null || job.priority < 0 || !Number.isSafeInteger(job.lease_expires_at) || !Number.isSafeInteger(job.created_at)) return undefined;
    const size = deliverySize(job);
    if (size < 0) return undefined;
    sizes[i] = size;
    total += 1 + varintSize(size) + size;
  }
  const settled = out.settled;
  const settledSizes = new Array<number>(settled.length);
  for (let i = 0; i < settled.length; i++) {
    const deadline = settled[i]!.deadline;
    if (deadline !== undefined && !Number.isSafeInteger(deadline)) return undefined;
    const size = settleSize(settled[i]!);
    settledSizes[i] = size;
    total += 1 + varintSize(size) + size;
  }
  for (const r of out.revoked) {
    const size = revokeSize(r);
    total += 1 + varintSize(size) + size;
  }
  const w = new Writer(total);
  for (let i = 0; i < deliveries.length; i++) {
    w.tag(18).varint(sizes[i]!);
    writeDelivery(w, deliveries[i]!);
  }
  for (let i = 0; i < settled.length; i++) {
    w.tag(26).varint(settledSizes[i]!);
    writeSettle(w, settled[i]!);
  }
  for (const r of out.revoked) {
    w.tag(34).varint(revokeSize(r));
    writeRevoke(w, r);
  }
  if (w.pos !== total) throw new Error(`consume encoding: wrote ${w.pos} bytes, sized ${total}`);
  return w.buf;
}

// --- Delivery ------------------------------------------------------------------------------

function deliverySize(job: ClaimedJob): number {
  let n = stringField(job.id) + stringField(job.lease_id) + stringField(job.queue) + stringField(job.type);
  n += stringField(job.payload);
  n += uintField(job.attempt) + uintField(job.max_attempts) + uintField(job.lease_timeout_ms);
  const deadline = timestampSize(job.lease_expires_at);
  n += 1 + varintSize(deadline) + deadline;
  if (job.metadata && job.metadata !== '{}') {
    const parsed = JSON.parse(job.metadata) as Record<string, unknown>;
    for (const key in parsed) {
      const value = parsed[key];
      if (typeof value !== 'string') return -1;
      const entry = stringField(key) + stringField(value);
      n += 1 + varintSize(entry) + entry;
    }
  }
  n += uintField(job.priority);
  const created = timestampSize(job.created_at);
  n += 1 + varintSize(created) + created;
  n += job.group_key ? stringField(job.group_key) : 0;
  return n;
}

function writeDelivery(w: Writer, job: ClaimedJob): void {
  w.stringField(10, job.id).stringField(18, job.lease_id).stringField(26, job.queue).stringField(34, job.type);
  w.stringField(50, job.payload);
  w.uintField(56, job.attempt).uintField(64, job.max_attempts);
  w.tag(74).varint(timestampSize(job.lease_expires_at)).timestamp(job.lease_expires_at);
  w.uintField(80, job.lease_timeout_ms);
  if (job.metadata && job.metadata !== '{}') {
    const parsed = JSON.parse(job.metadata) as Record<string, string>;
    for (const key in parsed) {
      const value = parsed[key]!;
      w.tag(90).varint(stringField(key) + stringField(value)).stringField(10, key).stringField(18, value);
    }
  }
  w.uintField(96, job.priority);
  w.tag(106).varint(timestampSize(job.created_at)).timestamp(job.created_at);
  if (job.group_key) w.stringField(122, job.group_key);
}

// --- SettleResult and Revoke -----------------------------------------------------------------

const KIND: Record<SettleOutcome['kind'], SettleResult_Kind> = {
  ack: SettleResult_Kind.KIND_ACK,
  nack: SettleResult_Kind.KIND_NACK,
  extend: SettleResult_Kind.KIND_EXTEND,
  release: SettleResult_Kind.KIND_RELEASE,
};

function settleSize(o: SettleOutcome): number {
  let n = stringField(o.jobId) + stringField(o.leaseId) + uintField(KIND[o.kind]);
  if (o.errorCode) n += uintField(grpcCode(o.errorCode));
  if (o.message) n += stringField(o.message);
  if (o.state) n += uintField(stateToWire(o.state));
  if (o.deadline !== undefined) {
    const t = timestampSize(o.deadline);
    n += 1 + varintSize(t) + t;
  }
  return n;
}

function writeSettle(w: Writer, o: SettleOutcome): void {
  w.stringField(10, o.jobId).stringField(18, o.leaseId).uintField(24, KIND[o.kind]);
  if (o.errorCode) w.uintField(32, grpcCode(o.errorCode));
  if (o.message) w.stringField(42, o.message);
  if (o.state) w.uintField(48, stateToWire(o.state));
  if (o.deadline !== undefined) w.tag(58).varint(timestampSize(o.deadline)).timestamp(o.deadline);
}

function revokeReason(r: RevokeNotice): number {
  return r.reason === 'cancelled' ? Revoke_Reason.REASON_CANCELLED : Revoke_Reason.REASON_LEASE_EXPIRED;
}

function revokeSize(r: RevokeNotice): number {
  return stringField(r.jobId) + stringField(r.leaseId) + uintField(revokeReason(r));
}

function writeRevoke(w: Writer, r: RevokeNotice): void {
  w.stringField(10, r.jobId).stringField(18, r.leaseId).uintField(24, revokeReason(r));
}

// --- wire primitives (proto3: fields equal to their default are left out) --------------------

function varintSize(v: number): number {
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
  const len = s.length < 64 && isAscii(s) ? s.length : Buffer.byteLength(s, 'utf8');
  return 1 + varintSize(len) + len;
}

/** A varint field with a one-byte tag: 0 bytes when 0. */
function uintField(v: number): number {
  return v === 0 ? 0 : 1 + varintSize(v);
}

/** google.protobuf.Timestamp of epoch milliseconds: seconds (1), nanos (2). */
function timestampSize(ms: number): number {
  const seconds = Math.trunc(ms / 1000);
  const nanos = (ms % 1000) * 1_000_000;
  return uintField(seconds) + uintField(nanos);
}

function isAscii(s: string): boolean {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) > 0x7f) return false;
  return true;
}

class Writer {
  readonly buf: Buffer;
  pos = 0;

  constructor(size: number) {
    this.buf = Buffer.allocUnsafe(size);
  }

  tag(tag: number): this {
    this.buf[this.pos++] = tag;
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

  stringField(tag: number, s: string): this {
    if (s.length === 0) return this;
    this.buf[this.pos++] = tag;
    if (s.length < 64 && isAscii(s)) {
      // Short ASCII (ids, lease ids, queue names): a loop is cheaper than a call into C++.
      const buf = this.buf;
      let pos = this.pos;
      buf[pos++] = s.length;
      for (let i = 0; i < s.length; i++) buf[pos++] = s.charCodeAt(i);
      this.pos = pos;
    } else {
      this.varint(Buffer.byteLength(s, 'utf8'));
      this.pos += this.buf.write(s, this.pos, 'utf8');
    }
    return this;
  }

  uintField(tag: number, v: number): this {
    if (v === 0) return this;
    this.buf[this.pos++] = tag;
    return this.varint(v);
  }

  timestamp(ms: number): this {
    const seconds = Math.trunc(ms / 1000);
    const nanos = (ms % 1000) * 1_000_000;
    return this.uintField(8, seconds).uintField(16, nanos);
  }
}
