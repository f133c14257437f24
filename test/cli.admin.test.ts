/**
 * `sluice queues | queue … | dlq …` through the compiled binary against a real broker
 * (`npm run build` first when running this file alone).
 */
import { copyFileSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { JobState } from '../clients/typescript/src/gen/sluice/v1/job.js';
import { startTestBroker, tempDir } from './helpers/broker.js';
import { cliTestBroker, parseJson, startCli, type CliResult } from './helpers/cli.js';

// One broker for the file; `sluice` runs the compiled CLI against it.
const cli = cliTestBroker();
const sluice = cli.sluice;

/** Enqueues `n` jobs and kills each with a non-retryable nack; returns their ids. */
async function deadJobs(queue: string, n: number, type = ''): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < n; i++) ids.push((await cli.broker.api.enqueue({ queue, type, payload: { i }, maxAttempts: 5 })).id);
  const worker = cli.broker.api.consumer({ queues: [queue] }, n);
  const deliveries = await worker.waitForDeliveries(n);
  worker.send({ nacks: deliveries.map((d) => ({ jobId: d.jobId, leaseId: d.leaseId, error: `poison ${d.jobId}`, nonRetryable: true })) });
  await worker.waitForSettled(n);
  worker.end();
  await worker.status;
  return ids;
}

interface QueueJson {
  name: string;
  paused: boolean;
  counts: Record<'scheduled' | 'pending' | 'active' | 'completed' | 'dead' | 'cancelled', number>;
  consumers: number;
  maxAttempts: number;
  leaseTimeoutMs: number;
  retry: { initialMs: number | null; multiplier: number | null; maxMs: number | null; jitter: number | null } | null;
}

const ok = (r: CliResult) => {
  expect(r.code, `exit code; stderr: ${r.stderr}`).toBe(0);
  return r;
};

describe('sluice queues and queue pause|resume|update|show', () => {
  it('lists queues with counts; pauses, resumes and updates one (text and --json), as the broker then reports', async () => {
    await cli.broker.api.enqueueMany('cli-q1', 3);
    await cli.broker.api.enqueue({ queue: 'cli-q2', payload: {}, delayMs: 3_600_000 });

    const [text, doc] = await Promise.all([sluice('queues'), sluice('queues', '--json')]);
    const lines = ok(text).stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^QUEUE\s+STATUS\s+SCHEDULED\s+PENDING\s+ACTIVE\s+COMPLETED\s+DEAD\s+CANCELLED\s+CONSUMERS$/);
    expect(lines).toContainEqual(expect.stringMatching(/^cli-q1\s+running\s+0\s+3\s+0\s+0\s+0\s+0\s+0$/));
    expect(lines).toContainEqual(expect.stringMatching(/^cli-q2\s+running\s+1\s+0\s+0\s+0\s+0\s+0\s+0$/));
    // Numbers are right-aligned under their headers.
    const pendingEnd = lines[0]!.indexOf('PENDING') + 'PENDING'.length;
    for (const l of lines.slice(1)) expect(l[pendingEnd - 1]).toMatch(/\d/);
    const queues = parseJson<{ queues: QueueJson[] }>(ok(doc)).queues;
    expect(queues.find((q) => q.name === 'cli-q1')).toMatchObject({
      name: 'cli-q1',
      paused: false,
      counts: { scheduled: 0, pending: 3, active: 0, completed: 0, dead: 0, cancelled: 0 },
      consumers: 0,
      maxAttempts: expect.any(Number),
      leaseTimeoutMs: expect.any(Number),
      retry: expect.toSatisfy((r: unknown) => r === null || typeof r === 'object'),
    });

    const [paused, pausedJson] = await Promise.all([sluice('queue', 'pause', 'cli-q1'), sluice('queue', 'pause', 'cli-q2', '--json')]);
    expect(ok(paused).stdout).toMatch(/^paused cli-q1\n\nqueue\s+cli-q1\nstatus\s+paused/);
    expect(parseJson<QueueJson>(ok(pausedJson))).toMatchObject({ name: 'cli-q2', paused: true, counts: { scheduled: 1 } });
    expect((await cli.broker.api.getQueue('cli-q1')).paused).toBe(true);
    expect((await cli.broker.api.getQueue('cli-q2')).paused).toBe(true);

    const [resumed, updated, show] = await Promise.all([
      sluice('queue', 'resume', 'cli-q1', '--json'),
      sluice('queue', 'update', 'cli-q2', '--max-attempts', '4', '--lease-timeout', '2m', '--retry-initial', '1.5s', '--retry-multiplier', '3', '--json'),
      sluice('queue', 'show', 'cli-q1'),
    ]);
    expect(parseJson<QueueJson>(ok(resumed))).toMatchObject({ name: 'cli-q1', paused: false });
    expect(parseJson<QueueJson>(ok(updated))).toMatchObject({ name: 'cli-q2', paused: true, maxAttempts: 4, leaseTimeoutMs: 120_000, retry: { initialMs: 1500, multiplier: 3 } });
    expect(ok(show).stdout).toMatch(/^pending\s+3$/m);
    expect((await cli.broker.api.getQueue('cli-q1')).paused).toBe(false);
    expect(await cli.broker.api.getQueue('cli-q2')).toMatchObject({ maxAttempts: 4, leaseTimeoutMs: 120_000 });

    const [nothing, text2] = await Promise.all([sluice('queue', 'update', 'cli-q2'), sluice('queue', 'update', 'cli-q2', '--retry-max', '1h')]);
    expect(nothing.code).toBe(2);
    expect(nothing.stderr).toContain('nothing to change');
    expect(ok(text2).stdout).toMatch(/^updated cli-q2\n/);
    expect(text2.stdout).toMatch(/^retry\s+initial 1\.5s, x3, max 1h/m);
  });
  it('pause of an unknown queue is NOT_FOUND unless --create; delete asks (exit 2 without --yes) and refuses a queue with pending jobs', async () => {
    await cli.broker.api.enqueue({ queue: 'cli-busy', payload: {} });
    const [unknown, created, noYes, busy] = await Promise.all([
      sluice('queue', 'pause', 'cli-nowhere'),
      sluice('queue', 'pause', 'cli-new', '--create', '--json'),
      sluice('queue', 'delete', 'cli-busy'),
      sluice('queue', 'delete', 'cli-busy', '--yes'),
    ]);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/^sluice: NOT_FOUND: /);
    expect(parseJson<QueueJson>(ok(created))).toMatchObject({ name: 'cli-new', paused: true });
    expect(noYes.code).toBe(2);
    expect(noYes.stderr).toContain('pass --yes to confirm');
    expect(busy.code).toBe(1);
    expect(busy.stderr).toMatch(/^sluice: FAILED_PRECONDITION: /);
    expect((await cli.broker.api.getQueue('cli-busy')).counts?.pending).toBe(1);

    const deleted = await sluice('queue', 'delete', 'cli-new', '--yes', '--json');
    expect(parseJson(ok(deleted))).toEqual({ deleted: 'cli-new' });
    const queues = (await cli.broker.api.listQueues()).map((q) => q.name);
    expect(queues).not.toContain('cli-new');
    expect(queues).toContain('cli-busy');
  });
});

describe('sluice dlq list|replay|purge', () => {
  it('lists dead letters (text and --json) and replays them by id and by queue', async () => {
    const ids = await deadJobs('cli-dlq', 3);
    const [text, doc] = await Promise.all([sluice('dlq', 'list', '--queue', 'cli-dlq'), sluice('dlq', 'list', '--queue', 'cli-dlq', '--json')]);
    const lines = ok(text).stdout.trimEnd().split('\n');
    expect(lines).toHaveLength(4);
    expect(lines[1]).toMatch(new RegExp(`^${ids[2]}\\s+cli-dlq\\s+-\\s+dead\\s+1/5\\s+normal\\s+-\\s+\\S.*poison ${ids[2]!.slice(0, 20)}`));
    const dead = parseJson<{ jobs: { id: string; state: string; lastError: string; errors: { attempt: number; message: string; nonRetryable: boolean }[] }[] }>(ok(doc)).jobs;
    expect(dead.map((j) => j.id)).toEqual([...ids].reverse());
    expect(dead[0]).toMatchObject({ state: 'dead', lastError: `poison ${ids[2]}`, errors: [{ attempt: 1, message: `poison ${ids[2]}`, nonRetryable: true }] });

    const [one, none] = await Promise.all([sluice('dlq', 'replay', ids[0]!, '--json'), sluice('dlq', 'replay')]);
    expect(parseJson(ok(one))).toEqual({ replayed: 1 });
    expect(none.code).toBe(2);
    expect(none.stderr).toContain('say which dead jobs');
    expect((await cli.broker.api.getJob(ids[0]!)).state).toBe(JobState.JOB_STATE_PENDING);

    const rest = await sluice('dlq', 'replay', '--queue', 'cli-dlq');
    expect(ok(rest).stdout).toBe('replayed 2 dead job(s)\n');
    expect((await cli.broker.api.listDeadLetters({ queue: 'cli-dlq' })).jobs).toHaveLength(0);
  });

  it('purge: refuses without --yes and without a terminal (exit 2, nothing deleted); --yes purges; on a terminal it asks', async () => {
    const ids = await deadJobs('cli-purge', 3);
    const refused = await sluice('dlq', 'purge', '--queue', 'cli-purge');
    expect(refused).toMatchObject({ code: 2, stdout: '' });
    expect(refused.stderr).toContain('pass --yes to confirm');
    expect((await cli.broker.api.listDeadLetters({ queue: 'cli-purge' })).jobs).toHaveLength(3);

    const byId = await sluice('dlq', 'purge', ids[0]!, '--yes', '--json');
    expect(parseJson(ok(byId))).toEqual({ purged: 1 });
    await expect(cli.broker.api.getJob(ids[0]!)).rejects.toMatchObject({ code: 5 });

    // On a terminal: answering "no" keeps the jobs; "yes" deletes them.
    const declined = startCli(['dlq', 'purge', '--queue', 'cli-purge'], { address: cli.broker.running.address, tty: true });
    await declined.waitForOutput('Type "yes" to confirm');
    declined.write('no\n');
    const d = await declined.done;
    expect(d.code).toBe(0);
    expect(d.stdout).toContain('Permanently delete up to 2 dead job(s) (queue cli-purge)?');
    expect(d.stdout).toContain('nothing purged');
    expect((await cli.broker.api.listDeadLetters({ queue: 'cli-purge' })).jobs).toHaveLength(2);

    const confirmed = startCli(['dlq', 'purge', '--queue', 'cli-purge'], { address: cli.broker.running.address, tty: true });
    await confirmed.waitForOutput('Type "yes" to confirm');
    confirmed.write('yes\n');
    const c = await confirmed.done;
    expect(c.code).toBe(0);
    expect(c.stdout).toContain('purged 2 dead job(s)');
    expect((await cli.broker.api.listDeadLetters({ queue: 'cli-purge' })).jobs).toHaveLength(0);
  });
});

describe('sluice job history and sluice backup', () => {
  it('job shows every step of its history, in order, with attempts and worker ids (text and --json)', async () => {
    const { id } = await cli.broker.api.enqueue({ queue: 'cli-hist', payload: {}, maxAttempts: 3 });
    const first = cli.broker.api.consumer({ queues: ['cli-hist'], workerId: 'hist-w1' }, 1);
    const [d1] = await first.waitForDeliveries(1);
    first.nack(d1!, 'poison', { nonRetryable: true });
    await first.waitForSettled(1);
    first.end();
    await first.status;
    expect(parseJson(ok(await sluice('dlq', 'replay', id, '--json')))).toEqual({ replayed: 1 });
    const second = cli.broker.api.consumer({ queues: ['cli-hist'], workerId: 'hist-w2' }, 1);
    const [d2] = await second.waitForDeliveries(1);
    second.ack(d2!, { ok: 1 });
    await second.waitForSettled(1);
    second.end();
    await second.status;

    const [text, doc] = await Promise.all([sluice('job', id), sluice('job', id, '--json')]);
    type Entry = { at: string; kind: string; attempt: number; workerId: string | null; leaseId: string | null; error: string | null; detail: string | null };
    const job = parseJson<{ id: string; state: string; history: Entry[] }>(ok(doc));
    expect(job).toMatchObject({ id, state: 'completed' });
    const steps = job.history.map((h) => [h.kind, h.attempt, h.workerId]);
    const expected = [
      ['enqueued', 0, null],
      ['delivered', 1, 'hist-w1'],
      ['nacked', 1, 'hist-w1'],
      ['replayed', expect.any(Number), null],
      ['delivered', 1, 'hist-w2'],
      ['acked', 1, 'hist-w2'],
    ];
    // In order (other steps, such as "dead", may sit between them).
    let at = 0;
    for (const e of expected) {
      const found = steps.findIndex((s, i) => i >= at && s[0] === e[0]);
      expect(found, `${String(e[0])} after step ${at} in ${JSON.stringify(steps)}`).toBeGreaterThanOrEqual(at);
      expect(steps[found]).toEqual(e);
      at = found + 1;
    }
    expect(job.history.find((h) => h.kind === 'nacked')!.error).toBe('poison');
    const times = job.history.map((h) => Date.parse(h.at));
    expect([...times].sort((x, y) => x - y)).toEqual(times);

    const out = ok(text).stdout;
    const history = out.slice(out.indexOf('\nHistory:\n'));
    expect(history).toMatch(/^\s+AT\s+KIND\s+ATTEMPT\s+WORKER\s+LEASE\s+ERROR \/ DETAIL$/m);
    expect(history).toMatch(/^\s+\S+Z\s+delivered\s+1\s+hist-w1\s/m);
    expect(history).toMatch(/^\s+\S+Z\s+nacked\s+1\s+hist-w1\s+\S+\s+poison/m);
    expect(history).toMatch(/^\s+\S+Z\s+acked\s+1\s+hist-w2\s/m);
  });

  it('backup writes a snapshot on the broker host (text and --json) that holds the jobs; an existing file is refused with exit 1', async () => {
    const { id } = await cli.broker.api.enqueue({ queue: 'cli-backup', payload: { keep: true } });
    const dir = tempDir('cli-backup-');
    try {
      // One after the other: the broker runs one backup at a time (a second one is FAILED_PRECONDITION).
      const text = await sluice('backup', join(dir, 'a.db'));
      const doc = await sluice('backup', join(dir, 'cli.broker.db'), '--json');
      expect(ok(text).stdout).toMatch(new RegExp(`^backup written to ${join(dir, 'a.db')} \\(\\d+(\\.\\d)? (B|KiB|MiB) in \\d+(\\.\\d)?m?s\\)\\n$`));
      const res = parseJson<{ path: string; bytes: number; durationMs: number }>(ok(doc));
      expect(res).toEqual({ path: join(dir, 'cli.broker.db'), bytes: statSync(join(dir, 'cli.broker.db')).size, durationMs: expect.any(Number) });
      const db = new Database(join(dir, 'cli.broker.db'), { readonly: true });
      try {
        expect(db.pragma('integrity_check', { simple: true })).toBe('ok');
      } finally {
        db.close();
      }
      // A broker started on a copy of the backup serves the job.
      const restoreDir = mkdtempSync(join(dir, 'restore-'));
      copyFileSync(join(dir, 'a.db'), join(restoreDir, 'sluice.db'));
      const restored = await startTestBroker({}, { dir: restoreDir });
      try {
        expect((await restored.api.getJob(id)).payload).toEqual({ keep: true });
      } finally {
        await restored.close();
      }
      const again = await sluice('backup', join(dir, 'a.db'));
      expect(again.code).toBe(1);
      expect(again.stderr).toMatch(/^sluice: [A-Z_]+: /);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('sluice explain and queue limits', () => {
  it('explain says why a job waits (paused queue, scheduled) in text and --json; unknown id is NOT_FOUND', async () => {
    const paused = (await cli.broker.api.enqueue({ queue: 'cli-explain', payload: {} })).id;
    await cli.broker.api.pauseQueue('cli-explain');
    const later = (await cli.broker.api.enqueue({ queue: 'cli-explain2', payload: {}, delayMs: 3_600_000 })).id;
    const [text, doc, sched, missing] = await Promise.all([
      sluice('explain', paused),
      sluice('explain', paused, '--json'),
      sluice('explain', later, '--json'),
      sluice('explain', '01a00000-0000-7000-8000-000000000000'),
    ]);
    type Explained = { id: string; state: string; summary: string; reasons: { code: string; message: string; at: string | null }[] };
    const p = parseJson<Explained>(ok(doc));
    expect(p).toMatchObject({ id: paused, state: 'pending' });
    expect(p.reasons.map((r) => r.code)).toContain('queue_paused');
    expect(ok(text).stdout.split('\n')[0]).toBe(p.summary);
    expect(text.stdout).toContain(p.reasons.find((r) => r.code === 'queue_paused')!.message);
    const s = parseJson<Explained>(ok(sched));
    expect(s.state).toBe('scheduled');
    expect(s.reasons[0]).toMatchObject({ code: 'scheduled', at: expect.stringMatching(/^\d{4}-/) });
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/^sluice: NOT_FOUND: /);
  });

  it('queue update sets dispatch limits, keeps the ones not given, and --no-limits clears them', async () => {
    await cli.broker.api.enqueue({ queue: 'cli-limits', payload: {} });
    type Limits = { rate: { count: number; intervalMs: number; burst: number } | null; concurrency: number; groupConcurrency: number; fairGroups: boolean };
    const set = await sluice('queue', 'update', 'cli-limits', '--rate', '100/1s:150', '--group-concurrency', '1', '--json');
    expect(parseJson<{ limits: Limits }>(ok(set)).limits).toMatchObject({ rate: { count: 100, intervalMs: 1000, burst: 150 }, groupConcurrency: 1, concurrency: 0 });
    const more = await sluice('queue', 'update', 'cli-limits', '--concurrency', '5');
    expect(ok(more).stdout).toMatch(/^limits\s+rate 100\/1s \(burst 150\), .*concurrency 5/m);
    expect((await cli.broker.api.getQueue('cli-limits')).limits).toMatchObject({ rate: { count: 100, intervalMs: 1000 }, concurrency: 5, groupConcurrency: 1 });
    const [cleared, bad] = await Promise.all([sluice('queue', 'update', 'cli-limits', '--no-limits', '--json'), sluice('queue', 'update', 'cli-limits', '--rate', 'fast')]);
    expect(parseJson<{ limits: Limits }>(ok(cleared)).limits).toMatchObject({ rate: null, concurrency: 0, groupConcurrency: 0 });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('expected COUNT/INTERVAL');
  });
});
