import { useEffect, useState } from 'preact/hooks';
import { query } from '../api.js';
import { Empty, ErrorBanner, JsonBlock, Loading, Section } from '../components/bits.js';
import { ConfirmDialog, type ConfirmRequest } from '../components/confirm.js';
import { RunTable, ScheduleActions } from '../components/schedule-parts.js';
import { ago, duration, exact, inZone, shortId, when } from '../format.js';
import { useApi, useTitle } from '../hooks.js';
import { onCounts, useNow } from '../live.js';
import { href, navigate, type Location } from '../router.js';
import type { RunPage, Schedule, ScheduleRun } from '../types.js';
import { Pager } from './queue.js';

const UPCOMING = 10;
const RUNS_PER_PAGE = 25;

/** The policies in words (proto/sluice/v1/schedule.proto). */
const CATCH_UP: Record<Schedule['catchUp'], string> = {
  skip: 'fire times missed while the broker was down are skipped',
  once: 'one job for the latest fire time missed while the broker was down',
  all: 'one job per missed fire time',
};
const OVERLAP: Record<Schedule['overlap'], string> = {
  allow: 'fires even while jobs of earlier fires are unfinished',
  skip: 'no job while a job of an earlier fire is unfinished',
  queue_one: 'at most one job waiting behind the running one',
};

/** One schedule (/schedules/<id>): its next fire times, its run history page by page, pause/resume/run now. */
export function ScheduleView({ id, loc }: { id: string; loc: Location }) {
  const now = useNow();
  const cursor = loc.query.get('cursor') ?? '';
  const path = `/schedules/${encodeURIComponent(id)}`;
  const schedule = useApi<Schedule>(`${path}${query({ upcoming: UPCOMING })}`);
  const runs = useApi<RunPage>(`${path}/runs${query({ cursor, limit: RUNS_PER_PAGE })}`);
  const [confirm, setConfirm] = useState<ConfirmRequest>();
  const [triggered, setTriggered] = useState<ScheduleRun>();
  useTitle(schedule.data ? schedule.data.name : 'Schedule');
  // Live: a fire or a run's job changing moves the counts; read the schedule (and the newest runs) again.
  useEffect(() => onCounts(() => (schedule.reload(), !cursor && runs.reload())), [cursor]);

  if (schedule.error?.status === 404) {
    return (
      <Empty title="No such schedule">
        <p>
          Schedule <code>{id}</code> does not exist (it may have been deleted). <a href="/schedules">See every schedule</a>.
        </p>
      </Empty>
    );
  }
  if (!schedule.data) return schedule.error ? <ErrorBanner error={schedule.error} /> : <Loading />;
  const s = schedule.data;
  const reload = () => (schedule.reload(), runs.reload());
  const setCursor = (c: string) => navigate(`${href.schedule(id)}${query({ cursor: c })}`, { replace: true });
  return (
    <>
      <div class="page-head">
        <div>
          <p class="crumbs">
            <a href="/schedules">Schedules</a> / schedule
          </p>
          <h1>
            {s.name} {s.paused && <span class="badge paused">paused</span>}
          </h1>
          <p class="muted">
            <code>{s.cron}</code> in {s.timezone} · enqueues to <a href={href.queue(s.job.queue)}>{s.job.queue}</a>
            {s.job.type ? <> as type <strong>{s.job.type}</strong></> : null}
          </p>
        </div>
        <div class="head-actions">
          <ScheduleActions schedule={s} onChange={reload} confirm={setConfirm} onTriggered={(run) => (setTriggered(run), setCursor(''), reload())} />
        </div>
      </div>
      {triggered?.jobId && (
        <div class="banner ok" role="status">
          Ran now: job{' '}
          <a class="mono" href={href.job(triggered.jobId)}>
            {shortId(triggered.jobId)}
          </a>{' '}
          enqueued (a manual run).
        </div>
      )}
      <div class="grid-2">
        <Section title="Next fire times">
          {s.paused ? (
            <p class="muted">Paused: no fires until it is resumed (then from the next fire time after that moment).</p>
          ) : s.upcoming.length === 0 ? (
            <p class="muted">None left{s.endAt ? ` (it ends ${when(s.endAt)})` : ''}.</p>
          ) : (
            <ol class="upcoming">
              {s.upcoming.map((t) => (
                <li key={t} data-fire={t} title={`${when(t)} in this browser's time zone`}>
                  <strong>{inZone(t, s.timezone)}</strong> <span class="muted small">{ago(t, now)}</span>
                </li>
              ))}
            </ol>
          )}
        </Section>
        <Section title="Settings">
          <dl class="settings">
            <div>
              <dt>Catch-up</dt>
              <dd>
                {CATCH_UP[s.catchUp]}
                {s.catchUp === 'all' ? ` (the latest ${exact(s.catchUpLimit)} at most)` : ''}
              </dd>
            </div>
            <div>
              <dt>Overlap</dt>
              <dd>{OVERLAP[s.overlap]}</dd>
            </div>
            <div>
              <dt>History kept</dt>
              <dd>{exact(s.historyLimit)} runs</dd>
            </div>
            {(s.startAt || s.endAt) && (
              <div>
                <dt>Active</dt>
                <dd>
                  {s.startAt ? `from ${when(s.startAt)}` : ''} {s.endAt ? `until ${when(s.endAt)}` : ''}
                </dd>
              </div>
            )}
            <div>
              <dt>Last fire</dt>
              <dd title={when(s.lastFireAt)}>{s.lastFireAt ? `${ago(s.lastFireAt, now)} (${inZone(s.lastFireAt, s.timezone)})` : 'never'}</dd>
            </div>
            {s.job.delayMs > 0 && (
              <div>
                <dt>Job delay</dt>
                <dd>{duration(s.job.delayMs)} after each fire</dd>
              </div>
            )}
            <div>
              <dt>Created</dt>
              <dd title={when(s.createdAt)}>{ago(s.createdAt, now)}</dd>
            </div>
          </dl>
        </Section>
      </div>
      <Section title="Run history">
        <ErrorBanner error={runs.error} />
        {!runs.data ? (
          runs.error ? null : <Loading />
        ) : runs.data.runs.length === 0 ? (
          <Empty title="No runs yet">
            <p>{s.paused ? 'Resume it, or press “Run now” to run it once.' : `The first fire is ${s.nextFireAt ? ago(s.nextFireAt, now) : 'not planned'}; or press “Run now”.`}</p>
          </Empty>
        ) : (
          <>
            <RunTable runs={runs.data.runs} now={now} timezone={s.timezone} />
            <Pager next={runs.data.nextCursor} isFirst={!cursor} onFirst={() => setCursor('')} onNext={setCursor} />
          </>
        )}
      </Section>
      <Section title="Job payload">
        <JsonBlock value={s.job.payload} label="Job payload" />
      </Section>
      <ConfirmDialog request={confirm} onClose={() => setConfirm(undefined)} />
    </>
  );
}
