import type { sendUnaryData, ServerUnaryCall } from '@grpc/grpc-js';
import type { Broker, QueueInfo } from '../broker/broker.js';
import { validateRetryPolicy } from '../domain/backoff.js';
import { invalidArgument } from '../domain/errors.js';
import { JobState } from '../domain/job-state.js';
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

function queueToWire(q: QueueInfo): Queue {
  return {
    name: q.settings.name,
    paused: q.settings.paused,
    counts: q.counts,
    maxAttempts: q.settings.maxAttempts ?? 0,
    retry: retryToWire(q.settings.retry),
    leaseTimeoutMs: q.settings.leaseTimeoutMs ?? 0,
    consumers: q.consumers,
  };
}

function page(rows: JobRow[], size: number): ListJobsResponse {
  return {
    jobs: rows.map(jobToWire),
    nextPageToken: rows.length === size ? encodePageToken(rows[rows.length - 1]!.seq) : '',
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
    listQueues: unary(log, 'ListQueues', () => ({ queues: broker.listQueues().map(queueToWire) })),
    getQueue: unary(log, 'GetQueue', (req: { queue: string }) => queueToWire(broker.getQueue(validateQueueName(req.queue)))),
    pauseQueue: unary(log, 'PauseQueue', async (req) => queueToWire(await broker.setPaused(validateQueueName(req.queue), true, req.createIfMissing))),
    resumeQueue: unary(log, 'ResumeQueue', async (req: { queue: string }) => queueToWire(await broker.setPaused(validateQueueName(req.queue), false))),
    updateQueue: unary(log, 'UpdateQueue', async (req) => {
      const name = validateQueueName(req.queue);
      if (req.leaseTimeoutMs !== 0 && req.leaseTimeoutMs < 50) throw invalidArgument(`lease_timeout_ms must be >= 50, got ${req.leaseTimeoutMs}`);
      const retry = req.retry && validateRetryPolicy(req.retry);
      const info = await broker.updateQueue(name, {
        maxAttempts: req.maxAttempts || undefined,
        retry,
        leaseTimeoutMs: req.leaseTimeoutMs || undefined,
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
