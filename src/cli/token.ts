import { Command } from 'commander';
import { createTokenLine, grantsFromFlags, tokenDigest } from '../auth/tokens.js';
import { usageError } from './exit.js';
import { examples } from './connection.js';

const NAME = /^[A-Za-z0-9_.@:-]{1,64}$/;

/**
 * `sluice token create`: a new bearer token, printed once, and the auth-file line that holds
 * only its SHA-256. The broker never sees or stores the token itself.
 */
export function tokenCommand(): Command {
  const token = new Command('token').description('bearer tokens for the auth file (--auth-file); no broker needed');
  examples(token, "sluice token create --scopes produce,consume --queues 'email.*' --name email-app");
  const create = token
    .command('create')
    .description('print a new token (once) and the line to add to the auth file')
    .requiredOption('--scopes <list>', 'comma-separated scopes: produce, consume, admin (includes read), read; each may carry :queue-patterns')
    .option('--queues <patterns>', "limit every scope to these queue patterns, comma separated ('email.*' matches email.welcome)")
    .option('--name <name>', 'name shown in logs and errors (default: token-<first hash digits>)')
    .option('--json', 'print {"name", "token", "line"} as JSON');
  examples(
    create,
    "sluice token create --scopes produce,read --queues 'email.*' --name billing-api",
    'sluice token create --scopes admin --name ops --json',
  );
  create
    .action((options: { scopes: string; queues?: string; name?: string; json?: boolean }) => {
      let grants;
      try {
        grants = grantsFromFlags(options.scopes, options.queues);
      } catch (error) {
        throw usageError((error as Error).message);
      }
      if (options.name !== undefined && !NAME.test(options.name)) throw usageError('--name must be 1-64 characters of A-Z a-z 0-9 _ . @ : -');
      // The default name needs the hash, so make the line with a placeholder and fill it in.
      const { token: value, line: draft } = createTokenLine('NAME', grants);
      const name = options.name ?? `token-${tokenDigest(value).toString('hex').slice(0, 8)}`;
      const line = draft.replace(/^token NAME /, `token ${name} `);
      if (options.json) {
        process.stdout.write(`${JSON.stringify({ name, token: value, line })}\n`);
        return;
      }
      process.stdout.write(
        `Token (shown only now; give it to the client as SLUICE_TOKEN or the client's token option):\n\n  ${value}\n\n` +
          `Add this line to the auth file (the broker reloads it on change or SIGHUP):\n\n${line}\n`,
      );
    });
  return token;
}
