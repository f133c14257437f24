import { echo, invalidArgument } from './domain/errors.js';
import { WIRE_MAX_DEPTH } from './domain/json-shape.js';

/** Every broker setting. Each one has a flag and a SLUICE_* environment variable (see SETTINGS). */
export interface BrokerConfig {
  dataFile: string;
  grpcAddress: string;
  /** "off" disables the HTTP listener. */
  httpAddress: string;
  synchronous: 'OFF' | 'NORMAL' | 'FULL' | 'EXTRA';
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  maxPayloadBytes: number;
  maxBatchSize: number;
  maxMetadataBytes: number;
  maxJsonDepth: number;
  maxJsonValues: number;
  maxQueuedPerQueue: number;
  maxQueuedPerGroup: number;
  minFreeDiskBytes: number;
  maxDatabaseBytes: number;
  admissionRetryAfterMs: number;
  maxCreditPerStream: number;
  maxStreams: number;
  defaultMaxAttempts: number;
  defaultLeaseTimeoutMs: number;
  retryInitialMs: number;
  retryMultiplier: number;
  retryMaxMs: number;
  retryJitter: number;
  shutdownGraceMs: number;
  // Security (src/auth): empty strings mean "not set".
  authFile: string;
  tlsCert: string;
  tlsKey: string;
  tlsClientCa: string;
  tlsClientAuth: 'require' | 'optional';
  publicEndpoints: ('health' | 'reflection' | 'metrics')[];
  insecure: boolean;
  scheduleMisfireGraceMs: number;
  retentionMaxAgeMs: number;
  retentionMaxCount: number;
  retentionIntervalMs: number;
  retentionBatchSize: number;
}

type Parser<T> = (raw: string) => T;

interface Setting<K extends keyof BrokerConfig> {
  key: K;
  flag: string;
  env: string;
  description: string;
  default: BrokerConfig[K];
  parse: Parser<BrokerConfig[K]>;
}

const text: Parser<string> = (raw) => raw;

function integer(min: number, max = Number.MAX_SAFE_INTEGER): Parser<number> {
  return (raw) => {
    const n = Number(raw);
    if (!Number.isInteger(n) || n < min || n > max) throw invalidArgument(`expected an integer in ${min}..${max}, got ${JSON.stringify(echo(raw))}`);
    return n;
  };
}

function decimal(min: number, max: number): Parser<number> {
  return (raw) => {
    const n = Number(raw);
    if (!Number.isFinite(n) || n < min || n > max) throw invalidArgument(`expected a number in ${min}..${max}, got ${JSON.stringify(echo(raw))}`);
    return n;
  };
}

function oneOf<T extends string>(values: readonly T[], normalise: (s: string) => string = (s) => s): Parser<T> {
  return (raw) => {
    const v = normalise(raw) as T;
    if (!values.includes(v)) throw invalidArgument(`expected one of ${values.join(', ')}, got ${JSON.stringify(echo(raw))}`);
    return v;
  };
}

function list<T extends string>(values: readonly T[]): Parser<T[]> {
  return (raw) => {
    const items = raw.split(',').map((s) => s.trim().toLowerCase()).filter((s) => s && s !== 'none');
    for (const item of items) if (!values.includes(item as T)) throw invalidArgument(`expected a comma-separated list of ${values.join(', ')} (or none), got ${JSON.stringify(raw)}`);
    return [...new Set(items)] as T[];
  };
}

/** Flags without a value (`--insecure`); the environment variable takes true/false/1/0. */
export const boolean: Parser<boolean> = (raw) => {
  const v = raw.trim().toLowerCase();
  if (['1', 'true', 'yes', 'on'].includes(v)) return true;
  if (['0', 'false', 'no', 'off', ''].includes(v)) return false;
  throw invalidArgument(`expected true or false, got ${JSON.stringify(raw)}`);
};

function setting<K extends keyof BrokerConfig>(s: Setting<K>): Setting<K> {
  return s;
}

/** The single list of settings: drives flags, environment variables, --help and defaults. */
export const SETTINGS = [
  setting({ key: 'dataFile', flag: '--data-file <path>', env: 'SLUICE_DATA_FILE', description: 'SQLite database file', default: './sluice.db', parse: text }),
  setting({ key: 'grpcAddress', flag: '--grpc-address <host:port>', env: 'SLUICE_GRPC_ADDRESS', description: 'gRPC listen address (port 0 picks a free port)', default: '127.0.0.1:50051', parse: text }),
  setting({ key: 'httpAddress', flag: '--http-address <host:port>', env: 'SLUICE_HTTP_ADDRESS', description: 'HTTP listen address for /healthz, /metrics, the dashboard (/) and the JSON API (/api/v1/), or "off"', default: '127.0.0.1:50052', parse: text }),
  setting({ key: 'synchronous', flag: '--synchronous <mode>', env: 'SLUICE_SYNCHRONOUS', description: 'durability: FULL (nothing is acknowledged before its WAL is fsynced; the broker fsyncs off the event loop), EXTRA (SQLite fsyncs in line), NORMAL (a power loss may drop the last commits), OFF', default: 'FULL', parse: oneOf(['OFF', 'NORMAL', 'FULL', 'EXTRA'] as const, (s) => s.toUpperCase()) }),
  setting({ key: 'logLevel', flag: '--log-level <level>', env: 'SLUICE_LOG_LEVEL', description: 'pino log level: fatal, error, warn, info, debug, trace, silent', default: 'info', parse: oneOf(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const, (s) => s.toLowerCase()) }),
  setting({ key: 'maxPayloadBytes', flag: '--max-payload-bytes <n>', env: 'SLUICE_MAX_PAYLOAD_BYTES', description: 'largest accepted payload (JSON text bytes)', default: 1024 * 1024, parse: integer(1, 64 * 1024 * 1024) }),
  setting({ key: 'maxBatchSize', flag: '--max-batch-size <n>', env: 'SLUICE_MAX_BATCH_SIZE', description: 'most jobs in one EnqueueBatch call or one EnqueueStream message', default: 1000, parse: integer(1, 100_000) }),
  setting({ key: 'maxMetadataBytes', flag: '--max-metadata-bytes <n>', env: 'SLUICE_MAX_METADATA_BYTES', description: 'largest job metadata map (keys + values, bytes)', default: 16 * 1024, parse: integer(0) }),
  setting({ key: 'maxJsonDepth', flag: '--max-json-depth <n>', env: 'SLUICE_MAX_JSON_DEPTH', description: 'deepest nesting of a payload, result or progress document', default: 64, parse: integer(1, WIRE_MAX_DEPTH) }),
  setting({ key: 'maxJsonValues', flag: '--max-json-values <n>', env: 'SLUICE_MAX_JSON_VALUES', description: 'most values (array elements, object members) in a payload, result or progress document', default: 100_000, parse: integer(1, 10_000_000) }),
  setting({ key: 'maxQueuedPerQueue', flag: '--max-queued-per-queue <n>', env: 'SLUICE_MAX_QUEUED_PER_QUEUE', description: 'most queued (pending + scheduled) jobs per queue, for queues without their own max_queued; 0 = no limit', default: 0, parse: integer(0) }),
  setting({ key: 'maxQueuedPerGroup', flag: '--max-queued-per-group <n>', env: 'SLUICE_MAX_QUEUED_PER_GROUP', description: 'most queued jobs per group key within a queue, for queues without their own max_queued_per_group; 0 = no limit', default: 0, parse: integer(0) }),
  setting({ key: 'minFreeDiskBytes', flag: '--min-free-disk-bytes <n>', env: 'SLUICE_MIN_FREE_DISK_BYTES', description: 'refuse enqueues while the data volume has less free space; 0 = off', default: 0, parse: integer(0) }),
  setting({ key: 'maxDatabaseBytes', flag: '--max-database-bytes <n>', env: 'SLUICE_MAX_DATABASE_BYTES', description: 'refuse enqueues while the database holds more data; 0 = off', default: 0, parse: integer(0) }),
  setting({ key: 'admissionRetryAfterMs', flag: '--admission-retry-after-ms <ms>', env: 'SLUICE_ADMISSION_RETRY_AFTER_MS', description: 'retry hint sent with an enqueue refused by a limit above', default: 1000, parse: integer(1, 3_600_000) }),
  setting({ key: 'maxCreditPerStream', flag: '--max-credit-per-stream <n>', env: 'SLUICE_MAX_CREDIT_PER_STREAM', description: 'most unused credit plus unsettled jobs one Consume stream may hold', default: 10_000, parse: integer(1, 1_000_000) }),
  setting({ key: 'maxStreams', flag: '--max-streams <n>', env: 'SLUICE_MAX_STREAMS', description: 'most concurrent Consume streams', default: 1000, parse: integer(1) }),
  setting({ key: 'defaultMaxAttempts', flag: '--default-max-attempts <n>', env: 'SLUICE_DEFAULT_MAX_ATTEMPTS', description: 'attempts before dead-lettering, for queues and jobs that set none', default: 25, parse: integer(1, 1_000_000) }),
  setting({ key: 'defaultLeaseTimeoutMs', flag: '--default-lease-timeout-ms <ms>', env: 'SLUICE_DEFAULT_LEASE_TIMEOUT_MS', description: 'how long an attempt may run without a heartbeat, for queues and jobs that set none', default: 30_000, parse: integer(100, 2_147_483_647) }),
  setting({ key: 'retryInitialMs', flag: '--retry-initial-ms <ms>', env: 'SLUICE_RETRY_INITIAL_MS', description: 'default backoff before the first retry', default: 1000, parse: integer(1, 2_147_483_647) }),
  setting({ key: 'retryMultiplier', flag: '--retry-multiplier <x>', env: 'SLUICE_RETRY_MULTIPLIER', description: 'default backoff growth per attempt', default: 2, parse: decimal(1, 100) }),
  setting({ key: 'retryMaxMs', flag: '--retry-max-ms <ms>', env: 'SLUICE_RETRY_MAX_MS', description: 'default cap on one backoff delay', default: 3_600_000, parse: integer(1, 2_147_483_647) }),
  setting({ key: 'retryJitter', flag: '--retry-jitter <fraction>', env: 'SLUICE_RETRY_JITTER', description: 'default backoff jitter, 0..1 (0.2 = +/-20%)', default: 0.2, parse: decimal(0, 1) }),
  setting({ key: 'shutdownGraceMs', flag: '--shutdown-grace-ms <ms>', env: 'SLUICE_SHUTDOWN_GRACE_MS', description: 'on SIGTERM, how long in-flight jobs may still be settled before their leases are released', default: 30_000, parse: integer(0, 3_600_000) }),
  setting({ key: 'authFile', flag: '--auth-file <path>', env: 'SLUICE_AUTH_FILE', description: 'token file (SHA-256 hashes of bearer tokens and client-certificate subjects with their scopes; see README "Security"); reloaded on SIGHUP and when it changes', default: '', parse: text }),
  setting({ key: 'tlsCert', flag: '--tls-cert <path>', env: 'SLUICE_TLS_CERT', description: 'PEM certificate (chain) for TLS on gRPC and HTTP; reloaded on SIGHUP and when it changes', default: '', parse: text }),
  setting({ key: 'tlsKey', flag: '--tls-key <path>', env: 'SLUICE_TLS_KEY', description: 'PEM private key of --tls-cert', default: '', parse: text }),
  setting({ key: 'tlsClientCa', flag: '--tls-client-ca <path>', env: 'SLUICE_TLS_CLIENT_CA', description: 'PEM CA that signs client certificates (mTLS); a verified certificate authenticates like a token', default: '', parse: text }),
  setting({ key: 'tlsClientAuth', flag: '--tls-client-auth <mode>', env: 'SLUICE_TLS_CLIENT_AUTH', description: 'with --tls-client-ca: require (every connection presents a certificate) or optional (a token will do; needs --auth-file)', default: 'require', parse: oneOf(['require', 'optional'] as const, (s) => s.toLowerCase()) }),
  setting({ key: 'publicEndpoints', flag: '--public-endpoints <list>', env: 'SLUICE_PUBLIC_ENDPOINTS', description: 'what stays open without credentials when auth is on: health (gRPC health, /healthz), reflection, metrics (/metrics), or none', default: ['health', 'reflection'] as ('health' | 'reflection' | 'metrics')[], parse: list(['health', 'reflection', 'metrics'] as const) }),
  setting({ key: 'insecure', flag: '--insecure', env: 'SLUICE_INSECURE', description: 'allow a non-loopback listen address without authentication (anyone who reaches the port can read, enqueue and purge jobs)', default: false, parse: boolean }),
  setting({ key: 'scheduleMisfireGraceMs', flag: '--schedule-misfire-grace-ms <ms>', env: 'SLUICE_SCHEDULE_MISFIRE_GRACE_MS', description: 'a cron fire time reached later than this (broker down, clock jump) counts as missed and follows the schedule\'s catch-up policy', default: 60_000, parse: integer(0, 86_400_000) }),
  setting({ key: 'retentionMaxAgeMs', flag: '--retention-max-age-ms <ms>', env: 'SLUICE_RETENTION_MAX_AGE_MS', description: 'delete completed and cancelled jobs (with their history) this long after they finished, for queues that set none; 0 = never by age (dead jobs are never deleted automatically)', default: 7 * 24 * 3_600_000, parse: integer(0) }),
  setting({ key: 'retentionMaxCount', flag: '--retention-max-count <n>', env: 'SLUICE_RETENTION_MAX_COUNT', description: 'keep at most this many completed and cancelled jobs per queue (oldest deleted first), for queues that set none; 0 = no limit', default: 0, parse: integer(0) }),
  setting({ key: 'retentionIntervalMs', flag: '--retention-interval-ms <ms>', env: 'SLUICE_RETENTION_INTERVAL_MS', description: 'how often retention looks for jobs to delete; 0 = never', default: 60_000, parse: integer(0, 2_147_483_647) }),
  setting({ key: 'retentionBatchSize', flag: '--retention-batch-size <n>', env: 'SLUICE_RETENTION_BATCH_SIZE', description: 'jobs retention examines per write transaction (keeps each pause short)', default: 500, parse: integer(1, 100_000) }),
] as const;

export function defaultConfig(): BrokerConfig {
  const config = {} as Record<string, unknown>;
  for (const s of SETTINGS) config[s.key] = s.default;
  return config as unknown as BrokerConfig;
}

/** Defaults, then environment, then explicit overrides (flags). */
export function resolveConfig(overrides: Partial<BrokerConfig>, env: NodeJS.ProcessEnv = process.env): BrokerConfig {
  const config = defaultConfig() as unknown as Record<string, unknown>;
  for (const s of SETTINGS) {
    const raw = env[s.env];
    if (raw !== undefined && raw !== '') {
      try {
        config[s.key] = s.parse(raw);
      } catch (err) {
        throw invalidArgument(`${s.env}: ${(err as Error).message}`);
      }
    }
  }
  for (const [key, value] of Object.entries(overrides)) if (value !== undefined) config[key] = value;
  return config as unknown as BrokerConfig;
}
