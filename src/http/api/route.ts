import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Broker } from '../../broker/broker.js';
import type { Logger } from '../../log.js';

export interface ApiContext {
  broker: Broker;
  log: Logger;
}

/** One request, with the path parameters its route captured. */
export interface Call {
  req: IncomingMessage;
  res: ServerResponse;
  url: URL;
  params: Record<string, string>;
}

export interface Route {
  method: 'GET' | 'POST';
  /** Under /api/v1; `:name` captures one path segment. */
  path: string;
  /** The JSON answer (200), or for a `stream` route nothing: it writes the response itself. */
  handle(call: Call): unknown;
  stream?: true;
}
