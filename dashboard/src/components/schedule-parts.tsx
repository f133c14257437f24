import { useState } from 'preact/hooks';
import { api } from '../api.js';
import { ago, duration, inZone, shortId, when } from '../format.js';
import { href } from '../router.js';
import type { Schedule, ScheduleRun } from '../types.js';
import type { ConfirmRequest } from './confirm.js';
import { StateBadge } from './bits.js';

/** What a run became: its job (state, linked) or why it was skipped. */
export function RunOutcome({ run }: { run: ScheduleRun }) {
  if (run.skipped) {
    return (
      <span class="badge paused" title={run.reason ?? ''}>
        skipped
      </span>
    );
  }
  if (!run.jobId) return <span class="muted">–</span>;
  return (
    <a class="run-job" href={href.job(run.jobId)} title={run.jobId}>
      <span class="mono">{shortId(run.jobId)}</span> {run.jobState ? <StateBadge state={run.jobState} /> : <span class="muted small">(job gone)</span>}
    </a>
  );
}

/** The latest runs as chips, newest first: a list row's "how did the last fires go". */
export function RecentRuns({ runs, now }: { runs: ScheduleRun[]; now: number }) {
  if (runs.length === 0) return <span class="muted">no runs yet</span>;
  return (
    <ul class="recent-runs">
      {runs.map((r) => (
        <li key={r.seq} data-run={r.seq} title={`${r.kind} run for ${when(r.fireTime)}`}>
          <RunOutcome run={r} /> <span class="muted small">{ago(r.fireTime, now)}</span>
        </li>
      ))}
    </ul>
  );
}

/** A schedule's run history, newest first. */
export function RunTable({ runs, now, timezone }: { runs: ScheduleRun[]; now: number; timezone: string }) {
  return (
    <div class="table-wrap">
      <table class="runs">
        <thead>
          <tr>
            <th scope="col">Fire time</th>
            <th scope="col">Kind</th>
            <th scope="col">Job</th>
            <th scope="col" class="n">Attempt</th>
            <th scope="col">Took</th>
            <th scope="col">Last error or reason</th>
          </tr>
        </thead>
        <tbody>
          {runs.map((r) => (
            <tr key={r.seq} data-run={r.seq} data-kind={r.kind}>
              <td title={inZone(r.fireTime, timezone)}>
                {when(r.fireTime)} <span class="muted small">({ago(r.fireTime, now)})</span>
              </td>
              <td>{r.kind === 'manual' ? <span class="badge manual">manual</span> : 'scheduled'}</td>
              <td>
                <RunOutcome run={r} />
              </td>
              <td class="n">{r.attempt ?? '–'}</td>
              <td>{r.durationMs === null ? '–' : duration(r.durationMs)}</td>
              <td class="error-cell" title={r.lastError ?? r.reason ?? ''}>
                {r.skipped ? <span class="muted">{r.reason}</span> : (r.lastError ?? '')}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

/**
 * Pause/resume (no confirmation: resuming undoes a pause) and "Run now", which enqueues a job
 * at once and cannot be taken back, so it asks first (through the page's one dialog).
 */
export function ScheduleActions({
  schedule,
  onChange,
  onTriggered,
  confirm,
}: {
  schedule: Schedule;
  onChange: () => void;
  onTriggered: (run: ScheduleRun) => void;
  confirm: (request: ConfirmRequest) => void;
}) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string>();
  const path = `/schedules/${encodeURIComponent(schedule.id)}`;
  const toggle = async () => {
    setBusy(true);
    setError(undefined);
    try {
      await api.post<Schedule>(`${path}/${schedule.paused ? 'resume' : 'pause'}`);
      onChange();
    } catch (e) {
      setError((e as Error).message);
    } finally {
      setBusy(false);
    }
  };
  const trigger = () =>
    confirm({
      title: `Run “${schedule.name}” now?`,
      body: (
        <p>
          This enqueues one job to queue <strong>{schedule.job.queue}</strong> now, recorded as a manual run. The regular fires stay as they are
          {schedule.paused ? ' (the schedule stays paused)' : ''}.
        </p>
      ),
      action: 'Run now',
      run: async () => {
        onTriggered(await api.post<ScheduleRun>(`${path}/trigger`));
      },
    });
  return (
    <>
      <button class="button small" onClick={toggle} disabled={busy} aria-label={`${schedule.paused ? 'Resume' : 'Pause'} schedule ${schedule.name}`}>
        {schedule.paused ? 'Resume' : 'Pause'}
      </button>
      <button class="button small" onClick={trigger} aria-label={`Run schedule ${schedule.name} now`}>
        Run now…
      </button>
      {error && (
        <span class="error-text" role="alert">
          {error}
        </span>
      )}
    </>
  );
}
