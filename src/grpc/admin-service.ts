import type { sendUnaryData, ServerUnaryCall } from '@grpc/grpc-js';
import type { Broker, QueueInfo } from '../broker/broker.js';
import { validateRetryPolicy } from '../domain/backoff.js';
import { invalidArgument } from '../domain/errors.js';
import { JobState } from '../domain/job-state.js';
import { validateJobId } from '../domain/job-id.js';
import { MAX_DURATION_MS, inRange } from '../domain/ranges.js';
import { validateQueueName, validateTypeName } from '../domain/names.js';
import type { DeadLetterSelection, JobRow } from '../store/job-store.js';
import type { Logger } from '../log.js';
import type {
  AdminServiceServer,
  DeadLetterFilter,
  ListJobsResponse,
  Queue,
} from '../../clients/typescript/src/gen/sluice/v1/admin.js';
import { decodePageToken, encodePageToken, jobToWire, pageSize, retryToWire, stateFilterFromWire } from './convert.js';
import { toServiceError } from './status.js';

/** Wraps a synchronous or async handler body: one error path for every admin RPC. */
function unary<Req, Res>(log: Logger, rpc: string, body: (req: Req) => Res | Promise<Res>) {
  return (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>) => {
    Promise.resolve()
      .then(() => body(call.request))
      .then(
        (res) => callback(null, res),
        (error) => callback(toServiceError(error, log, { rpc }) as Parameters<sendUnaryData<Res>>[0], null),
      );
  };
}

/** Largest admission cap accepted (above any real backlog; keeps the number exact in SQLite and JS). */
const MAX_QUEUED_CAP = 2_147_483_647;

function queueToWire(q: QueueInfo): Queue {
  return {
    name: q.settings.name,
    paused: q.settings.paused,
    counts: q.counts,
    maxAttempts: q.settings.maxAttempts ?? 0,
    retry: retryToWire(q.settings.retry),
    leaseTimeoutMs: q.settings.leaseTimeoutMs ?? 0,
    consumers: q.consumers,
    maxQueued: q.settings.maxQueued ?? 0,
    maxQueuedPerGroup: q.settings.maxQueuedPerGroup ?? 0,
  };
}

/**
 * Most JSON text (payloads, results, progress) in one page beyond its first job. Converting
 * JSON to google.protobuf.Value runs on the event loop, so a page of 1,000 large payloads
 * would stall every other call; past the budget the page ends early with a next_page_token.
 */
const PAGE_JSON_BUDGET_CHARS = 1024 * 1024;

function page(rows: JobRow[], size: number): ListJobsResponse {
  let chars = 0;
  let n = 0;
  while (n < rows.length) {
    const r = rows[n]!;
    chars += r.payload.length + (r.result?.length ?? 0) + (r.progress?.length ?? 0);
    if (n > 0 && chars > PAGE_JSON_BUDGET_CHARS) break;
    n++;
  }
  const cut = n < rows.length;
  return {
    jobs: rows.slice(0, n).map(jobToWire),
    nextPageToken: cut || rows.length === size ? encodePageToken(rows[n - 1]!.seq) : '',
  };
}

function deadLetterSelection(filter: DeadLetterFilter | undefined): DeadLetterSelection {
  if (!filter) throw invalidArgument('filter is required: name ids, a queue, or set all = true');
  const selection: DeadLetterSelection = {};
  if (filter.ids.length > 0) selection.ids = filter.ids.map((id) => validateJobId(id, 'filter.ids'));
  if (filter.queue) selection.queue = validateQueueName(filter.queue, 'filter.queue');
  if (filter.type) selection.type = validateTypeName(filter.type, 'filter.type');
  if (filter.deadBefore) {
    selection.deadBefore = filter.deadBefore.getTime();
    if (!Number.isFinite(selection.deadBefore)) throw invalidArgument('filter.dead_before is not a valid time');
  }
  const narrowed = Object.keys(selection).length > 0;
  if (filter.all && narrowed) throw invalidArgument('filter.all selects every dead job; do not combine it with other fields');
  if (!filter.all && !narrowed) throw invalidArgument('filter selects nothing: name ids, a queue, a type or dead_before, or set all = true');
  return selection;
}

export function adminService(broker: Broker, log: Logger): AdminServiceServer {
  return {
    listQueues: unary(log, 'ListQueues', () => ({ queues: broker.listQueues().map(queueToWire) })),
    getQueue: unary(log, 'GetQueue', (req: { queue: string }) => queueToWire(broker.getQueue(validateQueueName(req.queue)))),
    pauseQueue: unary(log, 'PauseQueue', async (req) => queueToWire(await broker.setPaused(validateQueueName(req.queue), true, req.createIfMissing))),
    resumeQueue: unary(log, 'ResumeQueue', async (req: { queue: string }) => queueToWire(await broker.setPaused(validateQueueName(req.queue), false))),
    updateQueue: unary(log, 'UpdateQueue', async (req) => {
      const name = validateQueueName(req.queue);
      if (req.leaseTimeoutMs !== 0) inRange(req.leaseTimeoutMs, 'lease_timeout_ms (0 = unchanged)', 50, MAX_DURATION_MS);
      inRange(req.maxAttempts, 'max_attempts (0 = unchanged)', 0, 1_000_000);
      const retry = req.retry && validateRetryPolicy(req.retry);
      const info = await broker.updateQueue(name, {
        maxAttempts: req.maxAttempts || undefined,
        retry,
        leaseTimeoutMs: req.leaseTimeoutMs || undefined,
        maxQueued: req.maxQueued === undefined ? undefined : inRange(req.maxQueued, 'max_queued (0 = remove)', 0, MAX_QUEUED_CAP),
        maxQueuedPerGroup: req.maxQueuedPerGroup === undefined ? undefined : inRange(req.maxQueuedPerGroup, 'max_queued_per_group (0 = remove)', 0, MAX_QUEUED_CAP),
      }, req.createIfMissing);
      return queueToWire(info);
    }),
    deleteQueue: unary(log, 'DeleteQueue', async (req) => {
      await broker.deleteQueue(validateQueueName(req.queue));
      return {};
    }),
    listJobs: unary(log, 'ListJobs', (req) => {
      const size = pageSize(req.pageSize);
      const rows = broker.listJobs(
        {
          queue: req.queue ? validateQueueName(req.queue) : undefined,
          state: stateFilterFromWire(req.state),
          type: req.type ? validateTypeName(req.type) : undefined,
          groupKey: req.groupKey || undefined,
        },
        size,
        decodePageToken(req.pageToken),
      );
      return page(rows, size);
    }),
    listDeadLetters: unary(log, 'ListDeadLetters', (req) => {
      const size = pageSize(req.pageSize);
      const rows = broker.listJobs(
        { queue: req.queue ? validateQueueName(req.queue) : undefined, state: JobState.Dead, type: req.type ? validateTypeName(req.type) : undefined },
        size,
        decodePageToken(req.pageToken),
      );
      return page(rows, size);
    }),
    replayDeadLetters: unary(log, 'ReplayDeadLetters', async (req) => ({ replayed: await broker.replayDeadLetters(deadLetterSelection(req.filter)) })),
    purgeDeadLetters: unary(log, 'PurgeDeadLetters', async (req) => ({ purged: await broker.purgeDeadLetters(deadLetterSelection(req.filter)) })),
    listWorkers: unary(log, 'ListWorkers', () => ({
      workers: broker.listSessions().map((s) => ({
        streamId: s.id,
        workerId: s.subscription.workerId,
        queues: s.subscription.queues,
        types: s.subscription.types,
        labels: s.subscription.labels,
        credit: s.credit.available,
        activeJobIds: [...s.leases.keys()],
        connectedAt: new Date(s.connectedAt),
        lastSeenAt: new Date(s.lastSeenAt),
        peer: s.peer,
      })),
    })),
  };
}
