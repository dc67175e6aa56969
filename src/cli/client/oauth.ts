/**
 * The CLI as an OAuth client of the gateway's authorization server, entirely through
 * openid-client: discovery, authorization code + PKCE with a loopback redirect (RFC 8252), the
 * device grant (RFC 8628), refresh, token exchange (RFC 8693) and revocation (RFC 7009). Every
 * token request carries a DPoP proof of the CLI's key, so the tokens are bound to it.
 */
import { decodeJwt } from 'jose';
import * as oidc from 'openid-client';
import type { Credentials } from './credentials.js';
import type { DpopKey } from './dpop.js';
import { ClientError, notLoggedIn } from './errors.js';
import { startLoopback } from './loopback.js';

/** The gateway's built-in public client for this CLI (a native app: loopback redirect, PKCE, DPoP). */
export const CLI_CLIENT_ID = 'keygate-cli';
export const LOGIN_SCOPE = 'openid offline_access';
const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';

export type TokenResponse = oidc.TokenEndpointResponse;

/** What the CLI reads from its own access token (for display only: the gateway verifies it). */
export interface AccessTokenClaims {
  sub?: string;
  email?: string;
  name?: string;
  roles?: string[];
  exp?: number;
  iat?: number;
  auth_time?: number;
  kg_gty?: string;
  kg_cred?: string;
}

export function claimsOf(accessToken: string): AccessTokenClaims {
  try {
    return decodeJwt(accessToken) as AccessTokenClaims;
  } catch {
    return {};
  }
}

/** Discovery at `<gateway>/.well-known/openid-configuration`; the issuer must be the gateway itself. */
export async function discover(gateway: string): Promise<oidc.Configuration> {
  try {
    return await oidc.discovery(
      new URL(gateway),
      CLI_CLIENT_ID,
      undefined,
      oidc.None(),
      // Plain http only ever reaches here for a loopback gateway (parseGatewayUrl).
      gateway.startsWith('http:') ? { execute: [oidc.allowInsecureRequests] } : {},
    );
  } catch (e) {
    throw failure(gateway, 'discovery failed', e);
  }
}

/** Map a library or network error to one line for the user. */
function failure(gateway: string, what: string, e: unknown): ClientError {
  if (e instanceof ClientError) return e;
  if (e instanceof oidc.ResponseBodyError || e instanceof oidc.AuthorizationResponseError) {
    const d = e.error_description;
    return new ClientError('TOKEN_REFUSED', `${what}: ${e.error}${d ? ` (${d})` : ''}`, { cause: e });
  }
  const cause = (e as { cause?: { code?: string; message?: string } }).cause;
  if (e instanceof TypeError && cause !== undefined) {
    return new ClientError(
      'GATEWAY_UNREACHABLE',
      `cannot reach the gateway at ${gateway} (${cause.code ?? cause.message ?? 'network error'})`,
      { cause: e },
    );
  }
  return new ClientError('GATEWAY_UNREACHABLE', `${what}: ${(e as Error).message}`, { cause: e });
}

export interface BrowserLoginOptions {
  /** Show the authorization URL (always printed, in case no browser opens). */
  show(url: string): void;
  /** Try to open the URL in a browser. */
  open(url: string): void;
  timeoutMs: number;
}

/** Authorization code + PKCE S256 with a loopback redirect, the code bound to the DPoP key. */
export async function browserLogin(
  gateway: string,
  config: oidc.Configuration,
  key: DpopKey,
  o: BrowserLoginOptions,
): Promise<TokenResponse> {
  const loop = await startLoopback();
  try {
    const DPoP = oidc.getDPoPHandle(config, key.pair);
    const verifier = oidc.randomPKCECodeVerifier();
    const state = oidc.randomState();
    const url = oidc.buildAuthorizationUrl(config, {
      redirect_uri: loop.redirectUri,
      scope: LOGIN_SCOPE,
      code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
      state,
      // RFC 9449 §10: the code can only be redeemed with a proof of this key.
      dpop_jkt: await DPoP.calculateThumbprint(),
    });
    o.show(url.href);
    o.open(url.href);
    const cb = await loop.callback(state, o.timeoutMs);
    try {
      const tokens = await oidc.authorizationCodeGrant(
        config,
        cb.url,
        { pkceCodeVerifier: verifier, expectedState: state },
        undefined,
        { DPoP },
      );
      cb.respond(true, 'Your terminal is signed in.');
      return tokens;
    } catch (e) {
      const err =
        e instanceof oidc.AuthorizationResponseError
          ? new ClientError(
              'LOGIN_FAILED',
              `the gateway refused the sign-in: ${e.error}${e.error_description ? ` (${e.error_description})` : ''}`,
            )
          : failure(gateway, 'the sign-in could not be completed', e);
      cb.respond(false, err.message);
      throw err;
    }
  } finally {
    await loop.close();
  }
}

/** The device authorization grant: show the code, then poll at the server's interval. */
export async function deviceLogin(
  gateway: string,
  config: oidc.Configuration,
  key: DpopKey,
  show: (d: oidc.DeviceAuthorizationResponse) => void,
): Promise<TokenResponse> {
  let da: oidc.DeviceAuthorizationResponse;
  try {
    da = await oidc.initiateDeviceAuthorization(config, { scope: LOGIN_SCOPE });
  } catch (e) {
    throw failure(gateway, 'the device sign-in could not start', e);
  }
  show(da);
  try {
    return await oidc.pollDeviceAuthorizationGrant(config, da, undefined, {
      DPoP: oidc.getDPoPHandle(config, key.pair),
    });
  } catch (e) {
    if (e instanceof oidc.ResponseBodyError && e.error === 'expired_token')
      throw new ClientError(
        'LOGIN_FAILED',
        'the code expired before it was approved: run keygate login --device again',
      );
    if (e instanceof oidc.ResponseBodyError && e.error === 'access_denied')
      throw new ClientError('LOGIN_FAILED', 'the sign-in was cancelled in the browser');
    if ((e as Error).name === 'AbortError' || (e as Error).name === 'TimeoutError')
      throw new ClientError(
        'LOGIN_FAILED',
        'the code expired before it was approved: run keygate login --device again',
      );
    throw failure(gateway, 'the device sign-in failed', e);
  }
}

/** The refresh-token grant with a proof of the key; a dead family means "not logged in". */
export async function refresh(
  gateway: string,
  config: oidc.Configuration,
  key: DpopKey,
  refreshToken: string,
): Promise<TokenResponse> {
  try {
    return await oidc.refreshTokenGrant(config, refreshToken, undefined, {
      DPoP: oidc.getDPoPHandle(config, key.pair),
    });
  } catch (e) {
    if (e instanceof oidc.ResponseBodyError && e.error === 'invalid_grant') throw notLoggedIn(gateway);
    throw failure(gateway, 'refreshing the access token failed', e);
  }
}

/**
 * RFC 8693: trade the DPoP-bound access token, with a proof of its key, for another token:
 *  - `bearer`: a short plain bearer token for the upstream (tools that can only send
 *    `Authorization: Bearer`);
 *  - `keygate`: with a resource indicator (RFC 8707) naming Keygate's issuer, a token for its
 *    admin API, still bound to the same key.
 */
async function exchange(
  what: 'bearer' | 'keygate',
  gateway: string,
  config: oidc.Configuration,
  key: DpopKey,
  accessToken: string,
): Promise<TokenResponse> {
  const expected = what === 'bearer' ? 'bearer' : 'dpop';
  try {
    const t = await oidc.genericGrantRequest(
      config,
      TOKEN_EXCHANGE,
      {
        subject_token: accessToken,
        subject_token_type: ACCESS_TOKEN_TYPE,
        ...(what === 'keygate' ? { resource: config.serverMetadata().issuer } : {}),
      },
      { DPoP: oidc.getDPoPHandle(config, key.pair) },
    );
    if (t.token_type.toLowerCase() !== expected)
      throw new ClientError(
        'TOKEN_REFUSED',
        `the token exchange returned a ${t.token_type} token, not a ${expected} one`,
      );
    return t;
  } catch (e) {
    throw failure(gateway, 'the token exchange failed', e);
  }
}

export const exchangeForBearer = (gateway: string, config: oidc.Configuration, key: DpopKey, accessToken: string) =>
  exchange('bearer', gateway, config, key, accessToken);

export const exchangeForKeygate = (gateway: string, config: oidc.Configuration, key: DpopKey, accessToken: string) =>
  exchange('keygate', gateway, config, key, accessToken);

/** RFC 7009: revoke the refresh token (the gateway ends its whole family). */
export async function revokeRefreshToken(
  gateway: string,
  config: oidc.Configuration,
  refreshToken: string,
): Promise<void> {
  try {
    await oidc.tokenRevocation(config, refreshToken, { token_type_hint: 'refresh_token' });
  } catch (e) {
    throw failure(gateway, 'revoking the refresh token failed', e);
  }
}

/**
 * The fields to store from a token response. The tokens must be DPoP-bound, and a refresh
 * token must be there (a response without one keeps the previous one, RFC 6749 §6).
 */
export function credentialFields(
  gateway: string,
  key: DpopKey,
  t: TokenResponse,
  now: number,
  previousRefreshToken?: string,
): Omit<Credentials, 'version' | 'savedAt'> {
  if (t.token_type.toLowerCase() !== 'dpop')
    throw new ClientError('TOKEN_REFUSED', `the gateway issued a ${t.token_type} token, not one bound to this device`);
  const refreshToken = t.refresh_token ?? previousRefreshToken;
  if (refreshToken === undefined)
    throw new ClientError('TOKEN_REFUSED', 'the gateway issued no refresh token (scope offline_access refused?)');
  const exp = claimsOf(t.access_token).exp;
  const expiresAt =
    typeof t.expires_in === 'number' ? now + t.expires_in * 1000 : typeof exp === 'number' ? exp * 1000 : now;
  return {
    gateway,
    dpopKey: key.privateJwk,
    accessToken: t.access_token,
    accessTokenExpiresAt: expiresAt,
    refreshToken,
    ...(t.scope === undefined ? {} : { scope: t.scope }),
  };
}
