import type { IncomingMessage, ServerResponse } from 'node:http';
import { TLSSocket } from 'node:tls';
import { SluiceError } from '../domain/errors.js';
import type { Authenticator } from './authenticator.js';
import { permissionDenied } from './authenticator.js';
import { Principal, type Scope } from './grants.js';
import type { PublicEndpoint } from './rpc-policy.js';

const OPEN = Principal.everything('anonymous (auth off)');

/**
 * Authorization for the HTTP listener: the same `authorization: Bearer <token>` header and
 * client certificates as gRPC, the same scopes. Every HTTP route calls one of these:
 *
 *     const who = auth.guard(req, res, 'read', queue);   // 401/403 already sent when undefined
 *     if (!who) return;
 *
 * - `queue` given: the scope must cover that queue.
 * - `queue` omitted: the scope must cover every queue (a listing that is not filtered).
 * - `guardAny`: the scope on at least one queue; the route then shows only what
 *   `who.allows(scope, name)` accepts (e.g. the queue list of a limited read token).
 */
export class HttpAuth {
  constructor(
    /** undefined: auth is off, every request is allowed. */
    private readonly auth: Authenticator | undefined,
    private readonly publicEndpoints: readonly PublicEndpoint[],
  ) {}

  get enabled(): boolean {
    return this.auth !== undefined;
  }

  /** True when `endpoint` needs no credentials (auth off, or listed in --public-endpoints). */
  isPublic(endpoint: PublicEndpoint): boolean {
    return !this.auth || this.publicEndpoints.includes(endpoint);
  }

  /** Who is calling; throws UNAUTHENTICATED (a SluiceError). */
  authenticate(req: IncomingMessage): Principal {
    if (!this.auth) return OPEN;
    const socket = req.socket;
    const certificate = socket instanceof TLSSocket && socket.authorized ? socket.getPeerCertificate() : undefined;
    return this.auth.authenticate(req.headers.authorization, certificate?.raw ? certificate : undefined);
  }

  /** Throws UNAUTHENTICATED or PERMISSION_DENIED (SluiceErrors). */
  authorize(req: IncomingMessage, scope: Scope, queue?: string): Principal {
    const who = this.authenticate(req);
    if (queue === undefined ? !who.unrestricted(scope) : !who.allows(scope, queue)) {
      const target = queue === undefined ? 'every queue' : `queue ${JSON.stringify(queue.slice(0, 140))}`;
      throw permissionDenied(`${who.name} lacks the ${scope} scope on ${target} (it has: ${who.describeAll()})`);
    }
    return who;
  }

  authorizeAny(req: IncomingMessage, scope: Scope): Principal {
    const who = this.authenticate(req);
    if (!who.has(scope)) throw permissionDenied(`${who.name} lacks the ${scope} scope (it has: ${who.describeAll()})`);
    return who;
  }

  /** authorize(), answering 401/403 itself on refusal (then returns undefined). */
  guard(req: IncomingMessage, res: ServerResponse, scope: Scope, queue?: string): Principal | undefined {
    return this.answer(res, () => this.authorize(req, scope, queue));
  }

  guardAny(req: IncomingMessage, res: ServerResponse, scope: Scope): Principal | undefined {
    return this.answer(res, () => this.authorizeAny(req, scope));
  }

  private answer(res: ServerResponse, check: () => Principal): Principal | undefined {
    try {
      return check();
    } catch (error) {
      if (!(error instanceof SluiceError)) throw error;
      sendAuthError(res, error);
      return undefined;
    }
  }
}

/** 401 (with the Bearer challenge) or 403, JSON body like the API's other errors. */
export function sendAuthError(res: ServerResponse, error: SluiceError): void {
  const unauth = error.code === 'UNAUTHENTICATED';
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (unauth) headers['www-authenticate'] = 'Bearer realm="sluice"';
  res.writeHead(unauth ? 401 : 403, headers);
  res.end(JSON.stringify({ error: { code: error.code, message: error.message } }));
}
