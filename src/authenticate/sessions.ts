/**
 * Server-side browser sessions. The cookie holds only an opaque random id (256 bits); the
 * store keeps its SHA-256, so a stolen database does not yield usable cookies. A session ends
 * after `idleTimeout` without use, `absoluteLifetime` after login, at logout, or when its
 * credential or user is revoked — at once in this process, and within CACHE_MS elsewhere.
 */
import { randomId, sha256Hex } from '../crypto/random.js';
import type { Clock } from '../lib/clock.js';
import type { CredentialRecord, SessionIdp, SessionRecord, Store, UserRecord } from '../store/types.js';
import type { Identity } from './identity.js';

export interface SessionSettings {
  idleMs: number;
  absoluteMs: number;
  freshMs: number;
  /** true when the public origin is https: __Host- prefix and Secure. */
  secure: boolean;
}

export interface ResolvedSession {
  session: SessionRecord;
  user: UserRecord;
  /** The key of the login; null for a session an identity provider made alone (trust-idp-mfa). */
  credential: CredentialRecord | null;
  identity: Identity;
}

/**
 * Re-confirms an identity provider's groups for a session whose groups are older than the
 * provider's TTL: the refreshed part, or null when they cannot be confirmed (then they are
 * dropped until the next login). Throws when the provider says the person is gone: the session ends.
 */
export type IdpRefresher = (session: SessionRecord & { idp: SessionIdp }) => Promise<SessionIdp | null>;

/** How long a resolved session is trusted without asking the store again. */
const CACHE_MS = 5_000;
const CACHE_MAX = 50_000;

export class Sessions {
  readonly cookieName: string;
  private readonly cache = new Map<string, { resolved: ResolvedSession; fetchedAt: number }>();
  /** Time between last-seen writes: the idle clock has this granularity, and no request waits on a write. */
  private readonly touchEveryMs: number;

  /** Identity providers' group lifetimes by provider name (absent: the provider is no longer configured). */
  idpGroupsTtl: (provider: string) => number | undefined = () => undefined;
  refreshIdp: IdpRefresher | undefined;
  /**
   * Session ends shared with the other replicas (the revocations every proxy polls), so that
   * their few seconds of cache never outlive an end made here.
   */
  shared: { isRevoked(idHash: string): boolean; add(idHashes: readonly string[]): Promise<void> } | undefined;
  private readonly refreshing = new Map<string, Promise<ResolvedSession | null>>();

  constructor(
    private readonly store: Store,
    private readonly clock: Clock,
    private readonly s: SessionSettings,
    private readonly onError: (e: unknown) => void = () => {},
  ) {
    this.cookieName = s.secure ? '__Host-keygate_session' : 'keygate_session';
    this.touchEveryMs = Math.min(60_000, Math.max(1_000, Math.floor(s.idleMs / 20)));
  }

  /** Start a session (a new id every time: no fixation) and return the cookie value. */
  async create(
    user: UserRecord,
    credential: CredentialRecord | null,
    authEventId: string,
    uv: boolean,
    ctx: { ip: string; userAgent: string; idp?: SessionIdp },
  ): Promise<{ value: string; record: SessionRecord }> {
    const s = this.prepare(user, credential, authEventId, uv, ctx);
    await this.store.insertSession(s.record);
    return s;
  }

  /** A new session and its cookie value, not yet stored (the caller stores it with the login). */
  prepare(
    user: UserRecord,
    credential: CredentialRecord | null,
    authEventId: string,
    uv: boolean,
    ctx: { ip: string; userAgent: string; idp?: SessionIdp | undefined },
  ): { value: string; record: SessionRecord } {
    const value = randomId(32);
    const now = this.clock.now();
    const record: SessionRecord = {
      idHash: sha256Hex(value),
      userId: user.id,
      credentialId: credential?.id ?? '',
      authEventId,
      authTime: now,
      uv,
      createdAt: now,
      lastSeenAt: now,
      expiresAt: now + this.s.absoluteMs,
      revokedAt: null,
      ip: ctx.ip.slice(0, 64),
      userAgent: ctx.userAgent.slice(0, 512),
      ...(ctx.idp === undefined ? {} : { idp: ctx.idp }),
    };
    return { value, record };
  }

  /** The store key of a cookie value, dropping it from the cache (it is being ended). */
  endingHash(value: string | undefined): string | null {
    if (value === undefined) return null;
    const idHash = sha256Hex(value);
    this.cache.delete(idHash);
    return idHash;
  }

  /** The live session for a cookie value, or null; synchronous when cached. */
  resolve(value: string | undefined): ResolvedSession | null | Promise<ResolvedSession | null> {
    if (value === undefined || value.length !== 43) return null;
    const idHash = sha256Hex(value);
    const now = this.clock.now();
    const hit = this.cache.get(idHash);
    if (hit !== undefined && now - hit.fetchedAt < CACHE_MS) return this.withIdpGroups(this.check(hit.resolved, now));
    return this.load(idHash).then((r) => (r === null ? null : this.withIdpGroups(this.check(r, this.clock.now()))));
  }

  /**
   * A provider's groups are trusted for its `groupsTtl` after they were confirmed; past that,
   * the request waits for them to be re-confirmed (one refresh per session at a time) — so a
   * person who lost a group at the provider loses its roles at their next request after the TTL.
   */
  private withIdpGroups(r: ResolvedSession | null): ResolvedSession | null | Promise<ResolvedSession | null> {
    const idp = r?.session.idp;
    if (r === null || idp === undefined) return r;
    const ttl = this.idpGroupsTtl(idp.provider);
    if (ttl !== undefined && this.clock.now() - idp.groupsAt < ttl) return r;
    const key = r.session.idHash;
    let p = this.refreshing.get(key);
    if (p === undefined) {
      p = this.reconfirm(r, ttl).finally(() => this.refreshing.delete(key));
      this.refreshing.set(key, p);
    }
    return p;
  }

  private async reconfirm(r: ResolvedSession, ttl: number | undefined): Promise<ResolvedSession | null> {
    const session = r.session as SessionRecord & { idp: SessionIdp };
    let next: SessionIdp | null = null;
    if (ttl !== undefined && this.refreshIdp !== undefined && session.idp.refresh !== null) {
      try {
        next = await this.refreshIdp(session);
      } catch {
        // The provider refused the person (disabled, removed, consent revoked): the session ends.
        await this.revokeByHash(session.idHash);
        return null;
      }
    }
    // Not confirmed (no refresh token, or the provider unreachable): its groups are dropped now
    // and confirmation is tried again after another TTL, with the refresh token kept.
    const idp: SessionIdp = next ?? { ...session.idp, groups: [], groupsAt: this.clock.now() };
    await this.store.setSessionIdp(session.idHash, idp);
    const updated: SessionRecord = { ...session, idp };
    const resolved: ResolvedSession = {
      session: updated,
      user: r.user,
      credential: r.credential,
      identity: toIdentity(updated, r.user, r.credential),
    };
    this.cache.set(session.idHash, { resolved, fetchedAt: this.clock.now() });
    return resolved;
  }

  private async load(idHash: string): Promise<ResolvedSession | null> {
    const session = await this.store.getSession(idHash);
    if (!session || session.revokedAt !== null) {
      this.cache.delete(idHash);
      return null;
    }
    const [user, credential] = await Promise.all([
      this.store.getUser(session.userId),
      session.credentialId === '' ? null : this.store.getCredential(session.credentialId),
    ]);
    // A key login needs its key; only a provider-made session has none.
    if (!user || (credential === null && (session.credentialId !== '' || session.idp === undefined))) return null;
    const resolved: ResolvedSession = { session, user, credential, identity: toIdentity(session, user, credential) };
    if (this.cache.size >= CACHE_MAX) this.cache.clear();
    this.cache.set(idHash, { resolved, fetchedAt: this.clock.now() });
    return resolved;
  }

  private check(r: ResolvedSession, now: number): ResolvedSession | null {
    const { session, user, credential } = r;
    // ASVS 7.3.1/7.3.2: idle and absolute timeouts; 7.4.2: a disabled user or revoked key ends it.
    if (
      session.revokedAt !== null ||
      this.shared?.isRevoked(session.idHash) === true ||
      now >= session.expiresAt ||
      now - session.lastSeenAt >= this.s.idleMs ||
      user.disabledAt !== null ||
      (credential !== null && (credential.revokedAt !== null || credential.clonedAt !== null))
    ) {
      this.cache.delete(session.idHash);
      return null;
    }
    if (now - session.lastSeenAt >= this.touchEveryMs) {
      session.lastSeenAt = now;
      this.store.touchSession(session.idHash, now).catch(this.onError);
    }
    return r;
  }

  /** Whether the login behind this session is recent enough for sensitive self-service. */
  isFresh(r: ResolvedSession): boolean {
    return this.clock.now() - r.session.authTime <= this.s.freshMs;
  }

  async revoke(value: string): Promise<void> {
    await this.revokeByHash(sha256Hex(value));
  }

  /** End a session named by its id (the hash of its cookie), as the admin API does. */
  async revokeByHash(idHash: string): Promise<void> {
    await this.store.revokeSession(idHash, this.clock.now());
    await this.ended([idHash]);
  }

  async revokeForUser(userId: string): Promise<void> {
    await this.ended(await this.store.revokeUserSessions(userId, this.clock.now()));
  }

  async revokeForCredential(credentialId: string): Promise<void> {
    await this.ended(await this.store.revokeCredentialSessions(credentialId, this.clock.now()));
  }

  /** Drop a person's cached sessions: their groups or roles changed, the next request re-reads them. */
  forgetUser(userId: string): void {
    for (const [h, e] of this.cache) if (e.resolved.user.id === userId) this.cache.delete(h);
  }

  /** Sessions ended in the store: dropped from this cache, and told to the other replicas. */
  private async ended(idHashes: string[]): Promise<void> {
    for (const h of idHashes) this.cache.delete(h);
    if (idHashes.length > 0) await this.shared?.add(idHashes);
  }

  /** Set-Cookie value: HttpOnly, SameSite=Lax, Path=/, Secure and __Host- on https. */
  cookie(value: string): string {
    const parts = [
      `${this.cookieName}=${value}`,
      'Path=/',
      'HttpOnly',
      'SameSite=Lax',
      `Max-Age=${Math.floor(this.s.absoluteMs / 1000)}`,
    ];
    if (this.s.secure) parts.push('Secure');
    return parts.join('; ');
  }

  clearCookie(): string {
    const parts = [`${this.cookieName}=`, 'Path=/', 'HttpOnly', 'SameSite=Lax', 'Max-Age=0'];
    if (this.s.secure) parts.push('Secure');
    return parts.join('; ');
  }
}

function toIdentity(session: SessionRecord, user: UserRecord, credential: CredentialRecord | null): Identity {
  const idp = session.idp;
  // Keygate's own groups, and those the identity provider asserted (while they are trusted).
  const groups =
    idp === undefined || idp.groups.length === 0 ? user.groups : [...new Set([...user.groups, ...idp.groups])].sort();
  return {
    principal: {
      type: 'user',
      id: user.id,
      email: user.email,
      displayName: user.displayName,
      groups,
      roles: user.roles,
    },
    auth: {
      method: credential === null ? 'oidc' : 'webauthn',
      authEventId: session.authEventId,
      authTime: session.authTime,
      uv: session.uv,
      // A synced passkey can leave the device; a device-bound key cannot; a provider login is not bound here.
      deviceBound: credential !== null && !credential.backupEligible,
      ...(credential === null
        ? {}
        : { credentialId: credential.id, aaguid: credential.aaguid, attested: credential.attested }),
      sessionId: session.idHash.slice(0, 16),
      ...(idp === undefined ? {} : { idp: idp.provider, idpEventId: idp.eventId }),
    },
    cacheKey: `session:${session.idHash}:${JSON.stringify([groups, user.roles])}`,
  };
}
