import type { Db } from './database.js';

/**
 * Forward-only migrations; migration N brings user_version from N-1 to N. Never edit a
 * released migration: add a new one.
 */
export const MIGRATIONS: readonly string[] = [
  // 1: jobs and queues.
  //
  // Lean on purpose: every byte and every index of a jobs row is paid per job, on every
  // enqueue and every state change (see docs/performance.md). The public job id is not
  // stored: it is computed from (created_at, seq) (src/domain/job-id.ts). Indexes are
  // partial, so each one holds only the jobs of the state it serves.
  `
  CREATE TABLE jobs (
    -- Insertion order: FIFO inside a priority level, the keyset for listings, and with
    -- created_at the job's public id.
    seq              INTEGER PRIMARY KEY,
    queue            TEXT    NOT NULL,
    type             TEXT    NOT NULL DEFAULT '',
    state            TEXT    NOT NULL CHECK (state IN ('scheduled','pending','active','completed','dead','cancelled')),
    priority         INTEGER NOT NULL CHECK (priority BETWEEN 1 AND 4),
    payload          TEXT    NOT NULL,
    metadata         TEXT,
    run_at           INTEGER NOT NULL,
    attempt          INTEGER NOT NULL DEFAULT 0 CHECK (attempt >= 0),
    max_attempts     INTEGER NOT NULL CHECK (max_attempts >= 1),
    retry            TEXT,
    lease_timeout_ms INTEGER NOT NULL CHECK (lease_timeout_ms > 0),
    lease_id         TEXT,
    lease_expires_at INTEGER,
    worker_id        TEXT,
    progress         TEXT,
    result           TEXT,
    last_error       TEXT,
    errors           TEXT,
    dedup_key        TEXT,
    group_key        TEXT,
    created_at       INTEGER NOT NULL,
    started_at       INTEGER,
    finished_at      INTEGER,
    updated_at       INTEGER NOT NULL,
    -- A lease exists exactly while the job is active.
    CHECK ((state = 'active') = (lease_id IS NOT NULL)),
    CHECK ((state = 'active') = (lease_expires_at IS NOT NULL))
  );

  -- Dispatch: next ready jobs of a queue, highest priority first, FIFO inside a level.
  CREATE INDEX jobs_ready ON jobs (queue, priority DESC, seq) WHERE state = 'pending';
  -- Timer: the next scheduled job to promote.
  CREATE INDEX jobs_scheduled ON jobs (run_at) WHERE state = 'scheduled';
  -- Timer: the next lease to expire.
  CREATE INDEX jobs_leases ON jobs (lease_expires_at) WHERE state = 'active';
  -- Dead letters by queue (listing, replay, purge): kept until purged, but few.
  CREATE INDEX jobs_dead ON jobs (queue, seq) WHERE state = 'dead';
  -- Dedup: one unfinished job per (queue, dedup_key).
  CREATE UNIQUE INDEX jobs_dedup ON jobs (queue, dedup_key)
    WHERE dedup_key IS NOT NULL AND state IN ('scheduled','pending','active');

  CREATE TABLE queues (
    name             TEXT PRIMARY KEY,
    paused           INTEGER NOT NULL DEFAULT 0 CHECK (paused IN (0,1)),
    max_attempts     INTEGER CHECK (max_attempts >= 1),
    retry            TEXT,
    lease_timeout_ms INTEGER CHECK (lease_timeout_ms > 0),
    created_at       INTEGER NOT NULL
  ) WITHOUT ROWID;
  `,
  // 2: job counts per queue and state, kept by triggers.
  //
  // Counting the jobs table is a full scan (about a second at 1M jobs, with the event loop
  // blocked), and queue listings are polled by dashboards and exporters. Triggers keep the
  // counts in the same transaction as every change, whatever statement makes it (including
  // replays, purges and future retention deletes), for ~0.3 us per insert and ~0.7 us per
  // state change (docs/performance.md).
  `
  CREATE TABLE queue_counts (
    queue TEXT    NOT NULL,
    state TEXT    NOT NULL,
    n     INTEGER NOT NULL CHECK (n >= 0),
    PRIMARY KEY (queue, state)
  ) WITHOUT ROWID;

  INSERT INTO queue_counts (queue, state, n) SELECT queue, state, count(*) FROM jobs GROUP BY queue, state;

  CREATE TRIGGER jobs_count_insert AFTER INSERT ON jobs BEGIN
    INSERT INTO queue_counts (queue, state, n) VALUES (NEW.queue, NEW.state, 1)
      ON CONFLICT (queue, state) DO UPDATE SET n = n + 1;
  END;

  CREATE TRIGGER jobs_count_update AFTER UPDATE OF state, queue ON jobs
    WHEN OLD.state IS NOT NEW.state OR OLD.queue IS NOT NEW.queue BEGIN
    UPDATE queue_counts SET n = n - 1 WHERE queue = OLD.queue AND state = OLD.state;
    INSERT INTO queue_counts (queue, state, n) VALUES (NEW.queue, NEW.state, 1)
      ON CONFLICT (queue, state) DO UPDATE SET n = n + 1;
  END;

  CREATE TRIGGER jobs_count_delete AFTER DELETE ON jobs BEGIN
    UPDATE queue_counts SET n = n - 1 WHERE queue = OLD.queue AND state = OLD.state;
  END;
  `,
  // 3: cron schedules and their run history.
  //
  // A schedule's next fire time is stored, so the broker arms one timer for MIN(next_fire_at)
  // (schedules_due) and never scans or parses every schedule, at start or while idle. Each
  // fire is one row of schedule_runs written in the transaction that creates its job and
  // advances the schedule; the UNIQUE index on (schedule_id, fire_time) makes a second job
  // for the same fire time impossible whatever the broker believes. Manual runs ("trigger
  // now") are extra runs and are not part of that uniqueness.
  `
  CREATE TABLE schedules (
    id             TEXT    PRIMARY KEY,
    name           TEXT    NOT NULL UNIQUE,
    cron           TEXT    NOT NULL,
    timezone       TEXT    NOT NULL,
    -- The job to create at each fire, as validated at the edge (JSON of the enqueue input).
    template       TEXT    NOT NULL,
    paused         INTEGER NOT NULL DEFAULT 0 CHECK (paused IN (0,1)),
    start_at       INTEGER,
    end_at         INTEGER,
    catch_up       TEXT    NOT NULL CHECK (catch_up IN ('skip','once','all')),
    catch_up_limit INTEGER NOT NULL CHECK (catch_up_limit >= 1),
    overlap        TEXT    NOT NULL CHECK (overlap IN ('allow','skip','queue_one')),
    history_limit  INTEGER NOT NULL CHECK (history_limit >= 1),
    -- NULL once no fire time remains (past end_at, or an expression that never matches again).
    next_fire_at   INTEGER,
    last_fire_at   INTEGER,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL
  ) WITHOUT ROWID;

  -- The timer: the earliest fire of an active schedule.
  CREATE INDEX schedules_due ON schedules (next_fire_at) WHERE paused = 0 AND next_fire_at IS NOT NULL;

  CREATE TABLE schedule_runs (
    seq            INTEGER PRIMARY KEY,
    schedule_id    TEXT    NOT NULL REFERENCES schedules (id) ON DELETE CASCADE,
    -- The cron time this run is for (a manual run: the time it was triggered).
    fire_time      INTEGER NOT NULL,
    kind           TEXT    NOT NULL CHECK (kind IN ('scheduled','manual')),
    outcome        TEXT    NOT NULL CHECK (outcome IN ('enqueued','skipped')),
    reason         TEXT,
    -- The job created (jobs.seq and jobs.created_at make its id); NULL when skipped.
    job_seq        INTEGER,
    job_created_at INTEGER,
    created_at     INTEGER NOT NULL,
    CHECK ((outcome = 'enqueued') = (job_seq IS NOT NULL))
  );

  -- Exactly one run per schedule and fire time.
  CREATE UNIQUE INDEX schedule_runs_fire ON schedule_runs (schedule_id, fire_time) WHERE kind = 'scheduled';
  -- History listing and trimming, newest first.
  CREATE INDEX schedule_runs_by_schedule ON schedule_runs (schedule_id, seq);
  `,
  // 4: per-job history, retention settings per queue.
  //
  // History is a compact append-only column of the job row, not a table: the row is
  // rewritten by every transition anyway, so appending costs a few dozen bytes and no extra
  // b-tree insert (a history table cost three index inserts per job on the hot path). It is
  // a comma-separated list of JSON arrays (src/store/job-history.ts), one per attempt (written
  // when its lease ends: worker, lease, start, last heartbeat, end, outcome, error) and one per
  // promotion, replay or cancellation. Enqueue time and the attempt in progress come from the
  // job's own columns. Deleted with the job, by retention or purge.
  `
  ALTER TABLE jobs ADD COLUMN history TEXT;
  -- NULL: the broker's --retention-max-age-ms / --retention-max-count; 0: no limit.
  ALTER TABLE queues ADD COLUMN retention_max_age_ms INTEGER CHECK (retention_max_age_ms >= 0);
  ALTER TABLE queues ADD COLUMN retention_max_count INTEGER CHECK (retention_max_count >= 0);
  `,
  // 5: dispatch limits per queue (rate, concurrency, fairness across group keys, aging).
  //
  // The limits are one JSON column (src/domain/queue-limits.ts), read into the QueueRegistry.
  // Round-robin across group keys walks the ready jobs of a queue and level by group key, one
  // index seek per group, so no group list is kept in memory. The index is partial on
  // group_key IS NOT NULL: jobs without a key do not pay for it. In a queue with a group
  // policy, jobs without a key get the key '' (the group of jobs without a key; see
  // Broker.updateQueue), so the walk sees them too.
  `
  ALTER TABLE queues ADD COLUMN limits TEXT;
  CREATE INDEX jobs_group_ready ON jobs (queue, priority DESC, group_key, seq)
    WHERE state = 'pending' AND group_key IS NOT NULL;
  `,
  // 6: which defaults a job inherited. max_attempts and lease_timeout_ms hold the value in force
  // (so claims and failures read one column, as before); these bits say the job did not set it
  // itself, so UpdateQueue rewrites it for the queue's unfinished jobs (1 = max_attempts,
  // 2 = lease_timeout_ms). Jobs from before are treated as having set their own.
  `
  ALTER TABLE jobs ADD COLUMN inherits INTEGER NOT NULL DEFAULT 0 CHECK (inherits BETWEEN 0 AND 3);
  `,
  // 7: admission control (src/broker/admission.ts): caps on queued jobs per queue and per
  // group key, and queued counts per group kept by triggers like queue_counts. The triggers
  // fire only for jobs with a group key, and only when a job enters or leaves the queued states
  // (pending, scheduled), so jobs without a group key pay one WHEN test per change.
  `
  ALTER TABLE queues ADD COLUMN max_queued INTEGER CHECK (max_queued >= 1);
  ALTER TABLE queues ADD COLUMN max_queued_per_group INTEGER CHECK (max_queued_per_group >= 1);

  CREATE TABLE group_counts (
    queue     TEXT    NOT NULL,
    group_key TEXT    NOT NULL,
    n         INTEGER NOT NULL CHECK (n >= 0),
    PRIMARY KEY (queue, group_key)
  ) WITHOUT ROWID;

  INSERT INTO group_counts (queue, group_key, n)
    SELECT queue, group_key, count(*) FROM jobs WHERE group_key IS NOT NULL AND state IN ('pending','scheduled') GROUP BY queue, group_key;

  CREATE TRIGGER jobs_group_count_insert AFTER INSERT ON jobs
    WHEN NEW.group_key IS NOT NULL AND NEW.state IN ('pending','scheduled') BEGIN
    INSERT INTO group_counts (queue, group_key, n) VALUES (NEW.queue, NEW.group_key, 1)
      ON CONFLICT (queue, group_key) DO UPDATE SET n = n + 1;
  END;

  CREATE TRIGGER jobs_group_count_enter AFTER UPDATE OF state ON jobs
    WHEN NEW.group_key IS NOT NULL AND NEW.state IN ('pending','scheduled') AND OLD.state NOT IN ('pending','scheduled') BEGIN
    INSERT INTO group_counts (queue, group_key, n) VALUES (NEW.queue, NEW.group_key, 1)
      ON CONFLICT (queue, group_key) DO UPDATE SET n = n + 1;
  END;

  -- Rows at zero are dropped, so the table holds only groups with queued jobs.
  CREATE TRIGGER jobs_group_count_leave AFTER UPDATE OF state ON jobs
    WHEN OLD.group_key IS NOT NULL AND OLD.state IN ('pending','scheduled') AND NEW.state NOT IN ('pending','scheduled') BEGIN
    UPDATE group_counts SET n = n - 1 WHERE queue = OLD.queue AND group_key = OLD.group_key;
    DELETE FROM group_counts WHERE queue = OLD.queue AND group_key = OLD.group_key AND n = 0;
  END;

  CREATE TRIGGER jobs_group_count_delete AFTER DELETE ON jobs
    WHEN OLD.group_key IS NOT NULL AND OLD.state IN ('pending','scheduled') BEGIN
    UPDATE group_counts SET n = n - 1 WHERE queue = OLD.queue AND group_key = OLD.group_key;
    DELETE FROM group_counts WHERE queue = OLD.queue AND group_key = OLD.group_key AND n = 0;
  END;
  `,
  // 8: group_counts also follows a queued job whose group key changes (a queue that gains a
  // group policy moves its jobs without a key into the group '', broker UpdateQueue). The
  // state triggers of 7 fire only when a job enters or leaves the queued states, so such a
  // move left the counts behind; they are rebuilt here from the jobs table. UPDATE OF
  // group_key fires only for statements that set that column, never on the hot path.
  `
  CREATE TRIGGER jobs_group_count_rekey AFTER UPDATE OF group_key ON jobs
    WHEN OLD.group_key IS NOT NEW.group_key AND OLD.state IN ('pending','scheduled') AND NEW.state IN ('pending','scheduled') BEGIN
    UPDATE group_counts SET n = n - 1 WHERE queue = OLD.queue AND group_key = OLD.group_key;
    DELETE FROM group_counts WHERE queue = OLD.queue AND group_key = OLD.group_key AND n = 0;
    INSERT INTO group_counts (queue, group_key, n) SELECT NEW.queue, NEW.group_key, 1 WHERE NEW.group_key IS NOT NULL
      ON CONFLICT (queue, group_key) DO UPDATE SET n = n + 1;
  END;

  DELETE FROM group_counts;
  INSERT INTO group_counts (queue, group_key, n)
    SELECT queue, group_key, count(*) FROM jobs WHERE group_key IS NOT NULL AND state IN ('pending','scheduled') GROUP BY queue, group_key;
  `,
];

export const SCHEMA_VERSION = MIGRATIONS.length;

export function migrate(db: Db): void {
  const current = db.pragma('user_version', { simple: true }) as number;
  if (current > MIGRATIONS.length) {
    throw new Error(`database schema version ${current} is newer than this broker (${MIGRATIONS.length}); upgrade sluice`);
  }
  for (let version = current + 1; version <= MIGRATIONS.length; version++) {
    db.transaction(() => {
      db.exec(MIGRATIONS[version - 1]!);
      db.pragma(`user_version = ${version}`);
    })();
  }
}
