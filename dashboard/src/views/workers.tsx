import { useEffect } from 'preact/hooks';
import { Empty, ErrorBanner, Loading, Section } from '../components/bits.js';
import { ago, exact, shortId, when } from '../format.js';
import { useApi, useTitle } from '../hooks.js';
import { onCounts, useNow } from '../live.js';
import { href } from '../router.js';
import type { Worker } from '../types.js';

export function Workers() {
  useTitle('Workers');
  const now = useNow();
  const workers = useApi<{ workers: Worker[] }>('/workers');
  // Streams and in-flight counts arrive with the live feed; heartbeats are read every 5 s.
  useEffect(() => onCounts(workers.reload), []);
  useEffect(() => {
    const t = setInterval(workers.reload, 5000);
    return () => clearInterval(t);
  }, []);
  const list = workers.data?.workers;
  return (
    <>
      <h1>Workers</h1>
      <ErrorBanner error={workers.error} />
      {!list ? (
        workers.error ? null : <Loading />
      ) : list.length === 0 ? (
        <Empty title="No workers connected">
          <p>
            Start one with the TypeScript client: <code>new Worker({'{'} queues: ['email'], handler {'}'})</code>. Each open Consume stream shows up here with its credit and in-flight jobs.
          </p>
        </Empty>
      ) : (
        <Section title={`${exact(list.length)} connected stream${list.length === 1 ? '' : 's'}`}>
          <div class="table-wrap">
            <table class="workers">
              <thead>
                <tr>
                  <th scope="col">Worker</th>
                  <th scope="col">Queues</th>
                  <th scope="col" class="n">Credit</th>
                  <th scope="col">In flight</th>
                  <th scope="col">Last heartbeat</th>
                  <th scope="col">Connected</th>
                  <th scope="col">Peer</th>
                </tr>
              </thead>
              <tbody>
                {list.map((w) => (
                  <tr key={w.streamId} data-worker={w.workerId}>
                    <th scope="row">
                      <span class="mono">{w.workerId || '(no id)'}</span>
                      {w.draining && <span class="badge paused">draining</span>}
                      <div class="muted small mono">{w.streamId}</div>
                    </th>
                    <td>
                      {w.queues.map((q) => (
                        <a key={q} class="chip" href={href.queue(q)}>
                          {q}
                        </a>
                      ))}
                      {w.types.length > 0 && <div class="muted small">types: {w.types.join(', ')}</div>}
                    </td>
                    <td class="n">{exact(w.credit)}</td>
                    <td>
                      {w.inFlight.length === 0 ? (
                        <span class="muted">idle</span>
                      ) : (
                        <>
                          <strong>{exact(w.inFlight.length)}</strong>{' '}
                          {w.inFlight.slice(0, 5).map((id) => (
                            <a key={id} class="chip mono" href={href.job(id)} title={id}>
                              {shortId(id)}
                            </a>
                          ))}
                          {w.inFlight.length > 5 && <span class="muted small"> +{exact(w.inFlight.length - 5)} more</span>}
                        </>
                      )}
                    </td>
                    <td title={when(w.lastSeenAt)}>{ago(w.lastSeenAt, now)}</td>
                    <td title={when(w.connectedAt)}>{ago(w.connectedAt, now)}</td>
                    <td class="mono small">{w.peer}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        </Section>
      )}
    </>
  );
}
