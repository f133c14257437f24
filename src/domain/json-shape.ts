import { invalidArgument } from './errors.js';

/**
 * Shape limits for the JSON documents the broker stores (payloads, results, progress).
 *
 * Depth: the wire form of a document (`google.protobuf.Value`) is encoded and decoded
 * recursively, so a payload nested 10,000 levels was stored fine and then made every read of
 * it fail ("Error serializing response") and killed every Consume stream it was sent to.
 * Values: converting JSON to `Value` costs ~1.5 us per value on the event loop, so 1 MiB of
 * tiny array elements cost 0.8 s per read.
 */
export interface JsonShapeLimits {
  maxDepth: number;
  maxValues: number;
}

/** Deepest nesting any stored document can be shown at on the wire (above every allowed --max-json-depth). */
export const WIRE_MAX_DEPTH = 256;

export interface JsonShape {
  depth: number;
  /** Containers plus array elements and object members: an upper bound on the number of values. */
  values: number;
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_BRACKET = 0x5b;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACKET = 0x5d;
const CLOSE_BRACE = 0x7d;
const COMMA = 0x2c;

/**
 * Measures valid JSON text in one pass without recursion (nothing here can overflow the
 * stack). Stops early, returning what it saw so far, once the depth passes `stopAtDepth`.
 * Strings are skipped with indexOf, so long string values cost little.
 */
export function measureJson(text: string, stopAtDepth = Infinity): JsonShape {
  let depth = 0;
  let maxDepth = 0;
  let values = 1;
  const n = text.length;
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) {
      // The closing quote is the next one not escaped by an odd run of backslashes.
      let j = i;
      for (;;) {
        j = text.indexOf('"', j + 1);
        if (j < 0) return { depth: maxDepth, values };
        let k = j - 1;
        while (text.charCodeAt(k) === BACKSLASH) k--;
        if ((j - 1 - k) % 2 === 0) break;
      }
      i = j;
    } else if (c === OPEN_BRACKET || c === OPEN_BRACE) {
      values++;
      if (++depth > maxDepth) {
        maxDepth = depth;
        if (maxDepth > stopAtDepth) return { depth: maxDepth, values };
      }
    } else if (c === CLOSE_BRACKET || c === CLOSE_BRACE) {
      depth--;
    } else if (c === COMMA) {
      values++;
    }
  }
  return { depth: maxDepth, values };
}

/** INVALID_ARGUMENT naming the field and the limit when the document is too deep or has too many values. */
export function checkJsonShape(text: string, field: string, limits: JsonShapeLimits): void {
  // Quick exits: a short document can be neither too deep nor too large.
  if (text.length <= limits.maxDepth && text.length < limits.maxValues) return;
  const shape = measureJson(text, limits.maxDepth);
  if (shape.depth > limits.maxDepth) {
    throw invalidArgument(`${field} is nested more than ${limits.maxDepth} levels deep (--max-json-depth); flatten it`);
  }
  if (shape.values > limits.maxValues) {
    throw invalidArgument(`${field} has about ${shape.values} values, over the limit of ${limits.maxValues} (--max-json-values); store large data elsewhere and enqueue a reference`);
  }
}
