import { connectivityState, type ChannelInterface as Channel } from '@grpc/grpc-js';
import { connect as netConnect } from 'node:net';

/**
 * Follows a channel's connectivity, so a client can tell "no broker at this address" (never
 * reached: report it early, with the address and why) from "the broker is restarting" (it was
 * reached before: keep waiting, as calls do with waitForReady).
 */
export class BrokerReachability {
  private reachedOnce = false;
  private readonly listeners = new Set<(state: connectivityState) => void>();
  private stopped = false;

  constructor(
    private readonly channel: Channel,
    readonly address: string,
  ) {
    this.watch();
  }

  /** The broker answered at least once on this channel. */
  get everReached(): boolean {
    return this.reachedOnce;
  }

  get ready(): boolean {
    return this.state() === connectivityState.READY;
  }

  /** Connecting failed and the channel is waiting to try again. */
  get failing(): boolean {
    return this.state() === connectivityState.TRANSIENT_FAILURE;
  }

  /** Called on every state change; returns a function that stops it. */
  onChange(listener: (state: connectivityState) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** "no Sluice broker at 127.0.0.1:50051 (connection refused); is it running? ..." */
  async describe(): Promise<string> {
    const why = await probe(this.address);
    return `no Sluice broker at ${this.address}${why ? ` (${why})` : ''}; is it running? (\`npm start\` in the Sluice repository starts one)`;
  }

  stop(): void {
    this.stopped = true;
    this.listeners.clear();
  }

  private state(): connectivityState {
    try {
      return this.channel.getConnectivityState(false);
    } catch {
      return connectivityState.SHUTDOWN;
    }
  }

  private watch(): void {
    const current = this.state();
    if (this.stopped || current === connectivityState.SHUTDOWN) return;
    if (current === connectivityState.READY) this.reachedOnce = true;
    // No deadline: no timer, so watching never keeps the process alive.
    this.channel.watchConnectivityState(current, Infinity, () => {
      const next = this.state();
      if (next === connectivityState.READY) this.reachedOnce = true;
      if (!this.stopped) for (const listener of this.listeners) listener(next);
      this.watch();
    });
  }
}

const REASONS: Record<string, string> = {
  ECONNREFUSED: 'connection refused',
  ENOTFOUND: 'host not found',
  EAI_AGAIN: 'host name lookup failed',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  ECONNRESET: 'connection reset',
};

/** Why a TCP connection to host:port fails, or undefined when the address is not host:port. */
function probe(address: string): Promise<string | undefined> {
  const m = /^(?:dns:(?:\/\/\/)?)?\[?([^\]]+?)\]?:(\d+)$/.exec(address);
  if (!m) return Promise.resolve(undefined);
  const [, host, port] = m;
  return new Promise((resolve) => {
    const socket = netConnect({ host: host!, port: Number(port) });
    socket.setTimeout(2_000);
    socket.unref();
    socket.once('connect', () => {
      socket.destroy();
      resolve('the port accepts TCP connections but no gRPC answer came: is it a Sluice broker, and do the TLS settings match?');
    });
    socket.once('timeout', () => {
      socket.destroy();
      resolve('no answer within 2 s');
    });
    socket.once('error', (error: NodeJS.ErrnoException) => resolve(REASONS[error.code ?? ''] ?? error.code ?? error.message));
  });
}
