import type { ApiContext, Route } from './route.js';
import { queryParams } from './request.js';
import { workerJson } from './views.js';

export function workerRoutes({ broker }: ApiContext): Route[] {
  return [
    {
      method: 'GET',
      scopes: ['read'],
      path: '/workers',
      handle: ({ url }) => {
        queryParams(url, []);
        return { workers: broker.listSessions().map(workerJson) };
      },
    },
  ];
}
