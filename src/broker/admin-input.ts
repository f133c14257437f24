import { invalidArgument } from '../domain/errors.js';
import { ALL_JOB_STATES, type JobState } from '../domain/job-state.js';
import { validateQueueName, validateTypeName } from '../domain/names.js';
import { MAX_UPCOMING } from './schedules.js';
import type { DeadLetterSelection, JobFilter } from '../store/job-store.js';

/**
 * Validation of admin requests shared by every transport (gRPC AdminService, the HTTP JSON
 * API): one set of rules and messages, so `curl` and `grpcurl` users see the same errors.
 * Field names in messages are the caller's (`filter.queue` for gRPC, `queue` for HTTP).
 */

/** A dead-letter selection as a caller states it; `all` must be explicit to select everything. */
export interface DeadLetterSelectionInput {
  ids?: readonly string[];
  queue?: string;
  type?: string;
  deadBefore?: number;
  all?: boolean;
}

export function deadLetterSelection(input: DeadLetterSelectionInput, prefix = ''): DeadLetterSelection {
  const selection: DeadLetterSelection = {};
  if (input.ids && input.ids.length > 0) selection.ids = [...input.ids];
  if (input.queue) selection.queue = validateQueueName(input.queue, `${prefix}queue`);
  if (input.type) selection.type = validateTypeName(input.type, `${prefix}type`);
  if (input.deadBefore !== undefined) selection.deadBefore = input.deadBefore;
  const narrowed = Object.keys(selection).length > 0;
  if (input.all && narrowed) throw invalidArgument(`${prefix}all selects every dead job; do not combine it with other fields`);
  if (!input.all && !narrowed) throw invalidArgument(`${prefix === '' ? 'the selection' : prefix.slice(0, -1)} selects nothing: name ids, a queue, a type or a dead-before time, or set all = true`);
  return selection;
}

export interface JobFilterInput {
  queue?: string;
  state?: string;
  type?: string;
  groupKey?: string;
}

/** A job listing filter; an empty field means "any". */
export function jobFilter(input: JobFilterInput): JobFilter {
  return {
    queue: input.queue ? validateQueueName(input.queue) : undefined,
    state: input.state ? jobStateName(input.state) : undefined,
    type: input.type ? validateTypeName(input.type) : undefined,
    groupKey: input.groupKey || undefined,
  };
}

export function jobStateName(value: string, field = 'state'): JobState {
  if ((ALL_JOB_STATES as readonly string[]).includes(value)) return value as JobState;
  throw invalidArgument(`${field} ${JSON.stringify(value.slice(0, 40))} is not a job state: use one of ${ALL_JOB_STATES.join(', ')}`);
}

export const MAX_PAGE_SIZE = 1000;
export const DEFAULT_PAGE_SIZE = 100;

/** 0 = the default page size. */
export function pageSize(requested: number, field = 'page_size'): number {
  if (requested === 0) return DEFAULT_PAGE_SIZE;
  if (!Number.isInteger(requested) || requested < 0 || requested > MAX_PAGE_SIZE) {
    throw invalidArgument(`${field} must be 1..${MAX_PAGE_SIZE}, got ${requested}`);
  }
  return requested;
}

/** Keyset page tokens: opaque to clients, just the last seq. */
export function encodePageToken(seq: number): string {
  return Buffer.from(`seq:${seq}`).toString('base64url');
}

export function decodePageToken(token: string, field = 'page_token'): number | undefined {
  if (token === '') return undefined;
  const match = /^seq:(\d+)$/.exec(Buffer.from(token, 'base64url').toString());
  if (!match) throw invalidArgument(`${field} is not a token returned by this API`);
  return Number(match[1]);
}

/** Schedule list page tokens: the last name of the page (schedules are listed by name). */
export function encodeNameToken(name: string): string {
  return Buffer.from(`name:${name}`).toString('base64url');
}

export function decodeNameToken(token: string, field = 'page_token'): string | undefined {
  if (token === '') return undefined;
  const text = Buffer.from(token, 'base64url').toString();
  if (!text.startsWith('name:')) throw invalidArgument(`${field} is not a token returned by this API`);
  return text.slice(5);
}

/** Next fire times a schedule answer previews when the caller does not say. */
export const DEFAULT_UPCOMING = 5;

/** How many next fire times to preview: 0 = the default, at most MAX_UPCOMING. */
export function upcomingCount(requested: number, field = 'upcoming_count'): number {
  if (requested > MAX_UPCOMING) throw invalidArgument(`${field} must be 0..${MAX_UPCOMING}, got ${requested}`);
  return requested || DEFAULT_UPCOMING;
}
