/**
 * Runs the COMPILED `sluice` binary (`node dist/src/cli.js …`) as a child process, the way an
 * operator or a script does. Always asynchronous: the broker under test usually runs in this
 * same process and must keep answering while the CLI waits for it.
 */
import { spawn } from 'node:child_process';
import { afterAll, beforeAll } from 'vitest';
import { assertBuildFresh, CLI_PATH, REPO_ROOT } from './child-broker.js';
import { startTestBroker, type TestBroker } from './broker.js';

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** This process's environment without SLUICE_* variables, so a developer's shell cannot leak in. */
function cleanEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('SLUICE_')) env[k] = v;
  return { ...env, ...extra };
}

export interface RunOptions {
  /** SLUICE_ADDRESS for the child (the broker under test). */
  address?: string;
  /** Written to the child's stdin, which is then closed. */
  input?: string;
  env?: Record<string, string>;
  timeoutMs?: number;
}

export function runCli(args: string[], options: RunOptions = {}): Promise<CliResult> {
  const env = cleanEnv({ ...(options.address ? { SLUICE_ADDRESS: options.address } : {}), ...options.env });
  const child = spawn(process.execPath, [CLI_PATH, ...args], { cwd: REPO_ROOT, env, stdio: ['pipe', 'pipe', 'pipe'] });
  child.stdin.end(options.input ?? '');
  return collect(child, `sluice ${args.join(' ')}`, options.timeoutMs ?? 20_000);
}

/** A running CLI child, for commands that stay alive (watch) or wait for input (purge on a TTY). */
export interface LiveCli {
  /** Resolves once the child's stdout contains `text`. */
  waitForOutput(text: string): Promise<void>;
  write(text: string): void;
  readonly done: Promise<CliResult>;
}

function collect(child: ReturnType<typeof spawn>, what: string, timeoutMs: number, onStdout?: () => void, out = { stdout: '', stderr: '' }): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${what}: no exit within ${timeoutMs} ms\n--- stdout ---\n${out.stdout}\n--- stderr ---\n${out.stderr}`));
    }, timeoutMs);
    child.stdout!.on('data', (d: Buffer) => {
      out.stdout += d.toString();
      onStdout?.();
    });
    child.stderr!.on('data', (d: Buffer) => (out.stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, ...out });
    });
  });
}

function quote(arg: string): string {
  return `'${arg.replace(/'/g, `'\\''`)}'`;
}

/**
 * Starts the CLI. With `tty: true` it runs under util-linux `script`, so the CLI sees a real
 * terminal on stdin/stdout (as an operator's shell gives it); output then has CR LF line ends.
 */
export function startCli(args: string[], options: RunOptions & { tty?: boolean } = {}): LiveCli {
  const env = cleanEnv({ ...(options.address ? { SLUICE_ADDRESS: options.address } : {}), ...options.env });
  const command = [process.execPath, CLI_PATH, ...args].map(quote).join(' ');
  const child = options.tty
    ? spawn('script', ['-qefc', command, '/dev/null'], { cwd: REPO_ROOT, env, stdio: ['pipe', 'pipe', 'pipe'] })
    : spawn(process.execPath, [CLI_PATH, ...args], { cwd: REPO_ROOT, env, stdio: ['pipe', 'pipe', 'pipe'] });
  const out = { stdout: '', stderr: '' };
  const waiters: { text: string; resolve: () => void }[] = [];
  const check = () => {
    for (const w of [...waiters]) {
      if (out.stdout.includes(w.text)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve();
      }
    }
  };
  const done = collect(child, `sluice ${args.join(' ')}`, options.timeoutMs ?? 20_000, check, out);
  return {
    waitForOutput(text) {
      return new Promise<void>((resolve, reject) => {
        waiters.push({ text, resolve });
        check();
        done.then(() => reject(new Error(`exited before printing ${JSON.stringify(text)}\n--- stdout ---\n${out.stdout}\n--- stderr ---\n${out.stderr}`)), reject);
      });
    },
    write(text) {
      child.stdin!.write(text);
    },
    done,
  };
}

/** Parses stdout as the one JSON document a --json command prints. */
export function parseJson<T = Record<string, unknown>>(r: CliResult): T {
  try {
    return JSON.parse(r.stdout) as T;
  } catch (error) {
    throw new Error(`stdout is not one JSON document (${(error as Error).message}):\n${r.stdout}\n--- stderr ---\n${r.stderr}`);
  }
}

/**
 * One real broker for the calling test file (started in its beforeAll, closed in its
 * afterAll) and `sluice(...args)`, which runs the compiled CLI against it. Read `broker`
 * inside tests or hooks, once it has started.
 */
export function cliTestBroker(): { readonly broker: TestBroker; sluice(...args: string[]): Promise<CliResult> } {
  let broker: TestBroker | undefined;
  beforeAll(async () => {
    assertBuildFresh();
    broker = await startTestBroker();
  });
  afterAll(async () => {
    await broker?.close();
  });
  const fixture = {
    get broker(): TestBroker {
      if (!broker) throw new Error('the CLI test broker starts in beforeAll: use it inside tests or hooks');
      return broker;
    },
    sluice: (...args: string[]) => runCli(args, { address: fixture.broker.running.address }),
  };
  return fixture;
}
