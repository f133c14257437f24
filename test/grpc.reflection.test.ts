/**
 * Server reflection, used the way grpcurl uses it: list services, fetch file descriptors
 * (and their imports), build a descriptor registry, then make JSON calls with no .proto
 * file in hand (SPEC §2: `grpcurl -plaintext HOST:PORT list`, `describe` and JSON calls).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { status } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { create, createFileRegistry, fromBinary, fromJson, toBinary, toJson, ScalarType, type DescField, type DescMessage, type FileRegistry, type JsonValue } from '@bufbuild/protobuf';
import { FileDescriptorProtoSchema, FileDescriptorSetSchema, type FileDescriptorProto } from '@bufbuild/protobuf/wkt';
import { startTestBroker, type TestBroker } from './helpers/broker.js';
import { withTimeout } from './helpers/api.js';

const REFLECTION_V1_PROTO = fileURLToPath(new URL('../node_modules/@grpc/reflection/build/proto/grpc/reflection/v1/reflection.proto', import.meta.url));
const REFLECTION_V1ALPHA_PROTO = fileURLToPath(new URL('../node_modules/@grpc/reflection/build/proto/grpc/reflection/v1alpha/reflection.proto', import.meta.url));

interface ReflectionResponse {
  validHost: string;
  listServicesResponse?: { service: { name: string }[] };
  fileDescriptorResponse?: { fileDescriptorProto: Buffer[] };
  errorResponse?: { errorCode: number; errorMessage: string };
  messageResponse?: string;
}

type ReflectionRequest = { host?: string; listServices?: string; fileContainingSymbol?: string; fileByFilename?: string };

/** A client for grpc.reflection.<version>.ServerReflection built from the shipped .proto. */
function reflectionClient(address: string, version: 'v1' | 'v1alpha'): grpc.Client & { ServerReflectionInfo(): grpc.ClientDuplexStream<ReflectionRequest, ReflectionResponse> } {
  const definition = loadSync(version === 'v1' ? REFLECTION_V1_PROTO : REFLECTION_V1ALPHA_PROTO, { keepCase: false, longs: String, enums: String, defaults: true, oneofs: true });
  const pkg = grpc.loadPackageDefinition(definition) as unknown as { grpc: { reflection: Record<string, { ServerReflection: grpc.ServiceClientConstructor }> } };
  const Ctor = pkg.grpc.reflection[version]!.ServerReflection;
  return new Ctor(address, grpc.credentials.createInsecure()) as never;
}

/** One request/response exchange on a reflection stream (the service answers each request in order). */
async function reflect(client: ReturnType<typeof reflectionClient>, request: ReflectionRequest): Promise<ReflectionResponse> {
  const call = client.ServerReflectionInfo();
  const response = new Promise<ReflectionResponse>((resolve, reject) => {
    call.once('data', (r: ReflectionResponse) => resolve(r));
    call.once('error', reject);
  });
  call.write({ host: '', ...request });
  try {
    return await withTimeout(response, 10_000, `a reflection answer to ${JSON.stringify(request)}`);
  } finally {
    call.end();
  }
}

function fileDescriptors(r: ReflectionResponse, what: string): FileDescriptorProto[] {
  expect(r.errorResponse, `${what}: ${r.errorResponse?.errorMessage}`).toBeUndefined();
  const raw = r.fileDescriptorResponse?.fileDescriptorProto ?? [];
  expect(raw.length, `${what} returns file descriptors`).toBeGreaterThan(0);
  return raw.map((bytes) => fromBinary(FileDescriptorProtoSchema, new Uint8Array(bytes)));
}

/**
 * What grpcurl does: file_containing_symbol for each wanted symbol, then file_by_filename for
 * every import not yet seen, until the closure is complete. Returns the files by name.
 */
async function fetchFileClosure(client: ReturnType<typeof reflectionClient>, symbols: string[]): Promise<Map<string, FileDescriptorProto>> {
  const files = new Map<string, FileDescriptorProto>();
  for (const symbol of symbols) {
    for (const f of fileDescriptors(await reflect(client, { fileContainingSymbol: symbol }), `file_containing_symbol ${symbol}`)) files.set(f.name, f);
  }
  for (;;) {
    const missing = [...files.values()].flatMap((f) => f.dependency).filter((name) => !files.has(name));
    if (missing.length === 0) return files;
    const name = missing[0]!;
    const got = fileDescriptors(await reflect(client, { fileByFilename: name }), `file_by_filename ${name}`);
    expect(got.map((f) => f.name)).toContain(name);
    for (const f of got) files.set(f.name, f);
  }
}

/** Orders files so every import comes before its importer, then builds one registry. */
function registryOf(files: Map<string, FileDescriptorProto>): FileRegistry {
  const ordered: FileDescriptorProto[] = [];
  const done = new Set<string>();
  const visit = (name: string) => {
    if (done.has(name)) return;
    done.add(name);
    const f = files.get(name);
    if (!f) throw new Error(`import ${name} was not fetched`);
    for (const dep of f.dependency) visit(dep);
    ordered.push(f);
  };
  for (const name of files.keys()) visit(name);
  return createFileRegistry(create(FileDescriptorSetSchema, { file: ordered }));
}

/** A generic client whose methods take and return raw message bytes (grpcurl's dynamic stub). */
function rawUnary(address: string, service: string, method: string): (request: Uint8Array) => Promise<Uint8Array> {
  const identity = (b: Buffer | Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength);
  const Ctor = grpc.makeGenericClientConstructor(
    {
      [method]: {
        path: `/${service}/${method}`,
        requestStream: false,
        responseStream: false,
        requestSerialize: identity,
        requestDeserialize: identity,
        responseSerialize: identity,
        responseDeserialize: identity,
      },
    },
    service,
  );
  const client = new Ctor(address, grpc.credentials.createInsecure()) as unknown as Record<string, (req: Buffer, cb: (e: grpc.ServiceError | null, res?: Buffer) => void) => void>;
  return (request) =>
    new Promise((resolve, reject) => {
      client[method]!.call(client, Buffer.from(request), (error, response) => {
        (client as unknown as grpc.Client).close();
        if (error) reject(error);
        else resolve(new Uint8Array(response!));
      });
    });
}

/** `grpcurl -d JSON -plaintext ADDR service/method`: JSON in, JSON out, through reflection only. */
async function jsonCall(registry: FileRegistry, address: string, service: string, method: string, json: JsonValue): Promise<JsonValue> {
  const desc = registry.getService(service)?.methods.find((m) => m.name === method);
  if (!desc) throw new Error(`${service}/${method} is not in the reflected registry`);
  const request = toBinary(desc.input, fromJson(desc.input, json, { registry }));
  const response = await rawUnary(address, service, method)(request);
  return toJson(desc.output, fromBinary(desc.output, response), { registry });
}

function bytesFields(message: DescMessage): DescField[] {
  return message.fields.filter(
    (f) =>
      (f.fieldKind === 'scalar' && f.scalar === ScalarType.BYTES) ||
      (f.fieldKind === 'list' && f.listKind === 'scalar' && f.scalar === ScalarType.BYTES) ||
      (f.fieldKind === 'map' && f.mapKind === 'scalar' && f.scalar === ScalarType.BYTES),
  );
}

const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/;

let b: TestBroker;
let v1: ReturnType<typeof reflectionClient>;
beforeAll(async () => {
  b = await startTestBroker();
  v1 = reflectionClient(b.running.address, 'v1');
});
afterAll(async () => {
  v1?.close();
  await b?.close();
});

describe('server reflection (what grpcurl needs)', () => {
  it('list_services names the Sluice services and grpc.health.v1.Health (v1 and v1alpha)', async () => {
    const r = await reflect(v1, { listServices: '*' });
    expect(r.errorResponse).toBeUndefined();
    const names = r.listServicesResponse!.service.map((s) => s.name);
    expect(names).toEqual(expect.arrayContaining(['sluice.v1.ProducerService', 'sluice.v1.WorkerService', 'sluice.v1.AdminService', 'grpc.health.v1.Health']));

    const alpha = reflectionClient(b.running.address, 'v1alpha');
    try {
      const ra = await reflect(alpha, { listServices: '*' });
      expect(ra.errorResponse).toBeUndefined();
      expect(ra.listServicesResponse!.service.map((s) => s.name)).toEqual(expect.arrayContaining(['sluice.v1.ProducerService', 'sluice.v1.WorkerService', 'sluice.v1.AdminService', 'grpc.health.v1.Health']));
    } finally {
      alpha.close();
    }
  });

  it('answers an unknown symbol with NOT_FOUND in the reflection response', async () => {
    const r = await reflect(v1, { fileContainingSymbol: 'sluice.v1.NoSuchService' });
    expect(r.errorResponse?.errorCode).toBe(status.NOT_FOUND);
  });

  it('describes ProducerService/Enqueue from the file descriptors it returns', async () => {
    const first = fileDescriptors(await reflect(v1, { fileContainingSymbol: 'sluice.v1.ProducerService' }), 'file_containing_symbol sluice.v1.ProducerService');
    expect(first[0]!.package).toBe('sluice.v1');
    expect(first[0]!.service.map((s) => s.name)).toContain('ProducerService');
    // Linkable like protoc output: imports listed, type names fully qualified, proto field names.
    expect(first[0]!.dependency.length, 'the file lists its imports').toBeGreaterThan(0);
    const typeNames = first[0]!.messageType.flatMap((m) => m.field.map((f) => f.typeName)).filter((t) => t !== '');
    expect(typeNames.filter((t) => !t.startsWith('.')), 'relative type names').toEqual([]);

    const registry = registryOf(await fetchFileClosure(v1, ['sluice.v1.ProducerService']));
    const service = registry.getService('sluice.v1.ProducerService');
    expect(service, 'ProducerService resolves in the registry').toBeDefined();
    expect(service!.methods.map((m) => m.name)).toEqual(expect.arrayContaining(['Enqueue', 'EnqueueBatch', 'GetJob', 'CancelJob', 'WatchJob']));
    const enqueue = service!.methods.find((m) => m.name === 'Enqueue')!;
    expect(enqueue.methodKind).toBe('unary');
    expect(enqueue.input.typeName).toBe('sluice.v1.EnqueueRequest');
    expect(enqueue.output.typeName).toBe('sluice.v1.EnqueueResponse');
    // describe sluice.v1.EnqueueRequest: the payload is a JSON value, the state an enum.
    const payload = enqueue.input.fields.find((f) => f.name === 'payload')!;
    expect(payload.fieldKind).toBe('message');
    expect(payload.message?.typeName).toBe('google.protobuf.Value');
    expect(enqueue.input.fields.find((f) => f.name === 'run_at')!.message?.typeName).toBe('google.protobuf.Timestamp');
    expect(enqueue.output.fields.find((f) => f.name === 'state')!.enum?.typeName).toBe('sluice.v1.JobState');
    expect(enqueue.input.fields.find((f) => f.name === 'payload_json')!.jsonName).toBe('payloadJson');
    expect(registry.getMessage('google.protobuf.Value')!.fields.map((f) => f.name)).toContain('null_value');
    const watch = service!.methods.find((m) => m.name === 'WatchJob')!;
    expect(watch.methodKind).toBe('server_streaming');
  });

  it('serves JSON calls built from reflection alone: Enqueue then GetJob (payload as JSON, RFC 3339 times, enum names)', async () => {
    const registry = registryOf(await fetchFileClosure(v1, ['sluice.v1.ProducerService']));
    const address = b.running.address;

    const enqueued = (await jsonCall(registry, address, 'sluice.v1.ProducerService', 'Enqueue', { queue: 'email', payload: { to: 'a@b.c' } })) as Record<string, JsonValue>;
    expect(typeof enqueued.id).toBe('string');
    expect(enqueued.id).not.toBe('');
    expect(enqueued.state).toBe('JOB_STATE_PENDING');

    const job = (await jsonCall(registry, address, 'sluice.v1.ProducerService', 'GetJob', { id: enqueued.id! })) as Record<string, JsonValue>;
    expect(job.id).toBe(enqueued.id);
    expect(job.queue).toBe('email');
    expect(job.payload).toEqual({ to: 'a@b.c' });
    expect(job.state).toBe('JOB_STATE_PENDING');
    expect(job.priority).toBe('PRIORITY_NORMAL');
    for (const key of ['createdAt', 'updatedAt', 'runAt']) {
      expect(typeof job[key], `${key} is a string`).toBe('string');
      expect(job[key] as string, key).toMatch(RFC3339);
    }
    expect(Math.abs(Date.parse(job.createdAt as string) - Date.now())).toBeLessThan(60_000);

    // The same job through the generated client agrees with what the JSON path showed.
    const typed = await b.api.getJob(enqueued.id as string);
    expect(typed.payload).toEqual({ to: 'a@b.c' });
    expect(typed.createdAt!.toISOString()).toBe(new Date(job.createdAt as string).toISOString());

    // Errors come back as gRPC status codes on the JSON path too.
    await expect(jsonCall(registry, address, 'sluice.v1.ProducerService', 'GetJob', { id: 'no-such-job' })).rejects.toMatchObject({ code: status.NOT_FOUND });
  });

  it('ScheduleService from reflection alone: grpcurl-style JSON CreateSchedule, GetSchedule and ListScheduleRuns', async () => {
    const registry = registryOf(await fetchFileClosure(v1, ['sluice.v1.ScheduleService']));
    const service = registry.getService('sluice.v1.ScheduleService');
    expect(service!.methods.map((m) => m.name)).toEqual([
      'CreateSchedule', 'UpsertSchedule', 'UpdateSchedule', 'PauseSchedule', 'ResumeSchedule',
      'DeleteSchedule', 'GetSchedule', 'ListSchedules', 'TriggerSchedule', 'ListScheduleRuns',
    ]);
    const address = b.running.address;
    const call = (method: string, json: JsonValue) => jsonCall(registry, address, 'sluice.v1.ScheduleService', method, json);
    // The README's grpcurl example, byte for byte the same JSON.
    const created = (await call('UpsertSchedule', {
      spec: { name: 'invoices', cron: '0 2 * * *', timezone: 'Europe/Berlin', job: { queue: 'billing', payload: { task: 'generate-invoices' } }, catchUp: 'CATCH_UP_POLICY_ONCE' },
    })) as { created: boolean; schedule: Record<string, JsonValue> };
    expect(created.created).toBe(true);
    expect(created.schedule.id).toMatch(/^sch_/);
    expect(created.schedule.nextFireAt as string).toMatch(RFC3339);
    const got = (await call('GetSchedule', { name: 'invoices', upcomingCount: 2 })) as Record<string, JsonValue>;
    expect((got.spec as Record<string, JsonValue>).catchUp).toBe('CATCH_UP_POLICY_ONCE');
    expect(got.upcoming as string[]).toHaveLength(2);
    const updated = (await call('UpdateSchedule', { name: 'invoices', spec: { cron: '0 3 * * *' }, updateMask: 'cron' })) as Record<string, JsonValue>;
    expect((updated.spec as Record<string, JsonValue>).cron).toBe('0 3 * * *');
    const run = (await call('TriggerSchedule', { name: 'invoices' })) as Record<string, JsonValue>;
    expect(run.kind).toBe('SCHEDULE_RUN_KIND_MANUAL');
    expect(run.jobState).toBe('JOB_STATE_PENDING');
    const runs = (await call('ListScheduleRuns', { name: 'invoices' })) as { runs: Record<string, JsonValue>[] };
    expect(runs.runs.map((r) => r.jobId)).toEqual([run.jobId]);
    await expect(call('CreateSchedule', { spec: { name: 'x', cron: 'nope', job: { queue: 'q' } } })).rejects.toMatchObject({ code: status.INVALID_ARGUMENT });
    await call('DeleteSchedule', { name: 'invoices' });
  });

  it('the JSON mapping of every sluice.v1 message is readable (no bytes fields except payload_json)', async () => {
    const registry = registryOf(await fetchFileClosure(v1, ['sluice.v1.ProducerService', 'sluice.v1.WorkerService', 'sluice.v1.AdminService', 'sluice.v1.ScheduleService']));
    const messages: DescMessage[] = [];
    for (const type of registry) if (type.kind === 'message' && type.typeName.startsWith('sluice.v1.')) messages.push(type);
    // All three services and their messages came through reflection.
    expect(messages.map((m) => m.typeName)).toEqual(
      expect.arrayContaining(['sluice.v1.Job', 'sluice.v1.EnqueueRequest', 'sluice.v1.ConsumeRequest', 'sluice.v1.ConsumeResponse', 'sluice.v1.Delivery', 'sluice.v1.Queue', 'sluice.v1.ListJobsRequest']),
    );
    expect(messages.length).toBeGreaterThan(20);
    for (const m of messages) {
      expect(() => toJson(m, create(m), { registry }), m.typeName).not.toThrow();
      expect(bytesFields(m).map((f) => `${m.typeName}.${f.name}`).filter((n) => !n.endsWith('.payload_json')), `bytes fields in ${m.typeName}`).toEqual([]);
    }
  });
});
