/**
 * `sluice enqueue | jobs | job | cancel` and the exit codes, through the compiled binary
 * (`npm test` builds first; run `npm run build` before running this file alone) against a real
 * broker on an ephemeral port.
 */
import { describe, expect, it } from 'vitest';
import { JobState, Priority } from '../clients/typescript/src/gen/sluice/v1/job.js';
import { createProgram } from '../src/cli/program.js';
import type { Command } from 'commander';
import { cliTestBroker, parseJson, runCli, type CliResult } from './helpers/cli.js';

// One broker for the file; `sluice` runs the compiled CLI against it.
const cli = cliTestBroker();
const sluice = cli.sluice;

const ID = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}$/;

interface JobJson {
  id: string;
  queue: string;
  type: string | null;
  state: string;
  priority: string;
  attempt: number;
  maxAttempts: number;
  payload: unknown;
  metadata: Record<string, string>;
  groupKey: string | null;
  dedupKey: string | null;
  runAt: string | null;
  createdAt: string | null;
  lastError: string | null;
  errors: { attempt: number; message: string }[];
}

describe('sluice enqueue, jobs, job', () => {
  it('enqueues (text and --json, dedup, delay, @file and stdin payloads) and the broker holds exactly those jobs', async () => {
    const human = await sluice('enqueue', 'cli-mail', '{"to":"a@cli.broker.c"}', '--type', 'email.send', '--priority', 'high', '--group', 'acme', '--meta', 'correlation-id=c-1', '--meta', 'x=y');
    expect(human.stderr).toBe('');
    expect(human.code).toBe(0);
    const [id, state] = human.stdout.trim().split(/\s+/);
    expect(id).toMatch(ID);
    expect(state).toBe('pending');
    const stored = await cli.broker.api.getJob(id!);
    expect(stored).toMatchObject({ queue: 'cli-mail', type: 'email.send', priority: Priority.PRIORITY_HIGH, groupKey: 'acme', payload: { to: 'a@cli.broker.c' }, metadata: { 'correlation-id': 'c-1', x: 'y' } });

    const [first, again, delayed, fromStdin] = await Promise.all([
      sluice('enqueue', 'cli-dedup', '{"n":1}', '--dedup-key', 'k1', '--json'),
      // Runs concurrently with the first: whichever lands second is the duplicate.
      sluice('enqueue', 'cli-dedup', '{"n":1}', '--dedup-key', 'k1', '--json'),
      sluice('enqueue', 'cli-later', '[1,2,3]', '--delay', '1h', '--max-attempts', '3', '--json'),
      runCli(['enqueue', 'cli-stdin', '-', '--json'], { address: cli.broker.running.address, input: '{"from":"stdin"}' }),
    ]);
    const docs = [first, again, delayed, fromStdin].map((r) => {
      expect(r.code, r.stderr).toBe(0);
      return parseJson<{ id: string; state: string; deduplicated: boolean }>(r);
    });
    expect(Object.keys(docs[0]!).sort()).toEqual(['deduplicated', 'id', 'state']);
    expect(docs[0]!.id).toBe(docs[1]!.id);
    expect([docs[0]!.deduplicated, docs[1]!.deduplicated].sort()).toEqual([false, true]);
    expect(docs[2]).toMatchObject({ state: 'scheduled', deduplicated: false });
    expect((await cli.broker.api.getJob(docs[2]!.id)).maxAttempts).toBe(3);
    expect((await cli.broker.api.getJob(docs[3]!.id)).payload).toEqual({ from: 'stdin' });
  });

  it('lists jobs with each filter and pages through them; shows one job as text and JSON', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push((await cli.broker.api.enqueue({ queue: 'cli-list', type: i === 0 ? 'special' : 'plain', groupKey: `g${i}`, payload: { i } })).id);
    await cli.broker.api.cancelJob(ids[2]!);

    const [table, all, byType, byState, byGroup, page1] = await Promise.all([
      sluice('jobs', '--queue', 'cli-list'),
      sluice('jobs', '--queue', 'cli-list', '--json'),
      sluice('jobs', '--queue', 'cli-list', '--type', 'special', '--json'),
      sluice('jobs', '--queue', 'cli-list', '--state', 'cancelled', '--json'),
      sluice('jobs', '--queue', 'cli-list', '--group', 'g1', '--json'),
      sluice('jobs', '--queue', 'cli-list', '--limit', '2', '--json'),
    ]);
    // Text: a header and one aligned row per job, newest first.
    const lines = table.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^ID\s+QUEUE\s+TYPE\s+STATE\s+ATTEMPT\s+PRIORITY\s+GROUP\s+CREATED\s+LAST ERROR$/);
    expect(lines.slice(1).map((l) => l.split(/\s+/)[0])).toEqual([...ids].reverse());
    expect(lines[1]).toMatch(/cli-list\s+plain\s+cancelled\s+0\/25\s+normal\s+g2\s/);
    // Aligned: every row's STATE cell starts under the STATE header.
    const stateCol = lines[0]!.indexOf('STATE');
    expect(lines.slice(1).map((l) => l.slice(stateCol).split(/\s+/)[0])).toEqual(['cancelled', 'pending', 'pending']);

    const ofList = (r: CliResult) => {
      expect(r.code, r.stderr).toBe(0);
      return parseJson<{ jobs: JobJson[]; nextPageToken: string | null }>(r);
    };
    expect(ofList(all).jobs.map((j) => j.id)).toEqual([...ids].reverse());
    expect(ofList(all).nextPageToken).toBeNull();
    expect(ofList(byType).jobs.map((j) => j.id)).toEqual([ids[0]]);
    expect(ofList(byState).jobs.map((j) => j.id)).toEqual([ids[2]]);
    expect(ofList(byGroup).jobs.map((j) => j.id)).toEqual([ids[1]]);

    const p1 = ofList(page1);
    expect(p1.jobs.map((j) => j.id)).toEqual([ids[2], ids[1]]);
    expect(p1.nextPageToken).toEqual(expect.any(String));
    const [page2, textPage] = await Promise.all([
      sluice('jobs', '--queue', 'cli-list', '--limit', '2', '--page-token', p1.nextPageToken!, '--json'),
      sluice('jobs', '--queue', 'cli-list', '--limit', '2'),
    ]);
    expect(ofList(page2)).toEqual({ jobs: [expect.objectContaining({ id: ids[0] })], nextPageToken: null });
    expect(textPage.stderr).toContain(`--page-token ${p1.nextPageToken}`);

    const [text, doc] = await Promise.all([sluice('job', ids[0]!), sluice('job', ids[0]!, '--json')]);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(new RegExp(`^id\\s+${ids[0]}$`, 'm'));
    expect(text.stdout).toMatch(/^state\s+pending$/m);
    expect(text.stdout).toMatch(/^type\s+special$/m);
    expect(text.stdout).toMatch(/^attempt\s+0 of 25$/m);
    expect(text.stdout).toMatch(/^payload\s+\{"i":0\}$/m);
    expect(text.stdout).toMatch(/^group\s+g0$/m);
    const job = parseJson<JobJson>(doc);
    expect(job).toMatchObject({ id: ids[0], queue: 'cli-list', type: 'special', state: 'pending', priority: 'normal', attempt: 0, maxAttempts: 25, payload: { i: 0 }, groupKey: 'g0', dedupKey: null, lastError: null, errors: [] });
    expect(new Date(job.createdAt!).getTime()).toBeGreaterThan(0);
    // Every field is present (null when unset), so scripts can rely on the keys.
    expect(Object.keys(job).sort()).toEqual(
      ['attempt', 'createdAt', 'dedupKey', 'errors', 'finishedAt', 'groupKey', 'history', 'id', 'lastError', 'leaseExpiresAt', 'leaseTimeoutMs', 'maxAttempts', 'metadata', 'payload', 'priority', 'progress', 'queue', 'result', 'retry', 'runAt', 'startedAt', 'state', 'type', 'updatedAt', 'workerId'].sort(),
    );
  });

  it('cancels a job (text and --json)', async () => {
    const a = (await cli.broker.api.enqueue({ queue: 'cli-cancel', payload: {} })).id;
    const c = (await cli.broker.api.enqueue({ queue: 'cli-cancel', payload: {} })).id;
    const [text, doc] = await Promise.all([sluice('cancel', a, '--reason', 'not needed'), sluice('cancel', c, '--json')]);
    expect(text).toMatchObject({ code: 0, stdout: `cancelled ${a} (cancelled)\n` });
    expect(parseJson<JobJson>(doc)).toMatchObject({ id: c, state: 'cancelled' });
    expect((await cli.broker.api.getJob(a)).state).toBe(JobState.JOB_STATE_CANCELLED);
  });
});

describe('sluice exit codes and help', () => {
  it('exit 1 with the gRPC status for a failed call, 2 for usage errors, 0 for --help', async () => {
    const [missing, missingJson, badFlag, badValue, badPayload, unknownCommand, unreachable, help] = await Promise.all([
      sluice('job', '01a00000-0000-7000-8000-000000000000'),
      sluice('job', 'not-a-job', '--json'),
      sluice('jobs', '--bogus'),
      sluice('jobs', '--state', 'sleeping'),
      sluice('enqueue', 'q', '{not json'),
      sluice('frobnicate'),
      // Nothing listens on port 1: the call waits for the connection until its deadline.
      runCli(['queues', '--address', '127.0.0.1:1', '--timeout', '300ms']),
      sluice('--help'),
    ]);
    expect(missing).toMatchObject({ code: 1, stdout: '' });
    expect(missing.stderr).toMatch(/^sluice: NOT_FOUND: .*01a00000-0000-7000-8000-000000000000/);
    expect(missingJson).toMatchObject({ code: 1, stdout: '' });
    expect(missingJson.stderr).toMatch(/^sluice: NOT_FOUND: /);

    expect(badFlag).toMatchObject({ code: 2, stdout: '' });
    expect(badFlag.stderr).toContain("unknown option '--bogus'");
    expect(badValue.code).toBe(2);
    expect(badValue.stderr).toContain('expected one of scheduled, pending, active, completed, dead, cancelled');
    expect(badPayload.code).toBe(2);
    expect(badPayload.stderr).toContain('payload is not JSON');
    expect(unknownCommand.code).toBe(2);
    expect(unknownCommand.stderr).toContain("unknown command 'frobnicate'");

    expect(unreachable.code).toBe(1);
    expect(unreachable.stderr).toMatch(/^sluice: (DEADLINE_EXCEEDED|UNAVAILABLE): /);
    expect(unreachable.stderr).toContain('is a broker running at 127.0.0.1:1?');

    expect(help).toMatchObject({ code: 0, stderr: '' });
    for (const name of ['serve', 'enqueue', 'job', 'jobs', 'cancel', 'watch', 'queues', 'queue', 'dlq', 'workers', 'bench']) {
      expect(help.stdout).toMatch(new RegExp(`^  ${name} `, 'm'));
    }
  });

  it('every command has --help with an example, and every client command has the connection flags and --json', async () => {
    const leaves: Command[] = [];
    const visit = (c: Command, path: string[]) => {
      const full = [...path, c.name()];
      const help = helpOf(c);
      expect(help, full.join(' ')).toContain('Examples:\n  $ sluice');
      // serve, bench and token run locally: no connection flags.
      if (c.commands.length === 0 && !['serve', 'bench', 'token'].includes(full[0]!)) leaves.push(c);
      for (const sub of c.commands) visit(sub, full);
    };
    for (const c of createProgram().commands) if (c.name() !== 'help') visit(c, []);
    expect(leaves.length).toBeGreaterThanOrEqual(12);
    for (const leaf of leaves) {
      const names = leaf.options.map((o) => o.long);
      expect(names, leaf.name()).toEqual(expect.arrayContaining(['--address', '--token', '--tls-ca', '--tls-cert', '--tls-key', '--json', '--timeout']));
    }
    // And through the binary: a subcommand's help exits 0 on stdout.
    const sub = await sluice('dlq', 'purge', '--help');
    expect(sub.code).toBe(0);
    expect(sub.stdout).toContain('--yes');
    expect(sub.stdout).toContain('Examples:');
  });
});

/** The full help text of a command, "after" texts (the examples) included. */
function helpOf(c: Command): string {
  let text = '';
  c.configureOutput({ writeOut: (s) => (text += s) });
  c.outputHelp();
  return text;
}
