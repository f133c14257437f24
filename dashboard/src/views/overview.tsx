import { useEffect, useState } from 'preact/hooks';
import { api } from '../api.js';
import { ThroughputChart, type Series } from '../components/chart.js';
import { Empty, ErrorBanner, Loading, Num, Section } from '../components/bits.js';
import { duration } from '../format.js';
import { onCounts, useCounts, useNow } from '../live.js';
import { href } from '../router.js';
import { useTitle } from '../hooks.js';
import type { Queue, Throughput } from '../types.js';
import { PauseButton } from './queue.js';

const WINDOW_S = 900;

/** The 15-minute chart: loaded once, then a point per `counts` message (the broker sends the last full second). */
function useThroughput(): { series: Series | undefined; error: Error | undefined } {
  const [series, setSeries] = useState<Series>();
  const [error, setError] = useState<Error>();
  useEffect(() => {
    let live = true;
    let current: Series | undefined;
    const pending: { s: number; completed: number; failed: number }[] = [];
    const apply = (p: { s: number; completed: number; failed: number }) => {
      if (!current) return void pending.push(p);
      const last = current.x[current.x.length - 1]!;
      if (p.s < current.x[0]!) return;
      let { x, completed, failed } = current;
      if (p.s > last) {
        x = x.slice();
        completed = completed.slice();
        failed = failed.slice();
        for (let s = last + 1; s <= p.s; s++) (x.push(s), completed.push(0), failed.push(0));
        const extra = x.length - WINDOW_S;
        if (extra > 0) (x.splice(0, extra), completed.splice(0, extra), failed.splice(0, extra));
      }
      const i = x.indexOf(p.s);
      completed[i] = p.completed;
      failed[i] = p.failed;
      current = { x, completed, failed };
      setSeries(current);
    };
    api.get<Throughput>('/throughput').then(
      (t) => {
        if (!live) return;
        const first = t.startMs / 1000;
        current = { x: t.completed.map((_, i) => first + i), completed: t.completed, failed: t.failed };
        setSeries(current);
        for (const p of pending.splice(0)) apply(p);
      },
      (e: Error) => live && setError(e),
    );
    const off = onCounts((e) => apply({ s: Date.parse(e.throughput.at) / 1000, completed: e.throughput.completed, failed: e.throughput.failed }));
    return () => {
      live = false;
      off();
    };
  }, []);
  return { series, error };
}

function Totals({ queues, workers, rate }: { queues: Queue[]; workers: number; rate: number }) {
  const sum = (k: keyof Queue['counts']) => queues.reduce((n, q) => n + q.counts[k], 0);
  const tiles: [string, number, string?][] = [
    ['Pending', sum('pending')],
    ['Active', sum('active')],
    ['Scheduled', sum('scheduled')],
    ['Dead', sum('dead'), sum('dead') > 0 ? 'bad' : undefined],
    ['Workers', workers],
    ['Completed/s (last min)', rate],
  ];
  return (
    <div class="tiles" aria-label="Totals">
      {tiles.map(([label, n, tone]) => (
        <div class={`tile ${tone ?? ''}`} key={label} data-tile={label}>
          <div class="tile-value">
            <Num n={n} zero />
          </div>
          <div class="tile-label">{label}</div>
        </div>
      ))}
    </div>
  );
}

export function Overview() {
  useTitle('Overview');
  const counts = useCounts();
  const now = useNow();
  const { series, error } = useThroughput();
  const lastMinute = series ? series.completed.slice(-60).reduce((a, n) => a + n, 0) / 60 : 0;
  if (!counts) return <Loading />;
  const skew = Date.parse(counts.serverTime) - Date.now();
  return (
    <>
      <h1>Overview</h1>
      <Totals queues={counts.queues} workers={counts.workers} rate={Math.round(lastMinute * 10) / 10} />
      <Section title="Throughput, last 15 minutes">
        <ErrorBanner error={error} />
        {series ? <ThroughputChart data={series} /> : <Loading />}
      </Section>
      <Section title="Queues">
        {counts.queues.length === 0 ? (
          <Empty title="No queues yet">
            <p>A queue appears when the first job is enqueued to it. From a shell:</p>
            <pre class="json">{`grpcurl -plaintext -d '{"queue":"email","payload":{"to":"a@b.c"}}' \\\n  127.0.0.1:50051 sluice.v1.ProducerService/Enqueue`}</pre>
            <p>or from TypeScript: <code>await producer.enqueue('email', {'{'} to: 'a@b.c' {'}'})</code>.</p>
          </Empty>
        ) : (
          <div class="table-wrap">
            <table class="queues">
              <thead>
                <tr>
                  <th scope="col">Queue</th>
                  <th scope="col" class="n">Pending</th>
                  <th scope="col" class="n">Active</th>
                  <th scope="col" class="n">Scheduled</th>
                  <th scope="col" class="n">Completed</th>
                  <th scope="col" class="n">Dead</th>
                  <th scope="col" class="n">Cancelled</th>
                  <th scope="col" class="n">Workers</th>
                  <th scope="col">Oldest pending</th>
                  <th scope="col"><span class="sr-only">Actions</span></th>
                </tr>
              </thead>
              <tbody>
                {counts.queues.map((q) => (
                  <tr key={q.name} data-queue={q.name}>
                    <th scope="row">
                      <a href={href.queue(q.name)}>{q.name}</a>
                      {q.paused && <span class="badge paused">paused</span>}
                    </th>
                    <td class="n" data-count="pending"><Num n={q.counts.pending} /></td>
                    <td class="n" data-count="active"><Num n={q.counts.active} /></td>
                    <td class="n" data-count="scheduled"><Num n={q.counts.scheduled} /></td>
                    <td class="n" data-count="completed"><Num n={q.counts.completed} /></td>
                    <td class="n" data-count="dead">
                      {q.counts.dead > 0 ? (
                        <a class="dead-link" href={href.deadLetters(q.name)} title="Open this queue's dead letters">
                          <Num n={q.counts.dead} />
                        </a>
                      ) : (
                        <Num n={0} />
                      )}
                    </td>
                    <td class="n" data-count="cancelled"><Num n={q.counts.cancelled} /></td>
                    <td class="n"><Num n={q.consumers} /></td>
                    <td title={q.pendingSince ?? ''}>{q.pendingSince ? duration(Math.max(0, now + skew - Date.parse(q.pendingSince))) : <span class="muted">–</span>}</td>
                    <td class="row-actions">
                      <PauseButton queue={q} />
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </Section>
      <p class="muted small">Live: counts update at most once a second, without reloading.</p>
    </>
  );
}
