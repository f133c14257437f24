import { SluiceError } from '../domain/errors.js';
import { permissionDenied } from './authenticator.js';
import type { Principal, Scope } from './grants.js';

/**
 * Which scope each RPC needs, and on which queues: the whole authorization policy of the
 * gRPC API in one table. The interceptor (grpc-auth.ts) applies it to every call.
 *
 * - `queue`: the request names its queues; a token limited to patterns must match every one.
 *   A request that names none (ListJobs without a queue, a dead-letter filter without a
 *   queue) needs the scope on every queue: a limited token must name its queue.
 * - `job`: the request names a job by id; the job's queue must be allowed. A job on a queue
 *   the token cannot see answers NOT_FOUND, exactly like a job that does not exist, so ids of
 *   other tenants' jobs cannot be probed.
 * - `items`: a stream whose every message names the queues of its items (EnqueueStream). Each
 *   message is checked, item by item; a refused item is answered with its own
 *   PERMISSION_DENIED (`itemRefusals`) and the stream goes on, like a bad item of a batch.
 * - `filtered`: a listing across queues (ListQueues, ListWorkers) shows only what the token
 *   may read.
 * - `unrestricted`: the scope on every queue (Backup, schedules, and any RPC not listed here:
 *   an RPC added without a rule is closed to all but unrestricted admin tokens).
 * - `open`: health and reflection, public unless --public-endpoints removes them; then any
 *   authenticated caller may use them.
 */
export type RpcRule =
  | { kind: 'queue'; scopes: Scope[]; queues: (req: any) => string[] | undefined }
  | { kind: 'job'; scopes: Scope[]; id: (req: any) => string }
  | { kind: 'items'; scopes: Scope[]; queues: (req: any) => string[] }
  | { kind: 'filtered'; scopes: Scope[]; filter: (principal: Principal, res: any) => unknown }
  | { kind: 'unrestricted'; scopes: Scope[] }
  | { kind: 'open'; endpoint: PublicEndpoint };

export type PublicEndpoint = 'health' | 'reflection' | 'metrics';
export const PUBLIC_ENDPOINTS: readonly PublicEndpoint[] = ['health', 'reflection', 'metrics'];

const queue = (scopes: Scope[], queues: (req: any) => string[] | undefined): RpcRule => ({ kind: 'queue', scopes, queues });
const job = (scopes: Scope[], id: (req: any) => string = (req) => req.id): RpcRule => ({ kind: 'job', scopes, id });
const unrestricted = (...scopes: Scope[]): RpcRule => ({ kind: 'unrestricted', scopes });
const named = (req: { queue?: string }) => (req.queue ? [req.queue] : []);
const filterQueue = (req: { filter?: { queue?: string } }) => (req.filter?.queue ? [req.filter.queue] : []);

const P = '/sluice.v1.ProducerService/';
const W = '/sluice.v1.WorkerService/';
const A = '/sluice.v1.AdminService/';
const S = '/sluice.v1.ScheduleService/';

export const RPC_RULES: Record<string, RpcRule> = {
  [`${P}Enqueue`]: queue(['produce'], named),
  [`${P}EnqueueBatch`]: queue(['produce'], (req: { jobs: { queue: string }[] }) => req.jobs.map((j) => j.queue)),
  [`${P}EnqueueStream`]: { kind: 'items', scopes: ['produce'], queues: (req: { jobs?: { queue: string }[] }) => (req.jobs ?? []).map((j) => j.queue) },
  [`${P}GetJob`]: job(['read', 'produce']),
  [`${P}WatchJob`]: job(['read', 'produce']),
  [`${P}CancelJob`]: job(['produce', 'admin']),
  [`${P}ExplainJob`]: job(['read', 'produce']),
  // Only the first message subscribes; a first message without subscribe is the handler's
  // INVALID_ARGUMENT (undefined: nothing to check here).
  [`${W}Consume`]: queue(['consume'], (req: { subscribe?: { queues: string[] } }) => req.subscribe?.queues),
  [`${A}ListQueues`]: {
    kind: 'filtered',
    scopes: ['read'],
    filter: (p, res: { queues: { name: string }[] }) => ({ ...res, queues: res.queues.filter((q) => p.allows('read', q.name)) }),
  },
  [`${A}ListWorkers`]: {
    kind: 'filtered',
    scopes: ['read'],
    filter: (p, res: { workers: { queues: string[] }[] }) => ({ ...res, workers: res.workers.filter((w) => w.queues.every((q) => p.allows('read', q))) }),
  },
  [`${A}GetQueue`]: queue(['read'], named),
  [`${A}ListJobs`]: queue(['read'], named),
  [`${A}ListDeadLetters`]: queue(['read'], named),
  [`${A}GetJobHistory`]: job(['read']),
  [`${A}PauseQueue`]: queue(['admin'], named),
  [`${A}ResumeQueue`]: queue(['admin'], named),
  [`${A}UpdateQueue`]: queue(['admin'], named),
  [`${A}DeleteQueue`]: queue(['admin'], named),
  [`${A}ReplayDeadLetters`]: queue(['admin'], filterQueue),
  [`${A}PurgeDeadLetters`]: queue(['admin'], filterQueue),
  [`${A}Backup`]: unrestricted('admin'),
  [`${S}GetSchedule`]: unrestricted('read'),
  [`${S}ListSchedules`]: unrestricted('read'),
  [`${S}ListScheduleRuns`]: unrestricted('read'),
};

const FALLBACK: RpcRule = unrestricted('admin');

export function ruleFor(path: string): RpcRule {
  const rule = RPC_RULES[path];
  if (rule) return rule;
  if (path.startsWith('/grpc.health.v1.Health/')) return { kind: 'open', endpoint: 'health' };
  if (path.startsWith('/grpc.reflection.')) return { kind: 'open', endpoint: 'reflection' };
  return FALLBACK;
}

/** RPC name for messages: "/sluice.v1.ProducerService/Enqueue" -> "Enqueue". */
const rpcName = (path: string) => path.slice(path.lastIndexOf('/') + 1);
const quote = (s: string) => JSON.stringify(s.length > 140 ? `${s.slice(0, 140)}...` : s);
const describe = (p: Principal, scopes: Scope[]) => scopes.map((s) => p.describe(s)).join(', ');

/** Before any message: the principal must hold one of the rule's scopes at all. */
export function checkScope(principal: Principal, rule: RpcRule, path: string): void {
  if (rule.kind === 'open') return;
  if (!rule.scopes.some((s) => principal.has(s))) {
    throw permissionDenied(`${principal.name} may not call ${rpcName(path)}: it needs the ${rule.scopes.join(' or ')} scope (it has: ${principal.describeAll()})`);
  }
  if (rule.kind === 'unrestricted' && !rule.scopes.some((s) => principal.unrestricted(s))) {
    throw permissionDenied(`${principal.name} may not call ${rpcName(path)}: it needs the ${rule.scopes.join(' or ')} scope on every queue (it has: ${describe(principal, rule.scopes)})`);
  }
}

/** A job's queue by id (undefined when there is no such job); a store read, so it may be async. */
export type JobQueueLookup = (id: string) => string | undefined | Promise<string | undefined>;

/**
 * With the first request message: its queues must be allowed. `jobQueue` finds a job's
 * queue by id (undefined when there is no such job: the handler answers NOT_FOUND itself).
 * Returns a promise only when it had to wait for `jobQueue` (job rules); it throws or rejects
 * with the refusal.
 */
export function checkRequest(principal: Principal, rule: RpcRule, path: string, req: any, jobQueue: JobQueueLookup): void | Promise<void> {
  if (rule.kind === 'queue') {
    if (rule.scopes.some((s) => principal.unrestricted(s))) return;
    const queues = rule.queues(req);
    if (queues === undefined) return;
    if (queues.length === 0) {
      throw permissionDenied(`${principal.name} is limited to queues (${describe(principal, rule.scopes)}): name the queue in the ${rpcName(path)} request`);
    }
    for (const q of queues) {
      if (!rule.scopes.some((s) => principal.allows(s, q))) {
        throw permissionDenied(`${principal.name} may not call ${rpcName(path)} on queue ${quote(q)} (it has: ${describe(principal, rule.scopes)})`);
      }
    }
  } else if (rule.kind === 'job') {
    if (rule.scopes.some((s) => principal.unrestricted(s))) return;
    const id = String(rule.id(req) ?? '');
    if (!id || id.length > 64) return; // the handler rejects it as INVALID_ARGUMENT / NOT_FOUND
    const allowed = (q: string | undefined) => {
      if (q !== undefined && !rule.scopes.some((s) => principal.allows(s, q))) throw new SluiceError('NOT_FOUND', `job ${id} not found`);
    };
    const q = jobQueue(id);
    return q instanceof Promise ? q.then(allowed) : allowed(q);
  }
}

/** Per message of an `items` stream: the refused items' messages by index (set only when some are refused). */
const refusals = new WeakMap<object, Map<number, string>>();

/** What the handler reads: why item `index` of this message was refused, if it was. */
export function itemRefusals(message: object): ReadonlyMap<number, string> | undefined {
  return refusals.get(message);
}

/**
 * Every message of an `items` stream: each item's queue must be allowed. Refused items are
 * recorded on the message for the handler, which answers them PERMISSION_DENIED one by one.
 */
export function checkItems(principal: Principal, rule: Extract<RpcRule, { kind: 'items' }>, path: string, req: object): void {
  if (rule.scopes.some((s) => principal.unrestricted(s))) return;
  const queues = rule.queues(req);
  let refused: Map<number, string> | undefined;
  for (let i = 0; i < queues.length; i++) {
    const q = queues[i]!;
    if (rule.scopes.some((s) => principal.allows(s, q))) continue;
    (refused ??= new Map()).set(i, `${principal.name} may not call ${rpcName(path)} on queue ${quote(q)} (it has: ${describe(principal, rule.scopes)})`);
  }
  if (refused) refusals.set(req, refused);
}

/** Whether responses of this rule must be filtered for the principal. */
export function responseFilter(principal: Principal, rule: RpcRule): ((res: any) => unknown) | undefined {
  if (rule.kind !== 'filtered' || rule.scopes.some((s) => principal.unrestricted(s))) return undefined;
  return (res) => rule.filter(principal, res);
}
