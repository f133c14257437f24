import type { sendUnaryData, ServerUnaryCall, ServerWritableStream } from '@grpc/grpc-js';
import type { Broker, EnqueueOutcome } from '../broker/broker.js';
import type { JobChange } from '../broker/job-watchers.js';
import { echo, invalidArgument } from '../domain/errors.js';
import { JobState, isTerminal } from '../domain/job-state.js';
import { validateJobId } from '../domain/job-id.js';
import type { Logger } from '../log.js';
import type {
  CancelJobRequest,
  EnqueueBatchRequest,
  EnqueueBatchResponse,
  EnqueueRequest,
  EnqueueResponse,
  ExplainJobRequest,
  ExplainJobResponse,
  GetJobRequest,
  JobEvent,
  ProducerServiceServer,
  WatchJobRequest,
} from '../../clients/typescript/src/gen/sluice/v1/producer.js';
import type { Job } from '../../clients/typescript/src/gen/sluice/v1/job.js';
import { jobToWire, jsonValue, stateToWire } from './convert.js';
import { parseEnqueueRequest } from './enqueue-input.js';
import { itemFailure, outcomeResult } from './enqueue-result.js';
import { enqueueStream } from './enqueue-stream.js';
import { traceContextOfCall, withTraceContext } from './trace-context.js';
import { explanationToWire } from './limits-wire.js';
import { toServiceError } from './status.js';

export function producerService(broker: Broker, log: Logger): ProducerServiceServer {
  const limits = broker.config;
  const fail = <T>(callback: sendUnaryData<T>, error: unknown, context: Record<string, unknown>) =>
    callback(toServiceError(error, log, context) as Parameters<sendUnaryData<T>>[0], null);

  return {
    enqueue(call: ServerUnaryCall<EnqueueRequest, EnqueueResponse>, callback: sendUnaryData<EnqueueResponse>) {
      let input;
      try {
        input = parseEnqueueRequest(call.request, limits);
        const trace = traceContextOfCall(call.metadata);
        if (trace) input = withTraceContext(input, trace);
      } catch (error) {
        return fail(callback, error, { rpc: 'Enqueue', queue: call.request.queue });
      }
      broker.enqueue([input], true).then(
        ([outcome]) => {
          const ok = outcome as Exclude<EnqueueOutcome, { error: unknown }>;
          callback(null, { id: ok.id, deduplicated: ok.deduplicated, state: stateToWire(ok.state) });
        },
        (error) => fail(callback, error, { rpc: 'Enqueue', queue: input.queue }),
      );
    },

    enqueueBatch(call: ServerUnaryCall<EnqueueBatchRequest, EnqueueBatchResponse>, callback: sendUnaryData<EnqueueBatchResponse>) {
      const { jobs, atomic } = call.request;
      try {
        if (jobs.length === 0) throw invalidArgument('jobs is empty');
        if (jobs.length > limits.maxBatchSize) throw invalidArgument(`batch has ${jobs.length} jobs, over the limit of ${limits.maxBatchSize} (--max-batch-size)`);
      } catch (error) {
        return fail(callback, error, { rpc: 'EnqueueBatch' });
      }
      // Validate every item first: an atomic batch fails as a whole, a non-atomic one item by item.
      const trace = traceContextOfCall(call.metadata);
      const parsed = jobs.map((req, index) => {
        try {
          const input = parseEnqueueRequest(req, limits);
          return { input: trace ? withTraceContext(input, trace) : input };
        } catch (error) {
          return { error: error as Error, index };
        }
      });
      const firstBad = parsed.find((p) => p.error);
      if (atomic && firstBad) {
        const error = invalidArgument(`jobs[${firstBad.index}]: ${firstBad.error!.message}`);
        return fail(callback, error, { rpc: 'EnqueueBatch' });
      }
      const valid = parsed.filter((p) => p.input).map((p) => p.input!);
      broker.enqueue(valid, atomic).then(
        (outcomes) => {
          let next = 0;
          const results = parsed.map((p) => (p.error ? itemFailure(p.error, log, 'EnqueueBatch') : outcomeResult(outcomes[next++]!)));
          callback(null, { results });
        },
        (error) => fail(callback, error, { rpc: 'EnqueueBatch' }),
      );
    },

    enqueueStream: enqueueStream(broker, log),

    getJob(call: ServerUnaryCall<GetJobRequest, Job>, callback: sendUnaryData<Job>) {
      Promise.resolve()
        .then(() => broker.reads.getJob(validateJobId(call.request.id)))
        .then(
          (row) => callback(null, jobToWire(row)),
          (error) => fail(callback, error, { rpc: 'GetJob', jobId: echo(call.request.id) }),
        );
    },

    explainJob(call: ServerUnaryCall<ExplainJobRequest, ExplainJobResponse>, callback: sendUnaryData<ExplainJobResponse>) {
      Promise.resolve()
        .then(() => {
          if (!call.request.id) throw invalidArgument('id is required');
          return broker.reads.explainJob(call.request.id);
        })
        .then(
          (explanation) => callback(null, explanationToWire(explanation)),
          (error) => fail(callback, error, { rpc: 'ExplainJob', jobId: call.request.id }),
        );
    },

    cancelJob(call: ServerUnaryCall<CancelJobRequest, Job>, callback: sendUnaryData<Job>) {
      const { id, reason } = call.request;
      try {
        validateJobId(id);
      } catch (error) {
        return fail(callback, error, { rpc: 'CancelJob' });
      }
      broker.cancelJob(id, reason).then(
        (row) => callback(null, jobToWire(row)),
        (error) => fail(callback, error, { rpc: 'CancelJob', jobId: id }),
      );
    },

    watchJob(call: ServerWritableStream<WatchJobRequest, JobEvent>) {
      const { id } = call.request;
      let unwatch: (() => void) | undefined;
      let ended = false;
      const stop = () => {
        unwatch?.();
        unwatch = undefined;
      };
      const end = () => {
        ended = true;
        stop();
        call.end();
      };
      const send = (change: JobChange) => {
        if (ended) return;
        call.write({
          jobId: change.jobId,
          state: stateToWire(change.state),
          attempt: change.attempt,
          progress: jsonValue(change.progress ?? null),
          result: jsonValue(change.result ?? null),
          error: change.error ?? '',
          at: new Date(change.at),
        });
        if (isTerminal(change.state)) end();
      };
      call.on('cancelled', stop);
      call.on('close', stop);
      // Changes that arrive before the current state is written wait for it, in order.
      let early: JobChange[] | undefined = [];
      try {
        validateJobId(id);
        // Watch first, then read: no change can slip between the two.
        unwatch = broker.watchJob(id, (change) => (early ? early.push(change) : send(change)));
      } catch (error) {
        stop();
        call.emit('error', toServiceError(error, log, { rpc: 'WatchJob', jobId: echo(id) }));
        return;
      }
      broker.reads.getJob(id).then(
        (row) => {
          const waiting = early ?? [];
          early = undefined;
          if (ended || !unwatch) return; // the caller went away while the job was read
          call.write({
            jobId: row.id,
            state: stateToWire(row.state),
            attempt: row.attempt,
            progress: jsonValue(row.progress),
            result: jsonValue(row.result),
            // Only an error that explains this state: a completed or running job's last error
            // belongs to an earlier, failed attempt (it stays in the job's error history).
            error: row.state === JobState.Completed || row.state === JobState.Active ? '' : (row.last_error ?? ''),
            at: new Date(row.updated_at),
          });
          if (isTerminal(row.state)) return end();
          for (const change of waiting) send(change);
        },
        (error) => {
          early = undefined;
          stop();
          call.emit('error', toServiceError(error, log, { rpc: 'WatchJob', jobId: echo(id) }));
        },
      );
    },
  };
}
