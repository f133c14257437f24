import { describe, expect, it } from 'vitest';
import { parseAuthFile } from '../src/auth/auth-file.js';
import { parseGrant, Principal } from '../src/auth/grants.js';
import { checkRequest, checkScope, ruleFor } from '../src/auth/rpc-policy.js';
import { createTokenLine, grantsFromFlags, tokenDigest } from '../src/auth/tokens.js';
import { isLoopback, checkExposure } from '../src/auth/exposure.js';
import { SluiceError } from '../src/domain/errors.js';

const principal = (...grants: string[]) => new Principal('t', grants.map(parseGrant));
const code = (f: () => void): string | undefined => {
  try {
    f();
    return undefined;
  } catch (e) {
    return (e as SluiceError).code;
  }
};

describe('grants and queue patterns', () => {
  it('matches * across dots and nothing else as a wildcard', () => {
    const p = principal('produce:email.*,billing');
    expect(p.allows('produce', 'email.welcome')).toBe(true);
    expect(p.allows('produce', 'email.a.b')).toBe(true);
    expect(p.allows('produce', 'emailx')).toBe(false);
    expect(p.allows('produce', 'billing')).toBe(true);
    expect(p.allows('produce', 'billing2')).toBe(false);
    expect(p.allows('consume', 'email.welcome')).toBe(false);
    expect(p.unrestricted('produce')).toBe(false);
  });
  it('counts admin as read, and adds up grants of one scope', () => {
    const p = principal('admin:email.*', 'read:sms.*');
    expect(p.allows('read', 'email.x')).toBe(true);
    expect(p.allows('read', 'sms.x')).toBe(true);
    expect(p.allows('admin', 'sms.x')).toBe(false);
    expect(principal('read', 'read:x').unrestricted('read')).toBe(true);
  });
  it('rejects unknown scopes and bad patterns', () => {
    expect(() => parseGrant('write')).toThrow(/unknown scope/);
    expect(() => parseGrant('produce:a b')).toThrow(/bad queue pattern/);
    expect(() => grantsFromFlags('produce:x', 'y')).toThrow(/already names queues/);
    expect(grantsFromFlags('produce,read', 'email.*').map((g) => g.patterns)).toEqual([['email.*'], ['email.*']]);
  });
});

describe('auth file', () => {
  it('parses token and cert lines and keeps only the hash', () => {
    const { token, line } = createTokenLine('billing', [parseGrant('produce:email.*')]);
    expect(line).not.toContain(token);
    const file = parseAuthFile(`# comment\n${line}\ncert worker-1 CN=worker-1,O=Acme consume\n`);
    expect(file.tokens.get(tokenDigest(token).toString('base64'))?.principal.name).toBe('billing');
    expect(file.certs[0]!.subject).toEqual({ CN: 'worker-1', O: 'Acme' });
  });
  it('names the line of an error and never echoes a token pasted by mistake', () => {
    const secret = 'slu_thisIsARawTokenNotAHash';
    expect(() => parseAuthFile(`\n\ntoken x ${secret} produce\n`)).toThrow(/^line 3: .*sha256/);
    try {
      parseAuthFile(`token x ${secret} produce`);
    } catch (e) {
      expect((e as Error).message).not.toContain(secret);
    }
    expect(() => parseAuthFile('token x sha256:' + 'a'.repeat(64) + '\n')).toThrow(/no scopes/);
    expect(() => parseAuthFile('# nothing\n')).toThrow(/no credentials/);
    expect(() => parseAuthFile(`cert a CN=x read\ncert a CN=y read`)).toThrow(/used twice/);
  });
});

describe('RPC rules', () => {
  it('closes RPCs without a rule to all but unrestricted admin tokens', () => {
    const path = '/sluice.v1.ScheduleService/CreateSchedule';
    expect(ruleFor(path).kind).toBe('unrestricted');
    expect(code(() => checkScope(principal('admin:email.*'), ruleFor(path), path))).toBe('PERMISSION_DENIED');
    expect(code(() => checkScope(principal('read'), ruleFor(path), path))).toBe('PERMISSION_DENIED');
    expect(code(() => checkScope(principal('admin'), ruleFor(path), path))).toBeUndefined();
  });
  it('answers NOT_FOUND for a job on a queue the token cannot see', () => {
    const path = '/sluice.v1.ProducerService/GetJob';
    const id = '0190a1b2-c3d4-7e5f-8000-000000000001';
    expect(code(() => checkRequest(principal('read:email.*'), ruleFor(path), path, { id }, () => 'sms'))).toBe('NOT_FOUND');
    expect(code(() => checkRequest(principal('read:email.*'), ruleFor(path), path, { id }, () => 'email.x'))).toBeUndefined();
    expect(code(() => checkRequest(principal('read:email.*'), ruleFor(path), path, { id }, () => undefined))).toBeUndefined();
  });
  it('waits for a job queue read from the store, and refuses the same way', async () => {
    const path = '/sluice.v1.ProducerService/GetJob';
    const id = '0190a1b2-c3d4-7e5f-8000-000000000001';
    const check = (queue: string | undefined) => checkRequest(principal('read:email.*'), ruleFor(path), path, { id }, async () => queue);
    await expect(check('sms')).rejects.toMatchObject({ code: 'NOT_FOUND' });
    await expect(check('email.x')).resolves.toBeUndefined();
    await expect(check(undefined)).resolves.toBeUndefined();
    // Rules that name their queues in the request never wait.
    expect(checkRequest(principal('produce:email.*'), ruleFor('/sluice.v1.ProducerService/Enqueue'), '/sluice.v1.ProducerService/Enqueue', { queue: 'email.x' }, async () => 'sms')).toBeUndefined();
  });
});

describe('safe defaults', () => {
  it('knows loopback addresses', () => {
    for (const h of ['127.0.0.1', '127.1.2.3', 'localhost', '::1', '[::1]', '::ffff:127.0.0.1']) expect(isLoopback(h), h).toBe(true);
    for (const h of ['0.0.0.0', '', '::', '10.0.0.1', 'example.com']) expect(isLoopback(h), h).toBe(false);
  });
  it('refuses a non-loopback address without auth, warns with --insecure or without TLS', () => {
    const base = { grpcAddress: '0.0.0.0:50051', httpAddress: 'off', authEnabled: false, tls: false, insecure: false };
    expect(() => checkExposure(base)).toThrow(/--auth-file/);
    expect(checkExposure({ ...base, insecure: true })[0]).toMatch(/INSECURE/);
    expect(checkExposure({ ...base, authEnabled: true })[0]).toMatch(/--tls-cert/);
    expect(checkExposure({ ...base, authEnabled: true, tls: true })).toEqual([]);
    expect(() => checkExposure({ ...base, grpcAddress: '127.0.0.1:1', httpAddress: '[::]:2' })).toThrow(/\[::\]:2/);
  });
});
