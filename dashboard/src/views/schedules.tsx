import { useEffect, useState } from 'preact/hooks';
import { query } from '../api.js';
import { Empty, ErrorBanner, Loading, Section } from '../components/bits.js';
import { ConfirmDialog, type ConfirmRequest } from '../components/confirm.js';
import { RecentRuns, ScheduleActions } from '../components/schedule-parts.js';
import { ago, exact, inZone, shortId } from '../format.js';
import { useApi, useTitle } from '../hooks.js';
import { onCounts, useNow } from '../live.js';
import { href, navigate, type Location } from '../router.js';
import type { SchedulePage, ScheduleRun } from '../types.js';
import { Pager } from './queue.js';

/** Every schedule: its cron and zone, paused or not, the next fire times and how the last runs went. */
export function Schedules({ loc }: { loc: Location }) {
  useTitle('Schedules');
  const now = useNow();
  const cursor = loc.query.get('cursor') ?? '';
  const list = useApi<SchedulePage>(`/schedules${query({ cursor, limit: 50 })}`);
  const [confirm, setConfirm] = useState<ConfirmRequest>();
  const [triggered, setTriggered] = useState<{ name: string; run: ScheduleRun }>();
  // A fire enqueues a job and a run's job moves through states: both change the counts the
  // live feed sends (once a second at most), so the list is read again then.
  useEffect(() => onCounts(list.reload), []);
  const page = list.data;
  return (
    <>
      <h1>Schedules</h1>
      {triggered?.run.jobId && (
        <div class="banner ok" role="status">
          Ran “{triggered.name}” now: job{' '}
          <a class="mono" href={href.job(triggered.run.jobId)}>
            {shortId(triggered.run.jobId)}
          </a>{' '}
          enqueued.
        </div>
      )}
      <ErrorBanner error={list.error} />
      {!page ? (
        list.error ? null : <Loading />
      ) : page.schedules.length === 0 && !cursor ? (
        <Empty title="No schedules yet">
          <p>
            A schedule enqueues a job at each time of a cron expression. Create one with{' '}
            <code>sluice schedule create nightly-report --cron '0 2 * * *' --timezone Europe/Berlin --queue reports</code> or{' '}
            <code>ScheduleService/CreateSchedule</code>; it shows up here.
          </p>
        </Empty>
      ) : (
        <Section title={`${exact(page.schedules.length)}${page.nextCursor || cursor ? ' on this page' : ''} schedule${page.schedules.length === 1 ? '' : 's'}`}>
          <div class="table-wrap">
            <table class="schedules">
              <thead>
                <tr>
                  <th scope="col">Schedule</th>
                  <th scope="col">Cron</th>
                  <th scope="col">Next fires</th>
                  <th scope="col">Last runs</th>
                  <th scope="col">Job to</th>
                  <th scope="col" class="row-actions">
                    <span class="sr-only">Actions</span>
                  </th>
                </tr>
              </thead>
              <tbody>
                {page.schedules.map((s) => (
                  <tr key={s.id} data-schedule={s.name}>
                    <th scope="row">
                      <a href={href.schedule(s.id)}>{s.name}</a>
                      {s.paused && <span class="badge paused">paused</span>}
                    </th>
                    <td>
                      <code>{s.cron}</code>
                      <div class="muted small">{s.timezone}</div>
                    </td>
                    <td data-next={s.nextFireAt ?? ''}>
                      {s.paused ? (
                        <span class="muted">paused</span>
                      ) : s.nextFireAt ? (
                        <>
                          <span title={inZone(s.nextFireAt, s.timezone)}>{ago(s.nextFireAt, now)}</span>
                          <div class="muted small">{inZone(s.nextFireAt, s.timezone)}</div>
                          {s.upcoming.slice(1).map((t) => (
                            <div key={t} class="muted small">
                              then {inZone(t, s.timezone)}
                            </div>
                          ))}
                        </>
                      ) : (
                        <span class="muted">none left (past its end)</span>
                      )}
                    </td>
                    <td>
                      <RecentRuns runs={s.recentRuns} now={now} />
                    </td>
                    <td>
                      <a class="chip" href={href.queue(s.job.queue)}>
                        {s.job.queue}
                      </a>
                      {s.job.type && <div class="muted small">type {s.job.type}</div>}
                    </td>
                    <td class="row-actions">
                      <ScheduleActions schedule={s} onChange={list.reload} confirm={setConfirm} onTriggered={(run) => (setTriggered({ name: s.name, run }), list.reload())} />
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
          <Pager
            next={page.nextCursor}
            isFirst={!cursor}
            onFirst={() => navigate('/schedules', { replace: true })}
            onNext={(c) => navigate(`/schedules${query({ cursor: c })}`, { replace: true })}
            labels={['First', 'Next']}
          />
        </Section>
      )}
      <ConfirmDialog request={confirm} onClose={() => setConfirm(undefined)} />
    </>
  );
}
