import { useEffect, useState } from 'preact/hooks';
import { authHeaders, needToken } from './api.js';
import type { CountsEvent } from './types.js';

/**
 * The live feed: Server-Sent Events from /api/v1/events, read with fetch() rather than
 * EventSource so the request can carry the bearer token when the broker requires one. The
 * broker sends `counts` at most once a second and only when something changed. One stream
 * per page, shared by every view; it closes when no view listens and reconnects (after the
 * `retry` the broker sent, 3 s) when the broker restarts.
 */
export interface ServerEvent {
  event: string;
  data: string;
}

/** Opens `path` as an event stream; returns a function that closes it for good. */
export function openEventStream(path: string, onEvent: (e: ServerEvent) => void, onStatus: (ok: boolean) => void = () => {}): () => void {
  let closed = false;
  let controller: AbortController | undefined;
  let retryMs = 3000;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const connect = async () => {
    controller = new AbortController();
    try {
      const res = await fetch(path, { headers: { accept: 'text/event-stream', ...authHeaders() }, signal: controller.signal });
      if (res.status === 401) return needToken();
      // Any other refusal (an unknown job, too many feeds) will not change by retrying soon.
      if (res.status >= 400 && res.status < 500) return onStatus(false);
      if (!res.ok || !res.body) throw new Error(`HTTP ${res.status}`);
      onStatus(true);
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let end: number;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          let event = 'message';
          const data: string[] = [];
          for (const line of block.split('\n')) {
            if (line.startsWith(':')) continue;
            const i = line.indexOf(':');
            const field = i < 0 ? line : line.slice(0, i);
            const v = i < 0 ? '' : line.slice(i + 1).replace(/^ /, '');
            if (field === 'event') event = v;
            else if (field === 'data') data.push(v);
            else if (field === 'retry' && /^\d+$/.test(v)) retryMs = Number(v);
          }
          if (data.length > 0) onEvent({ event, data: data.join('\n') });
        }
      }
    } catch {
      // Closed by us, or the broker went away: reconnect below unless closed.
    }
    if (closed) return;
    onStatus(false);
    timer = setTimeout(() => void connect(), retryMs);
  };
  void connect();
  return () => {
    closed = true;
    if (timer) clearTimeout(timer);
    controller?.abort();
  };
}

type Listener = (e: CountsEvent) => void;
const listeners = new Set<Listener>();
let close: (() => void) | undefined;
let last: CountsEvent | undefined;
let connected = false;
const statusListeners = new Set<(ok: boolean) => void>();

function setConnected(ok: boolean): void {
  if (ok === connected) return;
  connected = ok;
  for (const l of statusListeners) l(ok);
}

export function onCounts(listener: Listener): () => void {
  listeners.add(listener);
  if (!close) {
    close = openEventStream(
      '/api/v1/events',
      (e) => {
        if (e.event !== 'counts') return;
        last = JSON.parse(e.data) as CountsEvent;
        for (const l of listeners) l(last);
      },
      setConnected,
    );
  } else if (last) listener(last);
  return () => {
    listeners.delete(listener);
    if (listeners.size === 0 && close) {
      close();
      close = undefined;
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
  return openEventStream(`/api/v1/events?job=${encodeURIComponent(id)}`, (e) => e.event === 'job' && listener());
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
