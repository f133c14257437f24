/**
 * The `sluice` command line: one module per command group (STYLE §18), assembled here.
 * Client commands talk gRPC through clients/typescript like any other client.
 */
import { readFileSync } from 'node:fs';
import { Command } from 'commander';
import { backupCommand } from './backup.js';
import { benchCommand } from './bench.js';
import { dlqCommand } from './dlq.js';
import { enqueueCommand } from './enqueue.js';
import { explainCommand } from './explain.js';
import { currentAddress } from './connection.js';
import { reportError } from './exit.js';
import { jobCommands } from './jobs.js';
import { queueCommands } from './queues.js';
import { scheduleCommands } from './schedules.js';
import { serveCommand } from './serve.js';
import { tokenCommand } from './token.js';
import { workersCommand } from './workers.js';

export function createProgram(): Command {
  const program = new Command()
    .name('sluice')
    .description('Durable job broker: one process, one SQLite file, gRPC streams to workers.')
    .version(packageVersion(), '-V, --version', 'print the version of sluice')
    .addHelpText(
      'after',
      `
Examples:
  $ sluice serve
  $ sluice enqueue email '{"to":"a@b.c"}'
  $ sluice queues
  $ sluice jobs --queue email --state dead
  $ sluice dlq replay --queue email
  $ sluice schedule upsert invoices --cron '0 2 * * *' --timezone Europe/Berlin --queue billing

Exit codes: 0 ok, 1 a broker call failed (gRPC status on stderr), 2 usage error,
3 'watch --exit-status' saw the job end dead or cancelled.
Every client command takes --address (SLUICE_ADDRESS), --token (SLUICE_TOKEN), --tls-* and --json.`,
    );

  program.addCommand(serveCommand());
  program.addCommand(enqueueCommand());
  for (const c of jobCommands()) program.addCommand(c);
  for (const c of queueCommands()) program.addCommand(c);
  program.addCommand(dlqCommand());
  for (const c of scheduleCommands()) program.addCommand(c);
  program.addCommand(workersCommand());
  program.addCommand(backupCommand());
  program.addCommand(explainCommand());
  program.addCommand(benchCommand());
  program.addCommand(tokenCommand());

  configureAll(program);
  return program;
}

/** The version in the repository's package.json (dist/src/cli/ or src/cli/ are below it). */
function packageVersion(): string {
  for (const up of ['../../../package.json', '../../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(up, import.meta.url), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'sluice' && pkg.version) return pkg.version;
    } catch {
      // not at this level
    }
  }
  return 'unknown';
}

/**
 * addCommand() does not pass settings down, so every command gets them here: commander throws
 * instead of exiting (main maps its errors to exit 2), and a usage error shows the help hint.
 */
function configureAll(cmd: Command): void {
  cmd.exitOverride().showHelpAfterError('(add --help for usage and examples)');
  for (const sub of cmd.commands) configureAll(sub);
}

/** Runs the CLI and resolves with the exit code (also set on process.exitCode). */
export async function main(argv: string[]): Promise<number> {
  let code: number;
  try {
    await createProgram().parseAsync(argv);
    code = typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (error) {
    code = reportError(error, currentAddress);
  }
  process.exitCode = code;
  return code;
}
