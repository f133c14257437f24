import { useEffect, useState } from 'preact/hooks';
import { api, query } from '../api.js';
import { ConfirmDialog, type ConfirmRequest } from '../components/confirm.js';
import { Empty, ErrorBanner, Loading, Num, Section } from '../components/bits.js';
import { ago, exact, plural, shortId, when } from '../format.js';
import { useApi, useTitle } from '../hooks.js';
import { onCounts, useCounts, useNow } from '../live.js';
import { href, navigate, type Location } from '../router.js';
import type { DeadLetterPage } from '../types.js';
import { Pager } from './queue.js';

export function DeadLetters({ loc }: { loc: Location }) {
  useTitle('Dead letters');
  const now = useNow();
  const queue = loc.query.get('queue') ?? '';
  const cursor = loc.query.get('cursor') ?? '';
  const counts = useCounts();
  const page = useApi<DeadLetterPage>(`/dead-letters${query({ queue, cursor, limit: 50 })}`);
  const [selected, setSelected] = useState<Set<string>>(new Set());
  const [confirm, setConfirm] = useState<ConfirmRequest>();
  const [notice, setNotice] = useState<string>();
  const [error, setError] = useState<Error>();
  useEffect(() => onCounts(() => !cursor && page.reload()), [cursor]);
  useEffect(() => setSelected(new Set()), [queue, cursor]);

  const go = (q: string, c = '') => navigate(`/dead-letters${query({ queue: q, cursor: c })}`, { replace: true });
  const total = counts ? counts.queues.filter((q) => !queue || q.name === queue).reduce((n, q) => n + q.counts.dead, 0) : undefined;
  const where = queue ? `queue “${queue}”` : 'all queues';
  const rows = page.data?.jobs ?? [];
  // Only ids still on the page count (a replayed row disappears on the next refresh).
  const chosen = rows.filter((j) => selected.has(j.id)).map((j) => j.id);

  const act = async (kind: 'replay' | 'purge', selection: object, count: number) => {
    setError(undefined);
    const r = await api.post<{ replayed?: number; purged?: number }>(`/dead-letters/${kind}`, selection);
    const n = r.replayed ?? r.purged ?? 0;
    setNotice(kind === 'replay' ? `Replayed ${plural(n, 'job')}: back to pending with attempts reset.` : `Purged ${plural(n, 'dead job')}.`);
    if (n < count && kind === 'replay') setNotice(`Replayed ${exact(n)} of ${exact(count)}: the others share a dedup key with an unfinished job.`);
    setSelected(new Set());
    page.reload();
  };
  const ask = (kind: 'replay' | 'purge', selection: object, count: number, what: string) =>
    setConfirm({
      title: kind === 'purge' ? `Purge ${plural(count, 'dead job')}?` : `Replay ${plural(count, 'dead job')}?`,
      body:
        kind === 'purge' ? (
          <p>
            This deletes {plural(count, 'job')} ({what}) for good: payloads and error history are gone.
          </p>
        ) : (
          <p>
            {plural(count, 'job')} ({what}) go back to pending with their attempts reset, and run again as soon as a worker is free.
          </p>
        ),
      action: kind === 'purge' ? `Purge ${plural(count, 'job')}` : `Replay ${plural(count, 'job')}`,
      danger: kind === 'purge',
      run: () => act(kind, selection, count),
    });
  const everything = queue ? { queue } : { all: true };
  const toggle = (id: string) => {
    const next = new Set(selected);
    next.has(id) ? next.delete(id) : next.add(id);
    setSelected(next);
  };

  return (
    <>
      <div class="page-head">
        <div>
          <h1>Dead letters</h1>
          <p class="muted">Jobs that used up their attempts or failed as non-retryable. Fix the cause, then replay them.</p>
        </div>
        <label class="inline-field">
          Queue{' '}
          <select value={queue} onChange={(e) => go((e.target as HTMLSelectElement).value)} aria-label="Queue">
            <option value="">all queues</option>
            {counts?.queues.map((q) => (
              <option value={q.name} key={q.name}>
                {q.name} ({exact(q.counts.dead)})
              </option>
            ))}
          </select>
        </label>
      </div>
      {notice && (
        <div class="banner ok" role="status">
          {notice}
        </div>
      )}
      <ErrorBanner error={error ?? page.error} />
      {!page.data ? (
        page.error ? null : <Loading />
      ) : rows.length === 0 && !cursor ? (
        <Empty title={`No dead letters in ${where}`}>
          <p>Jobs land here when they fail on their last attempt. Nothing to replay.</p>
        </Empty>
      ) : (
        <>
          {page.data.errors.length > 0 && (
            <Section title="Errors, most frequent first">
              <ul class="error-groups">
                {page.data.errors.map((g) => {
                  const ids = rows.filter((j) => (j.lastError ?? '') === g.message).map((j) => j.id);
                  return (
                    <li key={g.message}>
                      <span class="count">
                        <Num n={g.count} zero />×
                      </span>
                      <code class="error-message" title={g.message}>
                        {g.message || '(no message)'}
                      </code>
                      <span class="muted small" title={when(g.lastAt)}>
                        last {ago(g.lastAt, now)}
                      </span>
                      <button class="button small" disabled={ids.length === 0} onClick={() => setSelected(new Set(ids))} aria-label={`Select the ${ids.length} jobs on this page with this error`}>
                        Select {ids.length} on page
                      </button>
                    </li>
                  );
                })}
              </ul>
            </Section>
          )}
          <Section
            title={total === undefined ? 'Jobs' : `${plural(total, 'dead job')} in ${where}`}
            actions={
              <div class="toolbar">
                <button class="button small primary" disabled={chosen.length === 0} onClick={() => ask('replay', { ids: chosen }, chosen.length, 'selected')}>
                  Replay selected ({chosen.length})
                </button>
                <button class="button small danger" disabled={chosen.length === 0} onClick={() => ask('purge', { ids: chosen }, chosen.length, 'selected')}>
                  Purge selected ({chosen.length})…
                </button>
                <button class="button small" disabled={!total} onClick={() => ask('replay', everything, total ?? 0, `every dead job in ${where}`)}>
                  Replay all…
                </button>
                <button class="button small danger" disabled={!total} onClick={() => ask('purge', everything, total ?? 0, `every dead job in ${where}`)}>
                  Purge all…
                </button>
              </div>
            }
          >
            <div class="table-wrap">
              <table class="jobs">
                <thead>
                  <tr>
                    <th scope="col" class="check">
                      <input
                        type="checkbox"
                        aria-label="Select every job on this page"
                        checked={rows.length > 0 && chosen.length === rows.length}
                        onChange={(e) => setSelected((e.target as HTMLInputElement).checked ? new Set(rows.map((j) => j.id)) : new Set())}
                      />
                    </th>
                    <th scope="col">Job</th>
                    <th scope="col">Queue</th>
                    <th scope="col">Type</th>
                    <th scope="col" class="n">Attempts</th>
                    <th scope="col">Died</th>
                    <th scope="col">Last error</th>
                  </tr>
                </thead>
                <tbody>
                  {rows.map((j) => (
                    <tr key={j.id} data-job={j.id} class={selected.has(j.id) ? 'selected' : ''}>
                      <td class="check">
                        <input type="checkbox" checked={selected.has(j.id)} onChange={() => toggle(j.id)} aria-label={`Select job ${j.id}`} />
                      </td>
                      <td>
                        <a class="mono" href={href.job(j.id)} title={j.id}>
                          {shortId(j.id)}
                        </a>
                      </td>
                      <td>
                        <a href={href.queue(j.queue)}>{j.queue}</a>
                      </td>
                      <td>{j.type || <span class="muted">–</span>}</td>
                      <td class="n">
                        {j.attempt}/{j.maxAttempts}
                      </td>
                      <td title={when(j.finishedAt)}>{ago(j.finishedAt, now)}</td>
                      <td class="error-cell" title={j.lastError ?? ''}>
                        {j.lastError ?? ''}
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
            <Pager next={page.data.nextCursor} isFirst={!cursor} onFirst={() => go(queue)} onNext={(c) => go(queue, c)} />
          </Section>
        </>
      )}
      <ConfirmDialog request={confirm} onClose={() => setConfirm(undefined)} />
    </>
  );
}
