/**
 * How every client command reaches the broker: the connection flags (each with a SLUICE_*
 * environment variable), the generated gRPC clients from clients/typescript (the CLI is a
 * client like any other: no broker logic here), bearer-token metadata, TLS files, and a
 * deadline on every unary call so a command never hangs on a broker that is down.
 */
import { readFileSync } from 'node:fs';
import { Option, type Command } from 'commander';
import type { CallOptions, ClientReadableStream, Metadata, ServiceError } from '@grpc/grpc-js';
import { connect, DEFAULT_ADDRESS, type ConnectionOptions, type SluiceClients } from '../../clients/typescript/src/connect.js';
import { durationMs } from './parse.js';
import { usageError } from './exit.js';

/** The flags added to every client command. */
export interface ConnectionFlags {
  address: string;
  token?: string;
  tls?: boolean;
  tlsCa?: string;
  tlsCert?: string;
  tlsKey?: string;
  tlsServerName?: string;
  timeout: number;
  json?: boolean;
}

export function addConnectionOptions(cmd: Command): Command {
  return cmd
    .addOption(new Option('--address <host:port>', "broker's gRPC address").env('SLUICE_ADDRESS').default(DEFAULT_ADDRESS))
    .addOption(new Option('--token <token>', 'bearer token (sent as "authorization: Bearer <token>")').env('SLUICE_TOKEN'))
    .addOption(new Option('--tls', "use TLS with the system's root certificates").env('SLUICE_TLS'))
    .addOption(new Option('--tls-ca <file>', 'PEM file of the CA that signed the broker certificate (implies --tls)').env('SLUICE_TLS_CA'))
    .addOption(new Option('--tls-cert <file>', 'PEM client certificate for mutual TLS (with --tls-key)').env('SLUICE_CLIENT_TLS_CERT'))
    .addOption(new Option('--tls-key <file>', 'PEM private key of --tls-cert').env('SLUICE_CLIENT_TLS_KEY'))
    .addOption(new Option('--tls-server-name <name>', 'expected name in the broker certificate, when it differs from the address host').env('SLUICE_TLS_SERVER_NAME'))
    .addOption(new Option('--timeout <duration>', 'deadline of each call (waiting for an unreachable broker included)').env('SLUICE_TIMEOUT').default(10_000, '10s').argParser(durationMs))
    .option('--json', 'print one JSON document (stable field names) instead of text');
}

function readPem(flag: string, file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (error) {
    throw usageError(`${flag}: cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
}

/** The address of the last session opened, for the "is a broker running?" hint on failures. */
export let currentAddress: string | undefined;

export function connectionOptions(flags: ConnectionFlags): ConnectionOptions {
  if (Boolean(flags.tlsCert) !== Boolean(flags.tlsKey)) throw usageError('--tls-cert and --tls-key go together (mutual TLS needs both)');
  const options: ConnectionOptions = { address: flags.address };
  if (flags.token) options.token = flags.token;
  if (flags.tlsCa || flags.tlsCert) {
    options.tls = {
      ca: flags.tlsCa ? readPem('--tls-ca', flags.tlsCa) : undefined,
      cert: flags.tlsCert ? readPem('--tls-cert', flags.tlsCert) : undefined,
      key: flags.tlsKey ? readPem('--tls-key', flags.tlsKey) : undefined,
    };
  } else if (flags.tls || flags.tlsServerName) {
    options.tls = true;
  }
  if (flags.tlsServerName) {
    options.channelOptions = { 'grpc.ssl_target_name_override': flags.tlsServerName, 'grpc.default_authority': flags.tlsServerName };
  }
  return options;
}

type UnaryMethod<Req, Res> = (request: Req, metadata: Metadata, options: Partial<CallOptions>, callback: (error: ServiceError | null, response: Res) => void) => unknown;
type StreamMethod<Req, Res> = (request: Req, metadata: Metadata, options?: Partial<CallOptions>) => ClientReadableStream<Res>;

/** One command's connection to the broker. */
export class Session {
  readonly clients: SluiceClients;

  constructor(readonly flags: ConnectionFlags) {
    currentAddress = flags.address;
    this.clients = connect(connectionOptions(flags));
  }

  get producer() {
    return this.clients.producer;
  }
  get admin() {
    return this.clients.admin;
  }

  /** Calls a generated unary method with the session's metadata and deadline. */
  call<Req, Res>(client: object, method: UnaryMethod<Req, Res>, request: Req): Promise<Res> {
    return new Promise<Res>((resolve, reject) => {
      method.call(client, request, this.clients.metadata, { deadline: Date.now() + this.flags.timeout }, (error, response) =>
        error ? reject(error) : resolve(response),
      );
    });
  }

  /** Opens a server stream with the session's metadata and no deadline (it lives as long as it must). */
  stream<Req, Res>(client: object, method: StreamMethod<Req, Res>, request: Req): ClientReadableStream<Res> {
    return method.call(client, request, this.clients.metadata, {});
  }

  close(): void {
    this.clients.close();
  }
}

/**
 * Sets `run` as the command's action, with a Session built from the command's flags and closed
 * afterwards. `run` receives the positional arguments as commander parsed them.
 */
export function withSession<F extends ConnectionFlags>(cmd: Command, run: (session: Session, flags: F, ...args: never[]) => Promise<void>): Command {
  return cmd.action(async (...received: unknown[]) => {
    const command = received.at(-1) as Command;
    const positional = received.slice(0, -2) as never[];
    const flags = command.opts<F>();
    const session = new Session(flags);
    try {
      await run(session, flags, ...positional);
    } finally {
      session.close();
    }
  });
}

/** Appends "Examples:" to a command's help; every command has at least one. */
export function examples(cmd: Command, ...lines: string[]): Command {
  return cmd.addHelpText('after', `\nExamples:\n${lines.map((l) => `  $ ${l}`).join('\n')}\n`);
}

export function out(text: string): void {
  process.stdout.write(text);
}
