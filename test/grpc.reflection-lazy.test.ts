/**
 * Reflection is built on its first call, not at start (src/grpc/lazy-reflection.ts): a broker
 * that nobody inspects with grpcurl does not carry its descriptors. Both protocol versions
 * answer their first request, including when they race to load it.
 */
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as grpc from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { startTestBroker, type TestBroker } from './helpers/broker.js';
import { withTimeout } from './helpers/api.js';

const require = createRequire(import.meta.url);
const reflectionProto = (version: 'v1' | 'v1alpha') =>
  fileURLToPath(new URL(`../node_modules/@grpc/reflection/build/proto/grpc/reflection/${version}/reflection.proto`, import.meta.url));

type Call = grpc.ClientDuplexStream<{ listServices: string }, { listServicesResponse?: { service: { name: string }[] } }>;

function listServices(address: string, version: 'v1' | 'v1alpha'): Promise<string[]> {
  const definition = loadSync(reflectionProto(version), { keepCase: false, longs: String, enums: String, defaults: true, oneofs: true });
  const pkg = grpc.loadPackageDefinition(definition) as unknown as { grpc: { reflection: Record<string, { ServerReflection: grpc.ServiceClientConstructor }> } };
  const client = new pkg.grpc.reflection[version]!.ServerReflection(address, grpc.credentials.createInsecure()) as unknown as grpc.Client & { ServerReflectionInfo(): Call };
  const call = client.ServerReflectionInfo();
  const answer = new Promise<string[]>((resolve, reject) => {
    call.once('data', (r: { listServicesResponse?: { service: { name: string }[] } }) => resolve((r.listServicesResponse?.service ?? []).map((s) => s.name)));
    call.once('error', reject);
  });
  call.write({ listServices: '' });
  return withTimeout(answer, 10_000, `reflection ${version} list_services`).finally(() => {
    call.end();
    client.close();
  });
}

/** Whether a module file of the package is in Node's CommonJS cache (where the broker loads it from). */
const loaded = (pkg: string) => Object.keys(require.cache).some((file) => file.includes(`/node_modules/${pkg}/`));

describe('gRPC reflection is loaded on first use', () => {
  let broker: TestBroker;
  beforeAll(async () => {
    broker = await startTestBroker();
  });
  afterAll(async () => {
    await broker?.close();
  });

  it('is not loaded by a started broker, and answers both versions on the first calls', async () => {
    expect(loaded('@grpc/reflection')).toBe(false);
    const [v1, v1alpha] = await Promise.all([listServices(broker.running.address, 'v1'), listServices(broker.running.address, 'v1alpha')]);
    expect(loaded('@grpc/reflection')).toBe(true);
    for (const names of [v1, v1alpha]) expect(names).toEqual(expect.arrayContaining(['sluice.v1.ProducerService', 'sluice.v1.WorkerService', 'grpc.health.v1.Health']));
    expect(await listServices(broker.running.address, 'v1')).toEqual(v1);
  });
});
