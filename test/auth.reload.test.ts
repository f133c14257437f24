import { once } from 'node:events';
import { renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { status } from '@grpc/grpc-js';
import { createTokenLine } from '../src/auth/tokens.js';
import { parseGrant } from '../src/auth/grants.js';
import type { ReloadEvent, ReloadFailedEvent } from '../src/auth/authenticator.js';
import { connect, type SluiceClients } from '../clients/typescript/src/connect.js';
import { startTestBroker, tempDir, type TestBroker } from './helpers/broker.js';
import { killChildBrokers, startChildBroker } from './helpers/child-broker.js';
import { Api } from './helpers/api.js';
import { expectStatus } from './helpers/expect-status.js';

let b: TestBroker | undefined;
const opened: SluiceClients[] = [];
afterEach(async () => {
  for (const c of opened.splice(0)) c.close();
  await b?.close();
  b = undefined;
  await killChildBrokers();
});

const line = (name: string, grants: string) => createTokenLine(name, grants.split(' ').map(parseGrant));
/** Replaces the file the way editors and deploy tools do: write aside, then rename. */
function replace(path: string, text: string): void {
  writeFileSync(`${path}.tmp`, text);
  renameSync(`${path}.tmp`, path);
}

describe('auth file reload', () => {
  it('picks up a changed file without a restart; a bad file keeps the previous tokens', async () => {
    const dir = tempDir();
    const authFile = join(dir, 'auth');
    const first = line('first', 'read');
    writeFileSync(authFile, `${first.line}\n`);
    b = await startTestBroker({ authFile }, { dir });
    const as = (token: string) => {
      const c = connect({ address: b!.running.address, token });
      opened.push(c);
      return new Api(c);
    };
    await as(first.token).listQueues();
    const second = line('second', 'read');
    const auth = b.running.security.authenticator!;

    const reloaded = once(auth, 'reloaded') as Promise<[ReloadEvent]>;
    replace(authFile, `${second.line}\n`);
    const [event] = await reloaded;
    expect(event).toMatchObject({ source: 'file change', tokens: 1 });
    await as(second.token).listQueues();
    await expectStatus(as(first.token).listQueues(), status.UNAUTHENTICATED, 'unknown');

    const failed = once(auth, 'reload-failed') as Promise<[ReloadFailedEvent]>;
    replace(authFile, `${second.line}\ntoken broken sha256:nothex read\n`);
    const [failure] = await failed;
    expect(failure.error.message).toMatch(/line 2/);
    await as(second.token).listQueues();
  });

  it('reloads on SIGHUP in `sluice serve`, logging counts and never a token', async () => {
    const dir = tempDir();
    const authFile = join(dir, 'auth');
    const first = line('first', 'admin');
    writeFileSync(authFile, `${first.line}\n`);
    const child = await startChildBroker({ dataFile: join(dir, 'sluice.db'), args: ['--auth-file', authFile] });
    const second = line('second', 'produce');
    // The signal handlers are installed in the same tick that logs "sluice serving".
    await child.waitForLog((l) => l.msg === 'sluice serving', 'the broker to serve');
    writeFileSync(authFile, `${first.line}\n${second.line}\n`);
    child.kill('SIGHUP');
    // The file watcher may reload too; the SIGHUP reload logs its own line either way.
    await child.waitForLog((l) => l.msg === 'auth file reloaded' && l.source === 'SIGHUP' && l.tokens === 2, 'the SIGHUP reload log line');
    const c = connect({ address: child.address, token: second.token });
    opened.push(c);
    await new Api(c).enqueue({ queue: 'q', payload: {} });
    expect(child.stdout).not.toContain(second.token);
    expect(child.stdout).not.toContain(first.token);
  });
});
