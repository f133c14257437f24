import { createServer, type RequestListener, type Server } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Broker } from '../broker/broker.js';
import type { Logger } from '../log.js';
import type { Security } from '../auth/security.js';
import type { HttpAuth } from '../auth/http-auth.js';

export interface HttpServer {
  server: Server | HttpsServer;
  port: number;
}

/**
 * Operator endpoints: /healthz for load balancers and container health checks, /metrics for
 * Prometheus. Every route asks `auth` first (src/auth/http-auth.ts): `auth.isPublic('health')`,
 * `auth.guard(...)`.
 */
export async function startHttpServer(broker: Broker, address: string, log: Logger, security?: Security): Promise<HttpServer> {
  const { host, port } = splitAddress(address);
  const auth: HttpAuth | undefined = security?.http;
  const handler: RequestListener = (req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method === 'GET' && path === '/healthz') {
      if (auth && !auth.isPublic('health') && !auth.guardAny(req, res, 'read')) return;
      const serving = broker.state === 'serving';
      res.writeHead(serving ? 200 : 503, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ status: serving ? 'SERVING' : 'NOT_SERVING', state: broker.state }));
      return;
    }
    if (req.method === 'GET' && path === '/metrics') {
      // Every queue's series: a read scope on every queue, unless metrics are a public endpoint.
      if (auth && !auth.isPublic('metrics') && !auth.guard(req, res, 'read')) return;
      broker.metrics.text().then(
        (body) => {
          res.writeHead(200, { 'content-type': broker.metrics.contentType });
          res.end(body);
        },
        (error: unknown) => {
          log.error({ err: error }, 'collecting metrics failed');
          res.writeHead(500, { 'content-type': 'text/plain' });
          res.end('collecting metrics failed (logged by the broker)\n');
        },
      );
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain' });
    res.end('not found\n');
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
