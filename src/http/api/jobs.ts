import { decodePageToken, encodePageToken, jobFilter, pageSize } from '../../broker/admin-input.js';
import { SluiceError, echo as quote, invalidArgument, notFound } from '../../domain/errors.js';
import type { Broker } from '../../broker/broker.js';
import type { ApiScope, Call } from './route.js';
import type { JobRow } from '../../store/types.js';
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

/**
 * The job, if the caller may see it. As over gRPC (auth/rpc-policy.ts), a job on a queue the
 * caller's scopes do not cover is NOT_FOUND, exactly like a job that does not exist, so ids
 * of other queues' jobs cannot be probed (a caller without the scope on any queue was refused
 * with 403 by the router already).
 */
async function visibleJob(broker: Broker, authorize: Call['authorize'], scopes: readonly ApiScope[], id: string): Promise<JobRow> {
  const row = await broker.reads.getJob(id);
  try {
    authorize(scopes, row.queue);
  } catch (error) {
    if (error instanceof SluiceError && error.code === 'PERMISSION_DENIED') throw notFound(`job ${quote(id)} not found`);
    throw error;
  }
  return row;
}

export function jobRoutes({ broker }: ApiContext): Route[] {
  return [
    {
      method: 'GET',
      path: '/jobs',
      scopes: ['read'],
      queue: (c) => c.url.searchParams.get('queue') || undefined,
      handle: async ({ url }) => {
        const q = queryParams(url, ['queue', 'state', 'type', 'group', 'limit', 'cursor']);
        const size = pageSize(intParam(q.limit, 'limit', 0), 'limit');
        const filter = jobFilter({ queue: q.queue, state: q.state, type: q.type, groupKey: q.group });
        return jobPage(await broker.reads.listJobs(filter, size, decodePageToken(q.cursor ?? '', 'cursor')), size);
      },
    },
    {
      method: 'GET',
      path: '/jobs/:id',
      scopes: ['read', 'produce'],
      queue: 'self',
      handle: async ({ url, params, authorize }) => {
        queryParams(url, []);
        return jobJson(await visibleJob(broker, authorize, ['read', 'produce'], params.id!));
      },
    },
    {
      // AdminService/GetJobHistory's scope: `read` only (rpc-policy.ts).
      method: 'GET',
      path: '/jobs/:id/history',
      scopes: ['read'],
      queue: 'self',
      handle: async ({ url, params, authorize }) => {
        queryParams(url, []);
        await visibleJob(broker, authorize, ['read'], params.id!);
        return { entries: (await broker.reads.jobHistory(params.id!)).map(historyJson) };
      },
    },
    {
      // ProducerService/ExplainJob: why the job is (not) running.
      method: 'GET',
      path: '/jobs/:id/explain',
      scopes: ['read', 'produce'],
      queue: 'self',
      handle: async ({ url, params, authorize }) => {
        queryParams(url, []);
        await visibleJob(broker, authorize, ['read', 'produce'], params.id!);
        return explanationJson(await broker.reads.explainJob(params.id!));
      },
    },
    {
      method: 'POST',
      path: '/jobs/:id/cancel',
      scopes: ['produce', 'admin'],
      queue: 'self',
      handle: async ({ req, params, authorize }) => {
        await visibleJob(broker, authorize, ['produce', 'admin'], params.id!);
        const body = await readJsonBody(req);
        onlyFields(body, ['reason']);
        const reason = optionalString(body, 'reason') ?? '';
        if (reason.length > MAX_REASON) throw invalidArgument(`reason is over ${MAX_REASON} characters`);
        return jobJson(await broker.cancelJob(params.id!, reason));
      },
    },
  ];
}
