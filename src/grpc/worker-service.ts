import type { ServerDuplexStream } from '@grpc/grpc-js';
import type { AckInput, Broker, ExtendInput, NackInput, ReleaseInput } from '../broker/broker.js';
import type { ConsumeSession, Outgoing, SettleOutcome, Subscription } from '../broker/consume-session.js';
import { echo, invalidArgument } from '../domain/errors.js';
import { MAX_JOB_ID_CHARS } from '../domain/job-id.js';
import { MAX_DURATION_MS } from '../domain/ranges.js';
import { isUndecodable } from './decode-guard.js';
import { checkJsonShape } from '../domain/json-shape.js';
import { jsonText } from './enqueue-input.js';
import type { ClaimedJob } from '../store/job-store.js';
import { validateQueueName, validateTypeName } from '../domain/names.js';
import type { Logger } from '../log.js';
import {
  ConsumeResponse,
  Delivery,
  Revoke_Reason,
  SettleResult_Kind,
  type ConsumeRequest,
  type Subscribe,
  type WorkerServiceServer,
} from '../../clients/typescript/src/gen/sluice/v1/worker.js';
import { deliveryToWire, stateToWire } from './convert.js';
import { grpcCode, toServiceError } from './status.js';
import { encodeHot } from './consume-encoding.js';

const KIND: Record<SettleOutcome['kind'], SettleResult_Kind> = {
  ack: SettleResult_Kind.KIND_ACK,
  nack: SettleResult_Kind.KIND_NACK,
  extend: SettleResult_Kind.KIND_EXTEND,
  release: SettleResult_Kind.KIND_RELEASE,
};

const MAX_SUBSCRIBED_QUEUES = 100;
const MAX_ERROR_MESSAGE = 16 * 1024;
/** Lease ids the broker issues are ~25 characters. */
const MAX_LEASE_ID_CHARS = 128;

/**
 * One Consume stream = one ConsumeSession. The session is registered when `subscribe`
 * arrives and always closed when the stream ends, however it ends, which hands its leases
 * back for redelivery. Protocol violations end the stream with a status.
 */
export function workerService(broker: Broker, log: Logger): WorkerServiceServer {
  const shapeLimits = { maxDepth: broker.config.maxJsonDepth, maxValues: broker.config.maxJsonValues };
  return {
    consume(call: ServerDuplexStream<ConsumeRequest, ConsumeResponse>) {
      let session: ConsumeSession | undefined;
      let finished = false;
      const peer = call.getPeer();

      const close = (reason: string) => {
        if (session) broker.closeSession(session, reason);
      };
      const abort = (error: unknown) => {
        if (finished) return;
        finished = true;
        const status = toServiceError(error, log, { rpc: 'Consume', peer, streamId: session?.id });
        close(`protocol error: ${status.details}`);
        call.emit('error', status);
      };

      call.on('data', (req: ConsumeRequest) => {
        if (finished) return;
        try {
          if (isUndecodable(req)) throw invalidArgument(req.message);
          if (!session) {
            if (!req.subscribe) throw invalidArgument('the first Consume message must carry subscribe (queues to consume)');
            const subscription = parseSubscribe(req.subscribe, peer);
            const raw = subscription.rawJsonPayloads;
            // Bytes: the service's serializer passes them through (server.ts).
            session = broker.openSession(subscription, peer, (out, written) => {
              const bytes = encodeResponse(out, raw, (job, reason) => broker.undeliverable(session!, job, reason));
              call.write(bytes as unknown as ConsumeResponse, written);
              return bytes.length;
            });
            call.write({
              subscribed: { streamId: session.id, maxCredit: session.credit.max },
              deliveries: [],
              settled: [],
              revoked: [],
              drain: undefined,
              stopped: undefined,
              // Paused now: said at once, so a worker that gets nothing can tell why.
              queueNotices: subscription.queues.filter((q) => broker.queues.isPaused(q)).map((queue) => ({ queue, paused: true })),
            });
          } else if (req.subscribe) {
            throw invalidArgument('subscribe may only be sent once, in the first message of the stream');
          }
          session.lastSeenAt = broker.clock.now();
          const s = session;
          const acks: AckInput[] = [];
          const nacks: NackInput[] = [];
          const extends_: ExtendInput[] = [];
          const releases: ReleaseInput[] = [];
          const rejected = (kind: SettleOutcome['kind'], jobId: string, leaseId: string): boolean => {
            const problem =
              !jobId || !leaseId
                ? 'job_id and lease_id are required'
                : jobId.length > MAX_JOB_ID_CHARS || leaseId.length > MAX_LEASE_ID_CHARS
                  ? `job_id (${jobId.length} characters) or lease_id (${leaseId.length}) is longer than any the broker issues`
                  : undefined;
            if (!problem) return false;
            s.settled({ kind, jobId: echo(jobId), leaseId: echo(leaseId), errorCode: 'INVALID_ARGUMENT', message: problem });
            return true;
          };
          const badNumber = (kind: SettleOutcome['kind'], jobId: string, leaseId: string, field: string, value: number): boolean => {
            if (value <= MAX_DURATION_MS) return false;
            s.settled({ kind, jobId, leaseId, errorCode: 'INVALID_ARGUMENT', message: `${field} must be in 0..${MAX_DURATION_MS}, got ${value}` });
            return true;
          };
          /** The JSON text of a result or progress value; undefined when it was refused. */
          const documentText = (kind: SettleOutcome['kind'], jobId: string, leaseId: string, field: string, value: unknown): string | null | undefined => {
            if (value === undefined) return null;
            try {
              const text = jsonText(value, field);
              checkJsonShape(text, field, shapeLimits);
              return text;
            } catch (error) {
              s.settled({ kind, jobId, leaseId, errorCode: 'INVALID_ARGUMENT', message: (error as Error).message });
              return undefined;
            }
          };
          for (const a of req.acks) {
            if (rejected('ack', a.jobId, a.leaseId)) continue;
            const result = documentText('ack', a.jobId, a.leaseId, 'result', a.result);
            if (result !== undefined) acks.push({ jobId: a.jobId, leaseId: a.leaseId, result });
          }
          for (const n of req.nacks) {
            if (rejected('nack', n.jobId, n.leaseId) || badNumber('nack', n.jobId, n.leaseId, 'retry_after_ms', n.retryAfterMs)) continue;
            nacks.push({
              jobId: n.jobId,
              leaseId: n.leaseId,
              error: n.error.slice(0, MAX_ERROR_MESSAGE),
              nonRetryable: n.nonRetryable,
              retryAfterMs: n.retryAfterMs,
            });
          }
          for (const e of req.extends) {
            if (rejected('extend', e.jobId, e.leaseId) || badNumber('extend', e.jobId, e.leaseId, 'extend_ms', e.extendMs)) continue;
            const progress = documentText('extend', e.jobId, e.leaseId, 'progress', e.progress);
            if (progress !== undefined) extends_.push({ jobId: e.jobId, leaseId: e.leaseId, extendMs: e.extendMs, progress });
          }
          for (const r of req.releases) {
            if (rejected('release', r.jobId, r.leaseId)) continue;
            releases.push({ jobId: r.jobId, leaseId: r.leaseId, reason: r.reason.slice(0, MAX_ERROR_MESSAGE) });
          }
          const accepted = acks.length + nacks.length + extends_.length + releases.length;
          if (accepted > 0) broker.settle(session, { acks, nacks, extends: extends_, releases });
          else if (accepted < req.acks.length + req.nacks.length + req.extends.length + req.releases.length) broker.commits.schedule();
          // Stop before credit: a closing worker's late grant must not start new deliveries.
          if (req.stop) broker.stopSession(session);
          // Credit after settles: the freed slots are refilled in the same flush.
          if (req.credit !== 0) broker.grantCredit(session, req.credit);
        } catch (error) {
          abort(error);
        }
      });
      call.on('end', () => {
        close('worker ended the stream');
        if (!finished) {
          finished = true;
          call.end();
        }
      });
      call.on('cancelled', () => {
        finished = true;
        close('stream cancelled');
      });
      call.on('error', () => close('stream error'));
      call.on('close', () => close('stream closed'));
    },
  };
}

function parseSubscribe(sub: Subscribe, peer: string): Subscription {
  if (sub.queues.length === 0) throw invalidArgument('subscribe.queues must name at least one queue');
  if (sub.queues.length > MAX_SUBSCRIBED_QUEUES) throw invalidArgument(`subscribe.queues may name at most ${MAX_SUBSCRIBED_QUEUES} queues`);
  const queues = sub.queues.map((q) => validateQueueName(q, 'subscribe.queues'));
  const types = sub.types.map((t) => {
    if (t === '') throw invalidArgument('subscribe.types must not contain an empty name');
    return validateTypeName(t, 'subscribe.types');
  });
  if (sub.workerId.length > 256) throw invalidArgument('subscribe.worker_id must be at most 256 characters');
  return { queues, types, workerId: sub.workerId || peer, labels: sub.labels, rawJsonPayloads: sub.rawJsonPayloads };
}

/**
 * The stream's message, encoded here rather than by grpc-js (the service's serializer passes
 * bytes through, see server.ts), so that one delivery that cannot be encoded (a payload stored
 * before the shape limits, nested too deep for google.protobuf.Value) fails alone: it is taken
 * out of the message and handed to `unencodable`, and the rest of the message goes out. The
 * common case (raw JSON payloads: the client Worker's) is written by hand (consume-encoding.ts).
 */
function encodeResponse(out: Outgoing, rawJson: boolean, unencodable: (job: ClaimedJob, reason: string) => void): Buffer {
  const hot = encodeHot(out, rawJson);
  if (hot) return hot;
  try {
    return toBuffer(ConsumeResponse.encode(toResponse(out, rawJson)).finish());
  } catch {
    const deliveries: ClaimedJob[] = [];
    for (const job of out.deliveries) {
      try {
        Delivery.encode(deliveryToWire(job, rawJson));
        deliveries.push(job);
      } catch (error) {
        unencodable(job, `the payload cannot be sent as google.protobuf.Value (${echo((error as Error).message, 100)}); consume with raw_json_payloads to receive it`);
      }
    }
    return toBuffer(ConsumeResponse.encode(toResponse({ ...out, deliveries }, rawJson)).finish());
  }
}

function toBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** The generic form of a message (the hot one is written by consume-encoding.ts; tests compare the two). */
export function toResponse(out: Outgoing, rawJson: boolean): ConsumeResponse {
  return {
    subscribed: undefined,
    deliveries: out.deliveries.map((job) => deliveryToWire(job, rawJson)),
    settled: out.settled.map((o) => ({
      jobId: o.jobId,
      leaseId: o.leaseId,
      kind: KIND[o.kind],
      code: o.errorCode ? grpcCode(o.errorCode) : 0,
      message: o.message ?? '',
      state: o.state ? stateToWire(o.state) : 0,
      deadline: o.deadline === undefined ? undefined : new Date(o.deadline),
    })),
    revoked: out.revoked.map((r) => ({
      jobId: r.jobId,
      leaseId: r.leaseId,
      reason: r.reason === 'cancelled' ? Revoke_Reason.REASON_CANCELLED : Revoke_Reason.REASON_LEASE_EXPIRED,
    })),
    drain: out.drainGraceMs === undefined ? undefined : { graceMs: out.drainGraceMs },
    stopped: out.stopped ? {} : undefined,
    queueNotices: out.queueNotices ?? [],
  };
}
