import { parseGrant, Principal, type Grant } from './grants.js';

/**
 * The auth file: one credential per line, `#` starts a comment, fields separated by spaces.
 *
 *     token <name> sha256:<64 hex digits> <grant> [<grant>...]
 *     cert  <name> <subject>              <grant> [<grant>...]
 *
 * `token` lines hold the SHA-256 of a bearer token (never the token: `sluice token create`
 * prints both). `cert` lines map a client certificate, verified against --tls-client-ca, to
 * grants by its subject: `CN=worker-1`, or several attributes that must all match,
 * `CN=worker-1,O=Acme` (values without spaces or commas). A grant is `produce`, `consume`,
 * `admin` or `read`, optionally limited to queue patterns: `produce:email.*,sms.*`.
 */
export interface AuthFile {
  /** base64 SHA-256 digest of the token -> its principal. */
  tokens: Map<string, { digest: Buffer; principal: Principal }>;
  certs: CertRule[];
}

export interface CertRule {
  /** Every attribute must equal the certificate subject's. */
  subject: Record<string, string>;
  principal: Principal;
}

const NAME = /^[A-Za-z0-9_.@:-]{1,64}$/;
const DIGEST = /^sha256:([0-9a-f]{64})$/;
const ATTRIBUTE = /^([A-Za-z]{1,16})=([^,=\s]{1,256})$/;

export class AuthFileError extends Error {}

/** Parses the file's text; errors name the line (never quote a credential). */
export function parseAuthFile(text: string): AuthFile {
  const tokens: AuthFile['tokens'] = new Map();
  const certs: CertRule[] = [];
  const names = new Set<string>();
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.replace(/#.*$/, '').trim();
    if (!line) continue;
    const at = `line ${i + 1}`;
    const [kind, name, credential, ...grantTexts] = line.split(/\s+/);
    if (kind !== 'token' && kind !== 'cert') throw new AuthFileError(`${at}: expected "token" or "cert" first, got ${JSON.stringify(kind!.slice(0, 20))}`);
    if (!name || !NAME.test(name)) throw new AuthFileError(`${at}: the name (second field) must be 1-64 characters of A-Z a-z 0-9 _ . @ : -`);
    if (names.has(name)) throw new AuthFileError(`${at}: the name ${name} is used twice`);
    names.add(name);
    if (!credential) throw new AuthFileError(`${at}: missing the ${kind === 'token' ? 'token hash (sha256:<hex>)' : 'certificate subject (CN=...)'}`);
    if (grantTexts.length === 0) throw new AuthFileError(`${at}: ${name} has no scopes (add e.g. produce, consume:email.*, read, admin)`);
    let grants: Grant[];
    try {
      grants = grantTexts.map(parseGrant);
    } catch (error) {
      throw new AuthFileError(`${at}: ${(error as Error).message}`);
    }
    const principal = new Principal(name, grants);
    if (kind === 'token') {
      // The message never quotes the field: a raw token pasted by mistake must not reach a log.
      const hex = DIGEST.exec(credential)?.[1];
      if (!hex) throw new AuthFileError(`${at}: the third field of a token line must be sha256:<64 lowercase hex digits> (the hash, not the token)`);
      const digest = Buffer.from(hex, 'hex');
      const key = digest.toString('base64');
      if (tokens.has(key)) throw new AuthFileError(`${at}: the same token hash appears twice`);
      tokens.set(key, { digest, principal });
    } else {
      const subject: Record<string, string> = {};
      for (const part of credential.split(',')) {
        const m = ATTRIBUTE.exec(part);
        if (!m) throw new AuthFileError(`${at}: the subject must be ATTR=value[,ATTR=value...], e.g. CN=worker-1`);
        subject[m[1]!.toUpperCase()] = m[2]!;
      }
      certs.push({ subject, principal });
    }
  }
  if (tokens.size + certs.length === 0) {
    throw new AuthFileError('no credentials: add a line printed by `sluice token create` (an empty auth file would lock every client out)');
  }
  return { tokens, certs };
}

/** Certificate subject attributes as Node reports them (a value may be an array). */
export function certMatches(rule: CertRule, subject: Record<string, string | string[] | undefined>): boolean {
  for (const [attr, want] of Object.entries(rule.subject)) {
    const have = subject[attr];
    if (Array.isArray(have) ? !have.includes(want) : have !== want) return false;
  }
  return true;
}
