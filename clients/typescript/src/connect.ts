import { credentials as grpcCredentials, InterceptingCall, Metadata, type ChannelCredentials, type ClientOptions, type Interceptor } from '@grpc/grpc-js';
import { ProducerServiceClient } from './gen/sluice/v1/producer.js';
import { WorkerServiceClient } from './gen/sluice/v1/worker.js';
import { AdminServiceClient } from './gen/sluice/v1/admin.js';
import { BrokerReachability } from './reachability.js';
import { ScheduleServiceClient } from './gen/sluice/v1/schedule.js';

export interface SluiceClients {
  producer: ProducerServiceClient;
  worker: WorkerServiceClient;
  admin: AdminServiceClient;
  schedules: ScheduleServiceClient;
  /** Metadata to send with every call (e.g. an authorization token); empty when none. */
  metadata: Metadata;
  /** Whether the broker has been reached, and a message naming the address when it cannot be. */
  reachability: BrokerReachability;
  close(): void;
}

/**
 * TLS to the broker: `true` trusts the system's root certificates; an object gives PEM text or
 * Buffers: `ca` (the broker's CA, e.g. a private one), `cert` + `key` (a client certificate for
 * mTLS), `serverName` (the name to verify in the broker's certificate when it differs from
 * the address's host, e.g. dialling an IP).
 */
export type TlsOptions = true | { ca?: string | Buffer; cert?: string | Buffer; key?: string | Buffer; serverName?: string };

/** How to reach a broker. Shared by Producer, Worker and `connect`. */
export interface ConnectionOptions {
  /** host:port of the broker's gRPC listener. Default 127.0.0.1:50051. */
  address?: string;
  /** TLS to the broker. Ignored when `credentials` is given. Default: plaintext. */
  tls?: TlsOptions;
  /** Bearer token (from `sluice token create`), sent as `authorization: Bearer <token>` on every call. */
  token?: string;
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

const pem = (v: string | Buffer | undefined): Buffer | null => (v === undefined ? null : Buffer.isBuffer(v) ? v : Buffer.from(v));

function channelCredentials(options: ConnectionOptions): ChannelCredentials {
  if (options.credentials) return options.credentials;
  if (options.tls === true) return grpcCredentials.createSsl();
  if (options.tls) {
    const { ca, cert, key } = options.tls;
    if (Boolean(cert) !== Boolean(key)) throw new TypeError('tls.cert and tls.key go together (a client certificate and its private key)');
    return grpcCredentials.createSsl(pem(ca), pem(key), pem(cert));
  }
  return grpcCredentials.createInsecure();
}

/** Channel options that make TLS verify `serverName` instead of the address's host. */
function serverNameOptions(options: ConnectionOptions): Partial<ClientOptions> {
  const name = typeof options.tls === 'object' ? options.tls.serverName : undefined;
  return name ? { 'grpc.ssl_target_name_override': name, 'grpc.default_authority': name } : {};
}

/** The generated gRPC clients for one broker, sharing one channel. */
export function connect(addressOrOptions: string | ConnectionOptions = {}, extra: ConnectionOptions = {}): SluiceClients {
  const options = typeof addressOrOptions === 'string' ? { ...extra, address: addressOrOptions } : addressOrOptions;
  const address = options.address ?? DEFAULT_ADDRESS;
  const creds = channelCredentials(options);
  const channelOptions: Partial<ClientOptions> = { ...DEFAULT_CHANNEL_OPTIONS, ...serverNameOptions(options), ...options.channelOptions };
  if (options.token !== undefined) channelOptions.interceptors = [...(options.channelOptions?.interceptors ?? []), bearerToken(options.token)];
  const producer = new ProducerServiceClient(address, creds, channelOptions);
  const shared = { ...channelOptions, channelOverride: producer.getChannel() };
  const worker = new WorkerServiceClient(address, creds, shared);
  const admin = new AdminServiceClient(address, creds, shared);
  const schedules = new ScheduleServiceClient(address, creds, shared);
  // waitForReady: while the broker is unreachable (restarting, deploying) calls wait for the
  // connection instead of failing at once with UNAVAILABLE; callers bound them with deadlines.
  const metadata = new Metadata({ waitForReady: true });
  for (const [k, v] of Object.entries(options.metadata ?? {})) metadata.set(k, v);
  const reachability = new BrokerReachability(producer.getChannel(), address);
  return {
    producer,
    worker,
    admin,
    schedules,
    metadata,
    reachability,
    close() {
      reachability.stop();
      producer.close();
    },
  };
}

/**
 * Adds `authorization: Bearer <token>` to every call of the clients that share the options,
 * whatever metadata the caller passes. An interceptor rather than call credentials: grpc-js
 * refuses call credentials on a plaintext channel, and a token over loopback is legitimate.
 */
function bearerToken(token: string): Interceptor {
  if (!token || /[\r\n]/.test(token)) throw new TypeError('token must be a non-empty single-line string');
  const value = `Bearer ${token}`;
  return (options, nextCall) =>
    new InterceptingCall(nextCall(options), {
      start(metadata, listener, next) {
        metadata.set('authorization', value);
        next(metadata, listener);
      },
    });
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
