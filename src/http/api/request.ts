import type { IncomingMessage } from 'node:http';
import { invalidArgument } from '../../domain/errors.js';
import { HttpError } from './http-error.js';

/** Request bodies are small selections and reasons; anything larger is refused unread. */
export const MAX_BODY_BYTES = 256 * 1024;

/**
 * The JSON object in a POST body; an empty body is `{}`. Refuses bodies over MAX_BODY_BYTES
 * (413), a content type other than JSON (415) and text that is not a JSON object (400).
 */
export async function readJsonBody(req: IncomingMessage): Promise<Record<string, unknown>> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > MAX_BODY_BYTES) throw tooLarge(req);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) throw tooLarge(req);
    chunks.push(chunk);
  }
  if (size === 0) return {};
  const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  if (type !== 'application/json') {
    throw new HttpError(415, 'UNSUPPORTED_MEDIA_TYPE', `a request body must be JSON (content-type: application/json), got ${JSON.stringify(type.slice(0, 60)) || 'none'}`);
  }
  let value: unknown;
  try {
    value = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch (error) {
    throw invalidArgument(`the request body is not valid JSON: ${(error as Error).message.slice(0, 120)}`);
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw invalidArgument('the request body must be a JSON object');
  return value as Record<string, unknown>;
}

function tooLarge(req: IncomingMessage): HttpError {
  // Read and drop the rest, so the client sees the 413 rather than a reset connection.
  req.resume();
  return new HttpError(413, 'PAYLOAD_TOO_LARGE', `the request body is over ${MAX_BODY_BYTES} bytes`);
}

/** Query parameters, refusing names the endpoint does not know (a typo must not silently list everything). */
export function queryParams(url: URL, allowed: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, value] of url.searchParams) {
    if (!allowed.includes(key)) {
      throw invalidArgument(`unknown query parameter ${JSON.stringify(key.slice(0, 40))}${allowed.length ? `: use ${allowed.join(', ')}` : ''}`);
    }
    out[key] = value;
  }
  return out;
}

/** A whole number from a query parameter; '' or absent = `fallback`. */
export function intParam(value: string | undefined, name: string, fallback: number): number {
  if (value === undefined || value === '') return fallback;
  if (!/^\d{1,9}$/.test(value)) throw invalidArgument(`${name} must be a whole number, got ${JSON.stringify(value.slice(0, 40))}`);
  return Number(value);
}

/** Body field readers: a wrong type is a 400 naming the field. */
export function optionalString(body: Record<string, unknown>, field: string): string | undefined {
  const v = body[field];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') throw invalidArgument(`${field} must be a string`);
  return v;
}

export function optionalBoolean(body: Record<string, unknown>, field: string): boolean | undefined {
  const v = body[field];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'boolean') throw invalidArgument(`${field} must be true or false`);
  return v;
}

export function optionalStringArray(body: Record<string, unknown>, field: string): string[] | undefined {
  const v = body[field];
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) throw invalidArgument(`${field} must be an array of strings`);
  return v as string[];
}

/** Refuses body fields the endpoint does not know. */
export function onlyFields(body: Record<string, unknown>, allowed: readonly string[]): void {
  for (const key of Object.keys(body)) {
    if (!allowed.includes(key)) throw invalidArgument(`unknown field ${JSON.stringify(key.slice(0, 40))}${allowed.length ? `: use ${allowed.join(', ')}` : ' (this call takes no body fields)'}`);
  }
}
