/**
 * A logged-in CLI's access to one gateway: a DPoP-bound access token with at least a minute
 * to live, refreshed when needed. One refresh at a time — within the process (single flight)
 * and across processes (the credentials lock) — because presenting a rotated refresh token
 * twice revokes the whole family. The rotated refresh token is saved before the new access
 * token is handed out, so that a crash never loses the only valid one.
 */
import type * as oidc from 'openid-client';
import type { Clock } from '../../lib/clock.js';
import type { Credentials, CredentialStore } from './credentials.js';
import { type DpopKey, importDpopKey } from './dpop.js';
import { ClientError, notLoggedIn } from './errors.js';
import { credentialFields, discover, exchangeForBearer, refresh } from './oauth.js';

/** An access token is refreshed when it has less than this left. */
export const MIN_VALIDITY_MS = 60_000;

export interface Fresh {
  accessToken: string;
  /** Epoch ms. */
  expiresAt: number;
  key: DpopKey;
  credentials: Credentials;
}

/** The grants a session uses (injectable, so that refresh ordering is testable without a server). */
export interface SessionGrants {
  discover: typeof discover;
  refresh: typeof refresh;
  exchangeForBearer: typeof exchangeForBearer;
}

export class Session {
  private current: Fresh | undefined;
  private inflight: Promise<Fresh> | undefined;
  private config: Promise<oidc.Configuration> | undefined;
  private key: DpopKey | undefined;

  constructor(
    readonly gateway: string,
    private readonly store: CredentialStore,
    private readonly clock: Clock,
    private readonly grants: SessionGrants = { discover, refresh, exchangeForBearer },
  ) {}

  /** The gateway's authorization server configuration (discovered once, on first need). */
  configuration(): Promise<oidc.Configuration> {
    if (this.config === undefined) {
      const p = this.grants.discover(this.gateway);
      this.config = p;
      p.catch(() => {
        if (this.config === p) this.config = undefined;
      });
    }
    return this.config;
  }

  /** A DPoP-bound access token valid for at least MIN_VALIDITY_MS. */
  fresh(): Promise<Fresh> {
    const c = this.current;
    if (c !== undefined && this.valid(c.expiresAt)) return Promise.resolve(c);
    if (this.inflight === undefined) {
      this.inflight = this.obtain().finally(() => {
        this.inflight = undefined;
      });
    }
    return this.inflight;
  }

  /**
   * The gateway refused the token (revoked, or replaced by a new login elsewhere): read the
   * credentials file again on the next use instead of trusting the copy in memory.
   */
  forget(accessToken: string): void {
    if (this.current?.accessToken === accessToken) this.current = undefined;
  }

  /** A short plain bearer token, exchanged for the current DPoP-bound one. */
  async bearer(): Promise<oidc.TokenEndpointResponse> {
    const f = await this.fresh();
    return this.grants.exchangeForBearer(this.gateway, await this.configuration(), f.key, f.accessToken);
  }

  private valid(expiresAt: number): boolean {
    return expiresAt - this.clock.now() > MIN_VALIDITY_MS;
  }

  private async obtain(): Promise<Fresh> {
    const stored = this.store.load(this.gateway);
    if (stored === undefined) throw notLoggedIn(this.gateway);
    if (this.valid(stored.accessTokenExpiresAt)) return this.remember(stored);
    return this.store.withLock(this.gateway, async () => {
      // Another process may have refreshed while this one waited for the lock.
      const creds = this.store.load(this.gateway);
      if (creds === undefined) throw notLoggedIn(this.gateway);
      if (this.valid(creds.accessTokenExpiresAt)) return this.remember(creds);
      const key = await this.keyOf(creds);
      let tokens: oidc.TokenEndpointResponse;
      try {
        tokens = await this.grants.refresh(this.gateway, await this.configuration(), key, creds.refreshToken);
      } catch (e) {
        // The family has ended (expired, revoked, or reused): these credentials are dead.
        if (e instanceof ClientError && e.code === 'NOT_LOGGED_IN') this.store.remove(this.gateway, creds.refreshToken);
        throw e;
      }
      const saved = this.store.save(credentialFields(this.gateway, key, tokens, this.clock.now(), creds.refreshToken));
      return this.remember(saved);
    });
  }

  private async keyOf(c: Credentials): Promise<DpopKey> {
    if (this.key === undefined || this.key.privateJwk.d !== c.dpopKey.d) this.key = await importDpopKey(c.dpopKey);
    return this.key;
  }

  private async remember(c: Credentials): Promise<Fresh> {
    const f: Fresh = {
      accessToken: c.accessToken,
      expiresAt: c.accessTokenExpiresAt,
      key: await this.keyOf(c),
      credentials: c,
    };
    this.current = f;
    return f;
  }
}
