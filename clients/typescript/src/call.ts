import { status as Status, type CallOptions, type ServiceError } from '@grpc/grpc-js';
import { DeadlineExceededError, UnavailableError, fromGrpcError } from './errors.js';
import type { BrokerReachability } from './reachability.js';

export interface CallLimits {
  /** The whole call, including waiting for an unreachable broker (a restart). */
  callTimeoutMs: number;
  /** How long to wait for a broker that was never reached before giving up with its address. */
  connectTimeoutMs: number;
}

/**
 * One unary call. Calls wait for the broker (waitForReady) so a restart is ridden out, bounded
 * by `callTimeoutMs`. A broker that was never reached is reported early instead: after
 * `connectTimeoutMs` without a connection the call is cancelled and rejects with an
 * UnavailableError that names the address and why ("connection refused"). Errors are the
 * client's typed errors.
 */
export function guardedCall<T>(
  reach: BrokerReachability,
  limits: CallLimits,
  start: (options: Partial<CallOptions>, callback: (error: ServiceError | null, response?: T) => void) => { cancel(): void },
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let done = false;
    let timer: NodeJS.Timeout | undefined;
    const finish = () => {
      done = true;
      if (timer) clearTimeout(timer);
    };
    const call = start({ deadline: Date.now() + limits.callTimeoutMs }, (error, response) => {
      if (done) return;
      finish();
      if (!error) return resolve(response as T);
      if (error.code === Status.DEADLINE_EXCEEDED && !reach.ready) {
        // Waited the whole call for a broker that did not come back: say where we looked.
        void reach.describe().then((why) => reject(new DeadlineExceededError(`${why}; gave up after ${limits.callTimeoutMs} ms`, Status.DEADLINE_EXCEEDED, { cause: error })));
        return;
      }
      reject(fromGrpcError(error));
    });
    if (!reach.ready && !reach.everReached) {
      timer = setTimeout(() => {
        if (done || reach.ready || reach.everReached) return;
        finish();
        call.cancel();
        void reach.describe().then((why) => reject(new UnavailableError(why, Status.UNAVAILABLE)));
      }, limits.connectTimeoutMs);
    }
  });
}
