import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Broker } from '../broker/broker.js';
import type { Logger } from '../log.js';

export interface HttpServer {
  server: Server;
  port: number;
}

/** Operator endpoints: /healthz for load balancers and container health checks. */
export async function startHttpServer(broker: Broker, address: string, log: Logger): Promise<HttpServer> {
  const { host, port } = splitAddress(address);
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method === 'GET' && path === '/healthz') {
      const degraded = broker.writeHealth.degraded;
      const serving = broker.state === 'serving' && !degraded;
      res.writeHead(serving ? 200 : 503, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ status: serving ? 'SERVING' : 'NOT_SERVING', state: broker.state, ...(degraded ? { writes: degraded } : {}) }));
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain' });
    res.end('not found\n');
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const bound = (server.address() as AddressInfo).port;
  log.info({ address, port: bound }, 'HTTP listening');
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
