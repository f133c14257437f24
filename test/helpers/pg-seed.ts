/**
 * TEST-ONLY seeding of a PostgreSQL store: copies the rows of a SQLite store into a migrated
 * PostgreSQL schema, so both hold the same data by construction. It exists until the
 * PostgreSQL write commands do (docs/design/postgres-store.md, section 4 step 5); the store
 * itself never writes rows this way.
 *
 * Copied: the tables the broker writes (jobs, queues, schedules, schedule_runs), seqs included
 * (OVERRIDING SYSTEM VALUE: the identity columns are GENERATED ALWAYS). Not copied: the count
 * tables, which PostgreSQL's own triggers fill from the inserted jobs; comparing them with
 * SQLite's is part of what the tests check. The identity sequences are not advanced past the
 * copied seqs, so a seeded schema must not take ordinary inserts afterwards, unless
 * continueIdentities has moved them on.
 */
import type pg from 'pg';
import type { Db } from '../../src/store/database.js';
import { queryRows, quoteIdent } from '../../src/store/postgres/sql.js';

/** The copied tables, parents first, each with its key order. */
export const SEEDED_TABLES = [
  { table: 'queues', key: 'name' },
  { table: 'jobs', key: 'seq' },
  { table: 'schedules', key: 'id' },
  { table: 'schedule_runs', key: 'seq' },
] as const;

export type TableDump = Record<(typeof SEEDED_TABLES)[number]['table'], Record<string, unknown>[]>;

/** Every row of the copied tables, in key order (byte order for text keys, as SQLite's BINARY). */
export function dumpSqlite(db: Db): TableDump {
  const dump = {} as TableDump;
  for (const { table, key } of SEEDED_TABLES) dump[table] = db.prepare(`SELECT * FROM ${table} ORDER BY ${key}`).all() as Record<string, unknown>[];
  return dump;
}

export async function dumpPostgres(client: pg.ClientBase, schema: string): Promise<TableDump> {
  const dump = {} as TableDump;
  for (const { table, key } of SEEDED_TABLES) dump[table] = await queryRows(client, `SELECT * FROM ${quoteIdent(schema)}.${table} ORDER BY ${key}`);
  return dump;
}

/**
 * Inserts the dumped rows into the schema, one statement per table: the rows travel as one JSON
 * parameter and json_populate_recordset turns them into rows of the table's own type (json, not
 * jsonb, so text values arrive exactly as sent).
 */
export async function seedPostgres(client: pg.ClientBase, schema: string, dump: TableDump): Promise<void> {
  await client.query('BEGIN');
  try {
    for (const { table } of SEEDED_TABLES) {
      const rows = dump[table];
      if (rows.length === 0) continue;
      const target = `${quoteIdent(schema)}.${table}`;
      await client.query(`INSERT INTO ${target} OVERRIDING SYSTEM VALUE SELECT * FROM json_populate_recordset(NULL::${target}, $1::json)`, [
        JSON.stringify(rows),
      ]);
    }
    await client.query('COMMIT');
  } catch (error) {
    await client.query('ROLLBACK');
    throw error;
  }
}

/**
 * Moves the identity of each table past its rows (the next seq is max(seq) + 1, or 1 when empty),
 * so a seeded schema can take ordinary inserts: PostgreSQL's next seq is then SQLite's.
 */
export async function continueIdentities(client: pg.ClientBase, schema: string, tables: readonly ('jobs' | 'schedule_runs')[]): Promise<void> {
  for (const table of tables) {
    const target = `${quoteIdent(schema)}.${table}`;
    await client.query(`SELECT setval(pg_get_serial_sequence($1, 'seq'), coalesce((SELECT max(seq) FROM ${target}), 0) + 1, false)`, [target]);
  }
}
