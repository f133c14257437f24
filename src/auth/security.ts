import type { ServerCredentials, ServerInterceptor } from '@grpc/grpc-js';
import { ServerCredentials as Credentials } from '@grpc/grpc-js';
import type { BrokerConfig } from '../config.js';
import { SluiceError } from '../domain/errors.js';
import type { Logger } from '../log.js';
import { Authenticator } from './authenticator.js';
import { checkExposure } from './exposure.js';
import { watchFiles } from './file-watch.js';
import { authInterceptor } from './grpc-auth.js';
import type { JobQueueLookup } from './rpc-policy.js';
import { HttpAuth } from './http-auth.js';
import { TlsMaterial } from './tls.js';

/**
 * Authentication, authorization and transport security, built from the settings: what the
 * gRPC and HTTP listeners install. Auth is on with an auth file, or with mTLS that requires a
 * client certificate; with neither, no interceptor is installed and every call is allowed
 * (refused at start on a non-loopback address unless --insecure).
 */
export interface Security {
  /** undefined: auth is off. */
  readonly authenticator: Authenticator | undefined;
  /** undefined: plaintext. */
  readonly tls: TlsMaterial | undefined;
  readonly http: HttpAuth;
  /** Interceptors for the gRPC server (none when auth is off). */
  grpcInterceptors(jobQueue: JobQueueLookup): ServerInterceptor[];
  grpcCredentials(): ServerCredentials;
  /** Re-reads the auth file and the certificates (SIGHUP; file changes do it by themselves). */
  reload(source: string): void;
  close(): void;
}

const configError = (message: string) => new SluiceError('INVALID_ARGUMENT', message);

export function createSecurity(config: BrokerConfig, log: Logger): Security {
  if (Boolean(config.tlsCert) !== Boolean(config.tlsKey)) throw configError('--tls-cert and --tls-key go together: give both, or neither for plaintext');
  if (config.tlsClientCa && !config.tlsCert) throw configError('--tls-client-ca (mTLS) needs TLS: add --tls-cert and --tls-key');
  const requireClientCert = Boolean(config.tlsClientCa) && config.tlsClientAuth === 'require';
  if (config.tlsClientCa && !requireClientCert && !config.authFile) {
    throw configError('--tls-client-auth optional lets clients in without a certificate, so it needs --auth-file for their tokens');
  }
  const authEnabled = Boolean(config.authFile) || requireClientCert;
  const tlsOn = Boolean(config.tlsCert);

  for (const warning of checkExposure({ grpcAddress: config.grpcAddress, httpAddress: config.httpAddress, authEnabled, tls: tlsOn, insecure: config.insecure })) {
    log.warn(warning);
    if (!authEnabled) console.error(`sluice: WARNING: ${warning}`);
  }

  let authenticator: Authenticator | undefined;
  try {
    authenticator = authEnabled ? new Authenticator(config.authFile || undefined, requireClientCert, log) : undefined;
  } catch (error) {
    throw configError((error as Error).message);
  }
  let tls: TlsMaterial | undefined;
  try {
    tls = tlsOn ? new TlsMaterial({ cert: config.tlsCert, key: config.tlsKey, clientCa: config.tlsClientCa, requireClientCert }, log) : undefined;
  } catch (error) {
    throw configError((error as Error).message);
  }
  if (authenticator) log.info({ authFile: config.authFile || undefined, clientCertificates: Boolean(config.tlsClientCa), publicEndpoints: config.publicEndpoints }, 'authentication on');

  const unwatch: (() => void)[] = [];
  if (config.authFile) unwatch.push(watchFiles([config.authFile], () => authenticator!.reload('file change')));
  if (tls) unwatch.push(watchFiles(tls.paths, () => tls!.reload('file change')));

  return {
    authenticator,
    tls,
    http: new HttpAuth(authenticator, config.publicEndpoints),
    grpcInterceptors: (jobQueue) => (authenticator ? [authInterceptor(authenticator, config.publicEndpoints, jobQueue, log)] : []),
    grpcCredentials: () => (tls ? tls.grpcCredentials() : Credentials.createInsecure()),
    reload(source) {
      if (!authenticator?.authFile && !tls) log.info({ source }, 'nothing to reload (no auth file, no TLS)');
      if (authenticator?.authFile) authenticator.reload(source);
      tls?.reload(source);
    },
    close() {
      for (const u of unwatch) u();
    },
  };
}
