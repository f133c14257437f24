import { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import { timingSafeEqual } from 'node:crypto';
import type { PeerCertificate } from 'node:tls';
import { SluiceError } from '../domain/errors.js';
import type { Logger } from '../log.js';
import { certMatches, parseAuthFile, type AuthFile } from './auth-file.js';
import { Principal } from './grants.js';
import { tokenDigest } from './tokens.js';

export interface ReloadEvent {
  source: string;
  tokens: number;
  certs: number;
}
export interface ReloadFailedEvent {
  source: string;
  error: Error;
}

export const unauthenticated = (message: string): SluiceError => new SluiceError('UNAUTHENTICATED', message);
export const permissionDenied = (message: string): SluiceError => new SluiceError('PERMISSION_DENIED', message);

const HOW = 'send the metadata "authorization: Bearer <token>" (tokens come from `sluice token create`)';

/**
 * Turns what a caller presents (a bearer token, a verified client certificate) into a
 * Principal. Holds the credentials of the auth file and swaps them atomically on reload; a
 * reload that fails keeps the previous set.
 *
 * Events: 'reloaded' (ReloadEvent), 'reload-failed' (ReloadFailedEvent).
 */
export class Authenticator extends EventEmitter {
  private credentials: AuthFile | undefined;
  /** Any certificate verified against the client CA, when there is no auth file to map it. */
  private readonly certificateAuthority: Principal | undefined;

  constructor(
    private readonly file: string | undefined,
    /** mTLS with no auth file: every certificate the client CA signed has every scope. */
    certificatesAreEnough: boolean,
    private readonly log: Logger,
  ) {
    super();
    if (file) this.credentials = this.read();
    this.certificateAuthority = certificatesAreEnough && !file ? Principal.everything('client-certificate') : undefined;
  }

  get authFile(): string | undefined {
    return this.file;
  }

  /** Re-reads the auth file. Returns whether the new credentials are in force. */
  reload(source: string): boolean {
    if (!this.file) return false;
    try {
      const next = this.read();
      this.credentials = next;
      const event: ReloadEvent = { source, tokens: next.tokens.size, certs: next.certs.length };
      this.log.info({ authFile: this.file, ...event }, 'auth file reloaded');
      this.emit('reloaded', event);
      return true;
    } catch (error) {
      this.log.error({ authFile: this.file, source, reason: (error as Error).message }, 'auth file reload failed; the previous credentials stay in force');
      this.emit('reload-failed', { source, error: error as Error } satisfies ReloadFailedEvent);
      return false;
    }
  }

  private read(): AuthFile {
    let text: string;
    try {
      text = readFileSync(this.file!, 'utf8');
    } catch (error) {
      throw new Error(`cannot read the auth file ${this.file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
    }
    try {
      return parseAuthFile(text);
    } catch (error) {
      throw new Error(`auth file ${this.file}: ${(error as Error).message}`);
    }
  }

  /**
   * `authorization` is the raw header value (or undefined); `certificate` is the client
   * certificate only when the TLS layer verified it against the client CA. A token, when
   * sent, decides alone (it is the more specific credential). Throws UNAUTHENTICATED.
   */
  authenticate(authorization: string | undefined, certificate: PeerCertificate | undefined): Principal {
    if (authorization !== undefined) {
      if (!authorization.startsWith('Bearer ')) throw unauthenticated(`the authorization metadata must be "Bearer <token>"; ${HOW}`);
      const digest = tokenDigest(authorization.slice(7).trim());
      // The map is keyed by the digest, so the lookup compares digests, never tokens: timing
      // there tells at most about a SHA-256 output, which does not help to find a token.
      // timingSafeEqual is the constant-time confirmation of the match.
      const entry = this.credentials?.tokens.get(digest.toString('base64'));
      if (!entry || !timingSafeEqual(entry.digest, digest)) throw unauthenticated('unknown or revoked token');
      return entry.principal;
    }
    if (certificate) {
      for (const rule of this.credentials?.certs ?? []) if (certMatches(rule, certificate.subject)) return rule.principal;
      if (this.certificateAuthority) return this.certificateAuthority;
      const cn = String(certificate.subject?.CN ?? '').slice(0, 64);
      throw unauthenticated(`client certificate CN=${cn} has no cert line in the auth file; add one or ${HOW}`);
    }
    throw unauthenticated(`missing credentials: ${HOW}`);
  }
}
