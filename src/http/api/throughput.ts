import type { ApiContext, Route } from './route.js';
import { queryParams } from './request.js';

/** Completed and failed attempts per second over the last 15 minutes (broker/throughput.ts). */
export function throughputRoutes({ broker }: ApiContext): Route[] {
  return [
    {
      method: 'GET',
      scopes: ['read'],
      path: '/throughput',
      handle: ({ url }) => {
        queryParams(url, []);
        const s = broker.throughput.series(broker.clock.now());
        return { ...s, start: new Date(s.startMs).toISOString() };
      },
    },
  ];
}
