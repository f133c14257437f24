import { EventEmitter } from 'node:events';
import { connectivityState, status as Status, type ClientDuplexStream, type ServiceError, type StatusObject } from '@grpc/grpc-js';
import { connect, type ConnectionOptions, type SluiceClients } from './connect.js';
import {
  errorForCode,
  JobCancelledError,
  LeaseLostError,
  NonRetryableError,
  RetryAfterError,
  UnavailableError,
  WorkerClosingError,
  type JobAbortedError,
} from './errors.js';
import {
  Revoke_Reason,
  SettleResult_Kind,
  WorkerServiceService,
  type ConsumeRequest,
  type ConsumeResponse,
  type Delivery,
  type SettleResult,
} from './gen/sluice/v1/worker.js';
import { RunningJob, type Job, type JobChannel } from './job-context.js';
import { HeartbeatSchedule } from './heartbeat-schedule.js';
import { AutoPrefetch, HOLD_LIMIT_MS } from './auto-prefetch.js';
import type { DeclaredTypeName, JobMap, JobStateName, QueueName } from './types.js';
import { stateName } from './wire.js';
import { decodeConsumeResponse } from './consume-decoding.js';
import { encodeConsumeRequest } from './consume-encoding.js';

export type Handler<J extends object, Q extends keyof J> = (job: Job<J, Q>) => unknown;

/**
 * Handlers by job type; the worker subscribes to exactly these types unless `handler` is also
 * set. With declared types (`JobTypes`) each handler sees its own payload type.
 */
export type HandlersByType<J extends object, Q extends keyof J> = [DeclaredTypeName<J, Q>] extends [never]
  ? Record<string, Handler<J, Q>>
  : { [T in DeclaredTypeName<J, Q>]?: (job: Extract<Job<J, Q>, { type: T }>) => unknown };

export interface WorkerOptions<J extends object, Q extends QueueName<J>> extends ConnectionOptions {
  /** Queues to take jobs from. */
  queues: readonly Q[];
  /** Handlers running at once; turned into stream credit. Default 1. */
  concurrency?: number;
  /**
   * Jobs to hold ready beyond `concurrency`, so the next job is already here when a handler
   * finishes (hides the round trip to the broker; raises throughput for short jobs). Held jobs
   * are leased (and heartbeated) while they wait, and a closing worker hands them back unrun.
   * Default: automatic, as many as the slots finish within ~10 ms by the recent handler run
   * times (up to `concurrency` for short jobs, none for jobs of a second or more), and a held
   * job that finds no slot within 100 ms is handed back for another worker (auto-prefetch.ts).
   * A number holds exactly that many, however long the handlers run; 0 holds none.
   */
  prefetch?: number;
  /** Handles every job (or those without an entry in `handlers`). */
  handler?: Handler<J, Q>;
  /** Handlers by job type. */
  handlers?: HandlersByType<J, Q>;
  /** A name shown to operators (ListWorkers). Default: host and pid. */
  workerId?: string;
  /** Labels shown to operators. */
  labels?: Record<string, string>;
  /**
   * Automatic lease renewal while a handler runs, every half lease (default). Progress and
   * extendLease also renew. `false` turns it off: a handler that outlives its lease then sees
   * its signal abort with LeaseLostError.
   */
  heartbeat?: boolean;
  /** Backoff between reconnect attempts after the stream is lost (exponential, with jitter). */
  reconnect?: { initialMs?: number; maxMs?: number };
  /** Signals that start a graceful close while `run()` is active. Default SIGTERM and SIGINT; [] for none. */
  shutdownSignals?: NodeJS.Signals[];
  /** How long a signal-initiated close lets in-flight handlers finish. Default 30 s. */
  shutdownTimeoutMs?: number;
  /**
   * Where the worker says what it does: `info` for connecting and paused or resumed queues,
   * `warn` for an unreachable broker, `debug` for reconnect attempts. pino, console or anything
   * with these methods (called as `(fields, message)`). Default: silent (events only).
   */
  logger?: WorkerLogger;
}

/** What `logger` needs: pino's and console's methods both fit. */
export interface WorkerLogger {
  debug?(fields: Record<string, unknown>, message: string): void;
  info(fields: Record<string, unknown>, message: string): void;
  warn(fields: Record<string, unknown>, message: string): void;
}

export type WorkerState = 'idle' | 'connecting' | 'running' | 'reconnecting' | 'closing' | 'closed';

/** Events, for logging and metrics. `error` is only emitted when someone listens. */
export interface WorkerEvents<J extends object = JobMap, Q extends keyof J = keyof J> {
  /** Subscribed (after each connect or reconnect). */
  ready: [];
  /** A handler started. */
  active: [job: Job<J, Q>];
  /** A job's success is durable. */
  completed: [job: Job<J, Q>, result: unknown];
  /** A job's failure is durable; `state` is `scheduled` (will retry) or `dead`. */
  failed: [job: Job<J, Q>, error: Error, state: JobStateName];
  /** A handler was aborted (lease lost, cancelled, worker closing); nothing was settled for it. */
  aborted: [job: Job<J, Q>, reason: JobAbortedError];
  /** The stream failed or a settle was refused; the worker keeps going (reconnecting if needed). */
  error: [error: Error];
  /** The broker is shutting down; no new jobs until it is back. */
  draining: [];
  /** A subscribed queue is paused (told on subscribe, and when it happens): nothing comes from it. */
  paused: [queue: string];
  /** A subscribed queue was resumed. */
  resumed: [queue: string];
  /** Waiting `delayMs` before reconnect attempt `attempt`. */
  reconnecting: [attempt: number, delayMs: number];
  closing: [];
  closed: [];
}

/** Waits for the broker's answer to one ack, nack, extend or release. */
interface SettleWaiter {
  readonly kind: SettleKind;
  resolve(result: SettleResult): void;
  reject(error: Error): void;
}

/** Where an ack's answer goes: the worker's `completed` event, or its error reporting. */
interface AckSink {
  completed(view: unknown, result: unknown): void;
  refused(error: Error): void;
}

/** The waiter of one ack: one object per job (an object literal with two closures was three). */
class AckWaiter implements SettleWaiter {
  readonly kind = 'ack';

  constructor(
    private readonly sink: AckSink,
    private readonly view: unknown,
    private readonly result: unknown,
  ) {}

  resolve(): void {
    this.sink.completed(this.view, this.result);
  }

  reject(error: Error): void {
    this.sink.refused(error);
  }
}

type SettleKind = 'ack' | 'nack' | 'extend' | 'release';

/** One Consume stream's lifetime. A reconnect makes a new one. */
interface Stream {
  id: number;
  call: ClientDuplexStream<ConsumeRequest, ConsumeResponse>;
  subscribed: boolean;
  /** Credit granted on this stream and not yet used by a delivery. */
  unusedCredit: number;
  /** The broker's cap on unused credit plus unsettled jobs (0 until subscribed). */
  maxCredit: number;
  brokerDraining: boolean;
  stopSent: boolean;
  stopped: boolean;
  ended: boolean;
  outgoing: ConsumeRequest | undefined;
  /**
   * By lease id (one per delivery): usually one waiter; several settles of one lease may wait
   * at once (extend, then ack), then a list, oldest first.
   */
  waiters: Map<string, SettleWaiter | SettleWaiter[]>;
}

/** The delay a handler asked for with RetryAfterError (0 = the job's backoff policy). */
function retryDelayOf(error: Error): number {
  if (!(error instanceof RetryAfterError) && error.name !== 'RetryAfterError') return 0;
  const ms = (error as RetryAfterError).retryAfterMs;
  // The wire field is a uint32 of milliseconds; 0 would mean "use the policy".
  return Number.isFinite(ms) && ms >= 1 ? Math.min(Math.round(ms), 0xffff_ffff) : 0;
}

const DEFAULT_RECONNECT = { initialMs: 100, maxMs: 10_000 };
const CLOSE_SETTLE_WAIT_MS = 5_000;

/**
 * Runs handlers for jobs pushed by the broker over one Consume stream. `concurrency` becomes
 * credit: the worker grants exactly as many deliveries as it has free handler slots, so it
 * never runs more than `concurrency` handlers and never sits idle while work is queued.
 *
 *     const worker = new Worker<Jobs, 'email'>({ queues: ['email'], concurrency: 10, handler: async (job) => send(job.payload) });
 *     await worker.run(); // until close() or SIGTERM
 */
export class Worker<J extends object = JobMap, Q extends QueueName<J> = QueueName<J>> extends EventEmitter<WorkerEvents<J, Q>> {
  readonly concurrency: number;
  private readonly clients: SluiceClients;
  private readonly options: WorkerOptions<J, Q>;
  private readonly reconnect: { initialMs: number; maxMs: number };
  /** Jobs held beyond `concurrency`: the fixed `prefetch` option, or 'auto' (the default). */
  readonly prefetch: number | 'auto';
  /** Decides the held depth when `prefetch` is not set. */
  private readonly autoPrefetch: AutoPrefetch | undefined;
  /** Hands back held jobs that waited too long (auto prefetch only). */
  private holdTimer: NodeJS.Timeout | undefined;
  /** Handlers still running, by lease id (a redelivered job gets a new lease, hence a new entry). */
  private readonly running = new Map<string, RunningJob>();
  private readonly heartbeats = new HeartbeatSchedule<RunningJob>(
    () => [...this.running.values(), ...this.waiting],
    (job) => this.heartbeat(job),
  );
  /** Delivered jobs waiting for a free handler slot (only with `prefetch`), oldest first. */
  private waiting: RunningJob[] = [];
  private stream: Stream | undefined;
  private streamCounter = 0;
  private reconnectAttempt = 0;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private stateValue: WorkerState = 'idle';
  private closePromise: Promise<void> | undefined;
  private runPromise: Promise<void> | undefined;
  private resolveRun: (() => void) | undefined;
  private rejectRun: ((error: Error) => void) | undefined;
  private fatal: Error | undefined;
  private conditionWaiters: (() => void)[] = [];
  private readonly signalHandlers = new Map<NodeJS.Signals, () => void>();
  private readonly channel: JobChannel;
  private readonly paused = new Set<string>();
  private unreachableReported = false;
  private readonly log: WorkerLogger | undefined;
  /** Shared by every ack's waiter. */
  private readonly ackSink: AckSink = {
    completed: (view, result) => this.emit('completed', view as Job<J, Q>, result),
    refused: (error) => this.reportError(error),
  };

  constructor(options: WorkerOptions<J, Q>) {
    super();
    if (!options.queues || options.queues.length === 0) throw new TypeError('Worker: queues must name at least one queue');
    if (!options.handler && !options.handlers) throw new TypeError('Worker: give a handler or handlers by type');
    const concurrency = options.concurrency ?? 1;
    if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 10_000) {
      throw new RangeError(`Worker: concurrency must be a whole number from 1 to 10000, got ${concurrency}`);
    }
    this.concurrency = concurrency;
    const prefetch = options.prefetch;
    if (prefetch !== undefined && (!Number.isInteger(prefetch) || prefetch < 0 || concurrency + prefetch > 10_000)) {
      throw new RangeError(`Worker: prefetch must be a whole number >= 0 with concurrency + prefetch <= 10000, got ${prefetch}`);
    }
    this.prefetch = prefetch ?? 'auto';
    this.autoPrefetch = prefetch === undefined ? new AutoPrefetch(concurrency, 10_000 - concurrency) : undefined;
    this.options = options;
    this.log = options.logger;
    this.reconnect = { ...DEFAULT_RECONNECT, ...options.reconnect };
    this.clients = connect(options);
    this.clients.reachability.onChange((state) => this.onConnectivity(state));
    this.channel = {
      progress: async (job, value) => {
        await this.sendExtend(job, job.leaseMs, toJson(value));
      },
      extend: async (job, ms) => {
        if (!Number.isInteger(ms) || ms <= 0) throw new RangeError(`extendLease: ms must be a positive whole number, got ${ms}`);
        job.leaseMs = ms;
        await this.sendExtend(job, ms, undefined);
        return job.deadline;
      },
    };
  }

  get state(): WorkerState {
    return this.stateValue;
  }

  /** Subscribed queues the broker reported paused (nothing is delivered from them). */
  get pausedQueues(): ReadonlySet<string> {
    return this.paused;
  }

  /** Handlers running now (including aborted ones that have not returned yet). */
  get activeCount(): number {
    return this.running.size;
  }

  /** Jobs delivered and waiting for a free handler slot (prefetch). */
  get heldCount(): number {
    return this.waiting.length;
  }

  /**
   * Connects and processes jobs; resolves once the worker is closed (by close() or a shutdown
   * signal). Rejects when the broker refuses the subscription for good (InvalidArgumentError for
   * a bad queue name, UnauthenticatedError, PermissionDeniedError); lost connections are retried.
   */
  run(): Promise<void> {
    if (this.runPromise) return this.runPromise;
    if (this.stateValue !== 'idle') return Promise.reject(new Error(`Worker: cannot run in state ${this.stateValue}`));
    this.runPromise = new Promise<void>((resolve, reject) => {
      this.resolveRun = resolve;
      this.rejectRun = reject;
    });
    for (const signal of this.options.shutdownSignals ?? ['SIGTERM', 'SIGINT']) {
      const handler = () => void this.close({ timeoutMs: this.options.shutdownTimeoutMs });
      this.signalHandlers.set(signal, handler);
      process.once(signal, handler);
    }
    this.setState('connecting');
    this.openStream();
    return this.runPromise;
  }

  /**
   * Graceful stop: no new jobs, in-flight handlers finish and are acked; after `timeoutMs`
   * (default 30 s) the rest are aborted (WorkerClosingError) and handed back to the broker,
   * which redelivers them at once without counting the attempt.
   */
  close(options: { timeoutMs?: number } = {}): Promise<void> {
    this.closePromise ??= this.shutdown(options.timeoutMs ?? this.options.shutdownTimeoutMs ?? 30_000);
    return this.closePromise;
  }

  // --- stream lifecycle --------------------------------------------------------------------

  private openStream(): void {
    // The generated client's method, with the hand-written codec of the same messages
    // (consume-encoding.ts, consume-decoding.ts): the worker's hot path.
    const call = this.clients.worker.makeBidiStreamRequest<ConsumeRequest, ConsumeResponse>(
      WorkerServiceService.consume.path,
      encodeConsumeRequest,
      decodeConsumeResponse,
      this.clients.metadata,
    );
    const stream: Stream = {
      id: ++this.streamCounter,
      call,
      subscribed: false,
      unusedCredit: 0,
      maxCredit: 0,
      brokerDraining: false,
      stopSent: false,
      stopped: false,
      ended: false,
      outgoing: undefined,
      waiters: new Map(),
    };
    this.stream = stream;
    call.on('data', (m: ConsumeResponse) => this.onMessage(stream, m));
    call.on('error', (e: ServiceError) => this.onStreamEnd(stream, e));
    call.on('status', (s: StatusObject) => this.onStreamEnd(stream, s.code === Status.OK ? undefined : s));
    call.on('end', () => this.onStreamEnd(stream, undefined));

    const handlers = this.options.handlers as Record<string, unknown> | undefined;
    const types = !this.options.handler && handlers ? Object.keys(handlers) : [];
    this.send(stream, (m) => {
      m.subscribe = {
        queues: [...this.options.queues],
        types,
        workerId: this.options.workerId ?? '',
        labels: this.options.labels ?? {},
        rawJsonPayloads: true,
      };
    });
    this.grantCredit();
  }

  private onMessage(stream: Stream, m: ConsumeResponse): void {
    if (stream.ended) return;
    if (m.subscribed) {
      stream.subscribed = true;
      stream.maxCredit = m.subscribed.maxCredit;
      this.reconnectAttempt = 0;
      if (this.stateValue === 'connecting' || this.stateValue === 'reconnecting') this.setState('running');
      // The broker lists the paused queues again with every subscribe.
      this.paused.clear();
      this.emit('ready');
    }
    for (const { queue, paused } of m.queueNotices) this.onQueueNotice(queue, paused);
    for (const r of m.settled) this.onSettled(stream, r);
    for (const r of m.revoked) {
      const job = this.running.get(r.leaseId) ?? this.takeWaiting((j) => j.leaseId === r.leaseId)[0];
      if (!job || job.lost) continue;
      const reason =
        r.reason === Revoke_Reason.REASON_CANCELLED
          ? new JobCancelledError('job cancelled while running')
          : new LeaseLostError('lease expired: no heartbeat reached the broker within the lease timeout');
      this.abandon(job, reason);
    }
    for (const d of m.deliveries) {
      stream.unusedCredit = Math.max(0, stream.unusedCredit - 1);
      if (stream.stopSent || this.stateValue === 'closing') this.send(stream, (out) => out.releases.push({ jobId: d.jobId, leaseId: d.leaseId, reason: 'worker closing' }));
      else this.accept(stream, d);
    }
    if (m.drain) {
      stream.brokerDraining = true;
      this.emit('draining');
    }
    if (m.stopped) stream.stopped = true;
    this.changed();
  }

  /**
   * The Consume stream waits for the broker (waitForReady), which rides out a restart but is
   * silent: say once per outage, early, that nothing answers at the address (the worker keeps
   * trying), and say when it answers again.
   */
  private onConnectivity(state: connectivityState): void {
    if (this.stateValue === 'idle' || this.stateValue === 'closing' || this.stateValue === 'closed') return;
    const reach = this.clients.reachability;
    if (state === connectivityState.TRANSIENT_FAILURE && !this.unreachableReported) {
      this.unreachableReported = true;
      void reach.describe().then((why) => {
        const message = `${why}; the worker keeps trying to connect`;
        this.log?.warn({ address: reach.address }, message);
        this.reportError(new UnavailableError(message, Status.UNAVAILABLE));
      });
    } else if (state === connectivityState.READY) {
      if (this.unreachableReported) this.log?.info({ address: reach.address }, `broker at ${reach.address} is reachable again`);
      else this.log?.info({ address: reach.address }, `connected to the broker at ${reach.address}`);
      this.unreachableReported = false;
    }
  }

  private onQueueNotice(queue: string, paused: boolean): void {
    if (paused === this.paused.has(queue)) return;
    if (paused) {
      this.paused.add(queue);
      const idle = this.options.queues.every((q) => this.paused.has(q));
      this.log?.info({ queue }, `queue ${queue} is paused: no jobs from it until it is resumed${idle ? ' (every subscribed queue is paused)' : ''}`);
      this.emit('paused', queue);
    } else {
      this.paused.delete(queue);
      this.log?.info({ queue }, `queue ${queue} was resumed`);
      this.emit('resumed', queue);
    }
  }

  private onStreamEnd(stream: Stream, error: ServiceError | StatusObject | undefined): void {
    if (stream.ended) return;
    stream.ended = true;
    const lost = new UnavailableError(`stream to the broker ended${error ? `: ${error.details || Status[error.code]}` : ''}`, Status.UNAVAILABLE);
    for (const waiters of stream.waiters.values()) {
      if (Array.isArray(waiters)) for (const w of waiters) w.reject(lost);
      else waiters.reject(lost);
    }
    stream.waiters.clear();
    // The broker released this stream's leases when it saw the stream go: the jobs are
    // redelivered (maybe to us) and whatever our handlers produce now must not be sent.
    for (const job of [...this.running.values(), ...this.takeWaiting((j) => j.streamId === stream.id)]) {
      if (job.streamId === stream.id) this.abandon(job, new LeaseLostError('the stream to the broker was lost'));
    }
    if (this.stream === stream) this.stream = undefined;
    this.changed();
    if (this.stateValue === 'closing' || this.stateValue === 'closed') return;
    if (error && FATAL_CODES.has(error.code)) {
      // Retrying cannot help (bad subscription, credentials): stop and let run() reject.
      this.fatal = errorForCode(error.code, `Consume stream refused: ${error.details || Status[error.code]}`);
      this.reportError(this.fatal);
      void this.close({ timeoutMs: 0 });
      return;
    }
    // The broker's own status when it sent one (RESOURCE_EXHAUSTED: its stream limit), so a
    // refusal is not mistaken for an unreachable broker.
    if (error && !stream.brokerDraining) {
      this.reportError(error.code === Status.UNAVAILABLE || !error.code ? lost : errorForCode(error.code, `Consume stream ended: ${error.details || Status[error.code]}`));
    }
    this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    this.setState('reconnecting');
    const attempt = ++this.reconnectAttempt;
    const ceiling = Math.min(this.reconnect.maxMs, this.reconnect.initialMs * 2 ** (attempt - 1));
    const delayMs = Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
    this.emit('reconnecting', attempt, delayMs);
    this.log?.debug?.({ attempt, delayMs }, `stream to the broker lost; reconnect attempt ${attempt} in ${delayMs} ms`);
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      if (this.stateValue === 'reconnecting') this.openStream();
    }, delayMs);
  }

  // --- jobs ----------------------------------------------------------------------------------

  /** A delivery arrived: run it now, or hold it until a slot frees (prefetch). */
  private accept(stream: Stream, d: Delivery): void {
    let payload: unknown;
    try {
      // payloadJson is a view of the received message (consume-decoding.ts), not a copy.
      payload = JSON.parse(d.payloadJson.toString('utf8'));
    } catch {
      payload = undefined;
    }
    const job = new RunningJob(d, stream.id, payload, this.channel);
    this.autoPrefetch?.observeSize(d.payloadJson.length);
    this.scheduleHeartbeat(job);
    if (this.running.size < this.concurrency) this.start(job);
    else this.hold(job);
  }

  private hold(job: RunningJob): void {
    job.heldAt = performance.now();
    this.waiting.push(job);
    if (this.autoPrefetch && !this.holdTimer) this.armHoldTimer(HOLD_LIMIT_MS);
  }

  private armHoldTimer(ms: number): void {
    this.holdTimer = setTimeout(() => this.handBackStaleHeld(), ms);
    this.holdTimer.unref();
  }

  /**
   * Auto prefetch: held jobs that found no slot within HOLD_LIMIT_MS go back to the broker
   * (unrun, the attempt refunded), so a worker whose handlers became slow does not sit on
   * jobs another worker could start; holding stays off until handlers are short again.
   */
  private handBackStaleHeld(): void {
    this.holdTimer = undefined;
    if (this.waiting.length === 0 || this.stateValue === 'closing' || this.stateValue === 'closed') return;
    const now = performance.now();
    const stale = this.takeWaiting((j) => now - j.heldAt >= HOLD_LIMIT_MS);
    const stream = this.stream;
    for (const job of stale) {
      this.autoPrefetch!.handedBack(now - job.heldAt);
      job.lose(new LeaseLostError(`handed back unrun: no handler slot freed within ${HOLD_LIMIT_MS} ms`));
      if (stream && stream.id === job.streamId && !stream.ended) this.releaseJob(stream, job, 'worker busy: held job handed back for another worker');
    }
    if (this.waiting.length > 0) this.armHoldTimer(Math.max(1, HOLD_LIMIT_MS - (now - this.waiting[0]!.heldAt)));
    if (stale.length > 0) this.changed();
  }

  private startWaiting(): void {
    while (this.running.size < this.concurrency && this.waiting.length > 0) {
      const job = this.waiting.shift()!;
      if (!job.lost) this.start(job);
    }
  }

  /** Removes and returns the waiting jobs that match. */
  private takeWaiting(match: (job: RunningJob) => boolean): RunningJob[] {
    if (this.waiting.length === 0) return [];
    const taken = this.waiting.filter(match);
    if (taken.length > 0) this.waiting = this.waiting.filter((j) => !match(j));
    return taken;
  }

  private start(job: RunningJob): void {
    const d = job.delivery;
    const payload = job.view.payload;
    if (this.autoPrefetch) job.startedAt = performance.now();
    this.running.set(d.leaseId, job);
    const handlers = this.options.handlers as Record<string, ((job: unknown) => unknown) | undefined> | undefined;
    const handler = (handlers?.[d.type] ?? this.options.handler) as ((job: unknown) => unknown) | undefined;
    const view = job.view as unknown as Job<J, Q>;
    this.emit('active', view);
    // The handler is called now; its outcome is handled in a later microtask whether it
    // returns a value, a promise or throws (as an async wrapper did, without one per job).
    let outcome: Promise<unknown>;
    try {
      if (payload === undefined) throw new NonRetryableError('payload is not valid JSON');
      if (!handler) throw new NonRetryableError(`no handler for job type "${d.type}" on this worker`);
      outcome = Promise.resolve(handler(view));
    } catch (error) {
      outcome = Promise.reject(error);
    }
    outcome.then(
      (result) => this.finish(job, { ok: true, result }),
      (error: unknown) => this.finish(job, { ok: false, error: error instanceof Error ? error : new Error(String(error)) }),
    );
  }

  private finish(job: RunningJob, outcome: { ok: true; result: unknown } | { ok: false; error: Error }): void {
    this.running.delete(job.leaseId);
    job.stopHeartbeat();
    if (this.autoPrefetch) this.autoPrefetch.observe(performance.now() - job.startedAt);
    const stream = this.stream;
    const view = job.view as unknown as Job<J, Q>;
    if (!job.lost && stream && stream.id === job.streamId && !stream.ended) {
      if (outcome.ok) {
        // The hot path, one per job: no closures, one waiter object, one ack object.
        const result = toJson(outcome.result);
        const leaseId = job.leaseId;
        this.addWaiter(stream, leaseId, new AckWaiter(this.ackSink, view, result));
        this.outgoing(stream)?.acks.push({ jobId: job.jobId, leaseId, result });
      } else {
        const ids = { jobId: job.jobId, leaseId: job.leaseId };
        const nonRetryable = outcome.error instanceof NonRetryableError || outcome.error.name === 'NonRetryableError';
        const retryAfterMs = nonRetryable ? 0 : retryDelayOf(outcome.error);
        const message = outcome.error.message || outcome.error.name || 'handler failed';
        this.settle(stream, {
          kind: 'nack',
          resolve: (r) => this.emit('failed', view, outcome.error, stateName(r.state)),
          reject: (error) => this.reportError(error),
        }, ids, (m) => m.nacks.push({ ...ids, error: message, nonRetryable, retryAfterMs }));
      }
    }
    this.startWaiting();
    this.grantCredit();
    this.changed();
  }

  /** The lease is no longer ours: abort the handler; its outcome will not be sent. */
  private abandon(job: RunningJob, reason: JobAbortedError): void {
    if (job.lose(reason)) this.emit('aborted', job.view as unknown as Job<J, Q>, reason);
  }

  private scheduleHeartbeat(job: RunningJob): void {
    job.stopHeartbeat();
    if (this.options.heartbeat === false || job.lost) return;
    this.heartbeats.due(job, Date.now() + Math.max(50, Math.floor(job.leaseMs / 2)));
  }

  private heartbeat(job: RunningJob): void {
    this.sendExtend(job, job.leaseMs, undefined).catch(() => {
      /* a refused heartbeat already aborted the job */
    });
  }

  private async sendExtend(job: RunningJob, ms: number, progress: unknown): Promise<void> {
    const stream = this.stream;
    if (job.lost) throw job.lostReason!;
    if (!stream || stream.id !== job.streamId || stream.ended) throw new LeaseLostError('the stream to the broker was lost');
    this.scheduleHeartbeat(job);
    const ids = { jobId: job.jobId, leaseId: job.leaseId };
    try {
      const r = await new Promise<SettleResult>((resolve, reject) =>
        this.settle(stream, { kind: 'extend', resolve, reject }, ids, (m) => m.extends.push({ ...ids, extendMs: ms, progress })),
      );
      if (r.deadline) job.deadline = r.deadline;
    } catch (error) {
      if ((error as { code?: number }).code === Status.FAILED_PRECONDITION) {
        this.abandon(job, new LeaseLostError(`lease refused by the broker: ${(error as Error).message}`));
      }
      throw error;
    }
  }

  // --- wire ----------------------------------------------------------------------------------

  /** Grants credit for free handler slots, never more than `concurrency` in use or promised. */
  private grantCredit(): void {
    const stream = this.stream;
    if (!stream || stream.ended || stream.stopSent || stream.brokerDraining) return;
    if (this.stateValue === 'closing' || this.stateValue === 'closed') return;
    const want = this.creditTarget(stream) - this.running.size - this.waiting.length - stream.unusedCredit;
    if (want <= 0) return;
    stream.unusedCredit += want;
    this.send(stream, (m) => (m.credit += want));
  }

  /** Slots plus held jobs this stream should have in use or promised. */
  private creditTarget(stream: Stream): number {
    if (!this.autoPrefetch) return this.concurrency + (this.prefetch as number);
    // The broker counts acked jobs until their commit is durable, while the worker re-grants
    // at once: keep twice the target under its cap so a grant is never refused.
    const cap = stream.maxCredit > 0 ? Math.floor(stream.maxCredit / 2) : this.concurrency;
    return Math.max(this.concurrency, Math.min(this.concurrency + this.autoPrefetch.depth, cap));
  }

  /** Sends a settle; `waiter` hears the broker's answer (callbacks, not a promise: this is per job). */
  private settle(stream: Stream, waiter: SettleWaiter, ids: { jobId: string; leaseId: string }, add: (m: ConsumeRequest) => void): void {
    this.addWaiter(stream, ids.leaseId, waiter);
    this.send(stream, add);
  }

  private addWaiter(stream: Stream, leaseId: string, waiter: SettleWaiter): void {
    const waiting = stream.waiters.get(leaseId);
    if (waiting === undefined) stream.waiters.set(leaseId, waiter);
    else if (Array.isArray(waiting)) waiting.push(waiter);
    else stream.waiters.set(leaseId, [waiting, waiter]);
  }

  private onSettled(stream: Stream, r: SettleResult): void {
    const kind = SETTLE_KIND[r.kind];
    if (!kind) return;
    const waiting = stream.waiters.get(r.leaseId);
    if (waiting === undefined) return;
    let waiter: SettleWaiter;
    if (!Array.isArray(waiting)) {
      if (waiting.kind !== kind) return;
      waiter = waiting;
      stream.waiters.delete(r.leaseId);
    } else {
      // The broker answers one lease's settles in order; take the oldest of this kind.
      const i = waiting.findIndex((w) => w.kind === kind);
      if (i === -1) return;
      waiter = waiting.splice(i, 1)[0]!;
      if (waiting.length === 0) stream.waiters.delete(r.leaseId);
    }
    if (r.code === 0) waiter.resolve(r);
    else waiter.reject(errorForCode(r.code, `${kind} of job ${r.jobId} refused: ${r.message}`));
  }

  /** Adds to the next outgoing message; everything added in one event-loop turn goes as one message. */
  private send(stream: Stream, add: (m: ConsumeRequest) => void): void {
    const m = this.outgoing(stream);
    if (m) add(m);
  }

  /** The message that leaves at the end of this event-loop turn (undefined once the stream ended). */
  private outgoing(stream: Stream): ConsumeRequest | undefined {
    if (stream.ended) return undefined;
    if (!stream.outgoing) {
      stream.outgoing = { subscribe: undefined, credit: 0, acks: [], nacks: [], extends: [], stop: false, releases: [] };
      setImmediate(() => {
        const m = stream.outgoing;
        stream.outgoing = undefined;
        if (m && !stream.ended) stream.call.write(m);
      });
    }
    return stream.outgoing;
  }

  // --- closing -------------------------------------------------------------------------------

  private async shutdown(timeoutMs: number): Promise<void> {
    if (this.stateValue === 'closed') return;
    const wasRunning = this.stateValue !== 'idle';
    this.setState('closing');
    this.emit('closing');
    for (const [signal, handler] of this.signalHandlers) process.removeListener(signal, handler);
    this.signalHandlers.clear();
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    if (this.holdTimer) clearTimeout(this.holdTimer);
    this.holdTimer = undefined;

    const stream = this.stream;
    if (stream && !stream.ended) {
      stream.stopSent = true;
      this.send(stream, (m) => (m.stop = true));
    }
    // Held jobs never started: hand them back at once.
    for (const job of this.takeWaiting(() => true)) {
      job.lose(new WorkerClosingError('worker closing before the job started'));
      if (stream && stream.id === job.streamId && !stream.ended) this.releaseJob(stream, job, 'worker closing');
    }
    if (wasRunning) await this.until(() => this.running.size === 0, timeoutMs);

    // Out of time: abort what still runs and hand the jobs back for immediate redelivery.
    for (const job of this.running.values()) {
      if (job.lost) continue;
      this.abandon(job, new WorkerClosingError(`worker closing: the ${timeoutMs} ms close timeout ran out`));
      const s = this.stream;
      if (s && s.id === job.streamId && !s.ended) this.releaseJob(s, job, 'worker closing: close timeout ran out');
    }

    // Let acks and releases become durable and the broker confirm the stop, then hang up.
    if (stream && !stream.ended) {
      await this.until(() => stream.ended || (stream.stopped && stream.waiters.size === 0 && !stream.outgoing), CLOSE_SETTLE_WAIT_MS);
      if (!stream.ended) {
        stream.call.end();
        if (!(await this.until(() => stream.ended, 2_000))) stream.call.cancel();
      }
    }
    this.heartbeats.stop();
    this.clients.close();
    this.setState('closed');
    this.emit('closed');
    if (this.fatal) this.rejectRun?.(this.fatal);
    else this.resolveRun?.();
  }

  private releaseJob(stream: Stream, job: RunningJob, reason: string): void {
    const ids = { jobId: job.jobId, leaseId: job.leaseId };
    this.settle(stream, {
      kind: 'release',
      resolve: () => {},
      reject: () => {
        /* the stream ends next anyway, which releases the lease too */
      },
    }, ids, (m) => m.releases.push({ ...ids, reason }));
  }

  /** Resolves true once `check` holds, or false after `timeoutMs`. Re-checked on every change. */
  private until(check: () => boolean, timeoutMs: number): Promise<boolean> {
    if (check()) return Promise.resolve(true);
    return new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => {
        this.conditionWaiters = this.conditionWaiters.filter((w) => w !== poll);
        resolve(false);
      }, timeoutMs);
      const poll = () => {
        if (!check()) return;
        clearTimeout(timer);
        this.conditionWaiters = this.conditionWaiters.filter((w) => w !== poll);
        resolve(true);
      };
      this.conditionWaiters.push(poll);
    });
  }

  private changed(): void {
    for (const w of [...this.conditionWaiters]) w();
  }

  private setState(next: WorkerState): void {
    this.stateValue = next;
  }

  private reportError(error: Error): void {
    if (this.listenerCount('error') > 0) this.emit('error', error);
    else process.emitWarning(`sluice worker: ${error.message}`, { code: 'SLUICE_WORKER' });
  }
}

/** Stream errors that a reconnect cannot fix. */
const FATAL_CODES = new Set<number>([Status.INVALID_ARGUMENT, Status.UNAUTHENTICATED, Status.PERMISSION_DENIED, Status.UNIMPLEMENTED]);

const SETTLE_KIND: Partial<Record<SettleResult_Kind, SettleKind>> = {
  [SettleResult_Kind.KIND_ACK]: 'ack',
  [SettleResult_Kind.KIND_NACK]: 'nack',
  [SettleResult_Kind.KIND_EXTEND]: 'extend',
  [SettleResult_Kind.KIND_RELEASE]: 'release',
};

/** JSON-normalises a result or progress value (Dates become strings, undefined stays absent). */
function toJson(value: unknown): unknown {
  if (value === undefined) return undefined;
  const text = JSON.stringify(value);
  return text === undefined ? undefined : (JSON.parse(text) as unknown);
}
