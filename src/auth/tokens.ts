import { createHash, randomBytes } from 'node:crypto';
import { formatGrant, parseGrant, type Grant } from './grants.js';

/** Prefix that makes a leaked Sluice token recognisable to secret scanners. */
export const TOKEN_PREFIX = 'slu_';

/** 32 random bytes (256 bits): far beyond guessing, so one unsalted SHA-256 is enough to store. */
export function generateToken(): string {
  return TOKEN_PREFIX + randomBytes(32).toString('base64url');
}

export function tokenDigest(token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest();
}

/**
 * Grants from `--scopes produce,read --queues 'email.*,sms.*'`: each scope limited to the
 * queue patterns when given. Throws an Error naming the bad part.
 */
export function grantsFromFlags(scopes: string, queues: string | undefined): Grant[] {
  const list = scopes.split(',').map((s) => s.trim()).filter(Boolean);
  if (list.length === 0) throw new Error('--scopes names no scope (use produce, consume, admin, read)');
  const patterns = queues?.split(',').map((q) => q.trim()).filter(Boolean);
  return list.map((scope) => {
    if (scope.includes(':') && patterns?.length) throw new Error(`--scopes ${scope} already names queues; drop --queues or the :pattern`);
    return parseGrant(patterns?.length ? `${scope}:${patterns.join(',')}` : scope);
  });
}

/** A new token and its auth-file line. */
export function createTokenLine(name: string, grants: Grant[]): { token: string; line: string } {
  const token = generateToken();
  const line = `token ${name} sha256:${tokenDigest(token).toString('hex')} ${grants.map(formatGrant).join(' ')}`;
  return { token, line };
}
