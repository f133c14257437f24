import { credentials as grpcCredentials, type ChannelCredentials, type ClientOptions } from '@grpc/grpc-js';
import { ProducerServiceClient } from './gen/sluice/v1/producer.js';
import { WorkerServiceClient } from './gen/sluice/v1/worker.js';
import { AdminServiceClient } from './gen/sluice/v1/admin.js';

export interface SluiceClients {
  producer: ProducerServiceClient;
  worker: WorkerServiceClient;
  admin: AdminServiceClient;
  close(): void;
}

export interface ConnectOptions {
  credentials?: ChannelCredentials;
  channelOptions?: Partial<ClientOptions>;
}

/** Keepalive that lets idle streams survive proxies and notices a dead broker in seconds. */
export const DEFAULT_CHANNEL_OPTIONS: Partial<ClientOptions> = {
  'grpc.keepalive_time_ms': 10_000,
  'grpc.keepalive_timeout_ms': 5_000,
  'grpc.keepalive_permit_without_calls': 1,
};

/** The generated gRPC clients for one broker address, sharing one channel. */
export function connect(address: string, options: ConnectOptions = {}): SluiceClients {
  const creds = options.credentials ?? grpcCredentials.createInsecure();
  const channelOptions = { ...DEFAULT_CHANNEL_OPTIONS, ...options.channelOptions };
  const producer = new ProducerServiceClient(address, creds, channelOptions);
  const shared = { ...channelOptions, channelOverride: producer.getChannel() };
  const worker = new WorkerServiceClient(address, creds, shared);
  const admin = new AdminServiceClient(address, creds, shared);
  return {
    producer,
    worker,
    admin,
    close() {
      producer.close();
    },
  };
}

/** Calls a generated unary method as a promise. */
export function unary<Req, Res>(
  method: (req: Req, callback: (error: Error | null, res?: Res) => void) => unknown,
  client: object,
  request: Req,
): Promise<Res> {
  return new Promise<Res>((resolve, reject) => {
    method.call(client, request, (error: Error | null, res?: Res) => (error ? reject(error) : resolve(res as Res)));
  });
}
