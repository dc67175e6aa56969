import * as oauth from 'openid-client';
import { KeygateError } from '../../errors/index.js';
import { type Clock, systemClock } from '../../lib/clock.js';
import type { SecretSource } from './secret-source.js';
import type { CredentialEvents, CredentialProvider } from './types.js';

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
  header: string;
  /** When to start refreshing in the background. */
  refreshAt: number;
  /** After this the token is not used any more (the workspace rejects tokens near expiry). */
  usableUntil: number;
}

/** Databricks rejects tokens within 30 s of expiry (databricks-api.md §1.4); stop using them 60 s before. */
const EXPIRY_MARGIN_MS = 60_000;
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
  private inflight: Promise<string> | undefined;
  private failedUntil = 0;
  private lastError: KeygateError | undefined;
  private readonly clock: Clock;
  private readonly sleep: (ms: number) => Promise<void>;

  constructor(private readonly opts: DatabricksM2MOptions) {
    this.clock = opts.clock ?? systemClock;
    this.sleep = opts.sleep ?? ((ms) => new Promise((r) => setTimeout(r, ms).unref()));
  }

  authorization(): string | Promise<string> {
    const now = this.clock.now();
    const c = this.cached;
    if (c !== undefined && now < c.refreshAt) return c.header;
    if (c !== undefined && now < c.usableUntil) {
      // Still valid: refresh behind the request, never in front of it.
      this.refresh().catch(() => {});
      return c.header;
    }
    return this.refresh();
  }

  async check(): Promise<void> {
    await this.authorization();
  }

  close(): void {
    this.opts.secret.close();
  }

  private refresh(): Promise<string> {
    if (this.inflight) return this.inflight;
    if (this.clock.now() < this.failedUntil && this.lastError) return Promise.reject(this.lastError);
    this.inflight = this.fetchWithRetry().finally(() => {
      this.inflight = undefined;
    });
    return this.inflight;
  }

  private async fetchWithRetry(): Promise<string> {
    const attempts = this.opts.attempts ?? 4;
    const base = this.opts.backoffMs ?? 200;
    let detail = '';
    for (let attempt = 0; attempt < attempts; attempt++) {
      if (attempt > 0) await this.sleep(base * 2 ** (attempt - 1) * (0.5 + Math.random()));
      try {
        const header = await this.fetchOnce();
        this.opts.events?.onRefresh?.('ok');
        return header;
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

  private async fetchOnce(): Promise<string> {
    const tokenUrl = new URL(this.opts.tokenUrl);
    const config = new oauth.Configuration(
      { issuer: tokenUrl.origin, token_endpoint: tokenUrl.href },
      this.opts.clientId,
      undefined,
      oauth.ClientSecretBasic(this.opts.secret.get()),
    );
    if (tokenUrl.protocol === 'http:') oauth.allowInsecureRequests(config);
    config.timeout = 10;
    const issuedAt = this.clock.now();
    const res = await oauth.clientCredentialsGrant(config, { scope: this.opts.scope });
    const ttlMs = (res.expires_in ?? 3600) * 1000;
    const usableUntil = issuedAt + Math.max(0, ttlMs - EXPIRY_MARGIN_MS);
    // Refresh when 80 % of the usable life has passed.
    const refreshAt = issuedAt + (usableUntil - issuedAt) * 0.8;
    const header = `Bearer ${res.access_token}`;
    this.cached = { header, refreshAt, usableUntil };
    return header;
  }
}

/** 4xx from the token endpoint (bad secret, unknown client) except 429: retrying cannot help. */
function isPermanent(e: unknown): boolean {
  const status =
    e instanceof oauth.ResponseBodyError || e instanceof oauth.WWWAuthenticateChallengeError ? e.status : undefined;
  return status !== undefined && status >= 400 && status < 500 && status !== 429;
}

/** Operator-facing description of a failed token request (the secret is never part of it). */
async function describe(e: unknown): Promise<string> {
  if (e instanceof oauth.WWWAuthenticateChallengeError) {
    // A 401 with a challenge: the OAuth error is in the body, which openid-client leaves unread.
    const body = (await e.response.json().catch(() => ({}))) as { error?: unknown; error_description?: unknown };
    const err = typeof body.error === 'string' ? body.error : (e.cause[0]?.parameters.error ?? 'challenge');
    const desc = typeof body.error_description === 'string' ? `: ${body.error_description}` : '';
    return `${e.status} ${err}${desc}`;
  }
  if (e instanceof oauth.ResponseBodyError) return `${e.status} ${e.error}${e.error_description ? `: ${e.error_description}` : ''}`;
  if (e instanceof Error) {
    const cause = (e as Error & { cause?: unknown }).cause;
    const code = (cause as NodeJS.ErrnoException | undefined)?.code;
    return code ? `${e.message} (${code})` : e.message;
  }
  return String(e);
}
