import { isIP } from 'node:net';
import { SluiceError } from '../domain/errors.js';

/** Loopback: 127.0.0.0/8, ::1, localhost. Everything else (0.0.0.0, ::, a LAN address) is exposed. */
export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  if (h === 'localhost' || h === '::1') return true;
  if (isIP(h) === 4) return h.startsWith('127.');
  if (h.startsWith('::ffff:')) return isLoopback(h.slice(7));
  return false;
}

const hostOf = (address: string) => address.slice(0, Math.max(0, address.lastIndexOf(':')));

export interface Exposure {
  grpcAddress: string;
  httpAddress: string;
  authEnabled: boolean;
  tls: boolean;
  insecure: boolean;
}

/**
 * Safe defaults: a listener reachable from the network needs authentication (tokens or
 * mTLS), unless --insecure says the operator knows. Returns warnings to log loudly; throws
 * (with what to add) when the broker must not start.
 */
export function checkExposure(e: Exposure): string[] {
  const exposed = [e.grpcAddress, ...(e.httpAddress === 'off' ? [] : [e.httpAddress])].filter((a) => !isLoopback(hostOf(a)));
  if (exposed.length === 0) return [];
  if (!e.authEnabled) {
    if (!e.insecure) {
      throw new SluiceError(
        'FAILED_PRECONDITION',
        `refusing to listen on ${exposed.join(' and ')} without authentication: anyone who reaches the port could read, enqueue, cancel and purge jobs. ` +
          'Add --auth-file <file> (create tokens with `sluice token create --scopes produce,consume,admin`), ' +
          'or mTLS with --tls-cert, --tls-key and --tls-client-ca; listen on 127.0.0.1; ' +
          'or pass --insecure if the network itself is trusted.',
      );
    }
    return [`INSECURE: listening on ${exposed.join(' and ')} with no authentication (--insecure): anyone who reaches the port can read, enqueue, cancel and purge jobs`];
  }
  if (!e.tls) return [`listening on ${exposed.join(' and ')} without TLS: bearer tokens and payloads cross the network in clear text; add --tls-cert and --tls-key`];
  return [];
}
