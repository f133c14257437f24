/**
 * The `--store` value (src/store/store-url.ts): sqlite:<path> and postgres(ql):// URLs, the
 * schema= parameter taken out before pg sees the URL, typed errors that name the problem and
 * never repeat a password, and the redaction logs use. Pure unit tests: no database.
 */
import { describe, expect, test } from 'vitest';
import pg from 'pg';
import { DEFAULT_STORE_URL, parseStoreUrl, redactStoreUrl, StoreUrlError, type StoreUrl } from '../src/store/store-url.js';

const SECRET = 'Hunter2-s3cr3t';

function refusal(value: string): StoreUrlError {
  try {
    parseStoreUrl(value);
  } catch (error) {
    expect(error).toBeInstanceOf(StoreUrlError);
    return error as StoreUrlError;
  }
  throw new Error(`accepted: ${value}`);
}

function postgres(value: string): Extract<StoreUrl, { kind: 'postgres' }> {
  const parsed = parseStoreUrl(value);
  if (parsed.kind !== 'postgres') throw new Error(`not postgres: ${value}`);
  return parsed;
}

describe('sqlite:', () => {
  test('relative and absolute paths, the default included, are taken verbatim', () => {
    expect(parseStoreUrl(DEFAULT_STORE_URL)).toEqual({ kind: 'sqlite', path: './sluice.db' });
    expect(parseStoreUrl('sqlite:data/s.db')).toEqual({ kind: 'sqlite', path: 'data/s.db' });
    expect(parseStoreUrl('sqlite:/var/lib/sluice/s.db')).toEqual({ kind: 'sqlite', path: '/var/lib/sluice/s.db' });
    expect(parseStoreUrl('SQLite:./x y.db')).toEqual({ kind: 'sqlite', path: './x y.db' });
  });

  test('an empty path and sqlite:// are refused, saying how to write it', () => {
    for (const value of ['sqlite:', 'sqlite:  ']) {
      const e = refusal(value);
      expect(e.reason).toBe('empty-path');
      expect(e.message).toMatch(/needs a file path/);
    }
    const e = refusal('sqlite:///tmp/x.db');
    expect(e.reason).toBe('malformed-url');
    expect(e.message).toMatch(/sqlite:<path>/);
  });

  test('redaction leaves a SQLite path as it is', () => {
    expect(redactStoreUrl('sqlite:./sluice.db')).toBe('sqlite:./sluice.db');
  });
});

describe('postgres:// and postgresql://', () => {
  test('standard URLs pass through to pg unchanged when they carry no schema parameter', () => {
    for (const value of [
      'postgres://localhost/sluice',
      'postgresql://u@db.example:6432/sluice?sslmode=verify-full&application_name=b1',
      `postgres://u:${SECRET}@[::1]:5432/sluice`,
      'postgresql://%2Fvar%2Frun%2Fpostgresql/sluice',
      'postgresql:///sluice?host=/var/run/postgresql',
    ]) {
      expect(postgres(value)).toMatchObject({ connectionString: value, schema: undefined });
    }
  });

  test('an empty host with credentials (libpq style, unix socket in ?host=) is accepted and kept as written', () => {
    const value = `postgresql://sluice:${SECRET}@/jobs?host=/tmp/sluice-pg-x&port=5432&schema=tenant_1`;
    const parsed = postgres(value);
    expect(parsed.schema).toBe('tenant_1');
    expect(parsed.connectionString).toBe(`postgresql://sluice:${SECRET}@/jobs?host=%2Ftmp%2Fsluice-pg-x&port=5432`);
    // What pg makes of it (a client is built, never connected): the socket directory, the database, the credentials.
    const client = new pg.Client({ connectionString: parsed.connectionString });
    expect({ host: client.host, port: client.port, database: client.database, user: client.user, password: client.password }).toEqual({
      host: '/tmp/sluice-pg-x', port: 5432, database: 'jobs', user: 'sluice', password: SECRET,
    });
    expect(parsed.redacted).toBe('postgresql://sluice:***@/jobs?host=%2Ftmp%2Fsluice-pg-x&port=5432');
  });

  test('schema= is taken out of the URL, the other parameters stay', () => {
    const parsed = postgres('postgres://u@h/db?sslmode=verify-full&schema=sluice_a&application_name=b1');
    expect(parsed.schema).toBe('sluice_a');
    expect(parsed.connectionString).toBe('postgres://u@h/db?sslmode=verify-full&application_name=b1');
    const client = new pg.Client({ connectionString: parsed.connectionString });
    const params = (client as unknown as { connectionParameters: { application_name?: string } }).connectionParameters;
    expect({ database: client.database, ssl: client.ssl, applicationName: params.application_name }).toEqual({ database: 'db', ssl: {}, applicationName: 'b1' });
  });

  test('an invalid schema name is refused, naming the rule it breaks', () => {
    const cases: [string, RegExp][] = [
      ['', /is empty/],
      ['Tenant', /lowercase letters/],
      ['1tenant', /must not start with a digit/],
      ['a-b', /lowercase letters/],
      ['a"b', /lowercase letters/],
      ['pg_temp', /reserves/],
      ['x'.repeat(64), /longer than 63 bytes/],
    ];
    for (const [name, why] of cases) {
      const e = refusal(`postgres://u:${SECRET}@h/db?schema=${encodeURIComponent(name)}`);
      expect(e.reason).toBe('invalid-schema');
      expect(e.message).toMatch(why);
      expect(e.message).not.toContain(SECRET);
    }
    expect(postgres(`postgres://h/db?schema=${'x'.repeat(63)}`).schema).toHaveLength(63);
    const twice = refusal('postgres://h/db?schema=a&schema=b');
    expect(twice.reason).toBe('invalid-schema');
    expect(twice.message).toMatch(/given 2 times/);
  });

  test('a malformed URL is refused without repeating it', () => {
    for (const value of [
      `postgres://u:${SECRET}@h:notaport/db`,
      `postgres://u:${SECRET}@h:99999/db`,
      `postgres://u:${SECRET}@h1:5432,h2:5432/db`,
      `postgres:u:${SECRET}@h/db`,
    ]) {
      const e = refusal(value);
      expect(e.reason).toBe('malformed-url');
      expect(e.message).not.toContain(SECRET);
      expect(e.message).not.toContain('notaport');
      expect(e.cause).toBeUndefined(); // Node's URL error carries the input
    }
    expect(refusal(`postgres://u:${SECRET}@h1:5432,h2:5432/db`).message).toMatch(/several hosts/);
  });
});

describe('other values', () => {
  test('an unknown scheme or none is refused, naming the scheme only', () => {
    const e = refusal(`mysql://root:${SECRET}@h/db`);
    expect(e.reason).toBe('unknown-scheme');
    expect(e.message).toContain('"mysql:"');
    expect(e.message).not.toContain(SECRET);
    expect(e.message).toMatch(/sqlite:<path> or postgres:\/\//);
    for (const value of ['./sluice.db', '', '/var/lib/s.db']) {
      const none = refusal(value);
      expect(none.reason).toBe('unknown-scheme');
      expect(none.message).toMatch(/names no scheme/);
    }
  });
});

describe('redactStoreUrl', () => {
  test('the password, in the user info or as a parameter, becomes ***; the rest stays readable', () => {
    expect(redactStoreUrl(`postgres://u:${SECRET}@db.example:5432/sluice?schema=s1`)).toBe('postgres://u:***@db.example:5432/sluice?schema=s1');
    expect(redactStoreUrl(`postgresql://u@h/db?password=${SECRET}&sslmode=verify-full`)).toBe('postgresql://u@h/db?password=***&sslmode=verify-full');
    expect(redactStoreUrl('postgres://u@h/db')).toBe('postgres://u@h/db');
    // Percent-encoded reserved characters in the password are hidden too.
    expect(redactStoreUrl('postgres://u:p%40ss%3Aw%2Frd@h/db')).toBe('postgres://u:***@h/db');
  });

  test('what does not parse shows no more than its scheme', () => {
    expect(redactStoreUrl(`postgres://u:${SECRET}@h:bad/db`)).toBe('postgres://***');
    expect(redactStoreUrl(`mysql://u:${SECRET}@h/db`)).toBe('mysql:***');
    expect(redactStoreUrl(`u:${SECRET}@h`)).toBe('u:***');
    expect(redactStoreUrl(`${SECRET}`)).toBe('<store URL without a scheme>');
  });

  test('a parsed URL carries its redaction', () => {
    expect(postgres(`postgres://u:${SECRET}@h/db?schema=s1`).redacted).toBe('postgres://u:***@h/db');
  });
});
