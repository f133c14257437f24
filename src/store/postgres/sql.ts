import pg from 'pg';

/**
 * What the PostgreSQL store needs from a connection: a pool, a client of one, or a lone
 * client. The caller owns it (connects, ends it).
 */
export type PgQueryable = pg.Pool | pg.ClientBase;

/**
 * The store's epoch-ms times and seqs are `bigint`, which node-postgres hands back as strings
 * by default. The SQLite rows (src/store/types.ts) hold numbers, so int8 is parsed to a number
 * here, per query rather than through the process-wide `pg.types` (which would change every
 * other user of `pg` in the process). Every value the store writes is below 2^53; a larger one
 * would silently lose digits as a number, so it is refused instead.
 */
const INT8_OID = 20;

function parseInt8(text: string): number {
  const n = Number(text);
  if (!Number.isSafeInteger(n)) throw new RangeError(`bigint ${text} is outside the range the store uses (below 2^53)`);
  return n;
}

export const STORE_TYPES: pg.CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: string) =>
    oid === INT8_OID && format !== 'binary' ? parseInt8 : pg.types.getTypeParser(oid, format as 'text')) as pg.CustomTypesConfig['getTypeParser'],
};

/** Runs one parameterized statement with the store's type parsing; returns its rows. */
export async function queryRows<R extends pg.QueryResultRow>(db: PgQueryable, text: string, values: unknown[] = []): Promise<R[]> {
  const result = await db.query<R>({ text, values, types: STORE_TYPES });
  return result.rows;
}

/**
 * A schema name as an SQL identifier. Identifiers cannot be bound parameters, so the name is
 * double-quoted with embedded quotes doubled (PostgreSQL's quote_ident rule).
 */
export function quoteIdent(name: string): string {
  if (name.length === 0 || name.includes('\0')) throw new Error(`not a usable schema name: ${JSON.stringify(name)}`);
  return `"${name.replaceAll('"', '""')}"`;
}

/** `"schema".` to qualify table names, or nothing (the connection's search_path decides). */
export function schemaPrefix(schema: string | undefined): string {
  return schema === undefined ? '' : `${quoteIdent(schema)}.`;
}

/**
 * The database's time as the store keeps times: whole epoch ms (floored), bigint. Two clocks:
 * `now()` is the transaction's start, so every row a flush writes shares one time (as SQLite's
 * @now); `clock_timestamp()` is the time the statement reads it (heartbeats, bookkeeping).
 */
export const DB_TRANSACTION_NOW_MS = `floor(extract(epoch FROM now()) * 1000)::bigint`;
export const DB_CLOCK_NOW_MS = `floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint`;

/**
 * U+0000 in text from outside (a worker's nack message or release reason, an operator's cancel
 * reason). SQLite stores it; PostgreSQL `text` cannot hold it (the server refuses the whole
 * statement, which in a pipelined flush would abort every command of the flush). The rule, for
 * the PostgreSQL store only and applied here before binding: each U+0000 becomes U+FFFD, the
 * replacement character (what a decoder writes for a character it cannot represent), so the
 * message keeps its length and the place of the lost character stays visible. The same text
 * goes to every column that repeats it (last_error, the errors entry, the history entry).
 * JSON columns are not affected: JSON text escapes it (`\u0000`, six ASCII characters).
 */
export function storableText(text: string): string {
  return text.includes('\0') ? text.replaceAll('\0', '\uFFFD') : text;
}

export function storableTextOrNull(text: string | null): string | null {
  return text === null ? null : storableText(text);
}

/**
 * A key (dedup_key, group_key) is an identity, not a message: replacing a character in it would
 * make two different keys equal (deduplicating jobs that are not duplicates). A key holding
 * U+0000 is refused before any statement is sent, naming the input, so the caller can answer
 * that job alone; the statement itself never fails on it.
 */
export class UnstorableKeyError extends Error {
  constructor(
    readonly field: string,
    readonly index: number,
  ) {
    super(`${field} of input ${index} contains U+0000, which the PostgreSQL store cannot hold`);
    this.name = 'UnstorableKeyError';
  }
}

export function storableKey(key: string | null, field: string, index: number): string | null {
  if (key !== null && key.includes('\0')) throw new UnstorableKeyError(field, index);
  return key;
}
