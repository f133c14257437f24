import { formatJobId } from '../../domain/job-id.js';
import type { ReleasedJob } from '../types.js';
import { RELEASE_SET, RELEASED_RETURNING } from './pg-writes.js';
import { DB_TRANSACTION_NOW_MS, queryRows, schemaPrefix, type PgQueryable } from './sql.js';

/**
 * The takeover of design 3.6: the leases of brokers that are no longer registered (swept by
 * BrokerRegistry.sweepLapsed, or replaced by a restart under the same name) go back to their
 * queues, each counted as an attempt, as a lost stream's are on SQLite. The lease id names its
 * holder: `<brokerId>.<counter>.<seq>` (pg-claims' slot prefix + seq), so "not a registered
 * broker" is a lookup of the id before the first dot in `brokers`, with no list of ids passed in.
 *
 * Run it on every sweep, not only when sweepLapsed returned ids: a claim that was in flight when
 * its broker's row was deleted (its snapshot still saw the row) commits its leases after the
 * sweeper's release ran, and only a later release finds them. Not wired into the broker yet.
 */

export interface ReleaseOrphanedLeasesOptions {
  /** Qualifies the tables; default: the connection's search_path. */
  schema?: string;
  /** At most this many leases per call; fewer returned means no other orphaned lease was free to take. */
  limit: number;
}

export interface OrphanedLease {
  id: string;
  /** The lease released. */
  leaseId: string;
  /** The broker that held it (the lease id's first part). */
  brokerId: string;
  /** The job as released: pending again, or dead when it was its last attempt. */
  released: ReleasedJob;
}

/** The holder's id: the lease id up to its first dot. */
const HOLDER = (lease: string) => `split_part(${lease}, '.', 1)`;

/**
 * `orphan` reads, in the statement's snapshot, the active leases whose holder has no `brokers`
 * row (the jobs_leases partial index holds exactly the active jobs, bounded by total credit).
 * `r` locks those rows FOR UPDATE SKIP LOCKED, joined on the lease id `orphan` saw: when a row
 * changed after the snapshot (acked, released and claimed again, perhaps by a broker registered
 * since, whose row the snapshot cannot see), the lock's re-check reads its newest version
 * against that old lease id and drops it, so only a lease seen orphaned and still held is
 * released. Two sweepers at once take disjoint rows (a row one has locked, the other skips; a
 * row one has released, the other's re-check finds changed). A row held by an uncommitted
 * settle of a zombie is skipped here and fenced by the UPDATE's lease guard later either way.
 * The release itself is releaseMany's (pg-writes RELEASE_SET): counts as an attempt, dead on
 * the last one, outcome 'released', the reason naming the broker.
 */
function orphanedSql(q: string): string {
  return `WITH orphan AS (
      SELECT a.seq, a.lease_id FROM ${q}jobs AS a
       WHERE a.state = 'active' AND a.lease_id IS NOT NULL
         AND NOT EXISTS (SELECT 1 FROM ${q}brokers AS b WHERE b.id = ${HOLDER('a.lease_id')})
    ), r AS (
      SELECT j.seq, j.lease_id, true AS counts, 'broker ' || ${HOLDER('j.lease_id')} || ' stopped heartbeating' AS reason,
             'released'::text AS outcome
        FROM ${q}jobs AS j JOIN orphan AS o ON o.seq = j.seq AND o.lease_id = j.lease_id
       WHERE j.state = 'active'
       ORDER BY j.seq
       LIMIT $1
       FOR UPDATE OF j SKIP LOCKED
    ), clock AS (SELECT ${DB_TRANSACTION_NOW_MS} AS now_ms)
    UPDATE ${q}jobs AS jobs SET ${RELEASE_SET}
      FROM r, clock
     WHERE jobs.seq = r.seq AND jobs.state = 'active' AND jobs.lease_id = r.lease_id
    RETURNING jobs.seq, jobs.created_at, r.lease_id, ${RELEASED_RETURNING}`;
}

/**
 * Releases up to `limit` leases held by no registered broker, in one statement; returns them in
 * seq order, for the caller to mark their queues ready (those left pending), count the lost
 * attempts and notify other brokers (3.5).
 */
export async function releaseOrphanedLeases(db: PgQueryable, options: ReleaseOrphanedLeasesOptions): Promise<OrphanedLease[]> {
  const { limit } = options;
  if (!Number.isSafeInteger(limit) || limit < 0) throw new RangeError(`not a row count: ${limit}`);
  const rows = await queryRows<ReleasedJob & { seq: number; created_at: number; lease_id: string }>(db, orphanedSql(schemaPrefix(options.schema)), [limit]);
  return rows
    .sort((a, b) => a.seq - b.seq)
    .map((r) => ({
      id: formatJobId(r.seq, r.created_at),
      leaseId: r.lease_id,
      brokerId: r.lease_id.split('.', 1)[0]!,
      released: { state: r.state, queue: r.queue, type: r.type, attempt: r.attempt, metadata: r.metadata },
    }));
}
