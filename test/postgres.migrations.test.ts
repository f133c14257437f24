/**
 * The PostgreSQL schema's migrations (src/store/postgres/migrations.ts): a fresh database
 * reaches the latest version, a re-run changes nothing, brokers starting together on one
 * database migrate it exactly once, and a database migrated by a newer Sluice is refused.
 * Also: the schema has SQLite's tables, columns, nullability and indexes (the row types map
 * 1:1), and its count triggers keep the same counts as SQLite's for the same statements.
 *
 * Needs PostgreSQL (test/helpers/postgres.ts); where it is not required only the error type's
 * contract is checked here, the rest is not registered.
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import pg from 'pg';
import { openDatabase, type Db } from '../src/store/database.js';
import {
  MIGRATION_LOCK_KEY,
  PG_MIGRATIONS,
  PG_SCHEMA_VERSION,
  SchemaTooNewError,
  migratePostgres,
} from '../src/store/postgres/migrations.js';
import { queryRows } from '../src/store/postgres/sql.js';
import { tempDir } from './helpers/broker.js';
import { postgresRequired, testDatabase, type TestDatabase } from './helpers/postgres.js';

test('SchemaTooNewError names the schema and both versions', () => {
  const error = new SchemaTooNewError('s1', 7, 3);
  expect(error).toBeInstanceOf(Error);
  expect(error).toMatchObject({ name: 'SchemaTooNewError', schema: 's1', databaseVersion: 7, knownVersion: 3 });
  expect(error.message).toMatch(/version 7, newer than this broker's 3/);
});

// Numbered from 1 (schema_migrations' CHECK): the version is the number of migrations.
test('PG_SCHEMA_VERSION is the number of migrations', () => {
  expect(PG_SCHEMA_VERSION).toBe(PG_MIGRATIONS.length);
  expect(PG_SCHEMA_VERSION).toBeGreaterThan(0);
});

if (postgresRequired()) {
  describe('PostgreSQL migrations', () => {
    let db: TestDatabase;
    // A new connection to this file's database (ended after the file).
    const connect = () => db.connect();

    async function versions(client: pg.Client, schema: string): Promise<number[]> {
      const rows = await queryRows<{ version: number }>(client, `SELECT version FROM "${schema}".schema_migrations ORDER BY version`);
      return rows.map((r) => r.version);
    }

    const ALL = Array.from({ length: PG_SCHEMA_VERSION }, (_, i) => i + 1);

    beforeAll(async () => {
      db = await testDatabase('migrations');
    });

    afterAll(async () => {
      await db?.close();
    });

    test('a fresh database migrates to the latest version, and a re-run is a no-op', async () => {
      const client = await connect();
      expect(await migratePostgres(client, { schema: 'fresh' })).toEqual({ schema: 'fresh', from: 0, to: PG_SCHEMA_VERSION, applied: ALL });
      expect(await versions(client, 'fresh')).toEqual(ALL);
      const tables = await queryRows<{ t: string }>(
        client,
        `SELECT table_name AS t FROM information_schema.tables WHERE table_schema = 'fresh' ORDER BY 1`,
      );
      expect(tables.map((r) => r.t)).toEqual([
        'brokers',
        'group_counts',
        'jobs',
        'queue_counts',
        'queues',
        'schedule_runs',
        'schedules',
        'schema_migrations',
      ]);

      expect(await migratePostgres(client, { schema: 'fresh' })).toEqual({ schema: 'fresh', from: PG_SCHEMA_VERSION, to: PG_SCHEMA_VERSION, applied: [] });
      expect(await versions(client, 'fresh')).toEqual(ALL);
    });

    test('without a schema option the connection current schema is migrated; a pool works as well as a client', async () => {
      const pool = new pg.Pool({ connectionString: db.url, max: 2, options: '-c search_path=by_path' });
      try {
        await pool.query('CREATE SCHEMA by_path');
        expect(await migratePostgres(pool)).toEqual({ schema: 'by_path', from: 0, to: PG_SCHEMA_VERSION, applied: ALL });
        expect(await migratePostgres(pool)).toMatchObject({ schema: 'by_path', applied: [] });
      } finally {
        await pool.end();
      }
    });

    test('three migrators starting together on one database all succeed and each migration runs once', async () => {
      const holder = await connect();
      const migrators = [await connect(), await connect(), await connect()];
      const schema = 'together';
      // Hold the migrators' lock first, so all three are provably waiting on it at once.
      await holder.query('BEGIN');
      await holder.query(`SELECT pg_advisory_xact_lock(${MIGRATION_LOCK_KEY})`, [schema]);
      const pids = await Promise.all(migrators.map(async (c) => (await queryRows<{ pid: number }>(c, 'SELECT pg_backend_pid() AS pid'))[0]!.pid));
      const results = Promise.allSettled(migrators.map((c) => migratePostgres(c, { schema })));
      let settled = false;
      void results.then(() => (settled = true));
      // Wait until the server reports the three sessions queued on the advisory lock (or the
      // migrators finished without it, which the assertions below then reject).
      while (!settled) {
        const [row] = await queryRows<{ n: number }>(
          holder,
          `SELECT count(*) AS n FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND pid = ANY($1::int[])`,
          [pids],
        );
        if (row!.n === 3) break;
        await new Promise((resolve) => setImmediate(resolve));
      }
      await holder.query('COMMIT');

      const done = (await results).map((r) => (r.status === 'fulfilled' ? r.value : { failed: String(r.reason), to: undefined, applied: [] }));
      expect(done.map((r) => r.to)).toEqual([PG_SCHEMA_VERSION, PG_SCHEMA_VERSION, PG_SCHEMA_VERSION]);
      // Every version was applied by exactly one of them.
      expect(done.flatMap((r) => r.applied).sort((a, b) => a - b)).toEqual(ALL);
      expect(await versions(holder, schema)).toEqual(ALL);
    });

    test('a database at a newer version than this code knows is refused with SchemaTooNewError, untouched', async () => {
      const client = await connect();
      await migratePostgres(client, { schema: 'newer' });
      await client.query(`INSERT INTO newer.schema_migrations (version, applied_at) VALUES ($1, 0)`, [PG_SCHEMA_VERSION + 1]);

      const refused = await migratePostgres(client, { schema: 'newer' }).catch((e: unknown) => e);
      expect(refused).toBeInstanceOf(SchemaTooNewError);
      expect(refused).toMatchObject({ schema: 'newer', databaseVersion: PG_SCHEMA_VERSION + 1, knownVersion: PG_SCHEMA_VERSION });
      expect(await versions(client, 'newer')).toEqual([...ALL, PG_SCHEMA_VERSION + 1]);
      // The refusal rolled its transaction back: the connection is usable and not inside one.
      const [row] = await queryRows<{ tx: string }>(client, `SELECT current_setting('transaction_isolation') AS tx`);
      expect(row!.tx).toBe('read committed');
    });

    // A claim (pending -1, active +1) and a release (active -1, pending +1) touch the same two
    // queue_counts rows in opposite directions. The count triggers lock a statement's rows in key
    // order, so both lock (q, active) before (q, pending): with the pending row held by a third
    // transaction, the claim waits holding active, the release waits on the claim, and both
    // finish once the holder commits. Locking in row order (a trigger per job) deadlocks here:
    // the claim would wait holding nothing, the release take active, then each want the other's.
    test('a claim and a release of one queue lock its count rows in the same order: no deadlock', async () => {
      const [holder, claimer, releaser] = [await connect(), await connect(), await connect()];
      await migratePostgres(holder, { schema: 'lockorder' });
      for (const c of [holder, claimer, releaser]) await c.query('SET search_path TO lockorder');
      await holder.query(`INSERT INTO jobs (queue, state, priority, payload, run_at, max_attempts, lease_timeout_ms, lease_id, lease_expires_at, created_at, updated_at)
        VALUES ('q', 'pending', 2, '{}', 1, 3, 1000, NULL, NULL, 1, 1), ('q', 'active', 2, '{}', 1, 3, 1000, 'l2', 5, 1, 1)`);
      await holder.query('BEGIN');
      await holder.query(`SELECT n FROM queue_counts WHERE queue = 'q' AND state = 'pending' FOR UPDATE`);
      const pids = await Promise.all([claimer, releaser].map(async (c) => (await queryRows<{ pid: number }>(c, 'SELECT pg_backend_pid() AS pid'))[0]!.pid));
      let settled = false;
      const done = () => {
        settled = true;
      };
      /** Until `count` of the two sessions wait on a lock (or a statement finished, which the assertions reject). */
      async function waiting(count: number): Promise<void> {
        while (!settled) {
          const [row] = await queryRows<{ n: number }>(
            holder,
            `SELECT count(*) AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND pid = ANY($1::int[])`,
            [pids],
          );
          if (row!.n === count) return;
          await new Promise((resolve) => setImmediate(resolve));
        }
      }
      // The claim first, so it is the first in line for the pending row.
      const claim = claimer.query(`UPDATE jobs SET state = 'active', lease_id = 'l1', lease_expires_at = 5 WHERE seq = 1`);
      void claim.then(done, done);
      await waiting(1);
      const release = releaser.query(`UPDATE jobs SET state = 'pending', lease_id = NULL, lease_expires_at = NULL WHERE seq = 2`);
      void release.then(done, done);
      await waiting(2);
      await holder.query('COMMIT');
      const statements = Promise.allSettled([claim, release]);
      expect((await statements).map((r) => (r.status === 'fulfilled' ? r.value.rowCount : String(r.reason)))).toEqual([1, 1]);
      expect(await queryRows(holder, `SELECT state, n FROM queue_counts WHERE queue = 'q' ORDER BY state`)).toEqual([
        { state: 'active', n: 1 },
        { state: 'pending', n: 1 },
      ]);
    });

    describe('the schema matches SQLite at its latest version', () => {
      let dir: string;
      let sqlite: Db;
      let client: pg.Client;
      const SCHEMA = 'parity';

      beforeAll(async () => {
        dir = tempDir();
        sqlite = openDatabase(join(dir, 'sluice.db'), 'NORMAL').db;
        client = await connect();
        await migratePostgres(client, { schema: SCHEMA });
      });

      afterAll(() => {
        sqlite?.close();
        rmSync(dir, { recursive: true, force: true });
      });

      /**
       * SQLite's declared type -> the PostgreSQL types it may become: JSON stays text (passed
       * through byte for byte, never jsonb), and seqs and epoch-ms times are bigint.
       */
      function pgTypesFor(column: string, sqliteType: string): string[] {
        if (sqliteType === 'TEXT') return ['text'];
        if (/^seq$|_seq$|_at$|^fire_time$/.test(column)) return ['bigint'];
        return ['smallint', 'integer', 'bigint'];
      }

      test('the same tables, columns in the same order, with the same nullability and matching types', async () => {
        const sqliteTables = (sqlite.prepare(`SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name`).all() as { name: string }[]).map(
          (t) => t.name,
        );
        // PostgreSQL has exactly two tables SQLite lacks: its migrations record (SQLite uses
        // PRAGMA user_version) and `brokers` (design 3.6: a SQLite file has one broker, so it has
        // no registry). Every other table is compared column by column below.
        const pgTables = await queryRows<{ t: string }>(
          client,
          `SELECT table_name AS t FROM information_schema.tables WHERE table_schema = $1 ORDER BY 1`,
          [SCHEMA],
        );
        expect(pgTables.map((r) => r.t).filter((t) => !sqliteTables.includes(t))).toEqual(['brokers', 'schema_migrations']);
        expect(sqliteTables.filter((t) => !pgTables.some((r) => r.t === t))).toEqual([]);
        for (const table of sqliteTables) {
          const columns = sqlite.prepare(`SELECT name, type, "notnull" AS nn, pk FROM pragma_table_info(?) ORDER BY cid`).all(table) as {
            name: string;
            type: string;
            nn: number;
            pk: number;
          }[];
          const actual = await queryRows<{ name: string; nullable: string; type: string }>(
            client,
            `SELECT column_name AS name, is_nullable AS nullable, data_type AS type FROM information_schema.columns
             WHERE table_schema = $1 AND table_name = $2 ORDER BY ordinal_position`,
            [SCHEMA, table],
          );
          expect({ table, columns: actual.map((c) => ({ name: c.name, nullable: c.nullable === 'YES' })) }).toEqual({
            table,
            columns: columns.map((c) => ({ name: c.name, nullable: c.nn === 0 && c.pk === 0 })),
          });
          for (const [i, c] of columns.entries()) expect(pgTypesFor(c.name, c.type), `${table}.${c.name}`).toContain(actual[i]!.type);
        }
      });

      // brokers has only key indexes (brokers_pkey, brokers_name_key), which are left out here
      // with every table's keys, so its lack of a SQLite counterpart does not show.
      test('the same named indexes with the same columns and predicates', async () => {
        const expected = sqlite
          .prepare(`SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL ORDER BY name`)
          .all() as { name: string; sql: string }[];
        const actual = await queryRows<{ name: string; sql: string }>(
          client,
          `SELECT indexname AS name, indexdef AS sql FROM pg_indexes WHERE schemaname = $1 AND indexname NOT LIKE '%_pkey' AND indexname NOT LIKE '%_key'
           ORDER BY indexname`,
          [SCHEMA],
        );
        expect(actual.map((i) => i.name)).toEqual(expected.map((i) => i.name));
        // Compare the indexed columns and WHERE clauses after erasing each dialect's spelling.
        const shape = (sql: string) =>
          sql
            .replace(/\s+/g, ' ')
            .replace(/^CREATE (UNIQUE )?INDEX (\S+) ON \S+ (USING btree )?/i, (_, u: string | undefined, n: string) => `${u ?? ''}${n.split('.').pop()} `)
            .replace(/::text(\[\])?|\(|\)|'|"|ARRAY\[|\]|= ANY /g, '')
            .replace(/ IN /g, ' ')
            .replace(/,/g, ' ')
            .replace(/\s+/g, ' ')
            .trim()
            .toLowerCase();
        expect(actual.map((i) => shape(i.sql))).toEqual(expected.map((i) => shape(i.sql)));
      });

      test('the count triggers keep the same queue and group counts as SQLite for the same statements', async () => {
        const statements = [
          `INSERT INTO jobs (queue, type, state, priority, payload, run_at, max_attempts, lease_timeout_ms, group_key, created_at, updated_at) VALUES
             ('q', 't', 'pending', 2, '{}', 1, 3, 1000, 'g1', 1, 1), ('q', 't', 'pending', 2, '{}', 1, 3, 1000, 'g1', 1, 1),
             ('q', 't', 'scheduled', 2, '{}', 9, 3, 1000, 'g2', 1, 1), ('q', 't', 'pending', 2, '{}', 1, 3, 1000, NULL, 1, 1),
             ('r', 't', 'pending', 2, '{}', 1, 3, 1000, NULL, 1, 1)`,
          `UPDATE jobs SET state = 'active', lease_id = 'l' || seq, lease_expires_at = 5 WHERE seq IN (1, 4)`,
          `UPDATE jobs SET state = 'scheduled', lease_id = NULL, lease_expires_at = NULL WHERE seq = 1`,
          `UPDATE jobs SET state = 'pending' WHERE seq = 3`,
          `UPDATE jobs SET group_key = '' WHERE queue = 'q' AND group_key IS NULL`,
          `UPDATE jobs SET group_key = 'g9' WHERE seq = 2`,
          `UPDATE jobs SET state = 'dead', lease_id = NULL, lease_expires_at = NULL, finished_at = 7 WHERE seq = 4`,
          `UPDATE jobs SET queue = 'r2' WHERE queue = 'r'`,
          `DELETE FROM jobs WHERE seq IN (2, 4)`,
          `UPDATE jobs SET state = 'cancelled' WHERE seq = 3`,
          // Statements of many rows: the statement triggers sum a statement's changes per row of
          // the counts tables, which must come to what SQLite's row triggers leave.
          `INSERT INTO jobs (queue, type, state, priority, payload, run_at, max_attempts, lease_timeout_ms, group_key, created_at, updated_at) VALUES
             ('s', 't', 'pending', 2, '{}', 1, 3, 1000, 'g1', 1, 1), ('s', 't', 'pending', 2, '{}', 1, 3, 1000, 'g1', 1, 1),
             ('s', 't', 'pending', 2, '{}', 1, 3, 1000, 'g2', 1, 1), ('s', 't', 'scheduled', 2, '{}', 9, 3, 1000, 'g3', 1, 1),
             ('s', 't', 'pending', 2, '{}', 1, 3, 1000, NULL, 1, 1)`,
          `UPDATE jobs SET state = 'active', lease_id = 'l' || seq, lease_expires_at = 5 WHERE queue = 's' AND state = 'pending'`,
          `UPDATE jobs SET state = 'pending', lease_id = NULL, lease_expires_at = NULL WHERE queue = 's' AND state = 'active' AND group_key IS NOT NULL`,
          // Two groups trading jobs: each group key's row gets -1 and +1 in one statement.
          `UPDATE jobs SET group_key = CASE group_key WHEN 'g1' THEN 'g2' ELSE 'g1' END WHERE queue = 's' AND group_key IN ('g1', 'g2')`,
          // A queued job that only changes queue keeps its group row (SQLite counts no move), and
          // then leaves the queued states under a (queue, group key) that has no row: nothing.
          `UPDATE jobs SET queue = 't' WHERE queue = 's' AND group_key = 'g3'`,
          `UPDATE jobs SET state = 'cancelled' WHERE queue = 't'`,
          `UPDATE jobs SET progress = '1' WHERE queue = 's'`,
          `DELETE FROM jobs WHERE queue = 's' AND state = 'pending'`,
        ];
        const pgCounts = async () => ({
          queue: await queryRows(client, `SELECT queue, state, n FROM ${SCHEMA}.queue_counts WHERE n > 0 ORDER BY queue, state`),
          group: await queryRows(client, `SELECT queue, group_key, n FROM ${SCHEMA}.group_counts ORDER BY queue, group_key`),
        });
        const sqliteCounts = () => ({
          queue: sqlite.prepare(`SELECT queue, state, n FROM queue_counts WHERE n > 0 ORDER BY queue, state`).all(),
          group: sqlite.prepare(`SELECT queue, group_key, n FROM group_counts ORDER BY queue, group_key`).all(),
        });
        for (const sql of statements) {
          sqlite.exec(sql);
          await client.query(`SET search_path TO ${SCHEMA}`);
          await client.query(sql);
          await client.query(`RESET search_path`);
          expect({ sql, ...(await pgCounts()) }).toEqual({ sql, ...sqliteCounts() });
        }
        // Not vacuous: the statements left something counted in both tables.
        expect(sqliteCounts().group.length).toBeGreaterThan(0);
      });
    });
  });
}
