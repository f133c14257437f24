/**
 * The JSON the PostgreSQL statements write into text columns (history, errors), byte for byte
 * what SQLite's json_array / json_object / json_insert write for the same values
 * (src/store/job-store.ts, decoded by src/store/job-history.ts): no spaces (json_build_array
 * would put one after every comma), strings quoted and escaped as SQLite does (to_json escapes
 * `"`, `\`, \b \f \n \r \t and other control characters as \u00xx, as json_quote does).
 * One definition for pg-claims.ts and pg-writes.ts. Inside an UPDATE, `jobs.<column>` means
 * the row before the change, as in SQLite; `clock.now_ms` is the statement's database time.
 */

/** A JSON string literal of a text expression, or null. */
export const jsonText = (expr: string): string => `coalesce(to_json(${expr})::text, 'null')`;

/** A JSON number of an integer expression, or null. */
export const jsonNumber = (expr: string): string => `coalesce((${expr})::text, 'null')`;

/** `history = <history>,<entry>` (the column holds the entries without the enclosing brackets). */
export const appendHistory = (entry: string): string => `history = coalesce(jobs.history || ',', '') || ${entry}`;

/**
 * The attempt whose lease the statement ends, SQLite's attemptEntry: who held it, when it
 * started, its last heartbeat (updated_at, when later than the start), when it ended, how
 * (`outcome`, an SQL expression of JSON text), then `rest` (SQL expressions of JSON text).
 */
export function attemptEntry(outcome: string, rest: readonly string[] = []): string {
  const parts = [
    `jobs.attempt::text`,
    jsonText('jobs.worker_id'),
    jsonText('jobs.lease_id'),
    jsonNumber('jobs.started_at'),
    jsonNumber('CASE WHEN jobs.updated_at > jobs.started_at THEN jobs.updated_at END'),
    `clock.now_ms::text`,
    outcome,
    ...rest,
  ];
  return `'["a",' || ${parts.join(` || ',' || `)} || ']'`;
}

/**
 * SQLite's `json_insert(coalesce(column, '[]'), '$[#]', entry)`: the entry (JSON text) appended
 * to the JSON array in the column. The column holds a minified array (only json_insert on
 * SQLite and this expression write it), so appending is text surgery before its closing bracket.
 */
export function appendJsonArray(column: string, entry: string): string {
  return `CASE WHEN ${column} IS NULL OR ${column} = '[]' THEN '[' || ${entry} || ']'
    ELSE left(${column}, -1) || ',' || ${entry} || ']' END`;
}
