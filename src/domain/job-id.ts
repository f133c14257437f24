import { invalidArgument } from './errors.js';

/**
 * Job ids are UUIDv7-shaped strings computed from the row itself, so the store keeps no id
 * column and no index on it (that column and its UNIQUE index were a third of the bytes per
 * job and a B-tree insert per enqueue):
 *
 *   tttttttt-tttt-7000-8sss-ssssssssssss
 *
 * t = created_at (48-bit Unix milliseconds, so ids sort by creation time like any UUIDv7),
 * 7 = version, 8 = RFC 9562 variant, s = the job's `seq` (its INTEGER PRIMARY KEY, up to 2^53).
 * A lookup decodes the id and reads the row by primary key, checking created_at too, so an
 * id never names a different job even if a seq were reused after a purge.
 */
const PATTERN = /^([0-9a-f]{8})-([0-9a-f]{4})-7000-([89ab][0-9a-f]{3})-([0-9a-f]{12})$/;
const TWO_48 = 2 ** 48;

export interface JobKey {
  seq: number;
  createdAt: number;
}

// One-entry cache: every job of a flush shares its created_at.
let cachedCreatedAt = -1;
let cachedPrefix = '';

export function formatJobId(seq: number, createdAt: number): string {
  if (createdAt !== cachedCreatedAt) {
    const t = createdAt.toString(16).padStart(12, '0');
    cachedPrefix = `${t.slice(0, 8)}-${t.slice(8, 12)}-7000-`;
    cachedCreatedAt = createdAt;
  }
  if (seq < TWO_48) return `${cachedPrefix}8000-${seq.toString(16).padStart(12, '0')}`;
  const high = Math.floor(seq / TWO_48);
  const low = seq - high * TWO_48;
  return `${cachedPrefix}${(0x8000 | high).toString(16)}-${low.toString(16).padStart(12, '0')}`;
}

/** undefined when the text is not an id this broker issues (callers answer NOT_FOUND). */
export function parseJobId(id: string): JobKey | undefined {
  const m = PATTERN.exec(id);
  if (!m) return undefined;
  return {
    createdAt: parseInt(m[1]! + m[2]!, 16),
    seq: (parseInt(m[3]!, 16) & 0x3fff) * TWO_48 + parseInt(m[4]!, 16),
  };
}

/** Longer ids are refused before anything looks them up (or quotes them). Ours have 36. */
export const MAX_JOB_ID_CHARS = 64;

/** A caller's job id, checked for presence and length first; its shape is the lookup's business. */
export function validateJobId(id: string, field = 'id'): string {
  if (id.length === 0) throw invalidArgument(`${field} is required`);
  if (id.length > MAX_JOB_ID_CHARS) throw invalidArgument(`${field} is ${id.length} characters long; job ids have 36 (at most ${MAX_JOB_ID_CHARS} accepted)`);
  return id;
}
