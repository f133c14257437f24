import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { dirname, extname, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
};

/**
 * The page may load only what the broker serves: no CDN, no inline script, no framing (the
 * dashboard has destructive buttons; clickjacking must not be able to press them).
 */
const SECURITY_HEADERS = {
  'content-security-policy':
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
};

interface Asset {
  body: Buffer;
  gzip: Buffer | undefined;
  type: string;
  /** Content-hashed file names never change: cache for a year. */
  immutable: boolean;
}

/** The folder `npm run build` writes the dashboard to: <package>/dist/dashboard. */
export function dashboardDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) break;
    dir = up;
  }
  return join(dir, 'dist', 'dashboard');
}

/**
 * The built dashboard, read into memory once (a few files, ~100 KB) with gzip copies.
 * Any GET that is not a file gets index.html, so /queues/email and /jobs/<id> are URLs
 * that can be shared and reloaded; a missing /assets/ file is a real 404.
 */
export class DashboardFiles {
  private assets: Map<string, Asset> | undefined;

  constructor(private readonly dir = dashboardDir()) {}

  serve(req: IncomingMessage, res: ServerResponse, path: string): void {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain; charset=utf-8' });
      res.end('method not allowed\n');
      return;
    }
    const assets = (this.assets ??= this.load());
    let asset = assets.get(path);
    if (!asset && !path.startsWith('/assets/') && extname(path) === '') asset = assets.get('/index.html');
    if (!asset) {
      const built = assets.has('/index.html');
      res.writeHead(built ? 404 : 503, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' });
      res.end(built ? 'not found\n' : 'the dashboard is not built: run `npm run build`\n');
      return;
    }
    const gzip = asset.gzip && /\bgzip\b/.test(String(req.headers['accept-encoding'] ?? ''));
    const body = gzip ? asset.gzip! : asset.body;
    res.writeHead(200, {
      'content-type': asset.type,
      'content-length': body.length,
      'cache-control': asset.immutable ? 'public, max-age=31536000, immutable' : 'no-cache',
      vary: 'accept-encoding',
      ...(gzip ? { 'content-encoding': 'gzip' } : {}),
      ...SECURITY_HEADERS,
    });
    res.end(req.method === 'HEAD' ? undefined : body);
  }

  private load(): Map<string, Asset> {
    const out = new Map<string, Asset>();
    if (!existsSync(this.dir)) return out;
    const walk = (dir: string) => {
      for (const name of readdirSync(dir)) {
        const file = join(dir, name);
        if (statSync(file).isDirectory()) {
          walk(file);
          continue;
        }
        const path = `/${relative(this.dir, file).split(sep).join('/')}`;
        const body = readFileSync(file);
        const type = TYPES[extname(name)] ?? 'application/octet-stream';
        const compressible = /^(text\/|application\/json|image\/svg)/.test(type) && body.length > 1024;
        out.set(path, { body, gzip: compressible ? gzipSync(body, { level: 9 }) : undefined, type, immutable: path.startsWith('/assets/') });
      }
    };
    walk(this.dir);
    return out;
  }
}
