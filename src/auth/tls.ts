import { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import { createSecureContext, type SecureContextOptions } from 'node:tls';
import { experimental, type ServerCredentials } from '@grpc/grpc-js';
import type { Logger } from '../log.js';

export interface TlsFiles {
  cert: string;
  key: string;
  /** Client CA for mTLS; empty: no client certificates are asked for. */
  clientCa: string;
  /** With a client CA: must every connection present a verified certificate? */
  requireClientCert: boolean;
}

interface Material {
  cert: Buffer;
  key: Buffer;
  ca: Buffer | undefined;
}

type Listener<T> = (update: T | null) => void;

/**
 * Certificates from files, shared by the gRPC and HTTP listeners and swapped on reload
 * without a restart (new connections get the new certificate; open ones keep theirs). A
 * reload that fails (a key that does not match, a half-written file) keeps the old set.
 *
 * Events: 'reloaded' ({ source }), 'reload-failed' ({ source, error }).
 */
export class TlsMaterial extends EventEmitter {
  private material: Material;
  private readonly identityListeners = new Set<Listener<experimental.IdentityCertificateUpdate>>();
  private readonly caListeners = new Set<Listener<experimental.CaCertificateUpdate>>();
  private readonly httpsContexts = new Set<(options: SecureContextOptions) => void>();

  constructor(
    readonly files: TlsFiles,
    private readonly log: Logger,
  ) {
    super();
    this.material = this.read();
  }

  get paths(): string[] {
    return [this.files.cert, this.files.key, this.files.clientCa].filter(Boolean);
  }

  private read(): Material {
    const load = (what: string, path: string) => {
      try {
        return readFileSync(path);
      } catch (error) {
        throw new Error(`cannot read the TLS ${what} ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
      }
    };
    const material: Material = {
      cert: load('certificate (--tls-cert)', this.files.cert),
      key: load('key (--tls-key)', this.files.key),
      ca: this.files.clientCa ? load('client CA (--tls-client-ca)', this.files.clientCa) : undefined,
    };
    try {
      // Parses the PEM and checks that the key belongs to the certificate.
      createSecureContext({ cert: material.cert, key: material.key, ca: material.ca });
    } catch (error) {
      throw new Error(`TLS files ${this.files.cert} / ${this.files.key}${this.files.clientCa ? ` / ${this.files.clientCa}` : ''} are unusable: ${(error as Error).message}`);
    }
    return material;
  }

  reload(source: string): boolean {
    try {
      this.material = this.read();
    } catch (error) {
      this.log.error({ source, reason: (error as Error).message }, 'TLS reload failed; the previous certificate stays in use');
      this.emit('reload-failed', { source, error });
      return false;
    }
    const m = this.material;
    for (const l of this.identityListeners) l({ certificate: m.cert, privateKey: m.key });
    if (m.ca) for (const l of this.caListeners) l({ caCertificate: m.ca });
    for (const apply of this.httpsContexts) apply(this.contextOptions());
    this.log.info({ source, cert: this.files.cert }, 'TLS certificates reloaded');
    this.emit('reloaded', { source });
    return true;
  }

  /** gRPC server credentials that follow reloads (grpc-js certificate providers). */
  grpcCredentials(): ServerCredentials {
    const identity = this.provider('identity');
    const ca = this.material.ca ? this.provider('ca') : null;
    // grpc-js names these parameters (ca, identity) but passes them on positionally to a
    // constructor taking (identity, ca): the identity provider goes first.
    return experimental.createCertificateProviderServerCredentials(identity, ca, this.files.requireClientCert);
  }

  private provider(kind: 'identity' | 'ca'): experimental.CertificateProvider {
    const self = this;
    // Listeners get the current material in a microtask, not synchronously: grpc-js registers
    // its own watcher only after adding ours, so a synchronous first update would be lost
    // and the listener would drop every connection as "credentials not loaded".
    return {
      addIdentityCertificateListener(l) {
        if (kind !== 'identity') return;
        self.identityListeners.add(l);
        queueMicrotask(() => self.identityListeners.has(l) && l({ certificate: self.material.cert, privateKey: self.material.key }));
      },
      removeIdentityCertificateListener(l) {
        self.identityListeners.delete(l);
      },
      addCaCertificateListener(l) {
        if (kind !== 'ca') return;
        self.caListeners.add(l);
        queueMicrotask(() => self.caListeners.has(l) && l({ caCertificate: self.material.ca! }));
      },
      removeCaCertificateListener(l) {
        self.caListeners.delete(l);
      },
    };
  }

  contextOptions(): SecureContextOptions {
    return { cert: this.material.cert, key: this.material.key, ca: this.material.ca };
  }

  /**
   * Options for https.createServer; `apply` is called with new options on each reload. HTTP
   * asks for a client certificate but never refuses the handshake: a request without a
   * verified one is simply unauthenticated (HttpAuth), so /healthz stays reachable for load
   * balancers and health checks that hold no client certificate.
   */
  httpsOptions(apply: (options: SecureContextOptions) => void): SecureContextOptions & { requestCert: boolean; rejectUnauthorized: boolean } {
    this.httpsContexts.add(apply);
    return { ...this.contextOptions(), requestCert: this.material.ca !== undefined, rejectUnauthorized: false };
  }
}
