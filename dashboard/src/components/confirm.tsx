import { useEffect, useRef, useState } from 'preact/hooks';
import type { ComponentChildren } from 'preact';

export interface ConfirmRequest {
  title: string;
  body: ComponentChildren;
  action: string;
  danger?: boolean;
  run: () => Promise<void>;
}

/**
 * A modal <dialog> for destructive actions: focus moves into it, Escape cancels, and the
 * confirm button says exactly what happens ("Purge 12 jobs").
 */
export function ConfirmDialog({ request, onClose }: { request: ConfirmRequest | undefined; onClose: () => void }) {
  const ref = useRef<HTMLDialogElement>(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string>();
  useEffect(() => {
    const d = ref.current!;
    if (request && !d.open) {
      setError(undefined);
      d.showModal();
    } else if (!request && d.open) d.close();
  }, [request]);
  const confirm = async () => {
    if (!request) return;
    setBusy(true);
    try {
      await request.run();
      onClose();
    } catch (e) {
      setError((e as Error).message);
    } finally {
      setBusy(false);
    }
  };
  return (
    <dialog ref={ref} class="confirm" onClose={onClose} aria-labelledby="confirm-title">
      {request && (
        <form method="dialog" onSubmit={(e) => (e.preventDefault(), void confirm())}>
          <h2 id="confirm-title">{request.title}</h2>
          <div class="confirm-body">{request.body}</div>
          {error && <p class="error-text" role="alert">{error}</p>}
          <div class="actions">
            <button type="button" class="button" onClick={onClose} disabled={busy}>
              Cancel
            </button>
            <button type="submit" class={`button ${request.danger ? 'danger' : 'primary'}`} disabled={busy} autofocus>
              {busy ? 'Working…' : request.action}
            </button>
          </div>
        </form>
      )}
    </dialog>
  );
}
