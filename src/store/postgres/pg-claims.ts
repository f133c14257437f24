import { formatJobId, parseJobId } from '../../domain/job-id.js';
import type { AckCommand, ClaimSlot } from '../flush-batch.js';
import type { ClaimedJob, CompletedJob } from '../types.js';
import { appendHistory, attemptEntry } from './pg-history.js';
import { DB_TRANSACTION_NOW_MS, queryRows, schemaPrefix, type PgQueryable } from './sql.js';

/**
 * The claim and the ack of the PostgreSQL store (docs/design/postgres-store.md, 3.2, 3.6, 3.7),
 * each one set-based statement with bound parameters: no per-job round trip, and nothing that
 * can fail on a stale input (guards match zero rows instead), so both fit a pipelined flush.
 * Same row changes and results as JobStore's claim and completeMany (src/store/job-store.ts).
 * Not wired into the broker yet (step 5).
 */

/** A delivery slot (flush-batch.ts): the lease prefix of design 3.6, `<brokerId>.<counter>.`, and the worker. */
export type { ClaimSlot };

export interface ClaimForSlotsOptions {
  /** Qualifies the tables; default: the connection's search_path. */
  schema?: string;
  queue: string;
  /** One per job wanted; the i-th ready job goes to the i-th slot. */
  slots: readonly ClaimSlot[];
  /** Only jobs of these types (as JobStore.peekReady's types); empty or absent: any type. */
  types?: readonly string[];
  /**
   * The claiming broker's id (its `brokers` row, design 3.6): set, the claim takes nothing once
   * that row is gone, so a broker declared dead hands out no lease that the takeover would then
   * have to find. Absent: no check (one broker, or tests of the claim alone).
   */
  brokerId?: string;
}

export interface CompleteManyOptions {
  schema?: string;
  acks: readonly AckCommand[];
}

/**
 * The database's now() in whole epoch ms, floored as DbClock floors. now() (the transaction's
 * start), not clock_timestamp(): every row of a flush gets one time, as SQLite's @now, and lease
 * times never come from a broker's clock (3.7).
 */
const DB_NOW_MS = DB_TRANSACTION_NOW_MS;

const CLAIMED_COLUMNS = [
  'seq', 'queue', 'type', 'payload', 'metadata', 'attempt', 'max_attempts', 'lease_timeout_ms', 'lease_expires_at',
  'priority', 'created_at', 'progress', 'group_key', 'lease_id', 'run_at',
] as const;

type ClaimedRow = Omit<ClaimedJob, 'id'> & { slot: number };

/**
 * The claim statement of 3.2. `pick` walks jobs_ready (queue, priority DESC, seq) in peekReady's
 * order, locking up to n rows and skipping rows another claimer holds (SKIP LOCKED: concurrent
 * claimers never wait on each other and never get the same job); `ranked` numbers the picked rows
 * in the same order and the UPDATE joins rank i to slot i. A paused queue picks nothing (one PK
 * probe of queues, evaluated once): on SQLite the dispatcher skips paused queues from its mirror,
 * with several brokers the statement must see the committed flag itself (3.4). With a broker id, the
 * claimer's own `brokers` row is probed the same way (3.6's fencing of the claimer): once another
 * broker's sweep deleted it, nothing is claimed (a deletion committed after this statement's
 * snapshot is not seen: those leases are released by the takeover's next run, pg-takeover.ts). The row lock is
 * re-checked against the newest row version (READ COMMITTED), so a job claimed and committed by
 * another broker after this statement's snapshot is dropped, not claimed twice. SKIP LOCKED spares
 * waits on job rows only: the count triggers of migration 2 also update the queue's queue_counts
 * rows (once per statement, in key order, so claimers wait but do not deadlock on them), so an
 * uncommitted claim (a flush in flight) makes other claimers of that queue wait for its commit
 * (the delta ledger of step 7, design 3.4, removes the shared rows).
 */
function claimSql(q: string, typed: boolean, ownRow: number | undefined): string {
  const returning = CLAIMED_COLUMNS.map((c) => `jobs.${c}`).join(', ');
  return `WITH pick AS (
      SELECT seq, priority FROM ${q}jobs
       WHERE queue = $1 AND state = 'pending'${typed ? ' AND type = ANY($5::text[])' : ''}
         AND NOT EXISTS (SELECT 1 FROM ${q}queues WHERE name = $1 AND paused = 1)${
           ownRow === undefined ? '' : `
         AND EXISTS (SELECT 1 FROM ${q}brokers WHERE id = $${ownRow})`
         }
       ORDER BY priority DESC, seq
       LIMIT $4
       FOR UPDATE SKIP LOCKED
    ), ranked AS (
      SELECT seq, row_number() OVER (ORDER BY priority DESC, seq) AS i FROM pick
    ), slot AS (
      SELECT * FROM unnest($2::text[], $3::text[]) WITH ORDINALITY AS s(prefix, worker_id, i)
    ), clock AS (
      SELECT ${DB_NOW_MS} AS now_ms
    )
    UPDATE ${q}jobs AS jobs SET state = 'active', attempt = jobs.attempt + 1, lease_id = slot.prefix || jobs.seq,
           lease_expires_at = clock.now_ms + jobs.lease_timeout_ms, worker_id = slot.worker_id,
           started_at = clock.now_ms, updated_at = clock.now_ms
      FROM ranked JOIN slot USING (i), clock
     WHERE jobs.seq = ranked.seq
    RETURNING slot.i AS slot, ${returning}`;
}

/**
 * Pending -> active for up to slots.length ready jobs of the queue, in delivery order (priority
 * DESC, seq), the i-th to slots[i]: lease id = prefix + seq, lease_expires_at = the database's
 * now + lease_timeout_ms, attempt + 1 (JobStore.claim's changes; a claim writes no history).
 * Returns the claimed jobs in slot order; fewer than the slots means the queue had no more ready
 * jobs that no other claimer held (or it is paused).
 */
export async function claimForSlots(db: PgQueryable, options: ClaimForSlotsOptions): Promise<ClaimedJob[]> {
  const { slots } = options;
  if (slots.length === 0) return [];
  const typed = options.types !== undefined && options.types.length > 0;
  const values: unknown[] = [options.queue, slots.map((s) => s.prefix), slots.map((s) => s.workerId), slots.length];
  if (typed) values.push(options.types);
  let ownRow: number | undefined;
  if (options.brokerId !== undefined) ownRow = values.push(options.brokerId);
  const rows = await queryRows<ClaimedRow>(db, claimSql(schemaPrefix(options.schema), typed, ownRow), values);
  // RETURNING has no order: slot order is restored here.
  rows.sort((a, b) => a.slot - b.slot);
  return rows.map((r) => ({
    seq: r.seq,
    id: formatJobId(r.seq, r.created_at),
    queue: r.queue,
    type: r.type,
    payload: r.payload,
    metadata: r.metadata,
    attempt: r.attempt,
    max_attempts: r.max_attempts,
    lease_timeout_ms: r.lease_timeout_ms,
    lease_expires_at: r.lease_expires_at,
    priority: r.priority,
    created_at: r.created_at,
    progress: r.progress,
    group_key: r.group_key,
    lease_id: r.lease_id,
    run_at: r.run_at,
  }));
}

/** The 'a' history entry of an ack (pg-history.ts writes it as SQLite's json_array does). */
const ACKED_ENTRY = attemptEntry(`'"acked"'`);

/**
 * Acks in one statement. `first` keeps one input per (seq, lease id), the earliest: a job's row
 * has one lease id, so each row joins at most one input and the RETURNING names which (its
 * ordinality). The same job twice under its current lease completes for the first input only,
 * as SQLite's one-at-a-time path does; an input under another lease matches nothing.
 */
function completeSql(q: string): string {
  return `WITH ack AS (
      SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[]) WITH ORDINALITY AS a(seq, lease_id, result, i)
    ), first AS (
      SELECT DISTINCT ON (seq, lease_id) seq, lease_id, result, i FROM ack ORDER BY seq, lease_id, i
    ), clock AS (
      SELECT ${DB_NOW_MS} AS now_ms
    )
    UPDATE ${q}jobs AS jobs SET state = 'completed', result = first.result, lease_id = NULL, lease_expires_at = NULL,
           finished_at = clock.now_ms, updated_at = clock.now_ms,
           ${appendHistory(ACKED_ENTRY)}
      FROM first, clock
     WHERE jobs.seq = first.seq AND jobs.state = 'active' AND jobs.lease_id = first.lease_id
    RETURNING first.i AS i, jobs.attempt, jobs.queue, jobs.started_at, jobs.metadata`;
}

/**
 * Active (under its lease) -> completed for many jobs, finished_at from the database's now.
 * Returns, per input, the completed job, or undefined when nothing changed (stale or wrong lease,
 * unknown id, a job not active, or a repeat of an input already completed in this call): the
 * contract of JobStore.completeMany. Fencing is the lease id (3.6): a zombie's ack changes nothing.
 */
export async function completeMany(db: PgQueryable, options: CompleteManyOptions): Promise<(CompletedJob | undefined)[]> {
  const { acks } = options;
  const out: (CompletedJob | undefined)[] = new Array(acks.length).fill(undefined);
  const seqs: number[] = [];
  const leases: string[] = [];
  const results: (string | null)[] = [];
  /** Input index of each argument row (unparseable ids are left out: they name no job). */
  const index: number[] = [];
  for (let i = 0; i < acks.length; i++) {
    const a = acks[i]!;
    const key = parseJobId(a.id);
    // Seqs past 2^53 (ids carry up to 62 bits) name no stored row: the store's seqs stay below it.
    if (!key || !Number.isSafeInteger(key.seq)) continue;
    seqs.push(key.seq);
    leases.push(a.leaseId);
    results.push(a.result);
    index.push(i);
  }
  if (seqs.length === 0) return out;
  const rows = await queryRows<CompletedJob & { i: number }>(db, completeSql(schemaPrefix(options.schema)), [seqs, leases, results]);
  for (const { i, attempt, queue, started_at, metadata } of rows) out[index[i - 1]!] = { attempt, queue, started_at, metadata };
  return out;
}
