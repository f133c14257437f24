import pg from 'pg';
import { DB_CLOCK_NOW_MS, queryRows, quoteIdent, type PgQueryable } from './sql.js';

/**
 * The PostgreSQL schema: the same tables, columns, constraints and indexes as the SQLite store
 * at its latest version, and counts kept by triggers to the same results as its row triggers
 * (src/store/migrations.ts, migrations 1-8; migration 2 below says why statement triggers), so the row
 * types of src/store/types.ts map 1:1 (docs/design/postgres-store.md, 3.3); plus what only
 * several brokers on one database need (migration 4: `brokers`, 3.6).
 *
 * Numbered independently of SQLite's: a PostgreSQL database starts at the latest SQLite shape,
 * so SQLite's history (columns added one migration at a time, backfills of the count tables)
 * is folded in. Forward-only: migration N brings the recorded version from N-1 to N; never
 * edit one that has been released, add a new one.
 *
 * Translation rules, and why:
 * - Times stay epoch-ms `bigint`, not `timestamptz`: the core computes with numbers and the
 *   rows must read back as the same numbers. seq is `bigint GENERATED ALWAYS AS IDENTITY`.
 * - JSON columns (payload, metadata, retry, progress, result, errors, history, limits, template)
 *   are `text`, not `jsonb`: the store passes them through without parsing, and jsonb would not
 *   hand back the bytes it was given (it reorders keys, drops whitespace and duplicate keys).
 * - Every text column that is compared, ordered or unique is `COLLATE "C"`: byte order of
 *   UTF-8, which is SQLite's BINARY. A database's default collation (e.g. en_US) would order
 *   listings, keyset cursors and the fairness walk over group keys differently from SQLite.
 * - `paused` is smallint 0/1 (the row types say `0 | 1`), not boolean.
 * - The jobs columns checked at the edges to fit 32 bits (attempt, max_attempts <= 1e6,
 *   lease_timeout_ms <= 2^31-1, src/domain/ranges.ts) are `integer`; the rest of SQLite's
 *   64-bit INTEGERs are `bigint`.
 */
export const PG_MIGRATIONS: readonly string[] = [
  // 1: jobs and queues (SQLite migrations 1, 4, 5, 6, 7's columns). Lean on purpose, as on
  // SQLite: every byte and every index of a jobs row is paid per job. Indexes are partial, so
  // each holds only the jobs of the state it serves; the claim (FOR UPDATE SKIP LOCKED, 3.2)
  // walks jobs_ready, and the dedup insert's ON CONFLICT names jobs_dedup's predicate.
  `
  CREATE TABLE jobs (
    seq              bigint   GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    queue            text     COLLATE "C" NOT NULL,
    type             text     COLLATE "C" NOT NULL DEFAULT '',
    state            text     COLLATE "C" NOT NULL CHECK (state IN ('scheduled','pending','active','completed','dead','cancelled')),
    priority         smallint NOT NULL CHECK (priority BETWEEN 1 AND 4),
    payload          text     NOT NULL,
    metadata         text,
    run_at           bigint   NOT NULL,
    attempt          integer  NOT NULL DEFAULT 0 CHECK (attempt >= 0),
    max_attempts     integer  NOT NULL CHECK (max_attempts >= 1),
    retry            text,
    lease_timeout_ms integer  NOT NULL CHECK (lease_timeout_ms > 0),
    lease_id         text     COLLATE "C",
    lease_expires_at bigint,
    worker_id        text,
    progress         text,
    result           text,
    last_error       text     COLLATE "C",
    errors           text,
    dedup_key        text     COLLATE "C",
    group_key        text     COLLATE "C",
    created_at       bigint   NOT NULL,
    started_at       bigint,
    finished_at      bigint,
    updated_at       bigint   NOT NULL,
    history          text,
    inherits         smallint NOT NULL DEFAULT 0 CHECK (inherits BETWEEN 0 AND 3),
    CHECK ((state = 'active') = (lease_id IS NOT NULL)),
    CHECK ((state = 'active') = (lease_expires_at IS NOT NULL))
  );

  CREATE INDEX jobs_ready ON jobs (queue, priority DESC, seq) WHERE state = 'pending';
  CREATE INDEX jobs_scheduled ON jobs (run_at) WHERE state = 'scheduled';
  CREATE INDEX jobs_leases ON jobs (lease_expires_at) WHERE state = 'active';
  CREATE INDEX jobs_dead ON jobs (queue, seq) WHERE state = 'dead';
  CREATE UNIQUE INDEX jobs_dedup ON jobs (queue, dedup_key)
    WHERE dedup_key IS NOT NULL AND state IN ('scheduled','pending','active');
  CREATE INDEX jobs_group_ready ON jobs (queue, priority DESC, group_key, seq)
    WHERE state = 'pending' AND group_key IS NOT NULL;

  CREATE TABLE queues (
    name                 text     COLLATE "C" PRIMARY KEY,
    paused               smallint NOT NULL DEFAULT 0 CHECK (paused IN (0,1)),
    max_attempts         integer  CHECK (max_attempts >= 1),
    retry                text,
    lease_timeout_ms     integer  CHECK (lease_timeout_ms > 0),
    created_at           bigint   NOT NULL,
    retention_max_age_ms bigint   CHECK (retention_max_age_ms >= 0),
    retention_max_count  bigint   CHECK (retention_max_count >= 0),
    limits               text,
    max_queued           bigint   CHECK (max_queued >= 1),
    max_queued_per_group bigint   CHECK (max_queued_per_group >= 1)
  );
  `,
  // 2: queued counts per (queue, state) and per (queue, group key), kept by triggers in the
  // writing transaction with SQLite's results (migrations 2, 7, 8), so listings, metrics and
  // admission read a few rows instead of counting jobs. These are shared rows: with several
  // brokers every flush updates them and holds their locks until commit. That is fine for one
  // broker (step 5); step 7 replaces them with an append-only delta ledger (design 3.4).
  //
  // Statement triggers over transition tables, not SQLite's row triggers: a claim or ack of 50
  // jobs sums its changes per counts row and writes each row once, instead of two upserts per
  // job (row triggers were two thirds of a claim + ack, test/postgres.claims.test.ts). Each
  // counts table gets one INSERT ... ON CONFLICT over the statement's rows in key order (COLLATE
  // "C"), so two transactions lock the rows they share in the same order and cannot deadlock on
  // them (a claim's pending -1/active +1 against a release's active -1/pending +1). A statement
  // trigger with transition tables takes no column list and no WHEN on OLD/NEW, so every UPDATE
  // of jobs fires it and the function keeps only the changes SQLite's triggers count.
  //
  // The functions carry the migration's search_path (SET ... FROM CURRENT): a trigger runs
  // with the caller's search_path, which may not name this schema, and the schema's name is not
  // known when this text is written, so the tables cannot be qualified. It is paid once per
  // statement on jobs, not per row.
  `
  CREATE TABLE queue_counts (
    queue text   COLLATE "C" NOT NULL,
    state text   COLLATE "C" NOT NULL,
    n     bigint NOT NULL CHECK (n >= 0),
    PRIMARY KEY (queue, state)
  );

  CREATE TABLE group_counts (
    queue     text   COLLATE "C" NOT NULL,
    group_key text   COLLATE "C" NOT NULL,
    n         bigint NOT NULL CHECK (n >= 0),
    PRIMARY KEY (queue, group_key)
  );

  -- Adds d[i] to the row (q[i], k[i]) of queue_counts (kind 'queue', k = state) or group_counts
  -- (kind 'group', k = group_key); the keys come sorted and distinct, no d is 0. The upsert
  -- visits every key in that order: increments are applied there, and a decrement's row is
  -- only locked (its proposed row has n = 0, since a proposed row must pass CHECK (n >= 0) even
  -- when it conflicts, and the DO UPDATE's WHERE is false; a false WHERE still locks the row).
  -- The decrements are applied next, to rows this transaction already holds. A decrement whose
  -- row did not exist inserted a row at 0, which RETURNING reports: it is deleted first, so the
  -- decrement does nothing, as SQLite's UPDATE ... WHERE does. Rows at zero are kept in
  -- queue_counts and dropped from group_counts (SQLite's jobs_group_count_leave), so group_counts
  -- holds only groups with queued jobs.
  CREATE FUNCTION counts_add(kind text, q text[], k text[], d bigint[]) RETURNS void LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
  DECLARE
    mq text[];
    mk text[];
    has_decrements boolean := (SELECT min(x) < 0 FROM unnest(d) AS x);
  BEGIN
    IF kind = 'queue' THEN
      WITH up AS (
        INSERT INTO queue_counts AS c (queue, state, n)
        SELECT u.q, u.k, greatest(u.d, 0) FROM unnest(q, k, d) WITH ORDINALITY AS u(q, k, d, i) ORDER BY u.i
        ON CONFLICT (queue, state) DO UPDATE SET n = c.n + EXCLUDED.n WHERE EXCLUDED.n > 0
        RETURNING c.queue, c.state, c.n
      ) SELECT array_agg(up.queue), array_agg(up.state) INTO mq, mk FROM up WHERE up.n = 0;
      IF mq IS NOT NULL THEN
        DELETE FROM queue_counts c USING unnest(mq, mk) AS m(q, k) WHERE c.queue = m.q AND c.state = m.k;
      END IF;
      IF has_decrements THEN
        UPDATE queue_counts c SET n = c.n + u.d FROM unnest(q, k, d) AS u(q, k, d)
         WHERE u.d < 0 AND c.queue = u.q AND c.state = u.k;
      END IF;
    ELSE
      WITH up AS (
        INSERT INTO group_counts AS c (queue, group_key, n)
        SELECT u.q, u.k, greatest(u.d, 0) FROM unnest(q, k, d) WITH ORDINALITY AS u(q, k, d, i) ORDER BY u.i
        ON CONFLICT (queue, group_key) DO UPDATE SET n = c.n + EXCLUDED.n WHERE EXCLUDED.n > 0
        RETURNING c.queue, c.group_key, c.n
      ) SELECT array_agg(up.queue), array_agg(up.group_key) INTO mq, mk FROM up WHERE up.n = 0;
      IF mq IS NOT NULL THEN
        DELETE FROM group_counts c USING unnest(mq, mk) AS m(q, k) WHERE c.queue = m.q AND c.group_key = m.k;
      END IF;
      IF has_decrements THEN
        UPDATE group_counts c SET n = c.n + u.d FROM unnest(q, k, d) AS u(q, k, d)
         WHERE u.d < 0 AND c.queue = u.q AND c.group_key = u.k;
        DELETE FROM group_counts c USING unnest(q, k, d) AS u(q, k, d)
         WHERE u.d < 0 AND c.queue = u.q AND c.group_key = u.k AND c.n = 0;
      END IF;
    END IF;
  END $$;

  -- One function for the three triggers (each has its own plans: PL/pgSQL compiles a trigger
  -- function per trigger, whose transition tables differ). Per job row, SQLite's triggers count:
  -- queue_counts: -1 for (OLD.queue, OLD.state) and +1 for (NEW.queue, NEW.state), on an update
  -- only when state or queue changes (the sums here: an unchanged row adds -1 and +1 to one key).
  -- group_counts, for a job with a group key in a queued state (pending, scheduled): +1 on
  -- insert, -1 on delete, and on update -1 for (OLD.queue, OLD.group_key) and +1 for
  -- (NEW.queue, NEW.group_key) when the job leaves or enters the queued states
  -- (jobs_group_count_enter / _leave) or stays queued under another group key (_rekey). A queued
  -- job that only changes queue is not moved, as on SQLite. seq never changes (an identity
  -- GENERATED ALWAYS), so it pairs OLD and NEW rows.
  CREATE FUNCTION jobs_counts() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
  DECLARE
    q text[]; k text[]; d bigint[];
  BEGIN
    IF TG_OP = 'INSERT' THEN
      SELECT array_agg(t.queue ORDER BY t.queue, t.state), array_agg(t.state ORDER BY t.queue, t.state), array_agg(t.d ORDER BY t.queue, t.state)
        INTO q, k, d
        FROM (SELECT queue, state, count(*) AS d FROM new_jobs GROUP BY queue, state) t;
    ELSIF TG_OP = 'DELETE' THEN
      SELECT array_agg(t.queue ORDER BY t.queue, t.state), array_agg(t.state ORDER BY t.queue, t.state), array_agg(t.d ORDER BY t.queue, t.state)
        INTO q, k, d
        FROM (SELECT queue, state, -count(*) AS d FROM old_jobs GROUP BY queue, state) t;
    ELSE
      -- Most updates (progress, lease renewals, results) change none of the counted columns.
      IF NOT EXISTS (SELECT 1 FROM old_jobs o JOIN new_jobs n ON n.seq = o.seq
                      WHERE o.state IS DISTINCT FROM n.state OR o.queue IS DISTINCT FROM n.queue OR o.group_key IS DISTINCT FROM n.group_key) THEN
        RETURN NULL;
      END IF;
      SELECT array_agg(t.queue ORDER BY t.queue, t.state), array_agg(t.state ORDER BY t.queue, t.state), array_agg(t.d ORDER BY t.queue, t.state)
        INTO q, k, d
        FROM (
          SELECT v.queue, v.state, sum(v.d) AS d
            FROM (SELECT queue, state, -1 AS d FROM old_jobs UNION ALL SELECT queue, state, 1 FROM new_jobs) v
           GROUP BY v.queue, v.state HAVING sum(v.d) <> 0
        ) t;
    END IF;
    IF q IS NOT NULL THEN PERFORM counts_add('queue', q, k, d); END IF;

    IF TG_OP = 'INSERT' THEN
      SELECT array_agg(t.queue ORDER BY t.queue, t.group_key), array_agg(t.group_key ORDER BY t.queue, t.group_key), array_agg(t.d ORDER BY t.queue, t.group_key)
        INTO q, k, d
        FROM (SELECT queue, group_key, count(*) AS d FROM new_jobs
               WHERE group_key IS NOT NULL AND state IN ('pending','scheduled') GROUP BY queue, group_key) t;
    ELSIF TG_OP = 'DELETE' THEN
      SELECT array_agg(t.queue ORDER BY t.queue, t.group_key), array_agg(t.group_key ORDER BY t.queue, t.group_key), array_agg(t.d ORDER BY t.queue, t.group_key)
        INTO q, k, d
        FROM (SELECT queue, group_key, -count(*) AS d FROM old_jobs
               WHERE group_key IS NOT NULL AND state IN ('pending','scheduled') GROUP BY queue, group_key) t;
    ELSE
      SELECT array_agg(t.queue ORDER BY t.queue, t.group_key), array_agg(t.group_key ORDER BY t.queue, t.group_key), array_agg(t.d ORDER BY t.queue, t.group_key)
        INTO q, k, d
        FROM (
          SELECT v.queue, v.group_key, sum(v.d) AS d
            FROM old_jobs o JOIN new_jobs n ON n.seq = o.seq,
                 LATERAL (VALUES (o.queue, o.group_key, -1, o.state IN ('pending','scheduled')),
                                 (n.queue, n.group_key, 1, n.state IN ('pending','scheduled'))) AS v(queue, group_key, d, queued)
           WHERE v.group_key IS NOT NULL AND v.queued
             AND NOT (o.state IN ('pending','scheduled') AND n.state IN ('pending','scheduled') AND o.group_key IS NOT DISTINCT FROM n.group_key)
           GROUP BY v.queue, v.group_key HAVING sum(v.d) <> 0
        ) t;
    END IF;
    IF q IS NOT NULL THEN PERFORM counts_add('group', q, k, d); END IF;
    RETURN NULL;
  END $$;

  CREATE TRIGGER jobs_count_insert AFTER INSERT ON jobs REFERENCING NEW TABLE AS new_jobs
    FOR EACH STATEMENT EXECUTE FUNCTION jobs_counts();
  CREATE TRIGGER jobs_count_update AFTER UPDATE ON jobs REFERENCING OLD TABLE AS old_jobs NEW TABLE AS new_jobs
    FOR EACH STATEMENT EXECUTE FUNCTION jobs_counts();
  CREATE TRIGGER jobs_count_delete AFTER DELETE ON jobs REFERENCING OLD TABLE AS old_jobs
    FOR EACH STATEMENT EXECUTE FUNCTION jobs_counts();
  `,
  // 3: cron schedules and their runs (SQLite migration 3). The partial UNIQUE index on
  // (schedule_id, fire_time) for scheduled runs is what makes a cron fire exactly once across
  // brokers (design 3.8): a second job for a fire time fails its savepoint, whatever any
  // broker believes. Manual runs are extra and not part of that uniqueness.
  `
  CREATE TABLE schedules (
    id             text     COLLATE "C" PRIMARY KEY,
    name           text     COLLATE "C" NOT NULL UNIQUE,
    cron           text     NOT NULL,
    timezone       text     NOT NULL,
    template       text     NOT NULL,
    paused         smallint NOT NULL DEFAULT 0 CHECK (paused IN (0,1)),
    start_at       bigint,
    end_at         bigint,
    catch_up       text     NOT NULL CHECK (catch_up IN ('skip','once','all')),
    catch_up_limit bigint   NOT NULL CHECK (catch_up_limit >= 1),
    overlap        text     NOT NULL CHECK (overlap IN ('allow','skip','queue_one')),
    history_limit  bigint   NOT NULL CHECK (history_limit >= 1),
    next_fire_at   bigint,
    last_fire_at   bigint,
    created_at     bigint   NOT NULL,
    updated_at     bigint   NOT NULL
  );

  CREATE INDEX schedules_due ON schedules (next_fire_at) WHERE paused = 0 AND next_fire_at IS NOT NULL;

  CREATE TABLE schedule_runs (
    seq            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    schedule_id    text   COLLATE "C" NOT NULL REFERENCES schedules (id) ON DELETE CASCADE,
    fire_time      bigint NOT NULL,
    kind           text   NOT NULL CHECK (kind IN ('scheduled','manual')),
    outcome        text   NOT NULL CHECK (outcome IN ('enqueued','skipped')),
    reason         text,
    job_seq        bigint,
    job_created_at bigint,
    created_at     bigint NOT NULL,
    CHECK ((outcome = 'enqueued') = (job_seq IS NOT NULL))
  );

  CREATE UNIQUE INDEX schedule_runs_fire ON schedule_runs (schedule_id, fire_time) WHERE kind = 'scheduled';
  CREATE INDEX schedule_runs_by_schedule ON schedule_runs (schedule_id, seq);
  `,
  // 4: the brokers sharing this database (design 3.6; no SQLite counterpart: a SQLite file has
  // one broker). One row per broker boot: id is 16 random hex chars and the prefix of every lease
  // the broker hands out (`<id>.<counter>.<seq>`), so the CHECK keeps '.' out of it. name is the
  // operator's --broker-name; UNIQUE allows any number of NULLs, and a broker restarted under the
  // same name replaces its row (broker-registry.ts). Times are epoch-ms of the DATABASE clock, as
  // bigint like every other time here: brokers compare heartbeats against the database's now,
  // never their own clocks (3.7). subscribed: the queues the broker has streams for, so ready
  // notifications go only where someone listens (3.5). No index beyond the keys: the table holds
  // a handful of rows, and the sweep reads them all.
  `
  CREATE TABLE brokers (
    id           text   COLLATE "C" PRIMARY KEY CHECK (id ~ '^[0-9a-f]{16}$'),
    name         text   COLLATE "C" UNIQUE,
    started_at   bigint NOT NULL,
    heartbeat_at bigint NOT NULL,
    subscribed   text[] COLLATE "C" NOT NULL DEFAULT '{}',
    address      text
  );
  `,
];

export const PG_SCHEMA_VERSION = PG_MIGRATIONS.length;

/**
 * The advisory lock key migrators of one schema share ($1 = the schema name): a 64-bit hash, so
 * different schemas of one database migrate independently (a collision only serializes them).
 */
export const MIGRATION_LOCK_KEY = `hashtextextended('sluice.migrations.' || $1::text, 0)`;

/** The database was migrated by a newer Sluice: this one must not write to it. */
export class SchemaTooNewError extends Error {
  override readonly name = 'SchemaTooNewError';
  constructor(
    readonly schema: string,
    readonly databaseVersion: number,
    readonly knownVersion: number,
  ) {
    super(`PostgreSQL schema ${JSON.stringify(schema)} is at version ${databaseVersion}, newer than this broker's ${knownVersion}; upgrade sluice`);
  }
}

export interface MigrateOptions {
  /** The schema to create and migrate; default: the connection's current schema (first of search_path). */
  schema?: string;
}

export interface MigrateResult {
  schema: string;
  /** The recorded version before and after. */
  from: number;
  to: number;
  /** The versions this call applied (empty when another migrator got there first, or on a re-run). */
  applied: number[];
}

/**
 * Brings the schema to PG_SCHEMA_VERSION. Each migration runs in its own transaction under a
 * transaction-level advisory lock on the schema's name, taken before the version is read: brokers
 * starting together on one database queue on the lock, and each finds the version the previous
 * holder committed, so every migration runs exactly once. The lock goes with the transaction, so
 * a migrator that dies mid-way leaves nothing held and nothing half-applied (DDL is transactional).
 */
export async function migratePostgres(db: PgQueryable, options: MigrateOptions = {}): Promise<MigrateResult> {
  // A pool: one connection for the whole run (BEGIN ... COMMIT must stay on one session).
  const client = db instanceof pg.Pool ? await db.connect() : db;
  try {
    const schema = options.schema ?? (await currentSchema(client));
    const applied: number[] = [];
    let from: number | undefined;
    for (;;) {
      const step = await migrateOnce(client, schema);
      from ??= step.found;
      if (step.applied === undefined) return { schema, from, to: step.found, applied };
      applied.push(step.applied);
    }
  } finally {
    if (client !== db) (client as pg.PoolClient).release();
  }
}

async function currentSchema(client: pg.ClientBase): Promise<string> {
  const [row] = await queryRows<{ schema: string | null }>(client, 'SELECT current_schema() AS schema');
  if (!row?.schema) throw new Error('no schema given and the search_path names no existing schema');
  return row.schema;
}

/** One transaction: applies the next migration if there is one; reports the version it found. */
async function migrateOnce(client: pg.ClientBase, schema: string): Promise<{ found: number; applied?: number }> {
  const ident = quoteIdent(schema);
  await client.query('BEGIN');
  try {
    await client.query(`SELECT pg_advisory_xact_lock(${MIGRATION_LOCK_KEY})`, [schema]);
    // Created only when missing: CREATE SCHEMA IF NOT EXISTS needs the CREATE privilege on the
    // database even when the schema exists, which a broker's role need not have.
    const exists = await queryRows(client, 'SELECT 1 FROM pg_namespace WHERE nspname = $1', [schema]);
    if (exists.length === 0) await client.query(`CREATE SCHEMA ${ident}`);
    // Migrations name their objects unqualified; LOCAL ends with the transaction.
    await client.query(`SET LOCAL search_path TO ${ident}`);
    await client.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
      version    integer PRIMARY KEY CHECK (version >= 1),
      applied_at bigint  NOT NULL
    )`);
    const [row] = await queryRows<{ v: number }>(client, 'SELECT coalesce(max(version), 0) AS v FROM schema_migrations');
    const found = row!.v;
    if (found > PG_SCHEMA_VERSION) throw new SchemaTooNewError(schema, found, PG_SCHEMA_VERSION);
    if (found === PG_SCHEMA_VERSION) {
      await client.query('COMMIT');
      return { found };
    }
    const next = found + 1;
    // No parameters: the simple query protocol, which runs a multi-statement script.
    await client.query(PG_MIGRATIONS[next - 1]!);
    await client.query(`INSERT INTO schema_migrations (version, applied_at) VALUES ($1, ${DB_CLOCK_NOW_MS})`, [next]);
    await client.query('COMMIT');
    return { found, applied: next };
  } catch (error) {
    await client.query('ROLLBACK').catch(() => {});
    throw error;
  }
}
