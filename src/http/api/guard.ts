import type { IncomingMessage } from 'node:http';
import { HttpError } from './http-error.js';

/** The header every state-changing call must carry (the dashboard sends it on every POST). */
export const CSRF_HEADER = 'x-sluice-csrf';

/**
 * CSRF defence for POSTs, in three layers:
 * - a custom header: a cross-site form or `fetch` cannot set it without a CORS preflight, and
 *   the API answers no preflight (no Access-Control-* headers), so the browser never sends it;
 * - `Sec-Fetch-Site` (sent by every current browser): a cross-site request is refused outright;
 * - `Origin`, when present, must name the host the request was sent to.
 * Non-browser clients (curl, scripts) just add `-H 'x-sluice-csrf: 1'`.
 */
export function checkCsrf(req: IncomingMessage): void {
  if (req.headers[CSRF_HEADER] === undefined) {
    throw new HttpError(403, 'CSRF_HEADER_MISSING', `state-changing calls need the header "${CSRF_HEADER}: 1" (curl: -H '${CSRF_HEADER}: 1')`);
  }
  const site = req.headers['sec-fetch-site'];
  if (site !== undefined && site !== 'same-origin' && site !== 'none') {
    throw new HttpError(403, 'CROSS_SITE', `cross-site request refused (sec-fetch-site: ${String(site).slice(0, 20)})`);
  }
  const origin = req.headers.origin;
  if (origin !== undefined && origin !== 'null') {
    let host: string;
    try {
      host = new URL(origin).host;
    } catch {
      throw new HttpError(403, 'CROSS_SITE', 'the Origin header is not a URL');
    }
    if (host !== req.headers.host) throw new HttpError(403, 'CROSS_SITE', `cross-origin request refused (origin ${origin.slice(0, 80)})`);
  }
}

const LOOPBACK_HOST = /^(localhost|127\.\d{1,3}\.\d{1,3}\.\d{1,3}|\[::1\])(:\d+)?$/i;

/**
 * DNS-rebinding defence: while the broker listens on a loopback address only, a request must
 * name a loopback host. Otherwise a web page whose name was rebound to 127.0.0.1 would be
 * "same-origin" with the API and pass every check above.
 */
export function checkHost(req: IncomingMessage, loopbackOnly: boolean): void {
  if (!loopbackOnly) return;
  const host = req.headers.host ?? '';
  if (!LOOPBACK_HOST.test(host)) {
    throw new HttpError(421, 'MISDIRECTED', `the broker listens on loopback only; open it as http://127.0.0.1:<port> or http://localhost:<port>, not ${JSON.stringify(host.slice(0, 80))}`);
  }
}

export function isLoopbackAddress(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\./.test(host);
}
