import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Page } from 'playwright-core';
import { JobState } from '../clients/typescript/src/gen/sluice/v1/job.js';
import { startTestBroker, tempDir, type TestBroker } from './helpers/broker.js';
import { Api, type TestConsumer } from './helpers/api.js';
import { connect } from '../clients/typescript/src/connect.js';
import { createTokenLine } from '../src/auth/tokens.js';
import { parseGrant } from '../src/auth/grants.js';
import { launchBrowser, watchProblems, type Browser } from './helpers/browser.js';
import { ScheduleApi } from './helpers/schedules.js';
import { ScheduleRunKind } from '../clients/typescript/src/gen/sluice/v1/schedule.js';

/** Screenshots for people to look at (git-ignored). */
const ARTIFACTS = join(import.meta.dirname, '..', 'test-artifacts', 'dashboard');

let b: TestBroker;
let browser: Browser;
let base: string;
let emailWorker: TestConsumer;
let reportsWorker: TestConsumer;
const ids: { retried?: string; dead: string[]; delayed: string[]; nightly?: string } = { dead: [], delayed: [] };

/**
 * A broker with something to show: "email" backed up (10 pending, 2 active on a worker, one
 * waiting out a retry with an error), "reports" with 3 dead letters (two errors), "images"
 * with completed work in the throughput chart and delayed jobs.
 */
async function seed(): Promise<void> {
  const api = b.api;
  for (let i = 0; i < 6; i++) await api.enqueue({ queue: 'images', type: 'thumbnail', payload: { image: `img-${i}.png` } });
  const images = api.consumer({ queues: ['images'], workerId: 'thumbnailer-1' }, 6);
  for (const d of await images.waitForDeliveries(6)) images.ack(d, { ok: true });
  await images.waitForSettled(6);
  images.end();
  await images.status;
  for (let i = 0; i < 2; i++) ids.delayed.push((await api.enqueue({ queue: 'images', type: 'thumbnail', payload: { image: `later-${i}.png` }, delayMs: 3_600_000 })).id);

  for (let i = 0; i < 3; i++) {
    ids.dead.push((await api.enqueue({ queue: 'reports', type: 'monthly', payload: { month: `2026-0${i + 1}`, customer: 'acme' }, maxAttempts: 1 })).id);
  }
  reportsWorker = api.consumer({ queues: ['reports'], workerId: 'reporter-1' }, 3);
  const reports = await reportsWorker.waitForDeliveries(3);
  reports.forEach((d, i) => reportsWorker.nack(d, i < 2 ? 'SMTP timeout after 30 s' : 'template "monthly" not found', { nonRetryable: i === 2 }));
  await reportsWorker.waitForSettled(3);

  emailWorker = api.consumer({ queues: ['email'], workerId: 'mailer-1' }, 3);
  const first = await api.enqueue({ queue: 'email', type: 'welcome', payload: { to: 'ada@example.com', template: 'welcome' }, metadata: { tenant: 'acme' } });
  ids.retried = first.id;
  const [d] = await emailWorker.waitForDeliveries(1);
  emailWorker.nack(d!, 'mailbox full (552)', { retryAfterMs: 3_600_000 });
  await emailWorker.waitForSettled(1);
  for (let i = 0; i < 12; i++) await api.enqueue({ queue: 'email', type: 'welcome', payload: { to: `user${i}@example.com` }, leaseTimeoutMs: 600_000 });
  await emailWorker.waitForDeliveries(3); // 2 more active (credit 3 in all, one used by the retried job)
  expect((await api.getQueue('email')).counts).toMatchObject({ pending: 10, active: 2, scheduled: 1 });

  // Two schedules whose jobs go to queues without workers (a fire cannot disturb the tests above);
  // the nightly one fires at 02:00 Berlin time, the cleanup one is paused.
  const schedules = new ScheduleApi(b.clients);
  ids.nightly = (await schedules.create({ spec: { name: 'nightly-digest', cron: '0 2 * * *', timezone: 'Europe/Berlin', job: { queue: 'digests', type: 'daily', payload: { edition: 'nightly' } } } })).id;
  await schedules.create({ spec: { name: 'hourly-cleanup', cron: '@hourly', job: { queue: 'maintenance', type: 'cleanup' } }, paused: true });
}

beforeAll(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  b = await startTestBroker({ httpAddress: '127.0.0.1:0' });
  base = `http://127.0.0.1:${b.running.httpPort}`;
  await seed();
  browser = await launchBrowser();
}, 120_000);

afterAll(async () => {
  await browser?.close();
  emailWorker?.cancel();
  reportsWorker?.cancel();
  await b?.close();
});

/** A row's count cell on the overview. */
const count = (page: Page, queue: string, state: string) => page.locator(`tr[data-queue="${queue}"] td[data-count="${state}"]`);

describe('dashboard in a real browser', () => {
  it('overview: counts, live updates without reload, pause and resume', async () => {
    const page = await browser.context.newPage();
    const problems = watchProblems(page);
    await page.goto(base + '/');
    await expect.poll(() => page.title()).toBe('Overview · Sluice');
    await page.locator('.live.on').waitFor();
    expect(await count(page, 'email', 'pending').innerText()).toBe('10');
    expect(await count(page, 'email', 'active').innerText()).toBe('2');
    expect(await count(page, 'email', 'scheduled').innerText()).toBe('1');
    expect(await count(page, 'reports', 'dead').innerText()).toBe('3');
    expect(await count(page, 'images', 'completed').innerText()).toBe('6');
    expect(await page.locator('[data-tile="Dead"] .tile-value').innerText()).toBe('3');
    await page.locator('.chart canvas').first().waitFor();

    // Live: jobs enqueued elsewhere show up without a reload.
    // (Page code is passed as text: this file is compiled without the DOM library.)
    await page.evaluate('window.sluiceMarker = 42');
    for (let i = 0; i < 1100; i += 100) await b.api.enqueueBatch(Array.from({ length: 100 }, (_, k) => ({ queue: 'email', payload: { k } })), true);
    await page.locator('tr[data-queue="email"] td[data-count="pending"]', { hasText: '1.1k' }).waitFor();
    expect(await count(page, 'email', 'pending').locator('.num').getAttribute('title')).toBe('1,110');
    expect(await page.evaluate('window.sluiceMarker')).toBe(42);
    await page.screenshot({ path: join(ARTIFACTS, 'overview.png'), fullPage: true });

    // Pause and resume from the page.
    await page.getByRole('button', { name: 'Pause queue email' }).click();
    await page.locator('tr[data-queue="email"] .badge.paused').waitFor();
    expect((await b.api.getQueue('email')).paused).toBe(true);
    await page.getByRole('button', { name: 'Resume queue email' }).click();
    await page.locator('tr[data-queue="email"] .badge.paused').waitFor({ state: 'detached' });
    expect((await b.api.getQueue('email')).paused).toBe(false);

    // Phone width: nothing sticks out sideways (wide tables scroll inside their card).
    await page.setViewportSize({ width: 390, height: 844 });
    await expect.poll(() => page.evaluate<number>('document.documentElement.scrollWidth')).toBeLessThanOrEqual(390);
    await page.screenshot({ path: join(ARTIFACTS, 'overview-phone.png'), fullPage: true });
    expect(problems).toEqual([]);
    await page.close();
  }, 90_000);

  it('queue and job pages: filter by state, open a job, see its payload and errors', async () => {
    const page = await browser.context.newPage();
    const problems = watchProblems(page);
    await page.goto(base + '/');
    await page.getByRole('link', { name: 'email', exact: true }).click();
    await page.waitForURL(base + '/queues/email');
    await page.getByRole('heading', { name: 'email' }).waitFor();
    await page.getByRole('button', { name: /^scheduled/ }).click();
    await page.waitForURL(base + '/queues/email?state=scheduled');
    const row = page.locator(`tr[data-job="${ids.retried}"]`);
    await row.waitFor();
    await page.screenshot({ path: join(ARTIFACTS, 'queue.png'), fullPage: true });
    expect(await row.innerText()).toContain('mailbox full (552)');
    await row.getByRole('link').click();
    await page.waitForURL(`${base}/jobs/${ids.retried}`);
    await page.getByRole('heading', { name: 'Attempts and errors (1)' }).waitFor();
    expect(await page.getByLabel('Payload').innerText()).toContain('"to": "ada@example.com"');
    expect(await page.locator('table.errors').innerText()).toContain('mailbox full (552)');
    expect(await page.locator('.settings').last().innerText()).toContain('tenant');
    await page.screenshot({ path: join(ARTIFACTS, 'job.png'), fullPage: true });

    // A shared URL opens the same view directly.
    await page.goto(`${base}/queues/email?state=scheduled`);
    await page.locator(`tr[data-job="${ids.retried}"]`).waitFor();
    expect(problems).toEqual([]);
    await page.close();
  }, 90_000);

  it('dead letters: grouped errors, replay one and see it complete, purge the rest with a confirmation', async () => {
    const page = await browser.context.newPage();
    const problems = watchProblems(page);
    await page.goto(base + '/');
    await page.getByRole('link', { name: 'Dead letters' }).click();
    await page.waitForURL(base + '/dead-letters');
    await page.locator('.error-groups li', { hasText: 'SMTP timeout after 30 s' }).waitFor();
    expect(await page.locator('.error-groups li').first().innerText()).toMatch(/^2×\s*SMTP timeout/);
    await page.screenshot({ path: join(ARTIFACTS, 'dead-letters.png'), fullPage: true });

    // Replay one from its job page, then a worker completes it and the page shows it live.
    const [first] = ids.dead;
    await page.locator(`tr[data-job="${first}"]`).getByRole('link').first().click();
    await page.waitForURL(`${base}/jobs/${first}`);
    await page.locator('h1 .badge', { hasText: 'dead' }).waitFor();
    await page.getByRole('button', { name: 'Replay' }).click();
    await page.locator('h1 .badge', { hasText: 'pending' }).or(page.locator('h1 .badge', { hasText: 'active' })).waitFor();
    reportsWorker.credit(1);
    const [d] = await reportsWorker.waitForDeliveries(4).then((ds) => ds.slice(3));
    expect(d!.jobId).toBe(first);
    reportsWorker.ack(d!, { sent: true });
    await page.locator('h1 .badge', { hasText: 'completed' }).waitFor();
    expect(await page.getByLabel('Result').innerText()).toContain('"sent": true');
    expect((await b.api.getJob(first!)).state).toBe(JobState.JOB_STATE_COMPLETED);

    // Purge the two left, confirming in the dialog that names how many.
    await page.goto(base + '/dead-letters?queue=reports');
    await page.locator('tr[data-job]').nth(1).waitFor();
    await page.getByRole('button', { name: 'Purge all…' }).click();
    const dialog = page.getByRole('dialog');
    await dialog.getByRole('heading', { name: 'Purge 2 dead jobs?' }).waitFor();
    await dialog.getByRole('button', { name: 'Purge 2 jobs' }).click();
    await page.getByText('No dead letters in queue “reports”').waitFor();
    await page.getByText('Purged 2 dead jobs.').waitFor();
    expect((await b.api.getQueue('reports')).counts!.dead).toBe(0);
    expect(problems).toEqual([]);
    await page.close();
  }, 90_000);

  it('workers page lists streams with their in-flight jobs; keyboard reaches every link', async () => {
    const page = await browser.context.newPage();
    const problems = watchProblems(page);
    await page.goto(base + '/workers');
    const mailer = page.locator('tr[data-worker="mailer-1"]');
    await mailer.waitFor();
    expect(await mailer.innerText()).toMatch(/email/);
    expect(await mailer.locator('a.chip.mono').count()).toBe(2);
    await page.keyboard.press('Tab');
    expect(await page.evaluate('document.activeElement?.textContent')).toBe('Skip to content');
    await page.keyboard.press('Tab');
    await page.keyboard.press('Tab');
    await page.keyboard.press('Enter');
    await page.waitForURL(base + '/');
    expect(problems).toEqual([]);
    await page.close();
  }, 60_000);
});

describe('dashboard: schedules and why a job is not running', () => {
  it('schedules page: next fire time, run now and see the run, pause and resume; the schedule page has its history', async () => {
    const schedules = new ScheduleApi(b.clients);
    const page = await browser.context.newPage();
    const problems = watchProblems(page);
    await page.goto(base + '/');
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Schedules' }).click();
    await page.waitForURL(base + '/schedules');
    const row = page.locator('tr[data-schedule="nightly-digest"]');
    await row.waitFor();
    // The next fire time the broker planned, shown on the wall clock of the schedule's zone.
    const planned = (await schedules.get({ id: ids.nightly! })).nextFireAt!.toISOString();
    expect(await row.locator('td[data-next]').getAttribute('data-next')).toBe(planned);
    expect(await row.locator('td[data-next]').innerText()).toContain('02:00 Europe/Berlin');
    expect(await row.innerText()).toContain('0 2 * * *');
    expect(await page.locator('tr[data-schedule="hourly-cleanup"] .badge.paused').count()).toBe(1);

    // Run now asks first, then the run and its job show up.
    await page.getByRole('button', { name: 'Run schedule nightly-digest now' }).click();
    const dialog = page.getByRole('dialog');
    await dialog.getByRole('heading', { name: 'Run “nightly-digest” now?' }).waitFor();
    await dialog.getByRole('button', { name: 'Run now' }).click();
    await page.getByRole('status').filter({ hasText: 'Ran “nightly-digest” now' }).waitFor();
    const [run] = (await schedules.runs('nightly-digest')).filter((r) => r.kind === ScheduleRunKind.SCHEDULE_RUN_KIND_MANUAL);
    expect(run?.jobId).toBeTruthy();
    await row.locator('.recent-runs li', { hasText: 'pending' }).waitFor();

    // Pause and resume from the list.
    await page.getByRole('button', { name: 'Pause schedule nightly-digest' }).click();
    await row.locator('.badge.paused').waitFor();
    expect((await schedules.get({ id: ids.nightly! })).paused).toBe(true);
    await page.getByRole('button', { name: 'Resume schedule nightly-digest' }).click();
    await row.locator('.badge.paused').waitFor({ state: 'detached' });
    expect((await schedules.get({ id: ids.nightly! })).paused).toBe(false);
    await page.screenshot({ path: join(ARTIFACTS, 'schedules.png'), fullPage: true });

    // The schedule's own page (a shareable URL): next fire times and the manual run in its history.
    await row.getByRole('link', { name: 'nightly-digest' }).click();
    await page.waitForURL(`${base}/schedules/${ids.nightly}`);
    await page.getByRole('heading', { name: 'nightly-digest' }).waitFor();
    await page.locator(`.upcoming li[data-fire="${planned}"]`).waitFor();
    const manual = page.locator('table.runs tr[data-kind="manual"]');
    await manual.waitFor();
    expect(await manual.innerText()).toContain('pending');
    await page.screenshot({ path: join(ARTIFACTS, 'schedule.png'), fullPage: true });
    await page.setViewportSize({ width: 390, height: 844 });
    await expect.poll(() => page.evaluate<number>('document.documentElement.scrollWidth')).toBeLessThanOrEqual(390);
    await page.setViewportSize({ width: 1280, height: 800 });

    // Its job: the history timeline and why it is not running (no worker for "digests").
    await manual.getByRole('link').click();
    await page.waitForURL(`${base}/jobs/${run!.jobId}`);
    await page.locator('.timeline li[data-kind="enqueued"]').waitFor();
    await page.locator('.explain [data-reason="no_worker"]', { hasText: 'no worker is subscribed to queue "digests"' }).waitFor();
    expect(await page.getByRole('link', { name: 'nightly-digest' }).getAttribute('href')).toBe(`/schedules/${ids.nightly}`);
    expect(problems).toEqual([]);
    await page.close();
  }, 90_000);

  it('job page: a delayed job’s history and “scheduled until …”; a finished job has history but no explanation', async () => {
    const page = await browser.context.newPage();
    const problems = watchProblems(page);
    const id = ids.delayed[0]!;
    const runAt = (await b.api.getJob(id)).runAt!.toISOString();
    await page.goto(`${base}/jobs/${id}`);
    await page.getByRole('heading', { name: 'Why is this not running?' }).waitFor();
    expect(await page.locator('.explain [data-reason="scheduled"]').innerText()).toContain(`scheduled until ${runAt}`);
    const enqueued = page.locator('.timeline li[data-kind="enqueued"]');
    await enqueued.waitFor();
    expect(await enqueued.innerText()).toContain('scheduled for later');
    await page.screenshot({ path: join(ARTIFACTS, 'job-delayed.png'), fullPage: true });

    // The retried email job: delivered to mailer-1, nacked with its error, now waiting out the backoff.
    await page.goto(`${base}/jobs/${ids.retried}`);
    await page.locator('.timeline li[data-kind="nacked"]', { hasText: 'mailbox full (552)' }).waitFor();
    expect(await page.locator('.timeline li[data-kind="delivered"]').innerText()).toContain('mailer-1');
    await page.locator('.explain [data-reason="scheduled"]', { hasText: 'after a backoff' }).waitFor();

    // A completed job: its steps, and no "why is this not running".
    const completed = (await b.api.listJobs({ queue: 'images', state: JobState.JOB_STATE_COMPLETED, pageSize: 1 })).jobs[0]!;
    await page.goto(`${base}/jobs/${completed.id}`);
    await page.locator('.timeline li[data-kind="acked"]').waitFor();
    expect(await page.getByRole('heading', { name: 'Why is this not running?' }).count()).toBe(0);
    expect(problems).toEqual([]);
    await page.close();
  }, 60_000);
});

describe('dashboard when the broker requires tokens', () => {
  it('asks for a token, then shows the overview with it; the API refused the page before', async () => {
    const dir = tempDir();
    const reader = createTokenLine('dashboard', [parseGrant('read')]);
    const root = createTokenLine('root', [parseGrant('produce')]);
    writeFileSync(join(dir, 'auth'), `${reader.line}\n${root.line}\n`, { mode: 0o600 });
    const secured = await startTestBroker({ authFile: join(dir, 'auth'), httpAddress: '127.0.0.1:0' }, { dir });
    const clients = connect({ address: secured.running.address, token: root.token });
    try {
      await new Api(clients).enqueue({ queue: 'billing', payload: { invoice: 7 } });
      const page = await browser.context.newPage();
      await page.goto(`http://127.0.0.1:${secured.running.httpPort}/`);
      await page.getByRole('heading', { name: 'This broker requires a token' }).waitFor();
      const problems = watchProblems(page);
      await page.getByLabel('Token').fill(reader.token);
      await page.getByRole('button', { name: 'Use token' }).click();
      await page.locator('tr[data-queue="billing"] td[data-count="pending"]', { hasText: '1' }).waitFor();
      await page.locator('.live.on').waitFor();
      expect(problems).toEqual([]);
      await page.close();
    } finally {
      clients.close();
      await secured.close();
    }
  }, 60_000);
});
