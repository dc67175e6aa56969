/**
 * What the credential providers share about the workspace token endpoint: how long a token is
 * used, and how a failed token request is told apart and described (without any secret).
 */
import * as oauth from 'openid-client';

/** Databricks rejects tokens within 30 s of expiry (databricks-api.md §1.4); stop using them 60 s before. */
export const EXPIRY_MARGIN_MS = 60_000;

/** When to refresh in the background, and until when a token obtained at `issuedAt` is used. */
export function tokenTimes(issuedAt: number, ttlMs: number): { refreshAt: number; usableUntil: number } {
  const usableUntil = issuedAt + Math.max(0, ttlMs - EXPIRY_MARGIN_MS);
  // Refresh when 80 % of the usable life has passed.
  return { refreshAt: issuedAt + (usableUntil - issuedAt) * 0.8, usableUntil };
}

/** The HTTP status of a token endpoint's error answer; undefined for a network failure or a malformed answer. */
export function errorStatus(e: unknown): number | undefined {
  return e instanceof oauth.ResponseBodyError || e instanceof oauth.WWWAuthenticateChallengeError
    ? e.status
    : undefined;
}

/** 4xx from the token endpoint (bad secret, unknown client, refused grant) except 429: retrying cannot help. */
export function isPermanent(e: unknown): boolean {
  const status = errorStatus(e);
  return status !== undefined && status >= 400 && status < 500 && status !== 429;
}

/** Operator-facing description of a failed token request (the secret is never part of it). */
export async function describe(e: unknown): Promise<string> {
  if (e instanceof oauth.WWWAuthenticateChallengeError) {
    // A 401 with a challenge: the OAuth error is in the body, which openid-client leaves unread.
    const body = (await e.response.json().catch(() => ({}))) as { error?: unknown; error_description?: unknown };
    const err = typeof body.error === 'string' ? body.error : (e.cause[0]?.parameters.error ?? 'challenge');
    const desc = typeof body.error_description === 'string' ? `: ${body.error_description}` : '';
    return `${e.status} ${err}${desc}`;
  }
  if (e instanceof oauth.ResponseBodyError)
    return `${e.status} ${e.error}${e.error_description ? `: ${e.error_description}` : ''}`;
  if (e instanceof Error) {
    const cause = (e as Error & { cause?: unknown }).cause;
    const code = (cause as NodeJS.ErrnoException | undefined)?.code;
    return code ? `${e.message} (${code})` : e.message;
  }
  return String(e);
}

/** openid-client's view of a bare token endpoint (no discovery: the URL is configured). */
export function tokenEndpointConfig(tokenUrl: string, clientId: string, auth: oauth.ClientAuth): oauth.Configuration {
  const url = new URL(tokenUrl);
  const config = new oauth.Configuration({ issuer: url.origin, token_endpoint: url.href }, clientId, undefined, auth);
  if (url.protocol === 'http:') oauth.allowInsecureRequests(config);
  config.timeout = 10;
  return config;
}
