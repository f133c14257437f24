import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Server, ServerCredentials, type UntypedServiceImplementation } from '@grpc/grpc-js';
import { HealthImplementation, type ServingStatus } from 'grpc-health-check';
import type { Broker } from '../broker/broker.js';
import type { Logger } from '../log.js';
import type { Security } from '../auth/security.js';
import { ProducerServiceService } from '../../clients/typescript/src/gen/sluice/v1/producer.js';
import { WorkerServiceService } from '../../clients/typescript/src/gen/sluice/v1/worker.js';
import { AdminServiceService } from '../../clients/typescript/src/gen/sluice/v1/admin.js';
import { ScheduleServiceService } from '../../clients/typescript/src/gen/sluice/v1/schedule.js';
import { producerService } from './producer-service.js';
import { workerService } from './worker-service.js';
import { adminService } from './admin-service.js';
import { scheduleService } from './schedule-service.js';
import { addLazyReflection } from './lazy-reflection.js';
import { guardService, int32Fields } from './decode-guard.js';
import { decodeConsumeRequest } from './consume-decoding.js';
import { withEnqueueStreamCodec } from './enqueue-stream-codec.js';

export const SERVICE_NAMES = ['sluice.v1.ProducerService', 'sluice.v1.WorkerService', 'sluice.v1.AdminService', 'sluice.v1.ScheduleService'] as const;

/** proto/ sits at the repository (or image) root, above both src/ and dist/src/. */
export function findProtoDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    if (existsSync(join(dir, 'proto', 'sluice', 'v1', 'producer.proto'))) return join(dir, 'proto');
    dir = dirname(dir);
  }
  throw new Error('cannot find the proto/ directory next to the broker');
}

/**
 * Consume encodes its own messages (worker-service.ts encodeResponse): bytes go out as they
 * are. Its requests are read by the hand-written decoder (consume-decoding.ts: the same
 * messages as the generated one).
 */
function passEncodedResponses(definition: typeof WorkerServiceService): typeof WorkerServiceService {
  const serialize = definition.consume.responseSerialize;
  return {
    ...definition,
    consume: {
      ...definition.consume,
      requestDeserialize: decodeConsumeRequest,
      responseSerialize: (value) => (Buffer.isBuffer(value) ? value : serialize(value)),
    },
  };
}

export interface GrpcServer {
  server: Server;
  port: number;
  setServing(serving: boolean): void;
  /** Writes fail (a full disk): the overall status and ProducerService report NOT_SERVING; Worker and Admin stay SERVING (reads work). */
  setWritable(writable: boolean): void;
}

export async function startGrpcServer(broker: Broker, address: string, log: Logger, security?: Security): Promise<GrpcServer> {
  // A job's queue for the auth check; undefined when there is no such job (the handler answers NOT_FOUND).
  const jobQueue = (id: string): Promise<string | undefined> =>
    broker.reads.store.getJob(id).then(
      (row) => row?.queue,
      () => undefined,
    );
  const server = new Server({
    // Authentication and authorization of every call (src/auth/rpc-policy.ts); none when auth is off.
    interceptors: security?.grpcInterceptors(jobQueue) ?? [],
    // Room for a full batch of payloads; single payloads are limited by --max-payload-bytes.
    'grpc.max_receive_message_length': Math.max(64 * 1024 * 1024, broker.config.maxPayloadBytes * 2),
    // Detect dead worker connections in seconds, and let idle streams live behind proxies.
    'grpc.keepalive_time_ms': 30_000,
    'grpc.keepalive_timeout_ms': 10_000,
    'grpc.keepalive_permit_without_calls': 1,
    'grpc.http2.min_ping_interval_without_data_ms': 5_000,
  });
  // Guarded: a request that cannot be decoded is INVALID_ARGUMENT, not grpc-js's INTERNAL.
  server.addService(...guardService(withEnqueueStreamCodec(ProducerServiceService), producerService(broker, log) as unknown as UntypedServiceImplementation));
  server.addService(
    ...guardService(passEncodedResponses(WorkerServiceService), workerService(broker, log) as unknown as UntypedServiceImplementation, {
      consume: int32Fields({ 2: 'credit' }),
    }),
  );
  server.addService(...guardService(AdminServiceService, adminService(broker, log) as unknown as UntypedServiceImplementation));
  server.addService(...guardService(ScheduleServiceService, scheduleService(broker, log) as unknown as UntypedServiceImplementation));

  const statuses = (status: ServingStatus) => Object.fromEntries(['', ...SERVICE_NAMES].map((name) => [name, status]));
  // NOT_SERVING until the broker has started (it turns SERVING through setServing).
  const health = new HealthImplementation(statuses('NOT_SERVING'));
  health.addToServer(server);

  // Reflection describes our services and the standard ones, so grpcurl needs no .proto file.
  // Built on its first call (lazy-reflection.ts); the proto/ directory is looked up now, so a
  // broken installation still fails at start.
  addLazyReflection(server, findProtoDir(), ['sluice/v1/producer.proto', 'sluice/v1/worker.proto', 'sluice/v1/admin.proto', 'sluice/v1/schedule.proto']);

  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(address, security?.grpcCredentials() ?? ServerCredentials.createInsecure(), (error, boundPort) => (error ? reject(error) : resolve(boundPort)));
  });
  log.info({ address, port, tls: Boolean(security?.tls) }, 'gRPC listening');
  let serving = true;
  let writable = true;
  const publish = () => {
    const of = (ok: boolean): ServingStatus => (ok ? 'SERVING' : 'NOT_SERVING');
    for (const name of ['', 'sluice.v1.ProducerService']) health.setStatus(name, of(serving && writable));
    for (const name of ['sluice.v1.WorkerService', 'sluice.v1.AdminService']) health.setStatus(name, of(serving));
  };
  return {
    server,
    port,
    setServing(next) {
      serving = next;
      publish();
    },
    setWritable(next) {
      writable = next;
      publish();
    },
  };
}
