import { execFile } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestBroker, type TestBroker } from '../../../test/helpers/broker.js';

const run = promisify(execFile);
const CLIENT_DIR = fileURLToPath(new URL('..', import.meta.url));
const REPO_ROOT = fileURLToPath(new URL('../../..', import.meta.url));
const rootPackage = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { devDependencies: Record<string, string> };

let scratch: string;
let b: TestBroker;
beforeAll(async () => {
  scratch = mkdtempSync(join(tmpdir(), 'sluice-client-consumer-'));
  b = await startTestBroker();
});
afterAll(async () => {
  await b?.close();
  rmSync(scratch, { recursive: true, force: true });
});

describe('the packed client', () => {
  it('installs from its npm tarball into a project outside the repo, type-checks the example against its .d.ts and runs it', async () => {
    // 1. npm pack (prepack builds dist/ with declarations).
    const packDir = join(scratch, 'pack');
    mkdirSync(packDir);
    await run('npm', ['pack', '--pack-destination', packDir], { cwd: CLIENT_DIR });
    const [tarball] = readdirSync(packDir).filter((f) => f.endsWith('.tgz'));
    expect(tarball).toMatch(/^sluice-client-\d+\.\d+\.\d+\.tgz$/);

    // 2. A fresh project that knows nothing of this repository.
    const app = join(scratch, 'app');
    cpSync(join(CLIENT_DIR, 'examples'), app, { recursive: true, filter: (src) => !src.includes(`${join('examples', 'dist')}`) });
    writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'consumer-app', private: true, type: 'module' }));
    writeFileSync(
      join(app, 'tsconfig.json'),
      JSON.stringify({ compilerOptions: { target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', strict: true, outDir: 'dist', types: ['node'] }, include: ['*.ts'] }),
    );
    await run(
      'npm',
      [
        'install',
        '--prefer-offline',
        '--no-audit',
        '--no-fund',
        join(packDir, tarball!),
        `typescript@${rootPackage.devDependencies.typescript}`,
        `@types/node@${rootPackage.devDependencies['@types/node']}`,
      ],
      { cwd: app },
    );

    // 3. It compiles against the published .d.ts only.
    await run(process.execPath, [join(app, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', app], { cwd: app });

    // 4. And the producer + worker example runs against a broker.
    const { stdout } = await run(process.execPath, [join(app, 'dist', 'demo.js')], { cwd: app, env: { ...process.env, SLUICE_ADDRESS: b.running.address }, timeout: 60_000 });
    expect(stdout).toContain('[producer] enqueued 7 jobs in 1 RPC(s)');
    expect(stdout).toContain('[demo] summary {"completed":6,"dead":1}');
    expect(stdout).toContain('[worker] closed');
  }, 180_000);
});
