/**
 * The throwaway PostgreSQL cluster the PostgreSQL store's tests and benches run on
 * (test/helpers/postgres.ts, scripts/pg-cluster.sh): it starts, serves over its unix socket only,
 * runs with fsync on, carries LISTEN/NOTIFY between connections, and leaves nothing behind.
 *
 * Required where SLUICE_TEST_POSTGRES=1 (CI, which installs Debian's postgresql) or the server
 * binaries are installed. Elsewhere the helper's refusal is what is tested: it must say how to
 * get PostgreSQL instead of failing obscurely.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type pg from 'pg';
import { postgresBinDir, postgresRequired, startPostgres, type PostgresCluster } from './helpers/postgres.js';

if (postgresRequired()) {
  describe('throwaway PostgreSQL cluster', () => {
    let cluster: PostgresCluster;

    beforeAll(async () => {
      cluster = await startPostgres();
    });

    afterAll(async () => {
      await cluster?.stop();
    });

    test('serves over the unix socket in its own directory only, with fsync on, as superuser sluice', async () => {
      expect(existsSync(join(cluster.dir, `.s.PGSQL.${cluster.port}`))).toBe(true);
      const client = await cluster.connect();
      try {
        const { rows } = await client.query<{ listen: string; fsync: string; sync: string; user: string; su: string }>(
          `SELECT current_setting('listen_addresses') AS listen, current_setting('fsync') AS fsync,
                  current_setting('synchronous_commit') AS sync, current_user AS user, current_setting('is_superuser') AS su`,
        );
        expect(rows[0]).toEqual({ listen: '', fsync: 'on', sync: 'on', user: 'sluice', su: 'on' });
      } finally {
        await client.end();
      }
    });

    test('createDatabase gives an empty database reachable by its connection string', async () => {
      const url = await cluster.createDatabase('cluster_test_db');
      expect(url).toBe(cluster.urlFor('cluster_test_db'));
      const { default: pgModule } = await import('pg');
      const client = new pgModule.Client({ connectionString: url });
      await client.connect();
      try {
        await client.query('CREATE TABLE t (n int)');
        await client.query('INSERT INTO t VALUES (1), (2)');
        const { rows } = await client.query<{ db: string; n: string }>('SELECT current_database() AS db, count(*) AS n FROM t');
        expect(rows[0]).toEqual({ db: 'cluster_test_db', n: '2' });
      } finally {
        await client.end();
      }
    });

    test('LISTEN/NOTIFY carries a committed notification to another connection, and none from a rollback', async () => {
      const listener = await cluster.connect();
      const notifier = await cluster.connect();
      try {
        await listener.query('LISTEN sluice_ready');
        const received: pg.Notification[] = [];
        const arrived = new Promise<void>((resolve) => {
          listener.on('notification', (n) => {
            received.push(n);
            if (n.payload === 'committed') resolve();
          });
        });
        await notifier.query('BEGIN');
        await notifier.query(`SELECT pg_notify('sluice_ready', 'rolled back')`);
        await notifier.query('ROLLBACK');
        await notifier.query('BEGIN');
        await notifier.query(`SELECT pg_notify('sluice_ready', 'committed')`);
        await notifier.query('COMMIT');
        await arrived;
        // Notifications are delivered in commit order, so the rolled-back one would have come first.
        expect(received.map((n) => [n.channel, n.payload])).toEqual([['sluice_ready', 'committed']]);
      } finally {
        await listener.end();
        await notifier.end();
      }
    });

    test('stop shuts the server down and removes its directory', async () => {
      const other = await startPostgres({ settings: { synchronous_commit: 'off' } });
      const client = await other.connect();
      const { rows } = await client.query<{ sync: string }>(`SELECT current_setting('synchronous_commit') AS sync`);
      expect(rows[0]!.sync).toBe('off');
      const ended = new Promise<void>((resolve) => client.once('end', () => resolve()));
      client.on('error', () => {}); // the server's shutdown terminates the session
      await other.stop();
      await ended;
      expect(existsSync(other.dir)).toBe(false);
      await other.stop(); // idempotent
    });
  });
} else {
  test('without PostgreSQL installed, startPostgres refuses with how to install it', async () => {
    expect(postgresBinDir()).toBeUndefined();
    await expect(startPostgres()).rejects.toThrow(/initdb, pg_ctl\) not found: install them \(Debian: apt-get install postgresql\)/);
  });
}
