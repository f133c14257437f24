/**
 * Domain errors carry a stable code; the gRPC layer maps each code to a status in one place
 * (grpc/status.ts). Anything that is not a SluiceError is a bug and becomes INTERNAL.
 */
export type ErrorCode =
  | 'INVALID_ARGUMENT'
  | 'NOT_FOUND'
  | 'ALREADY_EXISTS'
  | 'FAILED_PRECONDITION'
  | 'RESOURCE_EXHAUSTED'
  | 'UNAVAILABLE'
  | 'UNAUTHENTICATED'
  | 'PERMISSION_DENIED'
  | 'INTERNAL';

export class SluiceError extends Error {
  override readonly name = 'SluiceError';
  constructor(
    readonly code: ErrorCode,
    message: string,
    /** When to try again (admission control): sent as the `retry-after-ms` trailer and google.rpc.RetryInfo. */
    readonly retryAfterMs?: number,
  ) {
    super(message);
  }
}

export const invalidArgument = (message: string): SluiceError => new SluiceError('INVALID_ARGUMENT', message);
export const notFound = (message: string): SluiceError => new SluiceError('NOT_FOUND', message);
export const failedPrecondition = (message: string): SluiceError => new SluiceError('FAILED_PRECONDITION', message);
export const unavailable = (message: string): SluiceError => new SluiceError('UNAVAILABLE', message);
export const resourceExhausted = (message: string): SluiceError => new SluiceError('RESOURCE_EXHAUSTED', message);

/** Longest piece of a caller's value quoted in an error message. */
export const MAX_ECHO_CHARS = 64;

/**
 * A caller-supplied value as error messages quote it: cut to MAX_ECHO_CHARS with its full
 * length noted. Messages travel in the `grpc-message` header: a 1 MiB id echoed there broke
 * the caller's whole connection, other calls on it included.
 */
export function echo(value: string, max = MAX_ECHO_CHARS): string {
  if (value.length <= max) return value;
  return `${value.slice(0, max)}…(${value.length} characters)`;
}
