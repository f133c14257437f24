import { resolve } from 'node:path';
import { Command } from 'commander';
import { BackupRequest } from '../../clients/typescript/src/gen/sluice/v1/admin.js';
import { addConnectionOptions, examples, out, withSession } from './connection.js';
import { bytes, duration, json } from './output.js';

export function backupCommand(): Command {
  const cmd = new Command('backup')
    .description('write a consistent snapshot of the database to a file ON THE BROKER HOST while it keeps serving')
    .argument('<file>', 'where to write it (must not exist; its directory must); a relative path is taken from the current directory');
  addConnectionOptions(cmd);
  cmd.addHelpText('after', '\nRestore: stop the broker, copy the backup over its --data-file (remove the old -wal and -shm files), start it.');
  examples(cmd, 'sluice backup /var/backups/sluice-$(date +%F).db', 'sluice backup ./sluice-backup.db --json');
  return withSession(cmd, async (session, flags, file: string) => {
    // The broker writes the file, so the path must mean the same there: made absolute here
    // (the CLI usually runs on the broker host; for a remote broker, give its absolute path).
    const res = await session.call(session.admin, session.admin.backup, BackupRequest.fromPartial({ path: resolve(file) }));
    if (flags.json) out(json({ path: res.path, bytes: res.bytes, durationMs: res.durationMs }));
    else out(`backup written to ${res.path} (${bytes(res.bytes)} in ${duration(res.durationMs)})\n`);
  });
}
