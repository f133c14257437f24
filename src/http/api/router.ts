import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Broker } from '../../broker/broker.js';
import type { Logger } from '../../log.js';
import { HttpError, sendError, sendJson } from './http-error.js';
import { checkCsrf, checkHost } from './guard.js';
import type { ApiAuthorizer, ApiScope, Route } from './route.js';
import { SluiceError } from '../../domain/errors.js';
import { queueRoutes } from './queues.js';
import { jobRoutes } from './jobs.js';
import { deadLetterRoutes } from './dead-letters.js';
import { workerRoutes } from './workers.js';
import { throughputRoutes } from './throughput.js';
import { scheduleRoutes } from './schedules.js';
import { LiveFeed, eventRoutes } from './events.js';

export const API_PREFIX = '/api/v1';

interface CompiledRoute extends Route {
  pattern: RegExp;
  names: string[];
}

export interface ApiOptions {
  /** The HTTP listener is on a loopback address only: enforce loopback Host headers (DNS rebinding). */
  loopbackOnly: boolean;
  /** Set when the broker requires tokens: every call is authorized like its gRPC twin. */
  auth?: ApiAuthorizer;
}

/**
 * The HTTP JSON API under /api/v1: a view over the same broker functions the gRPC services
 * call, with the same validation (broker/admin-input.ts). GETs read, POSTs change state and
 * need the CSRF header (guard.ts).
 */
export class ApiRouter {
  private readonly routes: CompiledRoute[];
  readonly feed: LiveFeed;

  constructor(
    private readonly broker: Broker,
    private readonly log: Logger,
    private readonly options: ApiOptions,
  ) {
    const ctx = { broker, log };
    this.feed = new LiveFeed(broker, log);
    this.routes = [
      ...queueRoutes(ctx),
      ...jobRoutes(ctx),
      ...deadLetterRoutes(ctx),
      ...workerRoutes(ctx),
      ...throughputRoutes(ctx),
      ...scheduleRoutes(ctx),
      ...eventRoutes(this.feed),
    ].map(compile);
  }

  handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const method = req.method ?? 'GET';
    Promise.resolve()
      .then(async () => {
        checkHost(req, this.options.loopbackOnly);
        const { route, params } = this.match(method, url.pathname);
        if (method === 'POST') checkCsrf(req);
        const authorize = (scopes: readonly ApiScope[], queue?: string) => this.authorize(req, scopes, queue);
        const call = { req, res, url, params, authorize };
        if (route.queue !== 'self') authorize(route.scopes, route.queue?.(call));
        // The handler authorizes once it knows the queue. An unknown caller, and one without
        // the scope on any queue, is refused first (401/403, as gRPC's checkScope), so a job's
        // existence is not told to someone who could never see it.
        else this.authorizeAnyQueue(req, route.scopes);
        const body = await route.handle(call);
        if (!route.stream) sendJson(res, 200, body);
      })
      .catch((error) => sendError(res, error, this.log, { http: `${method} ${url.pathname.slice(0, 200)}` }));
  }

  /** Passes when the caller holds any one of `scopes` on `queue`; throws the first refusal otherwise. */
  private authorize(req: IncomingMessage, scopes: readonly ApiScope[], queue: string | undefined): void {
    const auth = this.options.auth;
    if (!auth?.enabled || scopes.length === 0) return;
    let refusal: unknown;
    for (const scope of scopes) {
      try {
        auth.authorize(req, scope, queue);
        return;
      } catch (error) {
        if (!(error instanceof SluiceError)) throw error;
        // A missing or unknown token is the answer whatever the scope.
        if (error.code === 'UNAUTHENTICATED') throw error;
        refusal ??= error;
      }
    }
    throw refusal;
  }

  /** Passes when the caller holds any one of `scopes` on at least one queue. */
  private authorizeAnyQueue(req: IncomingMessage, scopes: readonly ApiScope[]): void {
    const auth = this.options.auth;
    if (!auth?.enabled) return;
    auth.authenticate(req);
    let refusal: unknown;
    for (const scope of scopes) {
      try {
        auth.authorizeAny(req, scope);
        return;
      } catch (error) {
        refusal ??= error;
      }
    }
    if (refusal !== undefined) throw refusal;
  }

  private match(method: string, path: string): { route: CompiledRoute; params: Record<string, string> } {
    if (!path.startsWith(`${API_PREFIX}/`)) throw new HttpError(404, 'NOT_FOUND', `no such endpoint; the API lives under ${API_PREFIX}/`);
    const rest = path.slice(API_PREFIX.length);
    let allowed: string[] = [];
    for (const route of this.routes) {
      const m = route.pattern.exec(rest);
      if (!m) continue;
      const head = method === 'HEAD' && route.method === 'GET';
      if (route.method !== method && !head) {
        allowed.push(route.method);
        continue;
      }
      const params: Record<string, string> = {};
      route.names.forEach((name, i) => {
        try {
          params[name] = decodeURIComponent(m[i + 1]!);
        } catch {
          throw new HttpError(400, 'INVALID_ARGUMENT', 'the path is not valid percent-encoding');
        }
      });
      return { route, params };
    }
    allowed = [...new Set(allowed)];
    if (allowed.length > 0) throw new HttpError(405, 'METHOD_NOT_ALLOWED', `use ${allowed.join(' or ')} for ${path.slice(0, 200)}`, { allow: allowed.join(', ') });
    throw new HttpError(404, 'NOT_FOUND', `no such endpoint: ${method} ${path.slice(0, 200)}`);
  }
}

function compile(route: Route): CompiledRoute {
  const names: string[] = [];
  const source = route.path.replace(/:([a-z]+)/g, (_, name: string) => {
    names.push(name);
    return '([^/]+)';
  });
  return { ...route, pattern: new RegExp(`^${source}$`), names };
}
