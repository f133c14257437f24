import { Metadata, status, type ServiceError } from '@grpc/grpc-js';
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
    return { code: CODES[error.code], details: echo(error.message, MAX_STATUS_MESSAGE_CHARS), metadata: new Metadata() };
  }
  const known = storeErrorToDomain(error);
  if (known) return { code: CODES[known.code], details: known.message, metadata: new Metadata() };
  log.error({ err: error, ...context }, 'unexpected error in RPC handler');
  return { code: status.INTERNAL, details: 'internal error (logged by the broker)', metadata: new Metadata() };
}
