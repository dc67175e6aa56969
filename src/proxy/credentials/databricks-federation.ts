/**
 * Per-user Databricks token federation (RFC 8693; databricks-api.md §1.6). For each principal
 * Keygate signs a short-lived JWT (subject-token.ts) and exchanges it at the workspace token
 * endpoint for a workspace token of the matching user, or, for a Keygate service principal, of
 * the workspace service principal mapped to it. So the workspace's own audit log names the
 * real caller.
 *
 * Tokens are cached per principal until shortly before they expire, in an LRU of bounded size;
 * exactly one exchange per principal is in flight however many requests wait. A refusal is
 * never covered up with the shared service principal unless the upstream explicitly allows it
 * (`dangerouslyFallBackToServicePrincipal`), and then the audit record says so.
 */
import * as oauth from 'openid-client';
import type { Principal } from '../../authenticate/identity.js';
import type { ActiveKey } from '../../crypto/keys.js';
import { KeygateError, toKeygateError } from '../../errors/index.js';
import { type Clock, systemClock } from '../../lib/clock.js';
import { signSubjectToken } from './subject-token.js';
import { describe, isPermanent, tokenEndpointConfig, tokenTimes } from './token-endpoint.js';
import type { CredentialEvents, CredentialProvider, UpstreamAuth, UpstreamIdentity } from './types.js';

const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const JWT_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:jwt';

/** After a failed exchange, that principal's requests fail fast for this long. */
const FAILURE_HOLD_MS = 1_000;
/** A successful exchange shows for this long that the workspace's policy accepts Keygate's tokens. */
const PROVEN_FOR_MS = 10 * 60_000;
/** After a failed probe, refusals are reported as a policy mismatch without probing again for this long. */
const PROBE_HOLD_MS = 10_000;

/**
 * RFC 8693 §2.1 makes client authentication optional; account-wide federation sends no
 * `client_id` at all (databricks-api.md §1.6), so this authentication adds nothing.
 */
const NO_CLIENT_AUTH: oauth.ClientAuth = () => {};

export interface DatabricksFederationOptions {
  tokenUrl: string;
  /** Keygate's public URL: the `iss` of the subject tokens. */
  issuer: string;
  /** Keygate's current token signing key; its JWKS publishes it. */
  signingKey: () => ActiveKey;
  audience: string;
  subjectClaim: string;
  scope: string;
  /** Lifetime of the subject token, and so of the workspace token. */
  jwtLifetimeMs: number;
  /** Keygate service principal id → the workspace service principal's application id. */
  servicePrincipals: ReadonlyMap<string, string>;
  /** A workspace user whose exchange tells a policy mismatch (502) from an unknown person (403). */
  probeUser?: string;
  /** Most principals whose tokens are kept (least recently used go first). */
  cacheSize: number;
  /** The shared service principal, when the upstream allows falling back to it. */
  fallback?: CredentialProvider;
  clock?: Clock;
  /** Attempts per exchange (first try included); only network failures, 5xx and 429 are retried. */
  attempts?: number;
  /** First backoff delay; doubles per attempt, with jitter. */
  backoffMs?: number;
  sleep?: (ms: number) => Promise<void>;
  events?: CredentialEvents;
}

/** Whom to exchange for. */
interface Target {
  /** The cache key: the email of a person, the id of a service principal. */
  key: string;
  /** The subject claim's value: a person's email, or a Keygate service principal's id. */
  subject: string;
  /** Service principal federation: the workspace service principal's application id. Null: account-wide. */
  clientId: string | null;
}

interface Entry {
  auth: UpstreamAuth | undefined;
  refreshAt: number;
  usableUntil: number;
  inflight: Promise<UpstreamAuth> | undefined;
  failure: KeygateError | undefined;
  failedUntil: number;
}

export class DatabricksFederationCredential implements CredentialProvider {
  readonly type = 'databricks-federation';
  /**
   * People by email and service principals by id, each at most `cacheSize`. Insertion order is
   * recency: a hit moves its entry to the end, and the first entry goes when a map is full.
   */
  private readonly people = new Map<string, Entry>();
  private readonly machines = new Map<string, Entry>();
  private readonly clock: Clock;
  private readonly sleep: (ms: number) => Promise<void>;
  private readonly accountWide: oauth.Configuration;
  private readonly lifetimeS: number;
  /** The signing key with which an exchange for a person last succeeded, and until when that counts. */
  private provenKid: string | undefined;
  private provenUntil = 0;
  private probing: Promise<boolean> | undefined;
  private probeHeldUntil = 0;

  constructor(private readonly opts: DatabricksFederationOptions) {
    this.clock = opts.clock ?? systemClock;
    this.sleep = opts.sleep ?? ((ms) => new Promise((r) => setTimeout(r, ms).unref()));
    // The client id is required by openid-client but never sent (NO_CLIENT_AUTH).
    this.accountWide = tokenEndpointConfig(opts.tokenUrl, 'keygate', NO_CLIENT_AUTH);
    this.lifetimeS = Math.floor(opts.jwtLifetimeMs / 1000);
  }

  authorization(principal: Principal): UpstreamAuth | Promise<UpstreamAuth> {
    if (this.opts.fallback === undefined) return this.federated(principal);
    let r: UpstreamAuth | Promise<UpstreamAuth>;
    try {
      r = this.federated(principal);
    } catch (e) {
      return this.fallBack(principal, e);
    }
    return r instanceof Promise ? r.catch((e: unknown) => this.fallBack(principal, e)) : r;
  }

  /** Readiness: a key to sign with exists (an exchange needs a principal, so none is made here). */
  async check(): Promise<void> {
    this.opts.signingKey();
  }

  close(): void {
    this.opts.fallback?.close();
  }

  /**
   * One exchange, now, for `subject` (a person's email) without caching: what
   * `keygate config check --probe` runs. Resolves to who the workspace saw, or rejects with the
   * request's KeygateError.
   */
  async probe(subject: string): Promise<UpstreamIdentity> {
    const key = this.opts.signingKey();
    const jwt = await this.sign(key, subject);
    try {
      await this.request(jwt, null);
    } catch (e) {
      const detail = await describe(e);
      if (!isPermanent(e)) throw unavailable(this.opts.tokenUrl, detail);
      throw new KeygateError('UPSTREAM_FEDERATION_REJECTED', { detail: `exchange for ${subject}: ${detail}` });
    }
    return { type: 'federated', subject };
  }

  // ---- the federated path --------------------------------------------------------------

  private federated(p: Principal): UpstreamAuth | Promise<UpstreamAuth> {
    // People by email (their userName in the workspace), service principals by id: two maps,
    // so that no person's email can ever name a service principal's entry.
    const cache = p.type === 'user' ? this.people : p.type === 'service_principal' ? this.machines : undefined;
    const key = p.type === 'user' ? p.email : p.id;
    const e = cache === undefined || key === undefined ? undefined : cache.get(key);
    if (e !== undefined) {
      const map = cache as Map<string, Entry>;
      map.delete(key as string);
      map.set(key as string, e);
      const auth = e.auth;
      const now = this.clock.now();
      if (auth !== undefined && now < e.refreshAt) return auth;
      if (auth !== undefined && now < e.usableUntil) {
        // Still valid: exchange again behind the request, never in front of it.
        this.exchange(this.target(p), e).catch(() => {});
        return auth;
      }
      return this.exchange(this.target(p), e);
    }
    const t = this.target(p);
    const map = t.clientId === null ? this.people : this.machines;
    const fresh: Entry = {
      auth: undefined,
      refreshAt: 0,
      usableUntil: 0,
      inflight: undefined,
      failure: undefined,
      failedUntil: 0,
    };
    if (map.size >= this.opts.cacheSize) {
      const oldest = map.keys().next();
      if (!oldest.done) map.delete(oldest.value);
    }
    map.set(t.key, fresh);
    return this.exchange(t, fresh);
  }

  /** Whom the workspace should see for `p`; throws UPSTREAM_IDENTITY_UNMAPPED when nobody. */
  private target(p: Principal): Target {
    if (p.type === 'user') {
      if (p.email === undefined || !p.email.includes('@')) {
        throw new KeygateError('UPSTREAM_IDENTITY_UNMAPPED', {
          message: 'Your account has no email address, which the workspace needs to know you.',
          detail: `user ${p.id} has no email`,
        });
      }
      return { key: p.email, subject: p.email, clientId: null };
    }
    if (p.type === 'service_principal') {
      const clientId = this.opts.servicePrincipals.get(p.id);
      if (clientId === undefined) {
        throw new KeygateError('UPSTREAM_IDENTITY_UNMAPPED', {
          message: `Service principal ${p.displayName ?? p.id} has no workspace service principal: an administrator must map it (servicePrincipals).`,
          detail: `service principal ${p.id} is not in servicePrincipals`,
        });
      }
      return { key: p.id, subject: p.id, clientId };
    }
    // An agent acting for a person arrives here as that person (the gateway maps it); others have none.
    throw new KeygateError('UPSTREAM_IDENTITY_UNMAPPED', {
      message: 'Agents have no workspace identity of their own.',
      detail: `${p.type} ${p.id}`,
    });
  }

  /** At most one exchange per principal in flight; a recent failure is answered again at once. */
  private exchange(t: Target, e: Entry): Promise<UpstreamAuth> {
    if (e.inflight !== undefined) return e.inflight;
    if (e.failure !== undefined && this.clock.now() < e.failedUntil) return Promise.reject(e.failure);
    const p = this.exchangeWithRetry(t).then(
      (r) => {
        e.auth = r.auth;
        e.refreshAt = r.refreshAt;
        e.usableUntil = r.usableUntil;
        e.failure = undefined;
        return r.auth;
      },
      (err: unknown) => {
        const failure = toKeygateError(err);
        e.failure = failure;
        e.failedUntil = this.clock.now() + FAILURE_HOLD_MS;
        throw failure;
      },
    );
    e.inflight = p.finally(() => {
      e.inflight = undefined;
    });
    return e.inflight;
  }

  private async exchangeWithRetry(t: Target): Promise<{ auth: UpstreamAuth; refreshAt: number; usableUntil: number }> {
    const attempts = this.opts.attempts ?? 3;
    const base = this.opts.backoffMs ?? 200;
    // One subject token serves every attempt; it lives minutes.
    const key = this.opts.signingKey();
    const jwt = await this.sign(key, t.subject);
    let failure: unknown;
    let detail = '';
    for (let attempt = 0; attempt < attempts; attempt++) {
      if (attempt > 0) await this.sleep(base * 2 ** (attempt - 1) * (0.5 + Math.random()));
      try {
        const issuedAt = this.clock.now();
        const res = await this.request(jwt, t.clientId);
        this.opts.events?.onRefresh?.('ok');
        if (t.clientId === null) this.markProven(key.kid);
        // RFC 8693 §2.2.1: expires_in is recommended; the workspace token never outlives the subject token.
        const ttlS = Math.min(res.expires_in ?? this.lifetimeS, this.lifetimeS);
        const identity: UpstreamIdentity = Object.freeze({ type: 'federated', subject: t.clientId ?? t.subject });
        const auth: UpstreamAuth = Object.freeze({ header: `Bearer ${res.access_token}`, identity });
        return { auth, ...tokenTimes(issuedAt, ttlS * 1000) };
      } catch (err) {
        failure = err;
        detail = await describe(err);
        this.opts.events?.onRefresh?.('error', `token exchange for ${t.subject}: ${detail}`);
        if (isPermanent(err)) break;
      }
    }
    throw await this.refusal(t, key.kid, failure, detail);
  }

  /**
   * Which error a failed exchange is. A refusal for a service principal is its own policy's
   * (configuration); for a person it is about that person only when the policy demonstrably
   * accepts Keygate's tokens: an exchange for someone succeeded with this signing key lately,
   * or one for `probeUser` succeeds now.
   */
  private async refusal(t: Target, kid: string, err: unknown, detail: string): Promise<KeygateError> {
    if (!isPermanent(err)) return unavailable(this.opts.tokenUrl, detail);
    if (t.clientId !== null) {
      return new KeygateError('UPSTREAM_FEDERATION_REJECTED', {
        detail: `exchange for service principal ${t.subject} as workspace service principal ${t.clientId}: ${detail}`,
      });
    }
    if (await this.policyAccepts(kid, t.subject)) {
      return new KeygateError('UPSTREAM_IDENTITY_REJECTED', {
        message: `The workspace does not accept ${t.subject}: the account is not a user of the workspace, or the workspace refuses it. Ask a workspace administrator to add it.`,
        detail: `exchange for ${t.subject}: ${detail}`,
      });
    }
    return new KeygateError('UPSTREAM_FEDERATION_REJECTED', {
      detail: `exchange for ${t.subject}: ${detail}${
        this.opts.probeUser === undefined
          ? ' (no exchange has succeeded yet and no probeUser is set: a policy mismatch cannot be told from an unknown person)'
          : ''
      }`,
    });
  }

  private async policyAccepts(kid: string, subject: string): Promise<boolean> {
    const now = this.clock.now();
    if (this.provenKid === kid && now < this.provenUntil) return true;
    const probeUser = this.opts.probeUser;
    if (probeUser === undefined || probeUser.toLowerCase() === subject.toLowerCase()) return false;
    if (now < this.probeHeldUntil) return false;
    this.probing ??= this.probe(probeUser)
      .then(
        () => {
          this.markProven(kid);
          return true;
        },
        (e: KeygateError) => {
          this.probeHeldUntil = this.clock.now() + PROBE_HOLD_MS;
          this.opts.events?.onRefresh?.('error', `probe exchange for ${probeUser}: ${e.detail ?? e.code}`);
          return false;
        },
      )
      .finally(() => {
        this.probing = undefined;
      });
    return this.probing;
  }

  private markProven(kid: string): void {
    this.provenKid = kid;
    this.provenUntil = this.clock.now() + PROVEN_FOR_MS;
  }

  private sign(key: ActiveKey, subject: string): Promise<string> {
    const o = this.opts;
    return signSubjectToken(
      key,
      { issuer: o.issuer, audience: o.audience, subject, subjectClaim: o.subjectClaim, lifetimeS: this.lifetimeS },
      this.clock.now(),
    );
  }

  /** RFC 8693 §2.1: the exchange request (its response is validated by openid-client, §2.2). */
  private request(jwt: string, clientId: string | null): Promise<oauth.TokenEndpointResponse> {
    // Service principal federation names the workspace service principal in client_id, without a secret.
    const config =
      clientId === null ? this.accountWide : tokenEndpointConfig(this.opts.tokenUrl, clientId, oauth.None());
    return oauth.genericGrantRequest(config, TOKEN_EXCHANGE, {
      subject_token: jwt,
      subject_token_type: JWT_TOKEN_TYPE,
      scope: this.opts.scope,
    });
  }

  // ---- the explicit fallback -----------------------------------------------------------

  /** Federation failed and the upstream allows the shared service principal: use it, and say so. */
  private fallBack(p: Principal, e: unknown): Promise<UpstreamAuth> {
    const fallback = this.opts.fallback as CredentialProvider;
    const code = e instanceof KeygateError ? e.code : 'INTERNAL_ERROR';
    this.opts.events?.onFallback?.(
      code,
      `${p.type} ${p.id}: ${e instanceof KeygateError ? (e.detail ?? '') : String(e)}`,
    );
    return Promise.resolve(fallback.authorization(p)).then((a) =>
      Object.freeze({ header: a.header, identity: Object.freeze({ ...a.identity, fallback: code }) }),
    );
  }
}

function unavailable(tokenUrl: string, detail: string): KeygateError {
  return new KeygateError('UPSTREAM_CREDENTIAL_UNAVAILABLE', {
    detail: `token exchange at ${tokenUrl} failed: ${detail}`,
  });
}
