import { status, type ServiceDefinition, type UntypedServiceImplementation } from '@grpc/grpc-js';
import { BinaryReader, WireType } from '@bufbuild/protobuf/wire';
import { echo } from '../domain/errors.js';

/**
 * A request the generated decoder could not read (malformed protobuf, a Timestamp beyond
 * 2^53 seconds, a Struct nested deeper than the stack). grpc-js answers a throwing
 * deserializer with INTERNAL, which must mean a broker bug; so the guarded deserializer
 * returns this instead and the handler answers INVALID_ARGUMENT.
 */
export class UndecodableRequest {
  constructor(readonly message: string) {}
}

export function isUndecodable(value: unknown): value is UndecodableRequest {
  return value instanceof UndecodableRequest;
}

/** Extra checks on the raw bytes, before decoding (for what the decoder silently wraps). */
export type RawCheck = (bytes: Buffer) => string | undefined;

/**
 * Wraps every method of a service: its deserializer never throws, and its handler answers an
 * undecodable request with INVALID_ARGUMENT. Bidirectional streams get the marker as a
 * message; their handler checks it (worker-service.ts).
 */
export function guardService(
  definition: ServiceDefinition,
  implementation: UntypedServiceImplementation,
  rawChecks: Record<string, RawCheck> = {},
): [ServiceDefinition, UntypedServiceImplementation] {
  const guardedDefinition: Record<string, unknown> = {};
  const guardedImplementation: Record<string, unknown> = {};
  for (const [name, method] of Object.entries(definition)) {
    const typeName = method.path.split('/')[2] ?? name;
    const decode = method.requestDeserialize;
    const check = rawChecks[name];
    guardedDefinition[name] = {
      ...method,
      requestDeserialize: (bytes: Buffer) => {
        try {
          const problem = check?.(bytes);
          if (problem) return new UndecodableRequest(`${typeName}: ${problem}`);
          return decode(bytes);
        } catch (error) {
          return new UndecodableRequest(`${typeName} request could not be decoded: ${echo((error as Error).message ?? String(error), 200)}`);
        }
      },
    };
    const handler = implementation[name] as (...args: any[]) => void;
    if (method.requestStream) {
      guardedImplementation[name] = handler;
    } else if (method.responseStream) {
      guardedImplementation[name] = (call: any) => {
        if (!isUndecodable(call.request)) return handler(call);
        call.emit('error', { code: status.INVALID_ARGUMENT, details: call.request.message });
      };
    } else {
      guardedImplementation[name] = (call: any, callback: (error: unknown, value: unknown) => void) => {
        if (!isUndecodable(call.request)) return handler(call, callback);
        callback({ code: status.INVALID_ARGUMENT, details: call.request.message }, null);
      };
    }
  }
  return [guardedDefinition as ServiceDefinition, guardedImplementation as UntypedServiceImplementation];
}

const INT32_MIN = -(2 ** 31);
const INT32_MAX = 2 ** 31 - 1;

/**
 * The generated decoder keeps the low 32 bits of an int32 varint, so a credit of 2^32 would
 * read as 0. This reads the top-level varint fields named here at full width and reports one
 * outside int32. Length-delimited fields are skipped in O(1).
 */
export function int32Fields(fields: Record<number, string>): RawCheck {
  return (bytes) => {
    const reader = new BinaryReader(bytes);
    while (reader.pos < reader.len) {
      const [no, wireType] = reader.tag();
      const field = fields[no];
      if (field !== undefined && wireType === WireType.Varint) {
        const value = Number(reader.int64());
        if (value < INT32_MIN || value > INT32_MAX) return `${field} ${value} does not fit in an int32`;
      } else {
        reader.skip(wireType);
      }
    }
    return undefined;
  };
}
