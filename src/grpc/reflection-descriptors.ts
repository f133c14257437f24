import { createRequire } from 'node:module';
import type { PackageDefinition } from '@grpc/proto-loader';
import type * as Protobuf from '@bufbuild/protobuf';
import type { DescFile } from '@bufbuild/protobuf';
import type * as WellKnownTypes from '@bufbuild/protobuf/wkt';
import type { DescriptorProto, FileDescriptorProto } from '@bufbuild/protobuf/wkt';

// @bufbuild/protobuf's descriptor types are only needed when reflection is first used
// (lazy-reflection.ts), and then synchronously: its CommonJS build, loaded on that call.
const require = createRequire(import.meta.url);

/** The well-known files that may stand in for protobufjs's merged google.protobuf file. */
function wellKnownFiles(wkt: typeof WellKnownTypes): DescFile[] {
  return [
    wkt.file_google_protobuf_any,
    wkt.file_google_protobuf_duration,
    wkt.file_google_protobuf_empty,
    wkt.file_google_protobuf_field_mask,
    wkt.file_google_protobuf_struct,
    wkt.file_google_protobuf_timestamp,
    wkt.file_google_protobuf_wrappers,
  ];
}

/**
 * proto-loader's file descriptors, which @grpc/reflection serves, are not what protoc would
 * produce: the files of one package are merged ("sluice_v1.proto"), imports are not listed,
 * type names are relative and json_name is missing (grpc/grpc-node#3018). grpcurl then fails
 * with `included an unresolvable reference to ".google.protobuf.Value"`. This rewrites them:
 * fully-qualified type names, the imports each file needs, json_name on every field, and the
 * canonical google/protobuf/*.proto files in place of protobufjs's merged copy.
 */
export function linkReflectionDescriptors(definitions: PackageDefinition): PackageDefinition {
  const { fromBinary, toBinary } = require('@bufbuild/protobuf') as typeof Protobuf;
  const wkt = require('@bufbuild/protobuf/wkt') as typeof WellKnownTypes;
  const { FileDescriptorProtoSchema } = wkt;
  const wellKnown = wellKnownFiles(wkt);
  const files = new Map<string, FileDescriptorProto>();
  const canonical = new Set<string>();
  for (const def of Object.values(definitions)) {
    const list = (def as { fileDescriptorProtos?: unknown }).fileDescriptorProtos;
    if (!Array.isArray(list)) continue;
    for (const bytes of list as Buffer[]) {
      const file = fromBinary(FileDescriptorProtoSchema, bytes);
      if (files.has(file.name)) continue;
      const canonicalCopies = file.package === 'google.protobuf' ? canonicalFiles(file, wellKnown) : undefined;
      if (!canonicalCopies) {
        files.set(file.name, file);
        continue;
      }
      for (const f of canonicalCopies) {
        files.set(f.name, f);
        canonical.add(f.name);
      }
    }
  }

  // Fully-qualified message and enum name -> the file that declares it.
  const owner = new Map<string, string>();
  const index = (scope: string, fileName: string, messages: DescriptorProto[], enums: { name: string }[]) => {
    for (const e of enums) owner.set(`${scope}.${e.name}`, fileName);
    for (const m of messages) {
      owner.set(`${scope}.${m.name}`, fileName);
      index(`${scope}.${m.name}`, fileName, m.nestedType, m.enumType);
    }
  };
  for (const f of files.values()) index(f.package, f.name, f.messageType, f.enumType);

  /** C++-like scoping: look the name up in the scope, then in each enclosing scope. */
  const resolve = (name: string, scope: string): string => {
    if (name.startsWith('.')) return name.slice(1);
    for (let s = scope; ; s = s.includes('.') ? s.slice(0, s.lastIndexOf('.')) : '') {
      const candidate = s ? `${s}.${name}` : name;
      if (owner.has(candidate)) return candidate;
      if (!s) return name;
    }
  };

  const linked: Buffer[] = [];
  for (const file of files.values()) {
    if (!canonical.has(file.name)) {
      const deps = new Set(file.dependency);
      const link = (name: string, scope: string): string => {
        const full = resolve(name, scope);
        const from = owner.get(full);
        if (from && from !== file.name) deps.add(from);
        return `.${full}`;
      };
      const visit = (scope: string, messages: DescriptorProto[]) => {
        for (const m of messages) {
          const inner = `${scope}.${m.name}`;
          for (const field of [...m.field, ...m.extension]) {
            if (field.typeName) field.typeName = link(field.typeName, inner);
            if (field.extendee) field.extendee = link(field.extendee, inner);
            if (!field.jsonName) field.jsonName = jsonName(field.name);
          }
          visit(inner, m.nestedType);
        }
      };
      visit(file.package, file.messageType);
      for (const service of file.service) {
        for (const method of service.method) {
          method.inputType = link(method.inputType, file.package);
          method.outputType = link(method.outputType, file.package);
        }
      }
      file.dependency = [...deps];
    }
    linked.push(Buffer.from(toBinary(FileDescriptorProtoSchema, file)));
  }

  const out: PackageDefinition = {};
  for (const [name, def] of Object.entries(definitions)) {
    out[name] = Array.isArray((def as { fileDescriptorProtos?: unknown }).fileDescriptorProtos) ? ({ ...def, fileDescriptorProtos: linked } as typeof def) : def;
  }
  return out;
}

/** The canonical files declaring the types of protobufjs's merged google.protobuf file, or undefined if one is unknown. */
function canonicalFiles(merged: FileDescriptorProto, wellKnown: readonly DescFile[]): FileDescriptorProto[] | undefined {
  const found = new Map<string, DescFile>();
  const names = [...merged.messageType.map((m) => m.name), ...merged.enumType.map((e) => e.name)];
  for (const name of names) {
    const file = wellKnown.find((f) => f.messages.some((m) => m.name === name) || f.enums.some((e) => e.name === name));
    if (!file) return undefined;
    found.set(file.proto.name, file);
  }
  return [...found.values()].map((f) => f.proto);
}

/** protoc's json_name: drop underscores and capitalise the letter after each. */
function jsonName(name: string): string {
  return name.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase()).replace(/_/g, '');
}
