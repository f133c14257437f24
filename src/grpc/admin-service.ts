import type { sendUnaryData, ServerUnaryCall } from '@grpc/grpc-js';
import type { Broker } from '../broker/broker.js';
import type { QueueInfo } from '../broker/broker-reads.js';
import { validateRetryPolicy } from '../domain/backoff.js';
import { invalidArgument } from '../domain/errors.js';
import { JobState } from '../domain/job-state.js';
import { validateJobId } from '../domain/job-id.js';
import { MAX_DURATION_MS, inRange } from '../domain/ranges.js';
import { validateQueueName, validateTypeName } from '../domain/names.js';
import type { DeadLetterSelection, JobRow } from '../store/types.js';
import type { Logger } from '../log.js';
import type {
  AdminServiceServer,
  DeadLetterFilter,
  ListJobsResponse,
  Queue,
} from '../../clients/typescript/src/gen/sluice/v1/admin.js';
import { decodePageToken, encodePageToken, jobToWire, pageSize, retryToWire, stateFilterFromWire } from './convert.js';
import { toServiceError } from './status.js';
import { limitsFromWire, limitsToWire } from './limits-wire.js';
import { deadLetterSelection as sharedDeadLetterSelection } from '../broker/admin-input.js';

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

function queueToWire(q: QueueInfo, broker: Broker): Queue {
  const retention = broker.retentionPolicy(q.settings.name);
  return {
    retentionMaxAgeMs: retention.maxAgeMs,
    retentionMaxCount: retention.maxCount,
    name: q.settings.name,
    paused: q.settings.paused,
    counts: q.counts,
    maxAttempts: q.settings.maxAttempts ?? 0,
    retry: retryToWire(q.settings.retry),
    leaseTimeoutMs: q.settings.leaseTimeoutMs ?? 0,
    consumers: q.consumers,
    limits: limitsToWire(q.settings.limits),
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
  return sharedDeadLetterSelection(
    { ids: filter.ids, queue: filter.queue, type: filter.type, deadBefore: filter.deadBefore?.getTime(), all: filter.all },
    'filter.',
  );
}

export function adminService(broker: Broker, log: Logger): AdminServiceServer {
  return {
    listQueues: unary(log, 'ListQueues', async () => ({ queues: (await broker.reads.listQueues()).map((q) => queueToWire(q, broker)) })),
    getQueue: unary(log, 'GetQueue', async (req: { queue: string }) => queueToWire(await broker.reads.getQueue(validateQueueName(req.queue)), broker)),
    pauseQueue: unary(log, 'PauseQueue', async (req) => queueToWire(await broker.setPaused(validateQueueName(req.queue), true, req.createIfMissing), broker)),
    resumeQueue: unary(log, 'ResumeQueue', async (req: { queue: string }) => queueToWire(await broker.setPaused(validateQueueName(req.queue), false), broker)),
    updateQueue: unary(log, 'UpdateQueue', async (req) => {
      const name = validateQueueName(req.queue);
      if (req.leaseTimeoutMs !== 0) inRange(req.leaseTimeoutMs, 'lease_timeout_ms (0 = unchanged)', 50, MAX_DURATION_MS);
      inRange(req.maxAttempts, 'max_attempts (0 = unchanged)', 0, 1_000_000);
      const retry = req.retry && validateRetryPolicy(req.retry);
      const limits = req.limits && limitsFromWire(req.limits);
      const info = await broker.updateQueue(name, {
        maxAttempts: req.maxAttempts || undefined,
        retry,
        leaseTimeoutMs: req.leaseTimeoutMs || undefined,
        retentionMaxAgeMs: req.retentionMaxAgeMs,
        retentionMaxCount: req.retentionMaxCount,
        limits,
        maxQueued: req.maxQueued === undefined ? undefined : inRange(req.maxQueued, 'max_queued (0 = remove)', 0, MAX_QUEUED_CAP),
        maxQueuedPerGroup: req.maxQueuedPerGroup === undefined ? undefined : inRange(req.maxQueuedPerGroup, 'max_queued_per_group (0 = remove)', 0, MAX_QUEUED_CAP),
      }, req.createIfMissing);
      return queueToWire(info, broker);
    }),
    deleteQueue: unary(log, 'DeleteQueue', async (req) => {
      await broker.deleteQueue(validateQueueName(req.queue));
      return {};
    }),
    listJobs: unary(log, 'ListJobs', async (req) => {
      const size = pageSize(req.pageSize);
      const rows = await broker.reads.listJobs(
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
    listDeadLetters: unary(log, 'ListDeadLetters', async (req) => {
      const size = pageSize(req.pageSize);
      const rows = await broker.reads.listJobs(
        { queue: req.queue ? validateQueueName(req.queue) : undefined, state: JobState.Dead, type: req.type ? validateTypeName(req.type) : undefined },
        size,
        decodePageToken(req.pageToken),
      );
      return page(rows, size);
    }),
    replayDeadLetters: unary(log, 'ReplayDeadLetters', async (req) => ({ replayed: await broker.replayDeadLetters(deadLetterSelection(req.filter)) })),
    purgeDeadLetters: unary(log, 'PurgeDeadLetters', async (req) => ({ purged: await broker.purgeDeadLetters(deadLetterSelection(req.filter)) })),
    getJobHistory: unary(log, 'GetJobHistory', async (req) => {
      if (!req.id) throw invalidArgument('id is required');
      return {
        entries: (await broker.reads.jobHistory(req.id)).map((e) => ({
          at: new Date(e.at),
          kind: e.kind,
          attempt: e.attempt,
          workerId: e.workerId,
          leaseId: e.leaseId,
          error: e.error,
          detail: e.detail,
        })),
      };
    }),
    backup: unary(log, 'Backup', async (req) => broker.backup(req.path)),
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
