import { useEffect, useRef, useState } from 'preact/hooks';
import { hasToken, onTokenNeeded, setToken } from './api.js';
import { TokenPrompt } from './components/token-prompt.js';
import { useConnected, useCounts } from './live.js';
import { useLocation } from './router.js';
import { Overview } from './views/overview.js';
import { QueueView } from './views/queue.js';
import { JobView } from './views/job.js';
import { DeadLetters } from './views/dead-letters.js';
import { Workers } from './views/workers.js';
import { Schedules } from './views/schedules.js';
import { ScheduleView } from './views/schedule.js';
import { Empty } from './components/bits.js';

const NAV: [string, string][] = [
  ['/', 'Overview'],
  ['/dead-letters', 'Dead letters'],
  ['/workers', 'Workers'],
  ['/schedules', 'Schedules'],
];

/** One component per view, chosen by the URL (River UI / Temporal UI style: every view shareable). */
export function App() {
  const loc = useLocation();
  const connected = useConnected();
  // The live feed stays open while the page is: the header's indicator and every view share it.
  useCounts();
  const main = useRef<HTMLElement>(null);
  const [tokenNeeded, setTokenNeeded] = useState(false);
  useEffect(() => onTokenNeeded(setTokenNeeded), []);
  let view;
  let m: RegExpExecArray | null;
  if (tokenNeeded) view = <TokenPrompt />;
  else if (loc.path === '/') view = <Overview />;
  else if ((m = /^\/queues\/([^/]+)$/.exec(loc.path))) view = <QueueView name={m[1]!} loc={loc} key={m[1]} />;
  else if ((m = /^\/jobs\/([^/]+)$/.exec(loc.path))) view = <JobView id={m[1]!} key={m[1]} />;
  else if (loc.path === '/dead-letters') view = <DeadLetters loc={loc} />;
  else if (loc.path === '/workers') view = <Workers />;
  else if (loc.path === '/schedules') view = <Schedules loc={loc} />;
  else if ((m = /^\/schedules\/([^/]+)$/.exec(loc.path))) view = <ScheduleView id={m[1]!} loc={loc} key={m[1]} />;
  else
    view = (
      <Empty title="Page not found">
        <p>
          Nothing lives at <code>{loc.path}</code>. <a href="/">Go to the overview</a>.
        </p>
      </Empty>
    );
  // A new view: move focus to it, as a page load would (keyboard and screen-reader users).
  const first = useRef(true);
  useEffect(() => {
    if (first.current) return void (first.current = false);
    main.current?.focus({ preventScroll: true });
  }, [loc.path]);
  const section = NAV.find(([path]) => path !== '/' && (loc.path === path || loc.path.startsWith(`${path}/`)))?.[0] ?? '/';
  return (
    <>
      <a class="skip" href="#main">
        Skip to content
      </a>
      <header class="top">
        <a class="brand" href="/" aria-label="Sluice overview">
          <img src="/favicon.svg" alt="" width={22} height={22} /> Sluice
        </a>
        <nav aria-label="Main">
          {NAV.map(([path, label]) => (
            <a key={path} href={path} aria-current={section === path ? 'page' : undefined}>
              {label}
            </a>
          ))}
        </nav>
        {hasToken() && (
          <button
            class="link-button"
            onClick={() => {
              setToken(null);
              window.location.reload();
            }}
          >
            Forget token
          </button>
        )}
        <span class={connected ? 'live on' : 'live'} title={connected ? 'Receiving live updates' : 'Live updates paused: reconnecting'}>
          {connected ? 'live' : 'offline'}
        </span>
      </header>
      <main id="main" ref={main} tabIndex={-1}>
        {view}
      </main>
    </>
  );
}
