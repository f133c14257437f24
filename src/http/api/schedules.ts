import { DEFAULT_UPCOMING, decodeNameToken, decodePageToken, encodeNameToken, encodePageToken, pageSize, upcomingCount } from '../../broker/admin-input.js';
import type { ScheduleRef } from '../../broker/schedules.js';
import type { ScheduleRow } from '../../store/types.js';
import type { ApiContext, Route } from './route.js';
import { intParam, onlyFields, queryParams, readJsonBody } from './request.js';
import { runJson, scheduleJson } from './views.js';

/** Next fire times per schedule in a listing (GetSchedule previews more, `upcoming` up to 100). */
const LIST_UPCOMING = 3;
/** The latest runs shown with each schedule, so a list tells how the last fires went. */
const RECENT_RUNS = 5;

/**
 * Schedules over HTTP: the ScheduleService operations the dashboard needs (list, get, runs,
 * pause, resume, trigger), each one call of ScheduleManager (broker/schedules.ts), as the gRPC
 * service makes it. Scopes like their gRPC twins (auth/rpc-policy.ts): reads need `read` on
 * every queue, pause/resume/trigger `admin` on every queue (a schedule's job can go to any queue).
 * Creating, changing and deleting schedules stay with gRPC and the CLI.
 */
export function scheduleRoutes({ broker }: ApiContext): Route[] {
  const schedules = broker.schedules;
  const byId = (id: string): ScheduleRef => ({ id });
  const view = async (row: ScheduleRow, upcoming: number) => ({
    ...scheduleJson(row, schedules.upcoming(row, upcoming)),
    recentRuns: (await schedules.recentRuns(row, RECENT_RUNS)).map(runJson),
  });
  const action = (run: (ref: ScheduleRef) => Promise<unknown>): Route['handle'] => async ({ req, params }) => {
    onlyFields(await readJsonBody(req), []);
    return run(byId(params.id!));
  };
  return [
    {
      method: 'GET',
      path: '/schedules',
      scopes: ['read'],
      handle: async ({ url }) => {
        const q = queryParams(url, ['limit', 'cursor']);
        const size = pageSize(intParam(q.limit, 'limit', 0), 'limit');
        const rows = await schedules.list(size, decodeNameToken(q.cursor ?? '', 'cursor'));
        return {
          schedules: await Promise.all(rows.map((row) => view(row, LIST_UPCOMING))),
          nextCursor: rows.length === size ? encodeNameToken(rows[rows.length - 1]!.name) : null,
        };
      },
    },
    {
      method: 'GET',
      path: '/schedules/:id',
      scopes: ['read'],
      handle: async ({ url, params }) => {
        const q = queryParams(url, ['upcoming']);
        const n = upcomingCount(intParam(q.upcoming, 'upcoming', 0), 'upcoming');
        return view(await schedules.get(byId(params.id!)), n);
      },
    },
    {
      method: 'GET',
      path: '/schedules/:id/runs',
      scopes: ['read'],
      handle: async ({ url, params }) => {
        const q = queryParams(url, ['limit', 'cursor']);
        const size = pageSize(intParam(q.limit, 'limit', 0), 'limit');
        const runs = await schedules.runs(byId(params.id!), size, decodePageToken(q.cursor ?? '', 'cursor'));
        return { runs: runs.map(runJson), nextCursor: runs.length === size ? encodePageToken(runs[runs.length - 1]!.seq) : null };
      },
    },
    {
      method: 'POST',
      path: '/schedules/:id/pause',
      scopes: ['admin'],
      handle: action(async (ref) => view(await schedules.setPaused(ref, true), DEFAULT_UPCOMING)),
    },
    {
      method: 'POST',
      path: '/schedules/:id/resume',
      scopes: ['admin'],
      handle: action(async (ref) => view(await schedules.setPaused(ref, false), DEFAULT_UPCOMING)),
    },
    {
      method: 'POST',
      path: '/schedules/:id/trigger',
      scopes: ['admin'],
      // An extra run now (recorded as manual); answers the run with its job.
      handle: action(async (ref) => runJson(await schedules.trigger(ref))),
    },
  ];
}
