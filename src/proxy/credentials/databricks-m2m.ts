import * as oauth from 'openid-client';
import { KeygateError } from '../../errors/index.js';
import { type Clock, systemClock } from '../../lib/clock.js';
import type { SecretSource } from './secret-source.js';
import { describe, isPermanent, tokenEndpointConfig, tokenTimes } from './token-endpoint.js';
import type { CredentialEvents, CredentialProvider, UpstreamAuth, UpstreamIdentity } from './types.js';

export interface DatabricksM2MOptions {
  tokenUrl: string;
  clientId: string;
  secret: SecretSource;
  scope: string;
  clock?: Clock;
  /** Attempts per refresh (first try included). */
  attempts?: number;
  /** First backoff delay; doubles per attempt, with jitter. */
  backoffMs?: number;
  sleep?: (ms: number) => Promise<void>;
  events?: CredentialEvents;
}

interface CachedToken {
  auth: UpstreamAuth;
  /** When to start refreshing in the background. */
  refreshAt: number;
  /** After this the token is not used any more (the workspace rejects tokens near expiry). */
  usableUntil: number;
}

/** After a failed refresh, requests fail fast for this long instead of hammering the endpoint. */
const FAILURE_HOLD_MS = 1_000;

/**
 * OAuth client credentials against the workspace token endpoint (RFC 6749 §4.4, via
 * openid-client). Exactly one refresh is in flight however many requests wait; the cached
 * token is served synchronously until shortly before expiry, then refreshed in the
 * background while it is still valid.
 */
export class DatabricksM2MCredential implements CredentialProvider {
  readonly type = 'databricks-m2m';
  private cached: CachedToken | undefined;
  private inflight: Promise<UpstreamAuth> | undefined;
  private failedUntil = 0;
  private lastError: KeygateError | undefined;
  private readonly clock: Clock;
  private readonly sleep: (ms: number) => Promise<void>;
  /** Who the workspace sees: this service principal, for every caller. */
  readonly identity: UpstreamIdentity;

  constructor(private readonly opts: DatabricksM2MOptions) {
    this.clock = opts.clock ?? systemClock;
    this.sleep = opts.sleep ?? ((ms) => new Promise((r) => setTimeout(r, ms).unref()));
    this.identity = Object.freeze({ type: 'service-principal', subject: opts.clientId });
  }

  authorization(): UpstreamAuth | Promise<UpstreamAuth> {
    const now = this.clock.now();
    const c = this.cached;
    if (c !== undefined && now < c.refreshAt) return c.auth;
    if (c !== undefined && now < c.usableUntil) {
      // Still valid: refresh behind the request, never in front of it.
      this.refresh().catch(() => {});
      return c.auth;
    }
    return this.refresh();
  }

  async check(): Promise<void> {
    await this.authorization();
  }

  close(): void {
    this.opts.secret.close();
  }

  private refresh(): Promise<UpstreamAuth> {
    if (this.inflight) return this.inflight;
    if (this.clock.now() < this.failedUntil && this.lastError) return Promise.reject(this.lastError);
    this.inflight = this.fetchWithRetry().finally(() => {
      this.inflight = undefined;
    });
    return this.inflight;
  }

  private async fetchWithRetry(): Promise<UpstreamAuth> {
    const attempts = this.opts.attempts ?? 4;
    const base = this.opts.backoffMs ?? 200;
    let detail = '';
    for (let attempt = 0; attempt < attempts; attempt++) {
      if (attempt > 0) await this.sleep(base * 2 ** (attempt - 1) * (0.5 + Math.random()));
      try {
        const auth = await this.fetchOnce();
        this.opts.events?.onRefresh?.('ok');
        return auth;
      } catch (e) {
        detail = await describe(e);
        this.opts.events?.onRefresh?.('error', detail);
        // A client error that retrying cannot fix (bad secret, unknown client) stops at once.
        if (isPermanent(e)) break;
      }
    }
    this.lastError = new KeygateError('UPSTREAM_CREDENTIAL_UNAVAILABLE', {
      detail: `token request to ${this.opts.tokenUrl} failed: ${detail}`,
    });
    this.failedUntil = this.clock.now() + FAILURE_HOLD_MS;
    throw this.lastError;
  }

  private async fetchOnce(): Promise<UpstreamAuth> {
    const config = tokenEndpointConfig(
      this.opts.tokenUrl,
      this.opts.clientId,
      oauth.ClientSecretBasic(this.opts.secret.get()),
    );
    const issuedAt = this.clock.now();
    const res = await oauth.clientCredentialsGrant(config, { scope: this.opts.scope });
    const auth: UpstreamAuth = Object.freeze({ header: `Bearer ${res.access_token}`, identity: this.identity });
    this.cached = { auth, ...tokenTimes(issuedAt, (res.expires_in ?? 3600) * 1000) };
    return auth;
  }
}
