import type pg from 'pg';
import { LEASE_EXPIRED_REASON, type EnqueueCommand } from '../flush-batch.js';
import type { NewJob } from '../types.js';
import { claimForSlots, completeMany } from './pg-claims.js';
import type { FlushStatements } from './pg-flush.js';
import { DedupRaceError, enqueueMany, expireLeases, extendMany, failMany, promoteDue, releaseMany } from './pg-writes.js';
import { readyNotifyStatement } from './ready-notifier.js';
import { schemaPrefix, storableKey, UnstorableKeyError } from './sql.js';

/**
 * The PostgreSQL statements of a flush (pg-flush.ts), for the tables of one schema (or the
 * connection's search_path when `schema` is undefined).
 */
export function postgresFlushStatements(schema?: string): FlushStatements {
  const q = schemaPrefix(schema);
  const ensureQueuesSql = `INSERT INTO ${q}queues (name, created_at)
      SELECT name, $2::bigint FROM unnest($1::text[]) AS name ORDER BY name
    ON CONFLICT (name) DO NOTHING`;
  return {
    // Sorted, as every multi-row write of this store, so two brokers creating queues cannot deadlock.
    ensureQueues: (db, queues, now) => db.query(ensureQueuesSql, [[...new Set(queues)].sort(), now]),
    refusedJob: (job: NewJob) => {
      try {
        storableKey(job.dedupKey, 'dedup_key', 0);
        storableKey(job.groupKey, 'group_key', 0);
        return undefined;
      } catch (error) {
        return error as UnstorableKeyError;
      }
    },
    enqueue: (db, command, now) => enqueueMany(db, { schema, jobs: command.jobs, states: command.states, now }),
    // A taken dedup key is looked up by a second query once the insert has answered.
    enqueueMayQueryAgain: (command: EnqueueCommand) => command.jobs.some((j) => j.dedupKey !== null),
    // Class 22 (data exception) and 23 (integrity constraint): the jobs' fault, not the connection's.
    isEnqueueInputError: (error) => {
      if (error instanceof DedupRaceError) return true;
      const code = (error as { code?: unknown } | null)?.code;
      return typeof code === 'string' && (code.startsWith('22') || code.startsWith('23'));
    },
    acks: (db, acks) => completeMany(db, { schema, acks }),
    fails: (db, fails) => failMany(db, { schema, fails }),
    extends: (db, extends_) => extendMany(db, { schema, extends: extends_ }),
    releases: (db, releases) => releaseMany(db, { schema, releases }),
    expire: (db, expire) => expireLeases(db, { schema, limit: expire.limit, reason: expire.reason ?? LEASE_EXPIRED_REASON }),
    promote: (db, promote) => promoteDue(db, { schema, limit: promote.limit }),
    claim: (db, claim) => claimForSlots(db, { schema, queue: claim.queue, slots: claim.slots, ...(claim.types ? { types: claim.types } : {}) }),
    notify: (db: pg.ClientBase, queues) => {
      const statement = readyNotifyStatement(queues, schema === undefined ? {} : { schema });
      return statement ? db.query(statement) : Promise.resolve();
    },
  };
}
