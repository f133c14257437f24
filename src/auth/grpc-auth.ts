import {
  ResponderBuilder,
  ServerInterceptingCall,
  ServerListenerBuilder,
  type ServerInterceptor,
} from '@grpc/grpc-js';
import type { Logger } from '../log.js';
import { isUndecodable } from '../grpc/decode-guard.js';
import { toServiceError } from '../grpc/status.js';
import type { Authenticator } from './authenticator.js';
import type { Principal } from './grants.js';
import { checkItems, checkRequest, checkScope, responseFilter, ruleFor, type JobQueueLookup, type PublicEndpoint } from './rpc-policy.js';

/**
 * The one gRPC authorization point: a server interceptor that runs before every handler.
 * With the metadata it authenticates the caller (bearer token or verified client
 * certificate) and checks that it holds the RPC's scope; with the first request message it
 * checks the queues the request names (a Consume stream's subscription, every job of a
 * batch); listings across queues are filtered on the way out. A rejected call never reaches
 * its handler. Installed only when auth is on, so an open broker pays nothing.
 */
export function authInterceptor(
  auth: Authenticator,
  publicEndpoints: readonly PublicEndpoint[],
  jobQueue: JobQueueLookup,
  log: Logger,
): ServerInterceptor {
  return (method, call) => {
    const path = method.path;
    const rule = ruleFor(path);
    if (rule.kind === 'open' && publicEndpoints.includes(rule.endpoint)) return new ServerInterceptingCall(call);

    let principal: Principal | undefined;
    let checked = false;
    let rejected = false;
    const reject = (error: unknown) => {
      rejected = true;
      const status = toServiceError(error, log, { rpc: path });
      // Who was refused, never with what: the token itself is never logged.
      log.debug({ rpc: path, principal: principal?.name, peer: call.getPeer(), code: status.code }, 'call refused');
      call.sendStatus({ code: status.code!, details: status.details!, metadata: status.metadata! });
    };

    const listener = new ServerListenerBuilder()
      .withOnReceiveMetadata((metadata, next) => {
        try {
          const header = metadata.get('authorization')[0];
          principal = auth.authenticate(header === undefined ? undefined : String(header), call.getAuthContext().sslPeerCertificate);
          checkScope(principal, rule, path);
        } catch (error) {
          return reject(error);
        }
        next(metadata);
      })
      .withOnReceiveMessage((message, next) => {
        if (rejected) return;
        // Undecodable (grpc/decode-guard.ts): it names no queue; the handler answers INVALID_ARGUMENT.
        if (isUndecodable(message)) return next(message);
        // A stream of item batches: every message, item by item (refusals go to the handler).
        if (rule.kind === 'items') {
          checkItems(principal!, rule, path, message);
          return next(message);
        }
        if (!checked) {
          checked = true;
          let lookup: Promise<void> | void;
          try {
            lookup = checkRequest(principal!, rule, path, message, jobQueue);
          } catch (error) {
            return reject(error);
          }
          // A job's queue is read from the store: the message waits for it (grpc-js holds the
          // half-close until `next`); the call is unary, so no later message can overtake it.
          if (lookup) {
            lookup.then(() => next(message), reject);
            return;
          }
        }
        next(message);
      })
      .build();

    const responder = new ResponderBuilder().withStart((next) => next(listener));
    // Only listings are rewritten; every other call's messages pass untouched.
    if (rule.kind === 'filtered') {
      responder.withSendMessage((message, next) => {
        const filter = principal && responseFilter(principal, rule);
        next(filter ? filter(message) : message);
      });
    }
    return new ServerInterceptingCall(call, responder.build());
  };
}
