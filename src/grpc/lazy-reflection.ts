import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { status, type Server, type ServerDuplexStream, type ServiceDefinition, type UntypedServiceImplementation } from '@grpc/grpc-js';
import type * as ProtoLoader from '@grpc/proto-loader';
import type * as Reflection from '@grpc/reflection';
import type * as HealthCheck from 'grpc-health-check';
import { linkReflectionDescriptors } from './reflection-descriptors.js';

// Synchronous loads (CommonJS packages): a deserializer has to answer in the call that needs it.
const require = createRequire(import.meta.url);

const VERSIONS = ['v1', 'v1alpha'] as const;
const METHOD = 'ServerReflectionInfo';
const methodPath = (version: string) => `/grpc.reflection.${version}.ServerReflection/${METHOD}`;

/** The real reflection method of one version: its definition (codecs) and handler. */
interface LoadedMethod {
  definition: ServiceDefinition[string];
  handler: (call: ServerDuplexStream<unknown, unknown>) => void;
}

/**
 * Server reflection (grpcurl's `list`, `describe` and JSON calls) registered at start but
 * built on its first call. Building it parses the five .proto files, rewrites their
 * descriptors (reflection-descriptors.ts) and loads @grpc/reflection and the well-known types:
 * ~2 MB of heap kept and ~10 MB more RSS at start for something most brokers never answer
 * (docs/performance.md, "Memory bounds"). The method paths are fixed by the reflection
 * protocol, so the server can route them before anything is loaded; the first request's
 * decoder or handler loads the real service and every later call goes straight to it. The
 * price: that first call holds the event loop while it loads (~0.3-0.4 s on a busy 2-core
 * machine, the time it used to add to every start), once per process.
 */
export function addLazyReflection(server: Pick<Server, 'addService'>, protoDir: string, protoFiles: readonly string[]): void {
  let loaded: Map<string, LoadedMethod> | undefined;
  const load = (): Map<string, LoadedMethod> => {
    if (loaded) return loaded;
    const { loadSync } = require('@grpc/proto-loader') as typeof ProtoLoader;
    const { ReflectionService } = require('@grpc/reflection') as typeof Reflection;
    const { protoPath: healthProtoPath } = require('grpc-health-check') as typeof HealthCheck;
    const definitions = loadSync([...protoFiles, healthProtoPath], {
      includeDirs: [protoDir, dirname(dirname(dirname(healthProtoPath)))],
      keepCase: true,
      longs: String,
      enums: String,
      defaults: true,
      oneofs: true,
    });
    const methods = new Map<string, LoadedMethod>();
    // ReflectionService adds one service per protocol version; capture them instead.
    const capture = {
      addService(service: ServiceDefinition, implementation: UntypedServiceImplementation) {
        const definition = service[METHOD]!;
        methods.set(definition.path, { definition, handler: implementation[METHOD] as LoadedMethod['handler'] });
      },
    };
    new ReflectionService(linkReflectionDescriptors(definitions)).addToServer(capture as unknown as Server);
    for (const version of VERSIONS) if (!methods.has(methodPath(version))) throw new Error(`@grpc/reflection did not define ${methodPath(version)}`);
    loaded = methods;
    return methods;
  };

  for (const version of VERSIONS) {
    const path = methodPath(version);
    const real = () => load().get(path)!;
    const definition: ServiceDefinition = {
      [METHOD]: {
        path,
        requestStream: true,
        responseStream: true,
        originalName: 'serverReflectionInfo',
        requestSerialize: (value: unknown) => real().definition.requestSerialize(value),
        requestDeserialize: (bytes: Buffer) => real().definition.requestDeserialize(bytes),
        responseSerialize: (value: unknown) => real().definition.responseSerialize(value),
        responseDeserialize: (bytes: Buffer) => real().definition.responseDeserialize(bytes),
      },
    };
    server.addService(definition, {
      [METHOD]: (call: ServerDuplexStream<unknown, unknown>) => {
        let method: LoadedMethod;
        try {
          method = real();
        } catch (error) {
          call.emit('error', { code: status.INTERNAL, details: `reflection unavailable: ${(error as Error).message}` });
          return;
        }
        method.handler(call);
      },
    });
  }
}
