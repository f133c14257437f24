import pg from 'pg';
import { queryRows, quoteIdent, type PgQueryable } from './sql.js';

/**
 * The PostgreSQL schema: the same tables, columns, constraints, indexes and count triggers as
 * the SQLite store at its latest version (src/store/migrations.ts, migrations 1-8), so the row
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
  // 2: queued counts per (queue, state) and per (queue, group key), kept by row triggers in the
  // writing transaction exactly as SQLite's (migrations 2, 7, 8), so listings, metrics and
  // admission read a few rows instead of counting jobs. These are shared rows: with several
  // brokers every flush updates them and holds their locks until commit. That is fine for one
  // broker (step 5); step 7 replaces them with an append-only delta ledger (design 3.4).
  //
  // The functions carry the migration's search_path (SET ... FROM CURRENT): a trigger runs
  // with the caller's search_path, which may not name this schema.
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

  CREATE FUNCTION count_job_in(q text, s text) RETURNS void LANGUAGE sql SET search_path FROM CURRENT AS $$
    INSERT INTO queue_counts AS c (queue, state, n) VALUES (q, s, 1) ON CONFLICT (queue, state) DO UPDATE SET n = c.n + 1;
  $$;
  CREATE FUNCTION count_job_out(q text, s text) RETURNS void LANGUAGE sql SET search_path FROM CURRENT AS $$
    UPDATE queue_counts SET n = n - 1 WHERE queue = q AND state = s;
  $$;
  -- Rows at zero are dropped, so group_counts holds only groups with queued jobs.
  CREATE FUNCTION count_group_in(q text, g text) RETURNS void LANGUAGE sql SET search_path FROM CURRENT AS $$
    INSERT INTO group_counts AS c (queue, group_key, n) VALUES (q, g, 1) ON CONFLICT (queue, group_key) DO UPDATE SET n = c.n + 1;
  $$;
  CREATE FUNCTION count_group_out(q text, g text) RETURNS void LANGUAGE sql SET search_path FROM CURRENT AS $$
    UPDATE group_counts SET n = n - 1 WHERE queue = q AND group_key = g;
    DELETE FROM group_counts WHERE queue = q AND group_key = g AND n = 0;
  $$;

  CREATE FUNCTION jobs_count_insert() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
  BEGIN
    PERFORM count_job_in(NEW.queue, NEW.state);
    IF NEW.group_key IS NOT NULL AND NEW.state IN ('pending','scheduled') THEN
      PERFORM count_group_in(NEW.queue, NEW.group_key);
    END IF;
    RETURN NULL;
  END $$;

  CREATE FUNCTION jobs_count_update() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
  BEGIN
    PERFORM count_job_out(OLD.queue, OLD.state);
    PERFORM count_job_in(NEW.queue, NEW.state);
    RETURN NULL;
  END $$;

  CREATE FUNCTION jobs_count_delete() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
  BEGIN
    PERFORM count_job_out(OLD.queue, OLD.state);
    IF OLD.group_key IS NOT NULL AND OLD.state IN ('pending','scheduled') THEN
      PERFORM count_group_out(OLD.queue, OLD.group_key);
    END IF;
    RETURN NULL;
  END $$;

  -- A job entering or leaving the queued states (SQLite's jobs_group_count_enter / _leave).
  CREATE FUNCTION jobs_group_count_state() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
  BEGIN
    IF NEW.group_key IS NOT NULL AND NEW.state IN ('pending','scheduled') AND OLD.state NOT IN ('pending','scheduled') THEN
      PERFORM count_group_in(NEW.queue, NEW.group_key);
    END IF;
    IF OLD.group_key IS NOT NULL AND OLD.state IN ('pending','scheduled') AND NEW.state NOT IN ('pending','scheduled') THEN
      PERFORM count_group_out(OLD.queue, OLD.group_key);
    END IF;
    RETURN NULL;
  END $$;

  -- A queued job whose group key changes (a queue that gains a group policy, SQLite migration 8).
  CREATE FUNCTION jobs_group_count_rekey() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
  BEGIN
    IF OLD.group_key IS NOT NULL THEN PERFORM count_group_out(OLD.queue, OLD.group_key); END IF;
    IF NEW.group_key IS NOT NULL THEN PERFORM count_group_in(NEW.queue, NEW.group_key); END IF;
    RETURN NULL;
  END $$;

  -- Same firing conditions as SQLite's triggers: UPDATE OF fires only for statements that set
  -- the column, and the WHEN tests keep the hot path (jobs without a group key) to one test.
  CREATE TRIGGER jobs_count_insert AFTER INSERT ON jobs FOR EACH ROW EXECUTE FUNCTION jobs_count_insert();
  CREATE TRIGGER jobs_count_update AFTER UPDATE OF state, queue ON jobs FOR EACH ROW
    WHEN (OLD.state IS DISTINCT FROM NEW.state OR OLD.queue IS DISTINCT FROM NEW.queue) EXECUTE FUNCTION jobs_count_update();
  CREATE TRIGGER jobs_count_delete AFTER DELETE ON jobs FOR EACH ROW EXECUTE FUNCTION jobs_count_delete();
  CREATE TRIGGER jobs_group_count_state AFTER UPDATE OF state ON jobs FOR EACH ROW
    WHEN ((NEW.group_key IS NOT NULL OR OLD.group_key IS NOT NULL) AND OLD.state IS DISTINCT FROM NEW.state)
    EXECUTE FUNCTION jobs_group_count_state();
  CREATE TRIGGER jobs_group_count_rekey AFTER UPDATE OF group_key ON jobs FOR EACH ROW
    WHEN (OLD.group_key IS DISTINCT FROM NEW.group_key AND OLD.state IN ('pending','scheduled') AND NEW.state IN ('pending','scheduled'))
    EXECUTE FUNCTION jobs_group_count_rekey();
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
    await client.query(`INSERT INTO schema_migrations (version, applied_at) VALUES ($1, (extract(epoch FROM clock_timestamp()) * 1000)::bigint)`, [next]);
    await client.query('COMMIT');
    return { found, applied: next };
  } catch (error) {
    await client.query('ROLLBACK').catch(() => {});
    throw error;
  }
}
