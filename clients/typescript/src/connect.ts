import { credentials as grpcCredentials, Metadata, type ChannelCredentials, type ClientOptions } from '@grpc/grpc-js';
import { ProducerServiceClient } from './gen/sluice/v1/producer.js';
import { WorkerServiceClient } from './gen/sluice/v1/worker.js';
import { AdminServiceClient } from './gen/sluice/v1/admin.js';
import { BrokerReachability } from './reachability.js';

export interface SluiceClients {
  producer: ProducerServiceClient;
  worker: WorkerServiceClient;
  admin: AdminServiceClient;
  /** Metadata to send with every call (e.g. an authorization token); empty when none. */
  metadata: Metadata;
  /** Whether the broker has been reached, and a message naming the address when it cannot be. */
  reachability: BrokerReachability;
  close(): void;
}

/** TLS material; `true` uses the system's root certificates. */
export type TlsOptions = true | { ca?: Buffer; cert?: Buffer; key?: Buffer };

/** How to reach a broker. Shared by Producer, Worker and `connect`. */
export interface ConnectionOptions {
  /** host:port of the broker's gRPC listener. Default 127.0.0.1:50051. */
  address?: string;
  /** TLS to the broker. Ignored when `credentials` is given. Default: plaintext. */
  tls?: TlsOptions;
  /** Full control over channel credentials (overrides `tls`). */
  credentials?: ChannelCredentials;
  /** Headers sent with every call, e.g. `{ authorization: 'Bearer ...' }`. */
  metadata?: Record<string, string>;
  /** Extra grpc-js channel options (merged over DEFAULT_CHANNEL_OPTIONS). */
  channelOptions?: Partial<ClientOptions>;
}

export const DEFAULT_ADDRESS = '127.0.0.1:50051';

/**
 * Keepalive pings every 10 s (answered within 5 s) keep idle streams open through proxies and
 * load balancers that drop silent connections, and detect a dead broker or network path in
 * seconds instead of waiting for TCP timeouts. The broker permits pings this frequent.
 */
export const DEFAULT_CHANNEL_OPTIONS: Partial<ClientOptions> = {
  'grpc.keepalive_time_ms': 10_000,
  'grpc.keepalive_timeout_ms': 5_000,
  'grpc.keepalive_permit_without_calls': 1,
  // Reconnect quickly after a broker restart; the Worker adds its own backoff on top.
  'grpc.initial_reconnect_backoff_ms': 100,
  'grpc.max_reconnect_backoff_ms': 5_000,
};

function channelCredentials(options: ConnectionOptions): ChannelCredentials {
  if (options.credentials) return options.credentials;
  if (options.tls === true) return grpcCredentials.createSsl();
  if (options.tls) return grpcCredentials.createSsl(options.tls.ca ?? null, options.tls.key ?? null, options.tls.cert ?? null);
  return grpcCredentials.createInsecure();
}

/** The generated gRPC clients for one broker, sharing one channel. */
export function connect(addressOrOptions: string | ConnectionOptions = {}, extra: ConnectionOptions = {}): SluiceClients {
  const options = typeof addressOrOptions === 'string' ? { ...extra, address: addressOrOptions } : addressOrOptions;
  const address = options.address ?? DEFAULT_ADDRESS;
  const creds = channelCredentials(options);
  const channelOptions = { ...DEFAULT_CHANNEL_OPTIONS, ...options.channelOptions };
  const producer = new ProducerServiceClient(address, creds, channelOptions);
  const shared = { ...channelOptions, channelOverride: producer.getChannel() };
  const worker = new WorkerServiceClient(address, creds, shared);
  const admin = new AdminServiceClient(address, creds, shared);
  // waitForReady: while the broker is unreachable (restarting, deploying) calls wait for the
  // connection instead of failing at once with UNAVAILABLE; callers bound them with deadlines.
  const metadata = new Metadata({ waitForReady: true });
  for (const [k, v] of Object.entries(options.metadata ?? {})) metadata.set(k, v);
  const reachability = new BrokerReachability(producer.getChannel(), address);
  return {
    producer,
    worker,
    admin,
    metadata,
    reachability,
    close() {
      reachability.stop();
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
