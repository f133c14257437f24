/** fetch() over /api/v1 with the API's error shape; POSTs carry the CSRF header the API requires. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

const BASE = '/api/v1';

/**
 * The bearer token, when the broker requires one: typed into the page once and kept in
 * sessionStorage (this tab only, gone when it closes; the page's CSP allows no other script
 * to read it). Sent as `authorization: Bearer`, exactly like the gRPC clients.
 */
const TOKEN_KEY = 'sluice.token';
const tokenListeners = new Set<(needed: boolean) => void>();
let tokenNeeded = false;

export function authHeaders(): Record<string, string> {
  const token = sessionStorage.getItem(TOKEN_KEY);
  return token ? { authorization: `Bearer ${token}` } : {};
}

export function setToken(token: string | null): void {
  if (token) sessionStorage.setItem(TOKEN_KEY, token);
  else sessionStorage.removeItem(TOKEN_KEY);
}

export function hasToken(): boolean {
  return sessionStorage.getItem(TOKEN_KEY) !== null;
}

/** The broker answered 401: the app asks for a token (the same prompt for every view). */
export function needToken(): void {
  if (tokenNeeded) return;
  tokenNeeded = true;
  for (const l of tokenListeners) l(true);
}

export function onTokenNeeded(listener: (needed: boolean) => void): () => void {
  tokenListeners.add(listener);
  if (tokenNeeded) listener(true);
  return () => void tokenListeners.delete(listener);
}

async function request<T>(method: 'GET' | 'POST', path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { accept: 'application/json', ...authHeaders() };
  if (method === 'POST') {
    headers['x-sluice-csrf'] = '1';
    if (body !== undefined) headers['content-type'] = 'application/json';
  }
  let res: Response;
  try {
    res = await fetch(BASE + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch {
    throw new ApiError(0, 'UNREACHABLE', 'The broker is not answering. Is it running?');
  }
  const text = await res.text();
  let json: unknown;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    throw new ApiError(res.status, 'BAD_RESPONSE', `The broker answered ${res.status} without JSON.`);
  }
  if (res.status === 401) needToken();
  if (!res.ok) {
    const error = (json as { error?: { code?: string; message?: string } } | undefined)?.error;
    throw new ApiError(res.status, error?.code ?? 'HTTP_ERROR', error?.message ?? `HTTP ${res.status}`);
  }
  return json as T;
}

export const api = {
  get: <T>(path: string) => request<T>('GET', path),
  post: <T>(path: string, body?: unknown) => request<T>('POST', path, body),
};

/** A query string from the fields that are set. */
export function query(params: Record<string, string | number | undefined | null>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  const s = q.toString();
  return s ? `?${s}` : '';
}
