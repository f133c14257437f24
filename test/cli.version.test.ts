/** `sluice --version` and how a bad setting is reported (the compiled binary; `npm run build` first alone). */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { assertBuildFresh, CLI_PATH } from './helpers/child-broker.js';
import { runCli } from './helpers/cli.js';

describe('sluice --version and bad settings', () => {
  it('prints the package version and exits 0', async () => {
    assertBuildFresh();
    const { version } = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
    for (const flag of ['--version', '-V']) {
      const r = await runCli([flag]);
      expect(r).toMatchObject({ code: 0, stdout: `${version}\n` });
    }
  });

  it('names the environment variable, not the flag, when SLUICE_RETRY_JITTER is wrong', async () => {
    const fromEnv = await runCli(['serve', '--data-file', '/nonexistent/never-opened.db'], { env: { SLUICE_RETRY_JITTER: 'lots' } });
    expect(fromEnv.code).toBe(2);
    expect(fromEnv.stderr).toContain("from env 'SLUICE_RETRY_JITTER'");
    expect(fromEnv.stderr).toContain('"lots"');
    const fromFlag = await runCli(['serve', '--retry-jitter', 'lots', '--data-file', '/nonexistent/never-opened.db']);
    expect(fromFlag.code).toBe(2);
    expect(fromFlag.stderr).toContain("option '--retry-jitter <fraction>' argument 'lots' is invalid");
    expect(fromFlag.stderr).not.toContain('SLUICE_RETRY_JITTER');
  });

  it('exits 0 without a stack trace when the reader of its output has gone (sluice … | head)', async () => {
    assertBuildFresh();
    const child = spawn(process.execPath, [CLI_PATH, 'serve', '--help'], { stdio: ['ignore', 'pipe', 'pipe'] });
    // Closed before the child has started Node, so its first write meets a closed pipe.
    child.stdout.destroy();
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    expect(stderr).not.toContain('EPIPE');
    expect(code).toBe(0);
  });
});
