import { validateQueueName } from '../../domain/names.js';
import type { ApiContext, Route } from './route.js';
import { onlyFields, queryParams, readJsonBody } from './request.js';
import { queueJson } from './views.js';

export function queueRoutes({ broker }: ApiContext): Route[] {
  const one = async (name: string) => {
    const [queue, since] = await Promise.all([broker.reads.getQueue(name), broker.reads.pendingSince()]);
    return queueJson(queue, broker.config, since.get(name));
  };
  const setPaused = (paused: boolean): Route['handle'] => async ({ req, params }) => {
    onlyFields(await readJsonBody(req), []);
    const name = validateQueueName(params.name!);
    // NOT_FOUND (404) for a queue that does not exist, as PauseQueue answers without create_if_missing.
    await broker.setPaused(name, paused);
    return one(name);
  };
  return [
    {
      method: 'GET',
      path: '/queues',
      scopes: ['read'],
      handle: async ({ url }) => {
        queryParams(url, []);
        const [since, queues] = await Promise.all([broker.reads.pendingSince(), broker.reads.listQueues()]);
        return { queues: queues.map((q) => queueJson(q, broker.config, since.get(q.settings.name))) };
      },
    },
    {
      method: 'GET',
      path: '/queues/:name',
      scopes: ['read'],
      queue: (c) => c.params.name,
      handle: ({ url, params }) => {
        queryParams(url, []);
        return one(validateQueueName(params.name!));
      },
    },
    { method: 'POST', path: '/queues/:name/pause', scopes: ['admin'], queue: (c) => c.params.name, handle: setPaused(true) },
    { method: 'POST', path: '/queues/:name/resume', scopes: ['admin'], queue: (c) => c.params.name, handle: setPaused(false) },
  ];
}
