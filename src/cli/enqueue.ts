import { readFileSync } from 'node:fs';
import { Command } from 'commander';
import { EnqueueRequest } from '../../clients/typescript/src/gen/sluice/v1/producer.js';
import { stateName } from '../../clients/typescript/src/wire.js';
import { addConnectionOptions, examples, out, withSession, type ConnectionFlags } from './connection.js';
import { usageError } from './exit.js';
import { json } from './output.js';
import { durationMs, keyValue, positiveInt, priority, time } from './parse.js';

interface EnqueueFlags extends ConnectionFlags {
  type?: string;
  priority?: number;
  delay?: number;
  runAt?: Date;
  maxAttempts?: number;
  leaseTimeout?: number;
  dedupKey?: string;
  group?: string;
  meta?: Record<string, string>;
}

/** The payload argument: JSON text, "@file" for a file's contents, "-" for stdin; default {}. */
export function readPayload(arg: string | undefined): string {
  let text: string;
  if (arg === undefined) text = '{}';
  else if (arg === '-') text = readFileSync(0, 'utf8');
  else if (arg.startsWith('@')) {
    try {
      text = readFileSync(arg.slice(1), 'utf8');
    } catch (error) {
      throw usageError(`payload: cannot read ${arg.slice(1)}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
    }
  } else text = arg;
  try {
    JSON.parse(text);
  } catch (error) {
    throw usageError(`payload is not JSON: ${(error as Error).message} (quote it for the shell: '{"to":"a@b.c"}')`);
  }
  return text;
}

export function enqueueCommand(): Command {
  const cmd = new Command('enqueue')
    .description('enqueue one job; prints its id once it is durably stored')
    .argument('<queue>', 'queue name')
    .argument('[payload]', "the job's JSON document; @file reads a file, - reads stdin (default {})")
    .option('--type <type>', 'handler name inside the queue, e.g. email.send')
    .option('--priority <level>', 'low, normal, high or critical', priority)
    .option('--delay <duration>', 'run no earlier than this from now (500ms, 30s, 5m, 2h)', durationMs)
    .option('--run-at <time>', 'run no earlier than this ISO 8601 time', time)
    .option('--max-attempts <n>', "attempts before the job is dead-lettered (default: the queue's)", positiveInt)
    .option('--lease-timeout <duration>', 'how long one attempt may run without a heartbeat', durationMs)
    .option('--dedup-key <key>', 'return the unfinished job with this key instead of adding a new one')
    .option('--group <key>', 'group (tenant, customer) for per-group limits and fairness')
    .option('--meta <key=value>', 'metadata entry (repeatable), e.g. --meta correlation-id=abc', keyValue);
  addConnectionOptions(cmd);
  examples(
    cmd,
    `sluice enqueue email '{"to":"a@b.c"}' --type email.send --priority high`,
    `sluice enqueue reports @report.json --delay 10m --dedup-key daily-2026-12-01`,
    `echo '{"n":1}' | sluice enqueue numbers - --json`,
  );
  return withSession<EnqueueFlags>(cmd, async (session, flags, queue: string, payloadArg: string | undefined) => {
    if (flags.delay !== undefined && flags.runAt !== undefined) throw usageError('give --delay or --run-at, not both');
    const request = EnqueueRequest.fromPartial({
      queue,
      type: flags.type ?? '',
      payloadJson: Buffer.from(readPayload(payloadArg)),
      priority: flags.priority ?? 0,
      delayMs: flags.delay ?? 0,
      runAt: flags.runAt,
      maxAttempts: flags.maxAttempts ?? 0,
      leaseTimeoutMs: flags.leaseTimeout ?? 0,
      metadata: flags.meta ?? {},
      dedupKey: flags.dedupKey ?? '',
      groupKey: flags.group ?? '',
    });
    const res = await session.call(session.producer, session.producer.enqueue, request);
    const view = { id: res.id, state: stateName(res.state), deduplicated: res.deduplicated };
    if (flags.json) out(json(view));
    else out(`${view.id}  ${view.state}${view.deduplicated ? '  (deduplicated: an unfinished job with this key already existed)' : ''}\n`);
  });
}
