import type { ComponentChildren } from 'preact';
import type { ApiError } from '../api.js';
import type { JobState } from '../types.js';
import { compact, exact } from '../format.js';

export function StateBadge({ state }: { state: JobState }) {
  return <span class={`badge state-${state}`}>{state}</span>;
}

export function Num({ n, zero = false }: { n: number; zero?: boolean }) {
  return (
    <span class={n === 0 && !zero ? 'num muted' : 'num'} title={exact(n)}>
      {compact(n)}
    </span>
  );
}

export function Empty({ title, children }: { title: string; children?: ComponentChildren }) {
  return (
    <div class="empty">
      <p class="empty-title">{title}</p>
      {children && <div class="empty-help">{children}</div>}
    </div>
  );
}

export function ErrorBanner({ error }: { error: ApiError | Error | undefined }) {
  if (!error) return null;
  return (
    <div class="banner error" role="alert">
      {error.message}
    </div>
  );
}

export function Loading() {
  return <p class="muted loading">Loading…</p>;
}

/** Payloads, results and progress as indented JSON. */
export function JsonBlock({ value, label }: { value: unknown; label: string }) {
  if (value === null || value === undefined) return <p class="muted">none</p>;
  return (
    <pre class="json" aria-label={label} tabIndex={0}>
      {JSON.stringify(value, null, 2)}
    </pre>
  );
}

export function Section({ title, children, actions }: { title: string; children: ComponentChildren; actions?: ComponentChildren }) {
  return (
    <section class="card">
      <div class="card-head">
        <h2>{title}</h2>
        {actions && <div class="card-actions">{actions}</div>}
      </div>
      {children}
    </section>
  );
}
