import { Command } from 'commander';
import { ExplainJobRequest, explainReasonCodeToJSON, type ExplainReason } from '../../clients/typescript/src/gen/sluice/v1/producer.js';
import { stateName } from '../../clients/typescript/src/wire.js';
import { addConnectionOptions, examples, out, withSession } from './connection.js';
import { json, when } from './output.js';

/** EXPLAIN_REASON_CODE_QUEUE_PAUSED -> "queue_paused". */
function codeName(r: ExplainReason): string {
  return explainReasonCodeToJSON(r.code).replace(/^EXPLAIN_REASON_CODE_/, '').toLowerCase();
}

function reasonView(r: ExplainReason) {
  return {
    code: codeName(r),
    message: r.message,
    at: r.at ? r.at.toISOString() : null,
    count: r.count,
    countIsLowerBound: r.countIsLowerBound,
    limit: r.limit,
    groupKey: r.groupKey || null,
    workerIds: r.workerIds,
    attempt: r.attempt,
    maxAttempts: r.maxAttempts,
    lastError: r.lastError || null,
  };
}

export function explainCommand(): Command {
  const cmd = new Command('explain')
    .description('why a job is (not) running: scheduled, paused queue, rate or concurrency limit, no worker, jobs ahead of it')
    .argument('<id>', 'job id');
  addConnectionOptions(cmd);
  examples(cmd, 'sluice explain 019a2b3c-…', 'sluice explain 019a2b3c-… --json | jq -r ".reasons[].code"');
  return withSession(cmd, async (session, flags, id: string) => {
    const res = await session.call(session.producer, session.producer.explainJob, ExplainJobRequest.fromPartial({ id }));
    const view = { id: res.id, state: stateName(res.state), summary: res.summary, reasons: res.reasons.map(reasonView) };
    if (flags.json) {
      out(json(view));
      return;
    }
    let text = `${view.summary}\n`;
    for (const r of view.reasons) text += `  - ${r.message}${r.at ? ` [${r.code}, ${when(new Date(r.at))}]` : ` [${r.code}]`}\n`;
    out(text);
  });
}
