/**
 * The `--store` value (docs/design/postgres-store.md, step 5): which backend the broker opens.
 *
 *   sqlite:<path>                  a SQLite file, the path relative to the working directory or
 *                                  absolute (`sqlite:./sluice.db` is the default, DEFAULT_STORE_URL)
 *   postgres://... postgresql://... a libpq-style URL as node-postgres reads it (user, password,
 *                                  host, port, database, `?host=/dir` for a unix socket directory,
 *                                  `sslmode=` and the other parameters pg knows), plus one
 *                                  parameter of ours: `schema=<name>`, the schema holding the
 *                                  store's tables (default: the connection's search_path). It is
 *                                  removed from the URL handed to pg.
 *
 * Schema names are limited to what needs no quoting and cannot be mistaken: lowercase letters,
 * digits and `_`, not starting with a digit, at most 63 bytes (PostgreSQL silently truncates longer
 * identifiers, which would make two names one), and not `pg_...` (reserved by PostgreSQL). The
 * store quotes the name anyway; the limit is so that the schema psql users see (`SET search_path
 * TO name`, unquoted, folds to lowercase) is the one the broker writes.
 *
 * Secrets are never logged (design rule): StoreUrlError messages never contain the input of a
 * PostgreSQL URL, and redactStoreUrl() is what logs may show of one.
 *
 * Not wired into the CLI or the broker yet (step 5): config.ts still reads `--data-file`.
 */

export const DEFAULT_STORE_URL = 'sqlite:./sluice.db';

/** The query parameter naming the store's schema (ours, not libpq's; removed before pg sees the URL). */
export const SCHEMA_PARAM = 'schema';

export type StoreUrl =
  | { readonly kind: 'sqlite'; readonly path: string }
  | {
      readonly kind: 'postgres';
      /** The URL for node-postgres (`connectionString`), without the schema parameter. Holds the password: never log it. */
      readonly connectionString: string;
      /** The schema= parameter, or undefined (the connection's search_path decides). */
      readonly schema: string | undefined;
      /** connectionString with every password replaced by `***`: what logs may show. */
      readonly redacted: string;
    };

export type StoreUrlErrorReason = 'unknown-scheme' | 'empty-path' | 'malformed-url' | 'invalid-schema';

/** A `--store` value that names no usable store. The message says what is wrong and never repeats a password. */
export class StoreUrlError extends Error {
  override readonly name = 'StoreUrlError';
  constructor(
    readonly reason: StoreUrlErrorReason,
    message: string,
  ) {
    super(message);
  }
}

const SCHEME = /^([A-Za-z][A-Za-z0-9+.-]*):/;
const POSTGRES_SCHEMES = new Set(['postgres', 'postgresql']);
const SCHEMA_NAME = /^[a-z_][a-z0-9_]*$/;
const IDENTIFIER_MAX_BYTES = 63;
/**
 * libpq allows an empty host before the path (`postgresql://user@/db?host=/run/postgresql`),
 * which WHATWG URL refuses when credentials are present; pg-connection-string parses it with a
 * placeholder host, and so does this module (then removes it again).
 */
const PLACEHOLDER_HOST = 'sluice-empty-host.invalid';

function schemeOf(value: string): string | undefined {
  return SCHEME.exec(value)?.[1]?.toLowerCase();
}

/** Why a schema name is refused, or undefined when it is usable. */
export function schemaNameProblem(name: string): string | undefined {
  if (name.length === 0) return 'is empty';
  if (Buffer.byteLength(name) > IDENTIFIER_MAX_BYTES) return `is longer than ${IDENTIFIER_MAX_BYTES} bytes`;
  if (!SCHEMA_NAME.test(name)) return 'may hold only lowercase letters, digits and _, and must not start with a digit';
  if (name.startsWith('pg_')) return 'starts with pg_, which PostgreSQL reserves';
  return undefined;
}

/**
 * A URL object for a postgres:// value, or a StoreUrlError. Never lets the URL parser's own error
 * escape: Node's TypeError carries the whole input (`input`), password included.
 */
function parsePostgresUrl(value: string): { url: URL; placeholder: boolean } {
  try {
    return { url: new URL(value), placeholder: false };
  } catch {
    // fall through: maybe libpq's empty host with credentials
  }
  const start = value.indexOf('//') + 2;
  const rest = value.slice(start);
  const end = rest.search(/[/?#]/);
  const authority = end < 0 ? rest : rest.slice(0, end);
  if (authority.endsWith('@')) {
    const at = start + authority.length;
    try {
      return { url: new URL(value.slice(0, at) + PLACEHOLDER_HOST + value.slice(at)), placeholder: true };
    } catch {
      // fall through to the error
    }
  }
  const hint = authority.includes(',')
    ? ' (several hosts in one URL are not supported by node-postgres)'
    : ' (check the port, and that reserved characters such as @ : / in the user name or password are percent-encoded)';
  return malformed(`--store: the PostgreSQL URL is malformed${hint}`);
}

function malformed(message: string): never {
  throw new StoreUrlError('malformed-url', message);
}

function serialize(url: URL, placeholder: boolean): string {
  const text = url.toString();
  return placeholder ? text.replace(`@${PLACEHOLDER_HOST}`, '@') : text;
}

function redactUrl(url: URL, placeholder: boolean): string {
  const copy = new URL(url.toString());
  if (copy.password !== '') copy.password = '***';
  // libpq also takes the password as a parameter.
  if (copy.searchParams.has('password')) {
    for (const key of [...copy.searchParams.keys()]) if (key === 'password') copy.searchParams.set(key, '***');
  }
  return serialize(copy, placeholder);
}

/** Parses a `--store` value; throws StoreUrlError. */
export function parseStoreUrl(value: string): StoreUrl {
  const scheme = schemeOf(value);
  if (scheme === 'sqlite') {
    const path = value.slice('sqlite:'.length);
    if (path.trim() === '') throw new StoreUrlError('empty-path', '--store: sqlite: needs a file path, e.g. sqlite:./sluice.db or sqlite:/var/lib/sluice/sluice.db');
    if (path.startsWith('//')) {
      throw new StoreUrlError('malformed-url', `--store: write a SQLite file as sqlite:<path> (sqlite:./sluice.db, sqlite:/abs/path.db), not sqlite://...`);
    }
    return { kind: 'sqlite', path };
  }
  if (scheme === undefined || !POSTGRES_SCHEMES.has(scheme)) {
    // Only the scheme is repeated: whatever follows may hold a password.
    const named = scheme === undefined ? 'names no scheme' : `has the unknown scheme ${JSON.stringify(scheme + ':')}`;
    throw new StoreUrlError('unknown-scheme', `--store ${named}; use sqlite:<path> or postgres://user@host/database`);
  }
  if (!value.slice(scheme.length + 1).startsWith('//')) malformed(`--store: a PostgreSQL URL starts with ${scheme}://`);
  const { url, placeholder } = parsePostgresUrl(value);
  const schemas = url.searchParams.getAll(SCHEMA_PARAM);
  if (schemas.length > 1) throw new StoreUrlError('invalid-schema', `--store: the ${SCHEMA_PARAM}= parameter is given ${schemas.length} times`);
  let schema: string | undefined;
  let connectionString = value;
  if (schemas.length === 1) {
    schema = schemas[0]!;
    const problem = schemaNameProblem(schema);
    if (problem) throw new StoreUrlError('invalid-schema', `--store: the schema name ${JSON.stringify(schema)} ${problem}`);
    url.searchParams.delete(SCHEMA_PARAM);
    connectionString = serialize(url, placeholder);
  }
  return { kind: 'postgres', connectionString, schema, redacted: redactUrl(url, placeholder) };
}

/**
 * What a log line may show of a `--store` value: a PostgreSQL URL's password (in the user info or
 * a `password=` parameter) replaced by `***`; a value that does not parse shows its scheme only.
 */
export function redactStoreUrl(value: string): string {
  const scheme = schemeOf(value);
  if (scheme === 'sqlite') return value;
  if (scheme === undefined) return '<store URL without a scheme>';
  if (!POSTGRES_SCHEMES.has(scheme) || !value.slice(scheme.length + 1).startsWith('//')) return `${scheme}:***`;
  try {
    const { url, placeholder } = parsePostgresUrl(value);
    return redactUrl(url, placeholder);
  } catch {
    return `${scheme}://***`;
  }
}
