import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Broker } from '../../broker/broker.js';
import type { Logger } from '../../log.js';

export interface ApiContext {
  broker: Broker;
  log: Logger;
}

export type ApiScope = 'read' | 'produce' | 'admin';

/**
 * Who may call the API, when the broker requires tokens: the same bearer tokens and scopes
 * as gRPC (the auth module's HTTP authorizer has this shape). `authorize` throws a
 * SluiceError (UNAUTHENTICATED -> 401, PERMISSION_DENIED -> 403); without `queue` the
 * scope must cover every queue.
 */
export interface ApiAuthorizer {
  readonly enabled: boolean;
  /** Throws UNAUTHENTICATED for a missing or unknown token. */
  authenticate(req: IncomingMessage): unknown;
  authorize(req: IncomingMessage, scope: ApiScope, queue?: string): unknown;
  /** Throws PERMISSION_DENIED unless the caller holds `scope` on at least one queue. */
  authorizeAny(req: IncomingMessage, scope: ApiScope): unknown;
}

/** One request, with the path parameters its route captured. */
export interface Call {
  req: IncomingMessage;
  res: ServerResponse;
  url: URL;
  params: Record<string, string>;
  /** Checks the caller holds one of `scopes` on `queue` (every queue when omitted). */
  authorize(scopes: readonly ApiScope[], queue?: string): void;
}

export interface Route {
  method: 'GET' | 'POST';
  /** Under /api/v1; `:name` captures one path segment. */
  path: string;
  /** The JSON answer (200), or for a `stream` route nothing: it writes the response itself. */
  handle(call: Call): unknown;
  stream?: true;
  /**
   * Scopes that may call it (any one suffices) and the queue the call is about: checked
   * before `handle`. 'self': the handler calls `authorize` once it knows the queue (a job's).
   */
  scopes: readonly ApiScope[];
  queue?: ((call: Call) => string | undefined) | 'self';
}
