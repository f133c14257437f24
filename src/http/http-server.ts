import { createServer, type RequestListener, type Server } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Broker } from '../broker/broker.js';
import type { Logger } from '../log.js';
import type { Security } from '../auth/security.js';
import type { HttpAuth } from '../auth/http-auth.js';
import { ApiRouter } from './api/router.js';
import { isLoopbackAddress } from './api/guard.js';
import { DashboardFiles } from './dashboard-files.js';

export interface HttpServer {
  server: Server | HttpsServer;
  port: number;
}

/**
 * Operator endpoints: /healthz for load balancers and container health checks, the JSON API
 * under /api/ (api/router.ts) and the dashboard at every other path (dashboard-files.ts).
 * Every route asks `auth` first (src/auth/http-auth.ts): `auth.isPublic('health')`,
 * `auth.guard(...)`; the API authorizes each call with the caller's token scopes, the
 * dashboard's files are public (the page asks for a token when the API answers 401).
 */
export async function startHttpServer(broker: Broker, address: string, log: Logger, security?: Security): Promise<HttpServer> {
  const { host, port } = splitAddress(address);
  const auth: HttpAuth | undefined = security?.http;
  const api = new ApiRouter(broker, log, { loopbackOnly: isLoopbackAddress(host), auth });
  const dashboard = new DashboardFiles();
  const handler: RequestListener = (req, res) => {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    if (req.method === 'GET' && path === '/healthz') {
      if (auth && !auth.isPublic('health') && !auth.guardAny(req, res, 'read')) return;
      const serving = broker.state === 'serving';
      res.writeHead(serving ? 200 : 503, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ status: serving ? 'SERVING' : 'NOT_SERVING', state: broker.state }));
      return;
    }
    if (path.startsWith('/api/')) return api.handle(req, res);
    dashboard.serve(req, res, path);
  };
  const tls = security?.tls;
  let server: Server | HttpsServer;
  if (tls) {
    const https = createHttpsServer(tls.httpsOptions((options) => https.setSecureContext(options)), handler);
    server = https;
  } else {
    server = createServer(handler);
  }
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const bound = (server.address() as AddressInfo).port;
  log.info({ address, port: bound, tls: Boolean(tls) }, 'HTTP listening');
  return { server, port: bound };
}

export function splitAddress(address: string): { host: string; port: number } {
  const i = address.lastIndexOf(':');
  if (i < 0) throw new Error(`address ${address} must be host:port`);
  const host = address.slice(0, i).replace(/^\[|\]$/g, '');
  const port = Number(address.slice(i + 1));
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`address ${address} has an invalid port`);
  return { host, port };
}
