import type { BrokerConfig } from '../config.js';
import type { EnqueueInput } from '../broker/broker.js';
import { echo, invalidArgument } from '../domain/errors.js';
import { priorityFromWire } from '../domain/priority.js';
import { validateRetryPolicy } from '../domain/backoff.js';
import { validateQueueName, validateTypeName } from '../domain/names.js';
import { MAX_DURATION_MS, inRange } from '../domain/ranges.js';
import { checkJsonShape } from '../domain/json-shape.js';
import type { EnqueueRequest } from '../../clients/typescript/src/gen/sluice/v1/producer.js';

export type EnqueueLimits = Pick<BrokerConfig, 'maxPayloadBytes' | 'maxMetadataBytes' | 'maxJsonDepth' | 'maxJsonValues'>;

const MAX_KEY_LENGTH = 256;

/** Validates one wire EnqueueRequest at the edge. Errors name the field and what to do. */
export function parseEnqueueRequest(req: EnqueueRequest, limits: EnqueueLimits): EnqueueInput {
  const queue = validateQueueName(req.queue);
  const type = validateTypeName(req.type);
  const payload = payloadText(req, limits.maxPayloadBytes);
  checkJsonShape(payload, 'payload', { maxDepth: limits.maxJsonDepth, maxValues: limits.maxJsonValues });
  if (req.delayMs > 0 && req.runAt) throw invalidArgument('set delay_ms or run_at, not both');
  let runAt: number | undefined;
  if (req.runAt) {
    runAt = req.runAt.getTime();
    if (!Number.isFinite(runAt)) throw invalidArgument('run_at is not a valid time');
  }
  inRange(req.delayMs, 'delay_ms', 0, MAX_DURATION_MS);
  const leaseTimeoutMs = req.leaseTimeoutMs;
  if (leaseTimeoutMs !== 0) inRange(leaseTimeoutMs, 'lease_timeout_ms (0 = the queue default)', 50, MAX_DURATION_MS);
  inRange(req.maxAttempts, 'max_attempts (0 = the queue default)', 0, 1_000_000);
  return {
    queue,
    type,
    payload,
    priority: priorityFromWire(req.priority),
    delayMs: req.delayMs,
    runAt,
    maxAttempts: req.maxAttempts || undefined,
    retry: req.retry
      ? validateRetryPolicy(req.retry)
      : undefined,
    leaseTimeoutMs: leaseTimeoutMs || undefined,
    metadata: metadata(req.metadata, limits.maxMetadataBytes),
    dedupKey: key(req.dedupKey, 'dedup_key'),
    groupKey: key(req.groupKey, 'group_key'),
  };
}

function payloadText(req: EnqueueRequest, maxBytes: number): string {
  const hasValue = req.payload !== undefined;
  const hasJson = req.payloadJson.length > 0;
  if (hasValue && hasJson) throw invalidArgument('set payload or payload_json, not both');
  if (hasJson) {
    const json = req.payloadJson;
    if (json.length > maxBytes) throw tooLarge(json.length, maxBytes);
    const text = Buffer.from(json.buffer, json.byteOffset, json.byteLength).toString('utf8');
    try {
      JSON.parse(text);
    } catch (error) {
      throw invalidArgument(`payload_json is not valid JSON: ${echo((error as Error).message, 200)}`);
    }
    // Invalid UTF-8 decodes to U+FFFD (3 bytes per bad byte): recount only when that could matter.
    if (json.length * 3 > maxBytes) {
      const bytes = Buffer.byteLength(text);
      if (bytes > maxBytes) throw tooLarge(bytes, maxBytes);
    }
    return text;
  }
  const text = jsonText(hasValue ? req.payload : null, 'payload');
  const bytes = Buffer.byteLength(text);
  if (bytes > maxBytes) throw tooLarge(bytes, maxBytes);
  return text;
}

function tooLarge(bytes: number, maxBytes: number) {
  return invalidArgument(`payload is ${bytes} bytes, over the limit of ${maxBytes} bytes (--max-payload-bytes); store large data elsewhere and enqueue a reference`);
}

function metadata(map: Record<string, string>, maxBytes: number): Record<string, string> | undefined {
  const keys = Object.keys(map);
  if (keys.length === 0) return undefined;
  let bytes = 0;
  for (const k of keys) bytes += Buffer.byteLength(k) + Buffer.byteLength(map[k]!);
  if (bytes > maxBytes) throw invalidArgument(`metadata is ${bytes} bytes, over the limit of ${maxBytes} bytes (--max-metadata-bytes)`);
  return map;
}

function key(value: string, field: string): string | undefined {
  if (value === '') return undefined;
  if (value.length > MAX_KEY_LENGTH) throw invalidArgument(`${field} must be at most ${MAX_KEY_LENGTH} characters`);
  return value;
}

/** A decoded Value as JSON text; a document too deep to stringify is the caller's error, not ours. */
export function jsonText(value: unknown, field: string): string {
  try {
    return JSON.stringify(value);
  } catch (error) {
    throw invalidArgument(`${field} cannot be stored as JSON: ${echo((error as Error).message, 100)}`);
  }
}
