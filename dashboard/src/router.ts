import { useEffect, useState } from 'preact/hooks';

/**
 * A history-API router: every view has a real URL (/queues/email, /jobs/<id>,
 * /schedules/<id>, /dead-letters?queue=email) that can be shared and reloaded; the broker answers any such
 * path with index.html.
 */
export interface Location {
  path: string;
  query: URLSearchParams;
}

const listeners = new Set<() => void>();

function current(): Location {
  return { path: decodeURIComponent(window.location.pathname), query: new URLSearchParams(window.location.search) };
}

export function navigate(to: string, options: { replace?: boolean } = {}): void {
  if (to === window.location.pathname + window.location.search) return;
  if (options.replace) history.replaceState(null, '', to);
  else history.pushState(null, '', to);
  if (!options.replace) window.scrollTo(0, 0);
  for (const l of listeners) l();
}

window.addEventListener('popstate', () => {
  for (const l of listeners) l();
});

export function useLocation(): Location {
  const [loc, setLoc] = useState(current);
  useEffect(() => {
    const update = () => setLoc(current());
    listeners.add(update);
    return () => void listeners.delete(update);
  }, []);
  return loc;
}

/** Plain left clicks on same-origin links stay in the page; anything else (new tab…) is the browser's. */
export function interceptLinks(root: HTMLElement): void {
  root.addEventListener('click', (event) => {
    if (event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
    const a = (event.target as Element).closest('a');
    if (!a || a.target || a.hasAttribute('download') || a.origin !== window.location.origin || a.pathname.startsWith('/api/')) return;
    event.preventDefault();
    navigate(a.pathname + a.search);
  });
}

export const href = {
  queue: (name: string, params?: Record<string, string>) => `/queues/${encodeURIComponent(name)}${params ? `?${new URLSearchParams(params)}` : ''}`,
  job: (id: string) => `/jobs/${encodeURIComponent(id)}`,
  schedule: (id: string) => `/schedules/${encodeURIComponent(id)}`,
  deadLetters: (queue?: string) => `/dead-letters${queue ? `?queue=${encodeURIComponent(queue)}` : ''}`,
};
