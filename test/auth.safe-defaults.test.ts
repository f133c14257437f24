import { spawnSync } from 'node:child_process';
import { chmodSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { status } from '@grpc/grpc-js';
import { connect } from '../clients/typescript/src/connect.js';
import { startTestBroker, tempDir, type TestBroker } from './helpers/broker.js';
import { assertBuildFresh, CLI_PATH, killChildBrokers, REPO_ROOT, startChildBroker } from './helpers/child-broker.js';
import { Api } from './helpers/api.js';
import { expectStatus } from './helpers/expect-status.js';

let b: TestBroker | undefined;
afterEach(async () => {
  await b?.close();
  b = undefined;
  await killChildBrokers();
});

/** Runs the CLI to completion (for commands that exit by themselves). */
function cli(args: string[], env: Record<string, string> = {}) {
  assertBuildFresh();
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('SLUICE_')));
  const r = spawnSync(process.execPath, [CLI_PATH, ...args], { cwd: REPO_ROOT, env: { ...clean, ...env }, encoding: 'utf8', timeout: 20_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('safe defaults', () => {
  it('refuses to serve on 0.0.0.0 without auth, saying what to add', () => {
    const dir = tempDir();
    const r = cli(['serve', '--data-file', join(dir, 'sluice.db'), '--grpc-address', '0.0.0.0:0', '--http-address', 'off']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/refusing to listen on 0\.0\.0\.0:0 without authentication/);
    expect(r.stderr).toMatch(/--auth-file/);
    expect(r.stderr).toMatch(/sluice token create/);
    expect(r.stderr).toMatch(/--insecure/);
    // The HTTP listener counts too; SLUICE_INSECURE=0 does not mean yes.
    const http = cli(['serve', '--data-file', join(dir, 'sluice.db'), '--grpc-address', '127.0.0.1:0', '--http-address', '0.0.0.0:0'], { SLUICE_INSECURE: '0' });
    expect(http.code).toBe(1);
    expect(http.stderr).toMatch(/refusing to listen on 0\.0\.0\.0:0/);
  });

  it('starts on 0.0.0.0 with --insecure, with a loud warning', async () => {
    const dir = tempDir();
    const child = await startChildBroker({ dataFile: join(dir, 'sluice.db'), http: false, args: ['--grpc-address', '0.0.0.0:0', '--insecure'] });
    const warning = await child.waitForLog((l) => l.level === 40 && /INSECURE/.test(l.msg), 'the insecure warning');
    expect(warning.msg).toMatch(/no authentication/);
    await child.api.enqueue({ queue: 'q', payload: {} });
  });

  it('creates the data file, its -wal and -shm 0600, and tightens an existing file', async () => {
    const dir = tempDir();
    b = await startTestBroker({}, { dir });
    await b.api.enqueue({ queue: 'q', payload: { secret: true } });
    for (const f of [b.dataFile, `${b.dataFile}-wal`, `${b.dataFile}-shm`]) expect((statSync(f).mode & 0o777).toString(8), f).toBe('600');
    await b.close();
    b = undefined;
    chmodSync(join(dir, 'sluice.db'), 0o644);
    b = await startTestBroker({}, { dir });
    expect((statSync(b.dataFile).mode & 0o777).toString(8)).toBe('600');
  });
});

describe('sluice token create', () => {
  it('prints a token once and the auth-file line that makes it work, limited to its queues', async () => {
    const human = cli(['token', 'create', '--scopes', 'produce,read', '--queues', 'email.*', '--name', 'billing']);
    expect(human.code).toBe(0);
    const token = /slu_[A-Za-z0-9_-]{43}/.exec(human.stdout)![0];
    expect(human.stdout.split(token).length).toBe(2); // printed exactly once
    expect(human.stdout).toMatch(/^token billing sha256:[0-9a-f]{64} produce:email\.\* read:email\.\*$/m);

    const json = JSON.parse(cli(['token', 'create', '--scopes', 'produce', '--queues', 'email.*', '--json']).stdout) as { name: string; token: string; line: string };
    expect(json.name).toMatch(/^token-[0-9a-f]{8}$/);
    expect(json.line).not.toContain(json.token);
    expect(cli(['token', 'create', '--scopes', 'write']).stderr).toMatch(/unknown scope/);

    const dir = tempDir();
    const authFile = join(dir, 'auth');
    writeFileSync(authFile, `${json.line}\n`);
    const child = await startChildBroker({ dataFile: join(dir, 'sluice.db'), args: ['--auth-file', authFile] });
    const clients = connect({ address: child.address, token: json.token });
    try {
      const api = new Api(clients);
      await api.enqueue({ queue: 'email.welcome', payload: {} });
      await expectStatus(api.enqueue({ queue: 'sms', payload: {} }), status.PERMISSION_DENIED, json.name);
      await expectStatus(child.api.enqueue({ queue: 'email.welcome', payload: {} }), status.UNAUTHENTICATED);
      // /healthz stays open for load balancers.
      const res = await fetch(`http://127.0.0.1:${child.httpPort}/healthz`);
      expect(res.status).toBe(200);
    } finally {
      clients.close();
    }
  });
});
