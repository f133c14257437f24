/**
 * Certificates made in the test with the system's `openssl` (.ci/run installs it when
 * missing): a CA, a server certificate for 127.0.0.1/localhost, client certificates, and a
 * second CA that the broker does not trust.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

export interface CertFiles {
  cert: string;
  key: string;
  certPem: string;
  keyPem: string;
}

export interface TestPki {
  dir: string;
  ca: CertFiles;
  server: CertFiles;
  /** Issues a certificate signed by this CA (client certificates: `CN=<cn>`). */
  issue(name: string, subject: string, sans?: string): CertFiles;
}

const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

function openssl(args: string[]): void {
  execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

function files(dir: string, name: string): CertFiles {
  const cert = join(dir, `${name}.crt`);
  const key = join(dir, `${name}.key`);
  return { cert, key, certPem: readFileSync(cert, 'utf8'), keyPem: readFileSync(key, 'utf8') };
}

export function makePki(dir: string, caName = 'ca'): TestPki {
  openssl(['req', '-x509', ...EC, '-keyout', join(dir, `${caName}.key`), '-out', join(dir, `${caName}.crt`), '-days', '2', '-subj', `/CN=sluice-test-${caName}`]);
  const ca = files(dir, caName);
  const issue = (name: string, subject: string, sans?: string): CertFiles => {
    openssl([
      'req', '-x509', ...EC,
      '-keyout', join(dir, `${name}.key`), '-out', join(dir, `${name}.crt`), '-days', '2', '-subj', subject,
      '-addext', 'basicConstraints=critical,CA:FALSE',
      ...(sans ? ['-addext', `subjectAltName=${sans}`] : []),
      '-CA', ca.cert, '-CAkey', ca.key,
    ]);
    return files(dir, name);
  };
  const server = issue(`${caName}-server`, '/CN=localhost', 'IP:127.0.0.1,DNS:localhost');
  return { dir, ca, server, issue };
}
