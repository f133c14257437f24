import type { ServerResponse } from 'node:http';
import { SluiceError, type ErrorCode } from '../../domain/errors.js';
import type { Logger } from '../../log.js';

/** Domain error codes -> HTTP statuses: the HTTP twin of grpc/status.ts. */
const STATUS: Record<ErrorCode, number> = {
  INVALID_ARGUMENT: 400,
  UNAUTHENTICATED: 401,
  PERMISSION_DENIED: 403,
  NOT_FOUND: 404,
  ALREADY_EXISTS: 409,
  FAILED_PRECONDITION: 409,
  RESOURCE_EXHAUSTED: 429,
  INTERNAL: 500,
  UNAVAILABLE: 503,
};

/** A failure of the HTTP exchange itself (body too large, wrong method): not a domain error. */
export class HttpError extends Error {
  override readonly name = 'HttpError';
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

/** JSON answers are never cached: they are live views of the broker. */
export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
    ...headers,
  });
  res.end(text);
}

/**
 * The one place errors become HTTP answers: `{ "error": { "code", "message" } }`. A
 * SluiceError keeps its code and message; anything else is a broker bug, logged loudly and
 * answered 500 without internals.
 */
export function sendError(res: ServerResponse, error: unknown, log: Logger, context: Record<string, unknown>): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  if (error instanceof HttpError) {
    sendJson(res, error.status, { error: { code: error.code, message: error.message } }, error.headers);
    return;
  }
  if (error instanceof SluiceError) {
    if (error.code === 'INTERNAL') log.error({ err: error, ...context }, 'internal error');
    const headers: Record<string, string> = error.code === 'UNAUTHENTICATED' ? { 'www-authenticate': 'Bearer realm="sluice"' } : {};
    sendJson(res, STATUS[error.code], { error: { code: error.code, message: error.message } }, headers);
    return;
  }
  log.error({ err: error, ...context }, 'unexpected error in HTTP API handler');
  sendJson(res, 500, { error: { code: 'INTERNAL', message: 'internal error (logged by the broker)' } });
}
