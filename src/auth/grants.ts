/**
 * Scopes, queue patterns and principals: who may do what, on which queues. Pure, no I/O.
 *
 * A grant is `scope` (every queue) or `scope:pattern[,pattern...]`, e.g. `produce:email.*`.
 * In a pattern `*` matches any run of characters (dots included); anything else is literal.
 */

/** The closed set of scopes. `admin` includes `read`; neither includes produce or consume. */
export const SCOPES = ['produce', 'consume', 'admin', 'read'] as const;
export type Scope = (typeof SCOPES)[number];

export interface Grant {
  scope: Scope;
  /** undefined: every queue. */
  patterns: readonly string[] | undefined;
}

/** Queue patterns: the queue-name alphabet plus `*`. */
const PATTERN = /^[A-Za-z0-9_.:*-]{1,128}$/;

/** Parses `produce`, `read:email.*` or `admin:email.*,sms.*`; throws an Error naming what is wrong. */
export function parseGrant(text: string): Grant {
  const colon = text.indexOf(':');
  const scope = colon < 0 ? text : text.slice(0, colon);
  if (!(SCOPES as readonly string[]).includes(scope)) {
    throw new Error(`unknown scope ${JSON.stringify(scope.slice(0, 40))} (expected ${SCOPES.join(', ')})`);
  }
  if (colon < 0) return { scope: scope as Scope, patterns: undefined };
  const patterns = text.slice(colon + 1).split(',');
  for (const p of patterns) {
    if (!PATTERN.test(p)) throw new Error(`bad queue pattern ${JSON.stringify(p.slice(0, 140))} in ${scope}: use queue-name characters and *`);
  }
  return { scope: scope as Scope, patterns: patterns.includes('*') ? undefined : patterns };
}

export function formatGrant(grant: Grant): string {
  return grant.patterns ? `${grant.scope}:${grant.patterns.join(',')}` : grant.scope;
}

function compile(patterns: readonly string[]): (queue: string) => boolean {
  const exact = new Set(patterns.filter((p) => !p.includes('*')));
  const globs = patterns
    .filter((p) => p.includes('*'))
    .map((p) => new RegExp(`^${p.split('*').map((part) => part.replace(/[.]/g, '\\.')).join('.*')}$`));
  return (queue) => exact.has(queue) || globs.some((g) => g.test(queue));
}

/** What one scope allows: every queue, or those matching its patterns (answers cached). */
class ScopeAccess {
  private readonly match: ((queue: string) => boolean) | undefined;
  private readonly cache = new Map<string, boolean>();
  constructor(readonly patterns: readonly string[] | undefined) {
    this.match = patterns && compile(patterns);
  }
  allows(queue: string): boolean {
    if (!this.match) return true;
    let ok = this.cache.get(queue);
    if (ok === undefined) {
      ok = this.match(queue);
      // Queue names are bounded by the broker's name rules; the cap keeps a flood of
      // distinct names from growing the cache without bound.
      if (this.cache.size < 10_000) this.cache.set(queue, ok);
    }
    return ok;
  }
}

/**
 * An authenticated caller (a token or a client certificate) with its grants. Several grants
 * for one scope add up; `admin` grants also count as `read` grants.
 */
export class Principal {
  private readonly access = new Map<Scope, ScopeAccess>();

  constructor(
    /** For logs and messages; never the token. */
    readonly name: string,
    readonly grants: readonly Grant[],
  ) {
    for (const scope of SCOPES) {
      const relevant = grants.filter((g) => g.scope === scope || (scope === 'read' && g.scope === 'admin'));
      if (relevant.length === 0) continue;
      const unrestricted = relevant.some((g) => !g.patterns);
      this.access.set(scope, new ScopeAccess(unrestricted ? undefined : relevant.flatMap((g) => g.patterns!)));
    }
  }

  /** A principal with every scope on every queue (auth off, or mTLS without an auth file). */
  static everything(name: string): Principal {
    return new Principal(name, SCOPES.map((scope) => ({ scope, patterns: undefined })));
  }

  has(scope: Scope): boolean {
    return this.access.has(scope);
  }

  /** True when the scope is granted for every queue. */
  unrestricted(scope: Scope): boolean {
    const a = this.access.get(scope);
    return a !== undefined && a.patterns === undefined;
  }

  allows(scope: Scope, queue: string): boolean {
    return this.access.get(scope)?.allows(queue) ?? false;
  }

  /** "produce:email.*" style description of a scope's reach, for error messages. */
  describe(scope: Scope): string {
    const a = this.access.get(scope);
    if (!a) return `no ${scope} scope`;
    return a.patterns ? `${scope}:${a.patterns.join(',')}` : scope;
  }

  describeAll(): string {
    return this.grants.map(formatGrant).join(' ') || 'no scopes';
  }
}
