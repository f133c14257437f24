import { useState } from 'preact/hooks';
import { hasToken, setToken } from '../api.js';

/**
 * Shown instead of the view when the broker answers 401: the broker requires bearer tokens
 * (`sluice token create`), so the page does too. The token stays in this tab only.
 */
export function TokenPrompt() {
  const [value, setValue] = useState('');
  const refused = hasToken();
  return (
    <section class="card token-card">
      <h1>This broker requires a token</h1>
      <p>
        Paste a token created with <code>sluice token create</code>: the <strong>read</strong> scope shows the dashboard, <strong>admin</strong> also lets you
        replay, purge, pause and cancel.
      </p>
      {refused && (
        <p class="banner error" role="alert">
          The broker refused the token this tab had. Paste another one.
        </p>
      )}
      <form
        onSubmit={(e) => {
          e.preventDefault();
          if (!value.trim()) return;
          setToken(value.trim());
          window.location.reload();
        }}
      >
        <label>
          Token{' '}
          <input type="password" name="token" autocomplete="off" spellcheck={false} value={value} onInput={(e) => setValue((e.target as HTMLInputElement).value)} autofocus />
        </label>{' '}
        <button class="button primary" type="submit">
          Use token
        </button>
      </form>
      <p class="muted small">It is kept in this browser tab only (session storage) and sent as an <code>authorization: Bearer</code> header.</p>
    </section>
  );
}
