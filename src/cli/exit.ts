import { status as Status, type ServiceError } from '@grpc/grpc-js';
import { CommanderError } from 'commander';

/**
 * Exit codes scripts can rely on (README "CLI"):
 *   0  the command did what was asked
 *   1  a call to the broker failed (the gRPC status name and message are printed on stderr)
 *   2  usage error: unknown command or flag, bad flag value, missing confirmation
 *   3  `sluice watch --exit-status`: the job ended dead or cancelled
 */
export const EXIT_OK = 0;
export const EXIT_CALL_FAILED = 1;
export const EXIT_USAGE = 2;
export const EXIT_JOB_FAILED = 3;

/** A failure the CLI itself detected, with the exit code it maps to. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
  }
}

export function usageError(message: string): CliError {
  return new CliError(message, EXIT_USAGE);
}

function isServiceError(error: unknown): error is ServiceError {
  return error instanceof Error && typeof (error as Partial<ServiceError>).code === 'number' && 'metadata' in error;
}

/** The gRPC status name for a code: 5 -> "NOT_FOUND". */
export function statusName(code: number): string {
  return (Status as unknown as Record<number, string>)[code] ?? `UNKNOWN_STATUS_${code}`;
}

/**
 * Prints what went wrong on stderr and returns the exit code. Commander has already printed its
 * own usage errors (and help), so those only map to a code.
 */
export function reportError(error: unknown, address: string | undefined): number {
  if (error instanceof CommanderError) return error.exitCode === 0 ? EXIT_OK : EXIT_USAGE;
  if (error instanceof CliError) {
    process.stderr.write(`sluice: ${error.message}\n`);
    return error.exitCode;
  }
  if (isServiceError(error)) {
    const name = statusName(error.code);
    process.stderr.write(`sluice: ${name}: ${error.details || error.message}\n`);
    if ((error.code === Status.UNAVAILABLE || error.code === Status.DEADLINE_EXCEEDED) && address) {
      process.stderr.write(`sluice: is a broker running at ${address}? (set --address or SLUICE_ADDRESS)\n`);
    }
    return EXIT_CALL_FAILED;
  }
  process.stderr.write(`sluice: ${error instanceof Error ? error.message : String(error)}\n`);
  return EXIT_CALL_FAILED;
}
