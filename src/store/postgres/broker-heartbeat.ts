import { EventEmitter } from 'node:events';
import { startTimer, type Clock } from '../../domain/clock.js';
import type { Logger } from '../../log.js';
import { BrokerNotRegisteredError, type BrokerRegistry, type HeartbeatResult } from './broker-registry.js';
import type { ClockSample } from './db-clock.js';

/**
 * The heartbeat loop of docs/design/postgres-store.md 3.6 and 3.7 around a BrokerRegistry: every
 * heartbeat interval (a quarter of the timeout) it heartbeats this broker's row, samples the
 * database clock and sweeps brokers whose heartbeat lapsed. It decides nothing about leases: it
 * emits 'declared-dead' (the broker revokes its streams' leases and re-registers) and 'swept'
 * (the write path releases the swept brokers' leases).
 *
 * One tick at a time: a tick that comes due while the previous one is still waiting on the
 * database is skipped, not queued, so a slow database sees at most one heartbeat of this broker
 * in flight and the loop never piles up statements behind it. A failed statement is logged and
 * tried again on the next tick; only a heartbeat that reaches the database and finds no row means
 * 'declared-dead'.
 *
 * Not wired into the broker yet (steps 5-6).
 */

export interface BrokerHeartbeatOptions {
  registry: BrokerRegistry;
  /** The queues this broker has streams for, read at each heartbeat (3.5: the notify targets). */
  subscribed: () => readonly string[];
  logger: Logger;
  /**
   * Timers (Clock.setTimer), for tests; setTimeout by default. The default timer is not unref'd:
   * a broker that forgets stop() keeps claiming liveness, which the process should not hide.
   */
  clock?: Clock;
  /** Default: registry.heartbeatIntervalMs (heartbeat timeout / 4). */
  intervalMs?: number;
  /** A clock sample whose error bound exceeds this is logged (3.7: 100 ms). */
  clockErrorWarnMs?: number;
}

/** What one tick did; 'skipped' where an earlier step's outcome made the step pointless. */
export interface TickOutcome {
  heartbeat: HeartbeatResult | 'failed' | 'not-registered';
  clock: ClockSample | 'failed' | 'skipped';
  /** Ids swept by this tick (possibly none); swept only by a broker whose heartbeat says 'alive'. */
  swept: string[] | 'failed' | 'skipped';
}

export interface BrokerHeartbeatEvents {
  /** This broker's row is gone (swept by another broker): revoke every lease on its streams, re-register. Once per id. */
  'declared-dead': [id: string];
  /** Brokers this tick took over: release their leases. Never empty. */
  swept: [ids: string[]];
  /** A tick finished. */
  tick: [outcome: TickOutcome];
  /** A tick came due while the previous one was still running, and was dropped. */
  skipped: [];
}

export const DEFAULT_CLOCK_ERROR_WARN_MS = 100;

function describeError(error: unknown): { code?: string; message: string } {
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    return typeof code === 'string' ? { code, message: error.message } : { message: error.message };
  }
  return { message: String(error) };
}

export class BrokerHeartbeat extends EventEmitter<BrokerHeartbeatEvents> {
  readonly intervalMs: number;
  private readonly clockErrorWarnMs: number;
  private cancelTimer: (() => void) | undefined;
  private running: Promise<void> | undefined;
  private started = false;
  private stopped = false;
  /** The id 'declared-dead' was last emitted for, so a broker slow to re-register is told once. */
  private reportedDead: string | undefined;
  private skips = 0;

  constructor(private readonly options: BrokerHeartbeatOptions) {
    super();
    const interval = options.intervalMs ?? options.registry.heartbeatIntervalMs;
    if (!Number.isSafeInteger(interval) || interval <= 0) throw new RangeError(`intervalMs must be a positive integer, got ${interval}`);
    this.intervalMs = interval;
    this.clockErrorWarnMs = options.clockErrorWarnMs ?? DEFAULT_CLOCK_ERROR_WARN_MS;
  }

  /** Ticks dropped because the previous one was still running. */
  get skippedTicks(): number {
    return this.skips;
  }

  /** Arms the first tick one interval from now (the broker heartbeats at register and samples the clock at connect). */
  start(): void {
    if (this.stopped) throw new Error('BrokerHeartbeat was stopped; create a new one');
    if (this.started) throw new Error('BrokerHeartbeat.start() called twice');
    this.started = true;
    this.arm();
  }

  /** Cancels the timer and waits for a tick in flight (its events are still emitted). Idempotent. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.cancelTimer?.();
    this.cancelTimer = undefined;
    await this.running;
  }

  private arm(): void {
    const fire = () => {
      this.cancelTimer = undefined;
      if (this.stopped) return;
      // Re-armed from the fire time, before the tick: the cadence does not stretch with the
      // database's latency, and a tick that overruns makes the next one a skip.
      this.arm();
      if (this.running) {
        this.skips += 1;
        this.options.logger.warn({ intervalMs: this.intervalMs }, 'heartbeat tick skipped: the previous one is still waiting on the database');
        this.emitSafely('skipped');
        return;
      }
      const run = this.tick().finally(() => {
        if (this.running === run) this.running = undefined;
      });
      this.running = run;
    };
    this.cancelTimer = startTimer(this.options.clock, fire, this.intervalMs);
  }

  /** Heartbeat, then clock sample, then sweep; each failure logged, none thrown. */
  private async tick(): Promise<void> {
    const { registry, logger } = this.options;
    const outcome: TickOutcome = { heartbeat: 'failed', clock: 'skipped', swept: 'skipped' };
    const id = registry.id;
    try {
      outcome.heartbeat = await registry.heartbeat(this.options.subscribed());
    } catch (error) {
      if (error instanceof BrokerNotRegisteredError) {
        outcome.heartbeat = 'not-registered';
        logger.warn('heartbeat tick without a registration: register() first, stop() before deregister()');
      } else {
        logger.warn({ err: describeError(error), brokerId: id }, 'heartbeat failed; retrying next tick');
      }
    }

    // A heartbeat that failed most likely means the database is unreachable: the next tick tries all again.
    if (outcome.heartbeat !== 'failed') {
      try {
        const sample = await registry.sampleClock();
        outcome.clock = sample;
        if (sample.errorBoundMs > this.clockErrorWarnMs) {
          logger.warn({ errorBoundMs: sample.errorBoundMs, roundTripMs: sample.roundTripMs }, 'database clock offset is uncertain');
        }
      } catch (error) {
        outcome.clock = 'failed';
        logger.warn({ err: describeError(error) }, 'database clock sample failed; keeping the previous offset');
      }
    }

    if (outcome.heartbeat === 'declared-dead' && id !== undefined && this.reportedDead !== id) {
      this.reportedDead = id;
      logger.error({ brokerId: id }, 'this broker was declared dead by another broker: its leases are being released');
      this.emitSafely('declared-dead', id);
    }

    // Only a live member takes others over: a broker declared dead is no longer one, and claims nothing either (3.6).
    if (outcome.heartbeat === 'alive') {
      try {
        outcome.swept = await registry.sweepLapsed();
        if (outcome.swept.length > 0) {
          logger.warn({ brokerIds: outcome.swept }, 'took over brokers whose heartbeat lapsed');
          this.emitSafely('swept', outcome.swept);
        }
      } catch (error) {
        outcome.swept = 'failed';
        logger.warn({ err: describeError(error) }, 'sweep of lapsed brokers failed; retrying next tick');
      }
    }
    this.emitSafely('tick', outcome);
  }

  /** A listener that throws must not end the loop. */
  private emitSafely<K extends keyof BrokerHeartbeatEvents>(event: K, ...args: BrokerHeartbeatEvents[K]): void {
    try {
      (this.emit as (event: K, ...args: BrokerHeartbeatEvents[K]) => boolean)(event, ...args);
    } catch (error) {
      this.options.logger.error({ err: describeError(error), event }, 'heartbeat event listener threw');
    }
  }
}
