import { expect } from 'vitest';
import type { ServiceError, StatusObject } from '@grpc/grpc-js';
import { status } from '@grpc/grpc-js';
import { withTimeout } from './api.js';

const codeName = (code: number): string => (status as unknown as Record<number, string>)[code] ?? String(code);

/**
 * Awaits a unary call that must fail, and checks its gRPC status code and that the message
 * names what is wrong (every string in `mentions`, case-insensitive). Returns the error.
 */
export async function expectStatus(call: Promise<unknown>, code: status, ...mentions: string[]): Promise<ServiceError> {
  let error: ServiceError | undefined;
  try {
    const value = await call;
    throw new Error(`expected ${codeName(code)}, but the call succeeded with ${JSON.stringify(value)}`);
  } catch (e) {
    if (typeof (e as ServiceError).code !== 'number') throw e;
    error = e as ServiceError;
  }
  expect(codeName(error.code), `status of: ${error.details}`).toBe(codeName(code));
  for (const m of mentions) expect(error.details.toLowerCase(), `message should mention "${m}"`).toContain(m.toLowerCase());
  return error;
}

/** Awaits the end of a Consume stream and checks its status code and message. */
export async function expectStreamStatus(consumer: { status: Promise<StatusObject> }, code: status, ...mentions: string[]): Promise<StatusObject> {
  const s = await withTimeout(consumer.status, 10_000, 'the Consume stream to end');
  expect(codeName(s.code), `status of: ${s.details}`).toBe(codeName(code));
  for (const m of mentions) expect(s.details.toLowerCase(), `message should mention "${m}"`).toContain(m.toLowerCase());
  return s;
}
