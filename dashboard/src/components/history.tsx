import { ago, when } from '../format.js';

export interface HistoryEntry {
  at: string;
  kind: string;
  attempt: number;
  workerId: string;
  leaseId: string;
  error: string;
  detail: string;
}

const TONE: Record<string, string> = {
  enqueued: 'state-pending',
  promoted: 'state-pending',
  delivered: 'state-active',
  extended: 'state-active',
  acked: 'state-completed',
  nacked: 'state-dead',
  expired: 'state-dead',
  dead: 'state-dead',
  released: 'state-scheduled',
  cancelled: 'state-cancelled',
  replayed: 'state-pending',
};

/** Every step of a job, oldest first: what happened, when, on which attempt and worker. */
export function HistoryTimeline({ entries, now }: { entries: HistoryEntry[]; now: number }) {
  if (entries.length === 0) return <p class="muted">No history recorded.</p>;
  return (
    <ol class="timeline">
      {entries.map((e, i) => (
        <li key={i} class={TONE[e.kind] ?? ''} data-kind={e.kind}>
          <span class="dot" aria-hidden="true" />
          <div class="timeline-body">
            <div>
              <span class={`badge ${TONE[e.kind] ?? ''}`}>{e.kind}</span>
              {e.attempt > 0 && <span class="muted small"> attempt {e.attempt}</span>}
              {e.workerId && <span class="muted small"> · worker <span class="mono">{e.workerId}</span></span>}
              <span class="muted small" title={when(e.at)}>
                {' '}
                · {ago(e.at, now)}
              </span>
            </div>
            {e.error && <pre class="timeline-error">{e.error}</pre>}
            {e.detail && <div class="small">{e.detail}</div>}
          </div>
        </li>
      ))}
    </ol>
  );
}
