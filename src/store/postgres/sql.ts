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
