import { useEffect, useState } from 'preact/hooks';
import type { CountsEvent } from './types.js';

/**
 * One EventSource for the page (/api/v1/events): the broker sends `counts` at most once a
 * second and only when something changed. Views subscribe; the stream closes when the last
 * view using it goes away, and EventSource reconnects by itself if the broker restarts.
 */
type Listener = (e: CountsEvent) => void;
const listeners = new Set<Listener>();
let source: EventSource | undefined;
let last: CountsEvent | undefined;
let connected = false;
const statusListeners = new Set<(ok: boolean) => void>();

function open(): void {
  source = new EventSource('/api/v1/events');
  source.addEventListener('counts', (e) => {
    last = JSON.parse((e as MessageEvent<string>).data) as CountsEvent;
    setConnected(true);
    for (const l of listeners) l(last);
  });
  source.addEventListener('error', () => setConnected(false));
}

function setConnected(ok: boolean): void {
  if (ok === connected) return;
  connected = ok;
  for (const l of statusListeners) l(ok);
}

export function onCounts(listener: Listener): () => void {
  listeners.add(listener);
  if (!source) open();
  else if (last) listener(last);
  return () => {
    listeners.delete(listener);
    if (listeners.size === 0 && source) {
      source.close();
      source = undefined;
      last = undefined;
      setConnected(false);
    }
  };
}

/** The latest counts message, re-rendering on each one. */
export function useCounts(): CountsEvent | undefined {
  const [value, setValue] = useState<CountsEvent | undefined>(last);
  useEffect(() => onCounts(setValue), []);
  return value;
}

export function useConnected(): boolean {
  const [ok, setOk] = useState(connected);
  useEffect(() => {
    statusListeners.add(setOk);
    setOk(connected);
    return () => void statusListeners.delete(setOk);
  }, []);
  return ok;
}

/** Changes of one job, for the job page (coalesced by the broker to 4 a second at most). */
export function onJobChange(id: string, listener: () => void): () => void {
  const s = new EventSource(`/api/v1/events?job=${encodeURIComponent(id)}`);
  s.addEventListener('job', () => listener());
  return () => s.close();
}

/** Current time, ticking every `ms`, so "3 min ago" stays true. */
export function useNow(ms = 1000): number {
  const [now, setNow] = useState(Date.now);
  useEffect(() => {
    const t = setInterval(() => setNow(Date.now()), ms);
    return () => clearInterval(t);
  }, [ms]);
  return now;
}
