import { status as Status, type ClientDuplexStream, type ServiceError } from '@grpc/grpc-js';
import { DeadlineExceededError, UnavailableError, fromGrpcError } from './errors.js';
import type { SluiceClients } from './connect.js';
import type { CallLimits } from './call.js';
import { ProducerServiceService, type EnqueueBatchResponse, type EnqueueRequest, type EnqueueStreamRequest, type EnqueueStreamResponse } from './gen/sluice/v1/producer.js';
import { decodeEnqueueStreamResponse, encodeEnqueueStreamRequest } from './enqueue-stream-codec.js';

const ENQUEUE_STREAM_PATH = ProducerServiceService.enqueueStream.path;

interface Outstanding {
  requests: EnqueueRequest[];
  resolve(response: EnqueueBatchResponse): void;
  reject(error: Error): void;
  timer: NodeJS.Timeout;
}

/**
 * Sends the coalescer's batches on one long-lived EnqueueStream instead of one EnqueueBatch
 * call each: a stream message costs a fraction of a unary call in grpc-js, so batches can be
 * small and several can be in flight, and the producer and the broker work at the same time
 * instead of taking turns. Each `send` is answered by the response with its seq.
 *
 * Falls back to EnqueueBatch (`unary`): for good when the broker does not know EnqueueStream
 * (UNIMPLEMENTED: nothing was enqueued, so the outstanding batches are sent again that way),
 * and while the channel is not connected, so waiting out a broker restart and reporting an
 * address with no broker behave exactly as unary calls do. A stream that breaks fails its
 * outstanding batches with the stream's error, as a unary call that loses its connection
 * does: each job may or may not be stored, and it is not sent again behind the caller's back.
 */
export class EnqueueStreamTransport {
  private call: ClientDuplexStream<EnqueueStreamRequest, EnqueueStreamResponse> | undefined;
  private readonly outstanding = new Map<number, Outstanding>();
  private nextSeq = 1;
  /** The broker answered UNIMPLEMENTED: an older broker; EnqueueBatch from now on. */
  private unsupported = false;
  private closed = false;
  /** Streams opened so far (for tests). */
  streams = 0;

  constructor(
    private readonly clients: SluiceClients,
    private readonly limits: CallLimits,
    private readonly unary: (requests: EnqueueRequest[]) => Promise<EnqueueBatchResponse>,
  ) {}

  /** Whether batches currently travel on the stream (false: EnqueueBatch). */
  get streaming(): boolean {
    return !this.unsupported && !this.closed && this.clients.reachability.ready;
  }

  send(requests: EnqueueRequest[]): Promise<EnqueueBatchResponse> {
    if (!this.streaming) return this.unary(requests);
    const call = this.call ?? this.open();
    const seq = this.nextSeq++;
    return new Promise<EnqueueBatchResponse>((resolve, reject) => {
      // The same bound as a unary call's deadline: a broker that never answers fails the batch.
      const timer = setTimeout(() => {
        if (!this.outstanding.delete(seq)) return;
        reject(new DeadlineExceededError(`no answer from the broker within ${this.limits.callTimeoutMs} ms`, Status.DEADLINE_EXCEEDED));
      }, this.limits.callTimeoutMs);
      this.outstanding.set(seq, { requests, resolve, reject, timer });
      call.write({ seq, jobs: requests });
    });
  }

  /** Ends the stream once its answers are in (the coalescer is idle when this is called). */
  close(): void {
    this.closed = true;
    this.call?.end();
    this.call = undefined;
  }

  private open(): ClientDuplexStream<EnqueueStreamRequest, EnqueueStreamResponse> {
    // The generated client's method, with the hand-written codecs (same bytes on the wire).
    const call = this.clients.producer.makeBidiStreamRequest<EnqueueStreamRequest, EnqueueStreamResponse>(
      ENQUEUE_STREAM_PATH,
      encodeEnqueueStreamRequest,
      decodeEnqueueStreamResponse,
      this.clients.metadata,
    );
    this.call = call;
    this.streams++;
    call.on('data', (response: EnqueueStreamResponse) => {
      const seq = Number(response.seq);
      const o = this.outstanding.get(seq);
      if (!o) return; // timed out already
      this.outstanding.delete(seq);
      clearTimeout(o.timer);
      o.resolve({ results: response.results });
    });
    call.on('error', (error: ServiceError) => this.broken(call, error));
    // The broker ended the stream without a status error (it should not with answers due).
    call.on('end', () => this.broken(call, undefined));
    return call;
  }

  private broken(call: ClientDuplexStream<EnqueueStreamRequest, EnqueueStreamResponse>, error: ServiceError | undefined): void {
    if (this.call === call) this.call = undefined;
    if (this.outstanding.size === 0 && !error) return;
    const waiting = [...this.outstanding.values()];
    this.outstanding.clear();
    for (const o of waiting) clearTimeout(o.timer);
    if (error?.code === Status.UNIMPLEMENTED) {
      // An older broker: it enqueued nothing from this stream; send the batches the old way.
      this.unsupported = true;
      for (const o of waiting) this.unary(o.requests).then(o.resolve, o.reject);
      return;
    }
    const e = error ? fromGrpcError(error) : new UnavailableError('the broker ended the enqueue stream with answers due', Status.UNAVAILABLE);
    for (const o of waiting) o.reject(e);
  }
}
