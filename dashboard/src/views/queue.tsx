import { useEffect, useState } from 'preact/hooks';
import { api, query } from '../api.js';
import { Empty, ErrorBanner, Loading, Num, Section, StateBadge } from '../components/bits.js';
import { ago, duration, exact, shortId, when } from '../format.js';
import { useApi, useTitle } from '../hooks.js';
import { onCounts, useNow } from '../live.js';
import { href, navigate, type Location } from '../router.js';
import { STATES, type JobPage, type JobState, type Queue, type QueueLimits, type RateLimit } from '../types.js';

/** Pause/resume: not destructive (resuming undoes it), so no confirmation. */
export function PauseButton({ queue, onDone }: { queue: Queue; onDone?: (q: Queue) => void }) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string>();
  const toggle = async () => {
    setBusy(true);
    setError(undefined);
    try {
      const q = await api.post<Queue>(`/queues/${encodeURIComponent(queue.name)}/${queue.paused ? 'resume' : 'pause'}`);
      onDone?.(q);
    } catch (e) {
      setError((e as Error).message);
    } finally {
      setBusy(false);
    }
  };
  return (
    <>
      <button class="button small" onClick={toggle} disabled={busy} aria-label={`${queue.paused ? 'Resume' : 'Pause'} queue ${queue.name}`}>
        {queue.paused ? 'Resume' : 'Pause'}
      </button>
      {error && <span class="error-text" role="alert">{error}</span>}
    </>
  );
}

export function JobTable({ page, now, showQueue }: { page: JobPage; now: number; showQueue?: boolean }) {
  return (
    <div class="table-wrap">
      <table class="jobs">
        <thead>
          <tr>
            <th scope="col">Job</th>
            {showQueue && <th scope="col">Queue</th>}
            <th scope="col">Type</th>
            <th scope="col">State</th>
            <th scope="col" class="n">Attempt</th>
            <th scope="col">Created</th>
            <th scope="col">Updated</th>
            <th scope="col">Last error</th>
          </tr>
        </thead>
        <tbody>
          {page.jobs.map((j) => (
            <tr key={j.id} data-job={j.id}>
              <td>
                <a class="mono" href={href.job(j.id)} title={j.id}>
                  {shortId(j.id)}
                </a>
              </td>
              {showQueue && <td>{j.queue}</td>}
              <td>{j.type || <span class="muted">–</span>}</td>
              <td>
                <StateBadge state={j.state} />
              </td>
              <td class="n">
                {j.attempt}/{j.maxAttempts}
              </td>
              <td title={when(j.createdAt)}>{ago(j.createdAt, now)}</td>
              <td title={when(j.updatedAt)}>{ago(j.updatedAt, now)}</td>
              <td class="error-cell" title={j.lastError ?? ''}>
                {j.lastError ?? ''}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

/** Keyset pages: "Older" follows nextCursor; "Newest" goes back to the first page (`labels` for other orders). */
export function Pager({
  next,
  onNext,
  onFirst,
  isFirst,
  labels = ['Newest', 'Older'],
}: {
  next: string | null;
  onNext: (c: string) => void;
  onFirst: () => void;
  isFirst: boolean;
  labels?: [first: string, next: string];
}) {
  if (isFirst && !next) return null;
  return (
    <nav class="pager" aria-label="Pages">
      <button class="button small" onClick={onFirst} disabled={isFirst}>
        ← {labels[0]}
      </button>
      <button class="button small" onClick={() => next && onNext(next)} disabled={!next}>
        {labels[1]} →
      </button>
    </nav>
  );
}

export function QueueView({ name, loc }: { name: string; loc: Location }) {
  useTitle(name);
  const now = useNow();
  const state = (loc.query.get('state') ?? '') as JobState | '';
  const type = loc.query.get('type') ?? '';
  const group = loc.query.get('group') ?? '';
  const cursor = loc.query.get('cursor') ?? '';
  const queue = useApi<Queue>(`/queues/${encodeURIComponent(name)}`);
  const jobs = useApi<JobPage>(`/jobs${query({ queue: name, state, type, group, cursor, limit: 50 })}`);
  // Live: counts change -> the queue and (on the first page) its jobs are read again, once a second at most.
  useEffect(() => onCounts(() => (queue.reload(), !cursor && jobs.reload())), [cursor]);
  const setFilter = (changes: Record<string, string>) => {
    const q = new URLSearchParams(loc.query);
    for (const [k, v] of Object.entries(changes)) v ? q.set(k, v) : q.delete(k);
    q.delete('cursor');
    if (changes.cursor) q.set('cursor', changes.cursor);
    navigate(`${href.queue(name)}${q.size ? `?${q}` : ''}`, { replace: true });
  };
  if (queue.error?.status === 404) {
    return (
      <Empty title={`No queue named “${name}”`}>
        <p>A queue exists once a job was enqueued to it. <a href="/">Back to the overview</a>.</p>
      </Empty>
    );
  }
  const q = queue.data;
  return (
    <>
      <div class="page-head">
        <div>
          <p class="crumbs">
            <a href="/">Overview</a> / queue
          </p>
          <h1>
            {name} {q?.paused && <span class="badge paused">paused</span>}
          </h1>
        </div>
        {q && (
          <div class="head-actions">
            <PauseButton queue={q} onDone={() => queue.reload()} />
            {q.counts.dead > 0 && (
              <a class="button small" href={href.deadLetters(name)}>
                Dead letters ({exact(q.counts.dead)})
              </a>
            )}
          </div>
        )}
      </div>
      <ErrorBanner error={queue.error} />
      {q && (
        <div class="state-tabs" role="group" aria-label="Filter by state">
          <button aria-pressed={state === ''} class={state === '' ? 'tab active' : 'tab'} onClick={() => setFilter({ state: '' })}>
            all <Num n={Object.values(q.counts).reduce((a, n) => a + n, 0)} zero />
          </button>
          {STATES.map((s) => (
            <button key={s} aria-pressed={state === s} class={state === s ? `tab active state-${s}` : `tab state-${s}`} onClick={() => setFilter({ state: s })} data-state={s}>
              {s} <Num n={q.counts[s]} zero />
            </button>
          ))}
        </div>
      )}
      <Section
        title="Jobs"
        actions={
          <form
            class="filters"
            onSubmit={(e) => {
              e.preventDefault();
              const f = new FormData(e.currentTarget);
              setFilter({ type: String(f.get('type') ?? '').trim(), group: String(f.get('group') ?? '').trim() });
            }}
          >
            <label>
              Type <input name="type" defaultValue={type} placeholder="any" size={12} />
            </label>
            <label>
              Group <input name="group" defaultValue={group} placeholder="any" size={12} />
            </label>
            <button class="button small" type="submit">
              Filter
            </button>
          </form>
        }
      >
        <ErrorBanner error={jobs.error} />
        {!jobs.data ? (
          jobs.error ? null : <Loading />
        ) : jobs.data.jobs.length === 0 ? (
          <Empty title={state || type || group ? 'No jobs match these filters' : 'This queue has no jobs'}>
            {state || type || group ? (
              <p>
                <button class="button small" onClick={() => setFilter({ state: '', type: '', group: '' })}>
                  Clear the filters
                </button>
              </p>
            ) : (
              <p>Enqueue one to “{name}” with a producer; it shows up here within a second.</p>
            )}
          </Empty>
        ) : (
          <>
            <JobTable page={jobs.data} now={now} />
            <Pager next={jobs.data.nextCursor} isFirst={!cursor} onFirst={() => setFilter({ cursor: '' })} onNext={(c) => setFilter({ cursor: c })} />
          </>
        )}
      </Section>
      {q && (
        <Section title="Settings">
          <dl class="settings">
            <Setting label="Max attempts" value={exact(q.settings.maxAttempts)} own={q.overrides.includes('maxAttempts')} />
            <Setting label="Lease timeout" value={duration(q.settings.leaseTimeoutMs)} own={q.overrides.includes('leaseTimeoutMs')} />
            <Setting
              label="Retry backoff"
              value={`${duration(q.settings.retry.initialMs)} × ${q.settings.retry.multiplier} per attempt, at most ${duration(q.settings.retry.maxMs)}, ±${Math.round(q.settings.retry.jitter * 100)}% jitter`}
              own={q.overrides.includes('retry')}
            />
            {q.limits && <Setting label="Limits" value={describeLimits(q.limits)} own />}
            <Setting label="Workers subscribed" value={exact(q.consumers)} own />
          </dl>
          <p class="muted small">Settings marked “broker default” come from the broker's flags; set them per queue with AdminService/UpdateQueue.</p>
        </Section>
      )}
    </>
  );
}

function rate(r: RateLimit): string {
  return `${exact(r.count)} per ${duration(r.intervalMs)}${r.burst !== r.count ? ` (bursts of ${exact(r.burst)})` : ''}`;
}

/** "at most 10 running · 100 per 1 s · per group: 1 running, round-robin" */
export function describeLimits(l: QueueLimits): string {
  const parts: string[] = [];
  if (l.concurrency) parts.push(`at most ${exact(l.concurrency)} running`);
  if (l.rate) parts.push(rate(l.rate));
  const group: string[] = [];
  if (l.groupConcurrency) group.push(`${exact(l.groupConcurrency)} running`);
  if (l.groupRate) group.push(rate(l.groupRate));
  if (l.groupRates && Object.keys(l.groupRates).length) group.push(`${Object.keys(l.groupRates).length} keys with their own rate`);
  if (l.fairGroups) group.push('round-robin');
  if (group.length) parts.push(`per group: ${group.join(', ')}`);
  if (l.agingMs) parts.push(`aging every ${duration(l.agingMs)}`);
  return parts.length ? parts.join(' · ') : 'none';
}

function Setting({ label, value, own }: { label: string; value: string; own: boolean }) {
  return (
    <div>
      <dt>{label}</dt>
      <dd>
        {value} {!own && <span class="muted small">(broker default)</span>}
      </dd>
    </div>
  );
}
