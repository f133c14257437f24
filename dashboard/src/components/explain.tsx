import { ago, exact } from '../format.js';

export interface ExplainReason {
  code: string;
  message: string;
  at?: string | null;
  count?: number;
  limit?: number;
}

export interface Explanation {
  summary: string;
  reasons: ExplainReason[];
}

/** "Why is this not running": the broker's own reasons (paused queue, no worker, a limit, the jobs ahead). */
export function ExplainPanel({ explanation, now }: { explanation: Explanation; now: number }) {
  return (
    <div class="explain">
      <p class="explain-summary">{explanation.summary}</p>
      {explanation.reasons.length > 0 && (
        <ul>
          {explanation.reasons.map((r, i) => (
            <li key={i} data-reason={r.code}>
              {r.message}
              {r.at && <span class="muted small"> ({ago(r.at, now)})</span>}
              {r.count !== undefined && r.limit !== undefined && (
                <span class="muted small">
                  {' '}
                  ({exact(r.count)} of {exact(r.limit)})
                </span>
              )}
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}
