import { deadLetterSelection, decodePageToken, pageSize } from '../../broker/admin-input.js';
import { invalidArgument } from '../../domain/errors.js';
import { JobState } from '../../domain/job-state.js';
import { validateQueueName, validateTypeName } from '../../domain/names.js';
import type { ApiContext, Route } from './route.js';
import { intParam, onlyFields, optionalBoolean, optionalString, optionalStringArray, queryParams, readJsonBody } from './request.js';
import { jobPage } from './jobs.js';

/** Most distinct error messages in the summary. */
const SUMMARY_GROUPS = 20;

export function deadLetterRoutes({ broker }: ApiContext): Route[] {
  const selection = async (req: Parameters<Route['handle']>[0]['req']) => {
    const body = await readJsonBody(req);
    onlyFields(body, ['ids', 'queue', 'type', 'deadBefore', 'all']);
    const deadBefore = optionalString(body, 'deadBefore');
    const ms = deadBefore === undefined ? undefined : Date.parse(deadBefore);
    if (ms !== undefined && Number.isNaN(ms)) throw invalidArgument('deadBefore must be an ISO 8601 time');
    return deadLetterSelection({
      ids: optionalStringArray(body, 'ids'),
      queue: optionalString(body, 'queue'),
      type: optionalString(body, 'type'),
      deadBefore: ms,
      all: optionalBoolean(body, 'all'),
    });
  };
  return [
    {
      method: 'GET',
      path: '/dead-letters',
      scopes: ['read'],
      queue: (c) => c.url.searchParams.get('queue') || undefined,
      handle: async ({ url }) => {
        const q = queryParams(url, ['queue', 'type', 'limit', 'cursor']);
        const size = pageSize(intParam(q.limit, 'limit', 0), 'limit');
        const queue = q.queue ? validateQueueName(q.queue) : undefined;
        const type = q.type ? validateTypeName(q.type) : undefined;
        const cursor = decodePageToken(q.cursor ?? '', 'cursor');
        const [rows, groups] = await Promise.all([
          broker.reads.listJobs({ queue, type, state: JobState.Dead }, size, cursor),
          // The grouping is over every dead job of the queue, not just this page.
          broker.reads.deadLetterSummary(queue, SUMMARY_GROUPS),
        ]);
        return { ...jobPage(rows, size), errors: groups.map((g) => ({ ...g, lastAt: new Date(g.lastAt).toISOString() })) };
      },
    },
    {
      method: 'POST',
      path: '/dead-letters/replay',
      scopes: ['admin'],
      queue: 'self',
      handle: async ({ req, authorize }) => {
        const s = await selection(req);
        authorize(['admin'], s.queue);
        return { replayed: await broker.replayDeadLetters(s) };
      },
    },
    {
      method: 'POST',
      path: '/dead-letters/purge',
      scopes: ['admin'],
      queue: 'self',
      handle: async ({ req, authorize }) => {
        const s = await selection(req);
        authorize(['admin'], s.queue);
        return { purged: await broker.purgeDeadLetters(s) };
      },
    },
  ];
}
