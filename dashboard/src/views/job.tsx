import { useEffect, useState } from 'preact/hooks';
import { api } from '../api.js';
import { ConfirmDialog, type ConfirmRequest } from '../components/confirm.js';
import { ExplainPanel, type Explanation } from '../components/explain.js';
import { HistoryTimeline, type HistoryEntry } from '../components/history.js';
import { Empty, ErrorBanner, JsonBlock, Loading, Section, StateBadge } from '../components/bits.js';
import { ago, duration, when } from '../format.js';
import { useApi, useTitle } from '../hooks.js';
import { onCounts, onJobChange, useNow } from '../live.js';
import { href } from '../router.js';
import type { Job } from '../types.js';

const UNFINISHED = ['scheduled', 'pending', 'active'];

export function JobView({ id }: { id: string }) {
  useTitle(`Job ${id.slice(-6)}`);
  const now = useNow();
  const path = `/jobs/${encodeURIComponent(id)}`;
  const job = useApi<Job>(path);
  const history = useApi<{ entries: HistoryEntry[] }>(`${path}/history`);
  // "Why is this not running" is asked only of a job that waits (scheduled or pending).
  const waiting = job.data?.state === 'scheduled' || job.data?.state === 'pending';
  const explain = useApi<Explanation>(waiting ? `${path}/explain` : null);
  const [confirm, setConfirm] = useState<ConfirmRequest>();
  const [notice, setNotice] = useState<string>();
  const [actionError, setActionError] = useState<Error>();
  // Live: the broker tells this page when the job changes; the page reads it again.
  useEffect(() => onJobChange(id, () => (job.reload(), history.reload(), explain.reload())), [id]);
  // What holds a waiting job back (a paused queue, no worker, the jobs ahead) changes with the
  // rest of the broker: read the explanation again with the counts (once a second at most).
  useEffect(() => (waiting ? onCounts(explain.reload) : undefined), [waiting]);

  if (job.error?.status === 404) {
    return (
      <Empty title="No such job">
        <p>
          Job <code>{id}</code> does not exist (or its dead letter was purged). <a href="/">Back to the overview</a>.
        </p>
      </Empty>
    );
  }
  if (!job.data) return job.error ? <ErrorBanner error={job.error} /> : <Loading />;
  const j = job.data;
  /** Set on every job a schedule enqueued (broker/schedule-template.ts SCHEDULE_METADATA). */
  const scheduleId = j.metadata['sluice.schedule_id'];
  const replay = async () => {
    setActionError(undefined);
    try {
      const r = await api.post<{ replayed: number }>('/dead-letters/replay', { ids: [j.id] });
      setNotice(r.replayed === 1 ? 'Replayed: the job is pending again with its attempts reset.' : 'Not replayed: another unfinished job holds its dedup key.');
      job.reload();
    } catch (e) {
      setActionError(e as Error);
    }
  };
  return (
    <>
      <div class="page-head">
        <div>
          <p class="crumbs">
            <a href="/">Overview</a> / <a href={href.queue(j.queue)}>{j.queue}</a> / job
          </p>
          <h1 class="job-title">
            <span class="mono">{j.id}</span> <StateBadge state={j.state} />
          </h1>
          <p class="muted">
            {j.type ? <>type <strong>{j.type}</strong> · </> : null}attempt {j.attempt} of {j.maxAttempts} · priority {j.priority}
            {j.groupKey ? <> · group <strong>{j.groupKey}</strong></> : null}
            {scheduleId ? (
              <>
                {' '}
                · from schedule <a href={href.schedule(scheduleId)}>{j.metadata['sluice.schedule_name'] ?? scheduleId}</a>
              </>
            ) : null}
          </p>
        </div>
        <div class="head-actions">
          {j.state === 'dead' && (
            <button class="button primary" onClick={replay}>
              Replay
            </button>
          )}
          {UNFINISHED.includes(j.state) && (
            <button
              class="button danger"
              onClick={() =>
                setConfirm({
                  title: 'Cancel this job?',
                  body: <p>It will not run again{j.state === 'active' ? '; the worker running it is told to stop' : ''}. This cannot be undone.</p>,
                  action: 'Cancel job',
                  danger: true,
                  run: async () => {
                    await api.post(`/jobs/${encodeURIComponent(j.id)}/cancel`, { reason: 'cancelled from the dashboard' });
                    job.reload();
                  },
                })
              }
            >
              Cancel…
            </button>
          )}
        </div>
      </div>
      {notice && (
        <div class="banner ok" role="status">
          {notice}
        </div>
      )}
      <ErrorBanner error={actionError} />
      {waiting && (
        <Section title="Why is this not running?">
          {explain.data ? <ExplainPanel explanation={explain.data} now={now} /> : explain.error ? <p class="muted">{explain.error.message}</p> : <Loading />}
        </Section>
      )}
      <div class="grid-2">
        <Section title="Payload">
          <JsonBlock value={j.payload} label="Payload" />
        </Section>
        <Section title={j.state === 'completed' ? 'Result' : 'Progress'}>
          <JsonBlock value={j.state === 'completed' ? j.result : j.progress} label={j.state === 'completed' ? 'Result' : 'Progress'} />
        </Section>
      </div>
      <Section title={`Attempts and errors (${j.errors.length})`}>
        {j.errors.length === 0 ? (
          <p class="muted">No failed attempts{j.state === 'completed' ? '' : ' yet'}.</p>
        ) : (
          <div class="table-wrap">
            <table class="errors">
              <thead>
                <tr>
                  <th scope="col" class="n">Attempt</th>
                  <th scope="col">When</th>
                  <th scope="col">Error</th>
                </tr>
              </thead>
              <tbody>
                {j.errors.map((e, i) => (
                  <tr key={i}>
                    <td class="n">{e.attempt}</td>
                    <td title={when(e.at)}>{ago(e.at, now)}</td>
                    <td class="error-message">
                      <pre>{e.message}</pre>
                      {e.nonRetryable && <span class="badge state-dead">non-retryable</span>}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </Section>
      <Section title="History">
        {history.data ? (
          <HistoryTimeline entries={history.data.entries} now={now} />
        ) : history.error ? (
          <p class="muted">{history.error.message}</p>
        ) : (
          <Loading />
        )}
      </Section>
      <div class="grid-2">
        <Section title="Timing">
          <dl class="settings">
            <Row label="Created" iso={j.createdAt} now={now} />
            <Row label={j.state === 'scheduled' ? 'Runs' : 'Ready since'} iso={j.runAt} now={now} />
            <Row label="Last started" iso={j.startedAt} now={now} />
            <Row label="Finished" iso={j.finishedAt} now={now} />
            {j.leaseExpiresAt && <Row label="Lease expires" iso={j.leaseExpiresAt} now={now} />}
            <div>
              <dt>Lease timeout</dt>
              <dd>{duration(j.leaseTimeoutMs)}</dd>
            </div>
            {j.workerId && (
              <div>
                <dt>Worker</dt>
                <dd class="mono">{j.workerId}</dd>
              </div>
            )}
          </dl>
        </Section>
        <Section title="Metadata">
          {Object.keys(j.metadata).length === 0 && !j.dedupKey ? (
            <p class="muted">none</p>
          ) : (
            <dl class="settings">
              {j.dedupKey && (
                <div>
                  <dt>dedup key</dt>
                  <dd class="mono">{j.dedupKey}</dd>
                </div>
              )}
              {Object.entries(j.metadata).map(([k, v]) => (
                <div key={k}>
                  <dt class="mono">{k}</dt>
                  <dd class="mono">{v}</dd>
                </div>
              ))}
            </dl>
          )}
        </Section>
      </div>
      <ConfirmDialog request={confirm} onClose={() => setConfirm(undefined)} />
    </>
  );
}

function Row({ label, iso, now }: { label: string; iso: string | null; now: number }) {
  return (
    <div>
      <dt>{label}</dt>
      <dd title={when(iso)}>{iso ? `${ago(iso, now)} (${when(iso)})` : '–'}</dd>
    </div>
  );
}
