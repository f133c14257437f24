import { status as Status, type ServiceError } from '@grpc/grpc-js';

/**
 * Base class of every error the client raises for a failed broker call. `code` is the gRPC
 * status code, so callers can branch on a class (`instanceof NotFoundError`) or a number.
 */
export class SluiceError extends Error {
  override name = 'SluiceError';
  constructor(
    message: string,
    readonly code: Status,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** The request was malformed (bad queue name, payload not JSON, over a limit...). Do not retry. */
export class InvalidArgumentError extends SluiceError {
  override name = 'InvalidArgumentError';
}
/** The job (or queue) does not exist. */
export class NotFoundError extends SluiceError {
  override name = 'NotFoundError';
}
/** The resource already exists (e.g. a schedule name on create). */
export class AlreadyExistsError extends SluiceError {
  override name = 'AlreadyExistsError';
}
/** The job is not in a state that allows this (e.g. a stale lease, cancelling a finished job). */
export class FailedPreconditionError extends SluiceError {
  override name = 'FailedPreconditionError';
}
/** A limit was hit (too many streams, credit over the maximum). */
export class ResourceExhaustedError extends SluiceError {
  override name = 'ResourceExhaustedError';
}
/** The broker cannot be reached or is shutting down. Safe to retry after a pause. */
export class UnavailableError extends SluiceError {
  override name = 'UnavailableError';
}
/** The call's deadline passed before the broker answered. */
export class DeadlineExceededError extends SluiceError {
  override name = 'DeadlineExceededError';
}
/** Missing or invalid credentials. */
export class UnauthenticatedError extends SluiceError {
  override name = 'UnauthenticatedError';
}
/** The credentials do not allow this call. */
export class PermissionDeniedError extends SluiceError {
  override name = 'PermissionDeniedError';
}
/** The call was cancelled by this process (e.g. the client was closed). */
export class CallCancelledError extends SluiceError {
  override name = 'CallCancelledError';
}
/** The broker failed unexpectedly. */
export class InternalError extends SluiceError {
  override name = 'InternalError';
}

const BY_CODE: Partial<Record<Status, new (message: string, code: Status, options?: { cause?: unknown }) => SluiceError>> = {
  [Status.INVALID_ARGUMENT]: InvalidArgumentError,
  [Status.OUT_OF_RANGE]: InvalidArgumentError,
  [Status.NOT_FOUND]: NotFoundError,
  [Status.ALREADY_EXISTS]: AlreadyExistsError,
  [Status.FAILED_PRECONDITION]: FailedPreconditionError,
  [Status.RESOURCE_EXHAUSTED]: ResourceExhaustedError,
  [Status.UNAVAILABLE]: UnavailableError,
  [Status.DEADLINE_EXCEEDED]: DeadlineExceededError,
  [Status.UNAUTHENTICATED]: UnauthenticatedError,
  [Status.PERMISSION_DENIED]: PermissionDeniedError,
  [Status.CANCELLED]: CallCancelledError,
  [Status.INTERNAL]: InternalError,
  [Status.UNKNOWN]: InternalError,
  [Status.DATA_LOSS]: InternalError,
};

/** The typed error for a gRPC status code and message. */
export function errorForCode(code: Status, message: string, cause?: unknown): SluiceError {
  const Ctor = BY_CODE[code] ?? SluiceError;
  return new Ctor(message, code, cause === undefined ? undefined : { cause });
}

/** Maps a grpc-js error to the typed error; other errors pass through unchanged. */
export function fromGrpcError(error: unknown): Error {
  const e = error as Partial<ServiceError>;
  if (e && typeof e.code === 'number' && typeof e.details === 'string') {
    return errorForCode(e.code, e.details || e.message || Status[e.code] || 'gRPC error', error);
  }
  return error instanceof Error ? error : new Error(String(error));
}

// --- errors a handler throws, and abort reasons a handler sees ------------------------------

/**
 * Thrown by a handler to fail the job without retrying: it goes straight to the dead letter
 * queue (e.g. the payload can never be processed).
 */
export class NonRetryableError extends Error {
  override name = 'NonRetryableError';
}

/**
 * Thrown by a handler to fail this attempt and retry after exactly `retryAfterMs` (instead of
 * the backoff policy), e.g. when an upstream answered 429 with a Retry-After. Counts as an
 * attempt: after the last one the job is dead as usual.
 *
 *     throw new RetryAfterError(30_000, 'rate limited by the mail provider');
 */
export class RetryAfterError extends Error {
  override name = 'RetryAfterError';
  constructor(
    readonly retryAfterMs: number,
    message = `retry in ${retryAfterMs} ms`,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    if (!Number.isFinite(retryAfterMs) || retryAfterMs < 1) throw new RangeError(`RetryAfterError: retryAfterMs must be >= 1, got ${retryAfterMs}`);
  }
}

/** Why a handler's `signal` was aborted; `signal.reason` is one of these. */
export type AbortReasonKind = 'lease-lost' | 'cancelled' | 'worker-closing';

/** Base class of `job.signal.reason`. */
export class JobAbortedError extends Error {
  override name = 'JobAbortedError';
  constructor(
    readonly kind: AbortReasonKind,
    message: string,
  ) {
    super(message);
  }
}

/**
 * The lease is gone (it expired without a heartbeat, the stream to the broker broke, or the
 * broker restarted): the job may already run elsewhere, and this attempt's result is dropped.
 */
export class LeaseLostError extends JobAbortedError {
  override name = 'LeaseLostError';
  constructor(message = 'lease lost') {
    super('lease-lost', message);
  }
}

/** The job was cancelled through CancelJob while it ran. */
export class JobCancelledError extends JobAbortedError {
  override name = 'JobCancelledError';
  constructor(message = 'job cancelled') {
    super('cancelled', message);
  }
}

/** The worker is closing and its timeout ran out: the job is handed back for redelivery. */
export class WorkerClosingError extends JobAbortedError {
  override name = 'WorkerClosingError';
  constructor(message = 'worker closing') {
    super('worker-closing', message);
  }
}
