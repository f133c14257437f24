import { once } from 'node:events';
import { copyFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { connect as tlsConnect } from 'node:tls';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Metadata, status } from '@grpc/grpc-js';
import { EnqueueRequest } from '../clients/typescript/src/gen/sluice/v1/producer.js';
import { createTokenLine } from '../src/auth/tokens.js';
import { parseGrant } from '../src/auth/grants.js';
import { connect, type ConnectionOptions, type SluiceClients } from '../clients/typescript/src/connect.js';
import { Producer, UnavailableError, DeadlineExceededError } from '../clients/typescript/src/index.js';
import { startTestBroker, tempDir, type TestBroker } from './helpers/broker.js';
import { Api } from './helpers/api.js';
import { expectStatus } from './helpers/expect-status.js';
import { makePki, type TestPki } from './helpers/certs.js';
import { runCli } from './helpers/cli.js';

let brokers: TestBroker[] = [];
let opened: SluiceClients[] = [];
afterEach(async () => {
  for (const c of opened) c.close();
  opened = [];
  await Promise.all(brokers.map((b) => b.close()));
  brokers = [];
});

async function broker(overrides: Parameters<typeof startTestBroker>[0], dir: string): Promise<TestBroker> {
  const b = await startTestBroker(overrides, { dir });
  brokers.push(b);
  return b;
}
function api(b: TestBroker, options: ConnectionOptions): Api {
  const clients = connect({ address: b.running.address, ...options });
  opened.push(clients);
  return new Api(clients);
}
const noWait = (a: Api, queue = 'q') =>
  new Promise((resolve, reject) => {
    // waitForReady off: a connection that cannot be made fails at once instead of waiting.
    const p = a.clients.producer;
    p.enqueue(EnqueueRequest.fromPartial({ queue, payload: {} }), new Metadata(), { deadline: Date.now() + 5000 }, (e, r) => (e ? reject(e) : resolve(r)));
  });

function tlsDir(): { dir: string; pki: TestPki } {
  const dir = tempDir('sluice-tls-');
  return { dir, pki: makePki(dir) };
}

describe('TLS', () => {
  it('serves gRPC over TLS to a client that trusts the CA; plaintext to the TLS port fails clearly', async () => {
    const { dir, pki } = tlsDir();
    const b = await broker({ tlsCert: pki.server.cert, tlsKey: pki.server.key }, dir);
    const secure = api(b, { tls: { ca: pki.ca.certPem } });
    await secure.enqueue({ queue: 'q', payload: { over: 'tls' } });

    const plain = api(b, {});
    const err = await expectStatus(noWait(plain), status.UNAVAILABLE);
    expect(err.details).toMatch(/No connection established/);

    // A client that does not trust the broker's CA is refused by its own TLS check.
    const other = makePki(tempDir('sluice-tls-other-'), 'other');
    await expectStatus(noWait(api(b, { tls: { ca: other.ca.certPem } })), status.UNAVAILABLE);

    // The Producer reports the refused connection instead of hanging forever.
    const producer = new Producer({ address: b.running.address, callTimeoutMs: 1500 });
    try {
      const e = await producer.enqueue('q', {}).then(() => undefined, (x: Error) => x);
      expect(e instanceof DeadlineExceededError || e instanceof UnavailableError, String(e)).toBe(true);
    } finally {
      await producer.close();
    }
  });

  it('a TLS client to a plaintext port fails with the TLS error', async () => {
    const { dir, pki } = tlsDir();
    const b = await broker({}, dir);
    const err = await expectStatus(noWait(api(b, { tls: { ca: pki.ca.certPem } })), status.UNAVAILABLE);
    expect(err.details).toMatch(/wrong version number|SSL/i);
  });

  it('verifies serverName when dialling an address that is not in the certificate', async () => {
    const { dir, pki } = tlsDir();
    const dns = pki.issue('dns-only', '/CN=broker.internal', 'DNS:broker.internal');
    const b = await broker({ tlsCert: dns.cert, tlsKey: dns.key }, dir);
    await expectStatus(noWait(api(b, { tls: { ca: pki.ca.certPem } })), status.UNAVAILABLE);
    await api(b, { tls: { ca: pki.ca.certPem, serverName: 'broker.internal' } }).enqueue({ queue: 'q', payload: {} });
  });

  it('serves /healthz over HTTPS with the same certificate', async () => {
    const { dir, pki } = tlsDir();
    const b = await broker({ tlsCert: pki.server.cert, tlsKey: pki.server.key, httpAddress: '127.0.0.1:0' }, dir);
    const body = await new Promise<string>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port: b.running.httpPort, path: '/healthz', ca: pki.ca.certPem }, (res) => {
        let text = '';
        res.on('data', (c) => (text += c));
        res.on('end', () => resolve(`${res.statusCode} ${text}`));
      });
      req.on('error', reject);
      req.end();
    });
    expect(body).toMatch(/^200 .*SERVING/);
  });

  it('reloads the certificate without a restart when the files change', async () => {
    const { dir, pki } = tlsDir();
    const cert = join(dir, 'live.crt');
    const key = join(dir, 'live.key');
    copyFileSync(pki.server.cert, cert);
    copyFileSync(pki.server.key, key);
    const b = await broker({ tlsCert: cert, tlsKey: key }, dir);
    const before = await peerSerial(b.running.grpcPort, pki.ca.certPem);

    const next = pki.issue('next', '/CN=localhost', 'IP:127.0.0.1');
    const tls = b.running.security.tls!;
    // A key that does not match the certificate is refused; the old pair stays in use.
    const failed = once(tls, 'reload-failed');
    copyFileSync(next.cert, cert);
    tls.reload('test: mismatched pair');
    await failed;
    expect(await peerSerial(b.running.grpcPort, pki.ca.certPem)).toBe(before);

    const reloaded = once(tls, 'reloaded');
    copyFileSync(next.key, key);
    await reloaded;
    const after = await peerSerial(b.running.grpcPort, pki.ca.certPem);
    expect(after).not.toBe(before);
    await api(b, { tls: { ca: pki.ca.certPem } }).enqueue({ queue: 'q', payload: {} });
  });
});

describe('mTLS', () => {
  it('maps a client certificate to its cert line; a token still works; an unknown subject is refused', async () => {
    const { dir, pki } = tlsDir();
    const worker = pki.issue('worker-1', '/CN=worker-1/O=Acme');
    const stranger = pki.issue('stranger', '/CN=stranger');
    const { token, line } = createTokenLine('admin', [parseGrant('admin')]);
    const authFile = join(dir, 'auth');
    writeFileSync(authFile, `${line}\ncert worker-1 CN=worker-1,O=Acme produce:email.*\n`);
    const b = await broker({ tlsCert: pki.server.cert, tlsKey: pki.server.key, tlsClientCa: pki.ca.cert, tlsClientAuth: 'optional', authFile }, dir);

    // The CLI's TLS flags: a client certificate, or the CA and a token.
    const viaCert = await runCli(['enqueue', 'email.cli', '{}', '--tls-ca', pki.ca.cert, '--tls-cert', worker.cert, '--tls-key', worker.key], { address: b.running.address });
    expect(viaCert.code, viaCert.stderr).toBe(0);
    const viaToken = await runCli(['queues', '--json', '--tls-ca', pki.ca.cert], { address: b.running.address, env: { SLUICE_TOKEN: token } });
    expect(viaToken.code, viaToken.stderr).toBe(0);
    expect(viaToken.stdout).toContain('email.cli');

    const asWorker = api(b, { tls: { ca: pki.ca.certPem, cert: worker.certPem, key: worker.keyPem } });
    await asWorker.enqueue({ queue: 'email.x', payload: {} });
    await expectStatus(asWorker.enqueue({ queue: 'sms', payload: {} }), status.PERMISSION_DENIED, 'worker-1', 'sms');
    await expectStatus(asWorker.listQueues(), status.PERMISSION_DENIED, 'read');

    await expectStatus(api(b, { tls: { ca: pki.ca.certPem, cert: stranger.certPem, key: stranger.keyPem } }).listQueues(), status.UNAUTHENTICATED, 'CN=stranger');
    expect((await api(b, { tls: { ca: pki.ca.certPem }, token }).listQueues()).length).toBeGreaterThan(0);
    await expectStatus(api(b, { tls: { ca: pki.ca.certPem } }).listQueues(), status.UNAUTHENTICATED);
  });

  it('with a required client certificate and no auth file: the CA decides; no certificate, no connection', async () => {
    const { dir, pki } = tlsDir();
    const client = pki.issue('client', '/CN=any-client');
    const b = await broker({ tlsCert: pki.server.cert, tlsKey: pki.server.key, tlsClientCa: pki.ca.cert }, dir);
    await api(b, { tls: { ca: pki.ca.certPem, cert: client.certPem, key: client.keyPem } }).enqueue({ queue: 'q', payload: {} });
    await expectStatus(noWait(api(b, { tls: { ca: pki.ca.certPem } })), status.UNAVAILABLE);
    // A certificate from a CA the broker does not trust cannot connect either.
    const other = makePki(tempDir('sluice-tls-other-'), 'other');
    const forged = other.issue('forged', '/CN=any-client');
    await expectStatus(noWait(api(b, { tls: { ca: pki.ca.certPem, cert: forged.certPem, key: forged.keyPem } })), status.UNAVAILABLE);
  });
});

/** The serial number of the certificate the broker presents to a new connection. */
async function peerSerial(port: number, ca: string): Promise<string> {
  const socket = tlsConnect({ host: '127.0.0.1', port, ca, ALPNProtocols: ['h2'] });
  await once(socket, 'secureConnect');
  const serial = socket.getPeerCertificate().serialNumber;
  socket.destroy();
  return serial;
}
