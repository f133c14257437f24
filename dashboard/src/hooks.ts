import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { ApiError, api } from './api.js';

export interface Loaded<T> {
  data: T | undefined;
  error: ApiError | undefined;
  loading: boolean;
  reload: () => void;
}

/**
 * GETs `path` (again whenever it changes or `reload` is called). A reload keeps the old
 * data on screen until the new answer is there, so live refreshes never flash.
 */
export function useApi<T>(path: string | null): Loaded<T> {
  const [state, setState] = useState<{ data?: T; error?: ApiError; loading: boolean; path: string | null }>({ loading: path !== null, path });
  const [tick, setTick] = useState(0);
  const inFlight = useRef(false);
  const again = useRef(false);
  useEffect(() => {
    if (path === null) return;
    let live = true;
    inFlight.current = true;
    api.get<T>(path).then(
      (data) => live && setState({ data, loading: false, path }),
      (error: ApiError) => live && setState({ error, loading: false, path }),
    ).finally(() => {
      inFlight.current = false;
      if (live && again.current) {
        again.current = false;
        setTick((t) => t + 1);
      }
    });
    return () => {
      live = false;
    };
  }, [path, tick]);
  const reload = useCallback(() => {
    // At most one request in flight per view: a burst of events becomes one more GET.
    if (inFlight.current) again.current = true;
    else setTick((t) => t + 1);
  }, []);
  const fresh = state.path === path;
  return { data: fresh ? state.data : undefined, error: fresh ? state.error : undefined, loading: !fresh || state.loading, reload };
}

export function useTitle(title: string): void {
  useEffect(() => {
    document.title = title ? `${title} · Sluice` : 'Sluice';
  }, [title]);
}
