import { Metadata, status, type ServiceError } from '@grpc/grpc-js';
import { BinaryWriter } from '@bufbuild/protobuf/wire';
import { SluiceError, echo, type ErrorCode } from '../domain/errors.js';
import type { Logger } from '../log.js';
import { storeErrorToDomain } from '../store/store-errors.js';

const CODES: Record<ErrorCode, status> = {
  INVALID_ARGUMENT: status.INVALID_ARGUMENT,
  NOT_FOUND: status.NOT_FOUND,
  ALREADY_EXISTS: status.ALREADY_EXISTS,
  FAILED_PRECONDITION: status.FAILED_PRECONDITION,
  RESOURCE_EXHAUSTED: status.RESOURCE_EXHAUSTED,
  UNAVAILABLE: status.UNAVAILABLE,
  UNAUTHENTICATED: status.UNAUTHENTICATED,
  PERMISSION_DENIED: status.PERMISSION_DENIED,
  INTERNAL: status.INTERNAL,
};

/** Longest status message sent (grpc-message is a header; see domain/errors.ts echo). */
const MAX_STATUS_MESSAGE_CHARS = 1024;

export function grpcCode(code: ErrorCode): status {
  return CODES[code];
}

/**
 * The one place errors become gRPC statuses. A SluiceError keeps its code and message;
 * anything else is a bug: logged loudly, answered as INTERNAL without internals.
 */
export function toServiceError(error: unknown, log: Logger, context: Record<string, unknown> = {}): Partial<ServiceError> {
  if (error instanceof SluiceError) {
    if (error.code === 'INTERNAL') log.error({ err: error, ...context }, 'internal error');
    // The message travels in a header: whatever a caller's value did to it, it stays small.
    const details = echo(error.message, MAX_STATUS_MESSAGE_CHARS);
    const metadata = new Metadata();
    if (error.retryAfterMs !== undefined) setRetryHint(metadata, CODES[error.code], details, error.retryAfterMs);
    return { code: CODES[error.code], details, metadata };
  }
  const known = storeErrorToDomain(error);
  if (known) return { code: CODES[known.code], details: known.message, metadata: new Metadata() };
  log.error({ err: error, ...context }, 'unexpected error in RPC handler');
  return { code: status.INTERNAL, details: 'internal error (logged by the broker)', metadata: new Metadata() };
}

/**
 * A retry hint in both forms clients understand: the `retry-after-ms` trailer (plain text,
 * what @sluice/client reads) and `google.rpc.RetryInfo` in `grpc-status-details-bin` (what
 * Google's gRPC client libraries and Envoy read), encoded by hand: google.rpc.Status
 * { code = 1, message = 2, details = 3: Any { type_url = 1, value = 2: RetryInfo
 * { retry_delay = 1: Duration { seconds = 1, nanos = 2 } } } }.
 */
export function setRetryHint(metadata: Metadata, code: status, message: string, retryAfterMs: number): void {
  metadata.set('retry-after-ms', String(retryAfterMs));
  const duration = new BinaryWriter().uint32(8).int64(Math.floor(retryAfterMs / 1000)).uint32(16).int32((retryAfterMs % 1000) * 1_000_000).finish();
  const retryInfo = new BinaryWriter().uint32(10).bytes(duration).finish();
  const any = new BinaryWriter().uint32(10).string('type.googleapis.com/google.rpc.RetryInfo').uint32(18).bytes(retryInfo).finish();
  const statusProto = new BinaryWriter().uint32(8).int32(code).uint32(18).string(message).uint32(26).bytes(any).finish();
  metadata.set('grpc-status-details-bin', Buffer.from(statusProto));
}
