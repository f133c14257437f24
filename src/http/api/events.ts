import type { ServerResponse } from 'node:http';
import type { Broker } from '../../broker/broker.js';
import type { JobChange } from '../../broker/job-watchers.js';
import { SluiceError } from '../../domain/errors.js';
import type { Logger } from '../../log.js';
import { HttpError } from './http-error.js';
import type { Route } from './route.js';
import { queryParams } from './request.js';
import { queueJson } from './views.js';

/**
 * The live feed's pace: one `counts` message per second at most, shared by every open page
 * (computed once per tick), and only when something changed; `job` messages for a watched
 * job are coalesced to at most 4 a second. With no page open there is no timer and no
 * watcher: the feed costs nothing.
 */
export const FEED_INTERVAL_MS = 1000;
export const JOB_COALESCE_MS = 250;
const KEEPALIVE_MS = 15_000;
/** Open event streams at most (each is a socket and, when watching a job, a watcher). */
export const MAX_FEEDS = 64;

interface Feed {
  res: ServerResponse;
  unwatch?: () => void;
  jobTimer?: NodeJS.Timeout;
  pending?: JobChange;
}

export class LiveFeed {
  private readonly feeds = new Set<Feed>();
  private timer: NodeJS.Timeout | undefined;
  /** A tick's snapshot is being read: the next tick is skipped rather than overlapping it. */
  private ticking = false;
  private lastState = '';
  private lastSentAt = 0;

  constructor(
    private readonly broker: Broker,
    private readonly log: Logger,
  ) {}

  get size(): number {
    return this.feeds.size;
  }

  async open(res: ServerResponse, jobId: string | undefined): Promise<void> {
    if (this.feeds.size >= MAX_FEEDS) throw new HttpError(503, 'TOO_MANY_FEEDS', `${MAX_FEEDS} live feeds are open already; close a dashboard tab`, { 'retry-after': '5' });
    if (jobId !== undefined) await this.broker.reads.getJob(jobId); // 404 before the stream starts
    // The newest state at once, so a page is current from its first frame (read before the
    // headers: a failed read is still an error answer, not a broken stream).
    const first = (await this.snapshot()).message;
    if (res.destroyed) return; // gone while we read: its 'close' has fired already
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      'x-content-type-options': 'nosniff',
      connection: 'keep-alive',
    });
    const feed: Feed = { res };
    this.feeds.add(feed);
    res.on('close', () => this.close(feed));
    res.write(`retry: 3000\n\n`);
    res.write(first);
    if (jobId !== undefined) {
      feed.unwatch = this.broker.watchJob(jobId, (change) => {
        feed.pending = change;
        feed.jobTimer ??= setTimeout(() => {
          feed.jobTimer = undefined;
          const c = feed.pending!;
          feed.pending = undefined;
          res.write(`event: job\ndata: ${JSON.stringify({ id: c.jobId, state: c.state, attempt: c.attempt, at: new Date(c.at).toISOString() })}\n\n`);
        }, JOB_COALESCE_MS);
      });
    }
    if (!this.timer) {
      this.timer = setInterval(() => this.tick(), FEED_INTERVAL_MS);
      this.timer.unref();
    }
  }

  private close(feed: Feed): void {
    if (!this.feeds.delete(feed)) return;
    feed.unwatch?.();
    if (feed.jobTimer) clearTimeout(feed.jobTimer);
    if (this.feeds.size === 0 && this.timer) {
      clearInterval(this.timer);
      this.timer = undefined;
      this.lastState = '';
    }
  }

  private tick(): void {
    if (this.broker.state === 'stopped') {
      for (const feed of [...this.feeds]) feed.res.end();
      return;
    }
    if (this.ticking) return;
    this.ticking = true;
    void this.send().finally(() => (this.ticking = false));
  }

  private async send(): Promise<void> {
    let message: string;
    try {
      const snap = await this.snapshot();
      // Unchanged and idle: nothing to say.
      message = snap.stateText === this.lastState && snap.quiet ? '' : snap.message;
      this.lastState = snap.stateText;
    } catch (error) {
      this.log.error({ err: error }, 'live feed snapshot failed');
      return;
    }
    const now = Date.now();
    if (message === '') {
      if (now - this.lastSentAt < KEEPALIVE_MS) return;
      message = ': keepalive\n\n';
    }
    this.lastSentAt = now;
    for (const feed of this.feeds) feed.res.write(message);
  }

  /** A `counts` message: queues with counts, worker totals and the last second's throughput. */
  private async snapshot(): Promise<{ message: string; stateText: string; quiet: boolean }> {
    const broker = this.broker;
    const now = broker.clock.now();
    const [since, queues] = await Promise.all([broker.reads.pendingSince(), broker.reads.listQueues()]);
    const sessions = broker.listSessions();
    const state = {
      queues: queues.map((q) => queueJson(q, broker.config, since.get(q.settings.name))),
      workers: sessions.length,
      inFlight: sessions.reduce((n, s) => n + s.leases.size, 0),
    };
    // The second that just ended: complete, so the chart never shows a half-counted bar.
    const second = Math.floor(now / 1000) * 1000 - 1000;
    const throughput = { at: new Date(second).toISOString(), ...broker.throughput.at(second) };
    const stateText = JSON.stringify(state);
    const quiet = throughput.completed === 0 && throughput.failed === 0;
    const message = `event: counts\ndata: ${JSON.stringify({ ...state, throughput, serverTime: new Date(now).toISOString() })}\n\n`;
    return { message, stateText, quiet };
  }
}

export function eventRoutes(feed: LiveFeed): Route[] {
  return [
    {
      method: 'GET',
      path: '/events',
      stream: true,
      scopes: ['read'],
      handle: ({ url, res }) => {
        const q = queryParams(url, ['job']);
        if (q.job === '') throw new SluiceError('INVALID_ARGUMENT', 'job must name a job id');
        return feed.open(res, q.job);
      },
    },
  ];
}
