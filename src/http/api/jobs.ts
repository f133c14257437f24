import { decodePageToken, encodePageToken, jobFilter, pageSize } from '../../broker/admin-input.js';
import { invalidArgument } from '../../domain/errors.js';
import type { JobRow } from '../../store/job-store.js';
import type { ApiContext, Route } from './route.js';
import { intParam, onlyFields, optionalString, queryParams, readJsonBody } from './request.js';
import { explanationJson, historyJson, jobJson, jobSummaryJson } from './views.js';

/** A keyset page: `nextCursor` is null on the last page. */
export function jobPage(rows: JobRow[], size: number) {
  return {
    jobs: rows.map(jobSummaryJson),
    nextCursor: rows.length === size ? encodePageToken(rows[rows.length - 1]!.seq) : null,
  };
}

const MAX_REASON = 1000;

export function jobRoutes({ broker }: ApiContext): Route[] {
  return [
    {
      method: 'GET',
      path: '/jobs',
      scopes: ['read'],
      queue: (c) => c.url.searchParams.get('queue') || undefined,
      handle: ({ url }) => {
        const q = queryParams(url, ['queue', 'state', 'type', 'group', 'limit', 'cursor']);
        const size = pageSize(intParam(q.limit, 'limit', 0), 'limit');
        const filter = jobFilter({ queue: q.queue, state: q.state, type: q.type, groupKey: q.group });
        return jobPage(broker.listJobs(filter, size, decodePageToken(q.cursor ?? '', 'cursor')), size);
      },
    },
    {
      method: 'GET',
      path: '/jobs/:id',
      scopes: ['read', 'produce'],
      queue: 'self',
      handle: ({ url, params, authorize }) => {
        queryParams(url, []);
        const row = broker.getJob(params.id!);
        authorize(['read', 'produce'], row.queue);
        return jobJson(row);
      },
    },
    {
      // AdminService/GetJobHistory's scope: `read` only (rpc-policy.ts).
      method: 'GET',
      path: '/jobs/:id/history',
      scopes: ['read'],
      queue: 'self',
      handle: ({ url, params, authorize }) => {
        queryParams(url, []);
        authorize(['read'], broker.getJob(params.id!).queue);
        return { entries: broker.jobHistory(params.id!).map(historyJson) };
      },
    },
    {
      // ProducerService/ExplainJob: why the job is (not) running.
      method: 'GET',
      path: '/jobs/:id/explain',
      scopes: ['read', 'produce'],
      queue: 'self',
      handle: ({ url, params, authorize }) => {
        queryParams(url, []);
        authorize(['read', 'produce'], broker.getJob(params.id!).queue);
        return explanationJson(broker.explainJob(params.id!));
      },
    },
    {
      method: 'POST',
      path: '/jobs/:id/cancel',
      scopes: ['produce', 'admin'],
      queue: 'self',
      handle: async ({ req, params, authorize }) => {
        authorize(['produce', 'admin'], broker.getJob(params.id!).queue);
        const body = await readJsonBody(req);
        onlyFields(body, ['reason']);
        const reason = optionalString(body, 'reason') ?? '';
        if (reason.length > MAX_REASON) throw invalidArgument(`reason is over ${MAX_REASON} characters`);
        return jobJson(await broker.cancelJob(params.id!, reason));
      },
    },
  ];
}
