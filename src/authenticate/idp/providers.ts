/**
 * Corporate identity providers (OIDC) people log in through: Okta, Entra ID, Google, Keycloak
 * or any OpenID Provider. Everything protocol-side is openid-client's: discovery, the
 * authorization code flow with PKCE (S256), state and nonce, the ID token's validation
 * (signature from the provider's JWKS, `iss`, `aud`, `exp`, `nonce`) and refresh.
 *
 * Keygate's part: the state of a login in progress is kept server-side (single use, 10
 * minutes) and bound to the browser that started it, so a callback cannot be replayed or
 * planted in another browser (login CSRF); the claims are mapped by the provider's preset; and
 * in `trust-idp-mfa` mode the provider's `amr`/`acr` must show phishing-resistant MFA.
 */
import { createPrivateKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { importPKCS8 } from 'jose';
import * as oidc from 'openid-client';
import type { Config } from '../../config/schema.js';
import { randomId, sha256Hex } from '../../crypto/random.js';
import type { Sealer } from '../../crypto/seal.js';
import type { Clock } from '../../lib/clock.js';
import type { Store } from '../../store/types.js';
import type { AuthFailureReason } from '../auth-events.js';

export type IdpConfig = Config['identityProviders'][number];

const STATE_MODEL = 'IdpLoginState';
const STATE_TTL_MS = 10 * 60_000;
const MAX_GROUPS = 500;
const SEAL_PURPOSE = 'idp-refresh-token';

/** Each preset's usual scopes and claim names (RFC 8176 `amr` is read as is). */
const PRESETS: Record<IdpConfig['preset'], { scopes: string[]; email: string; name: string; groups?: string }> = {
  generic: { scopes: ['openid', 'email', 'profile'], email: 'email', name: 'name', groups: 'groups' },
  okta: {
    scopes: ['openid', 'email', 'profile', 'groups', 'offline_access'],
    email: 'email',
    name: 'name',
    groups: 'groups',
  },
  // Entra ID: the sign-in name is `preferred_username`; `groups` holds group object ids unless
  // the app registration emits names.
  entra: {
    scopes: ['openid', 'email', 'profile', 'offline_access'],
    email: 'preferred_username',
    name: 'name',
    groups: 'groups',
  },
  // Google puts no groups in its ID tokens (use SCIM or Keygate's groups).
  google: { scopes: ['openid', 'email', 'profile'], email: 'email', name: 'name' },
  keycloak: {
    scopes: ['openid', 'email', 'profile', 'offline_access'],
    email: 'email',
    name: 'name',
    groups: 'groups',
  },
};

/** A refused provider login: the reason for the audit record, the message for the person. */
export class IdpFailure extends Error {
  constructor(
    readonly reason: AuthFailureReason,
    message: string,
    readonly userHint?: string,
  ) {
    super(message);
    this.name = 'IdpFailure';
  }
}

/** What a provider login established about the person. */
export interface IdpLogin {
  provider: IdpConfig;
  subject: string;
  email: string;
  displayName: string;
  groups: string[];
  amr: string[];
  acr: string | undefined;
  /** The provider's refresh token, sealed; null when none was given or no key is configured. */
  sealedRefresh: string | null;
  returnTo: string;
}

interface LoginState {
  provider: string;
  verifier: string;
  nonce: string;
  returnTo: string;
  /** SHA-256 of the browser's ceremony cookie: the callback must come to the same browser. */
  binding: string;
}

export interface IdpDeps {
  config: Config;
  store: Store;
  clock: Clock;
  publicOrigin: () => string;
  env: NodeJS.ProcessEnv;
  sealer: Sealer | null;
}

function isLoopback(u: URL): boolean {
  const h = u.hostname.replace(/^\[|\]$/g, '');
  return h === 'localhost' || h === '::1' || (isIP(h) === 4 && h.startsWith('127.'));
}

export class IdentityProviders {
  private readonly discovered = new Map<string, Promise<oidc.Configuration>>();

  constructor(private readonly d: IdpDeps) {}

  get list(): readonly IdpConfig[] {
    return this.d.config.identityProviders;
  }

  find(name: string): IdpConfig | undefined {
    return this.list.find((p) => p.name === name);
  }

  callbackUrl(p: IdpConfig): string {
    return `${this.d.publicOrigin()}/.keygate/idp/${p.name}/callback`;
  }

  /** The provider's metadata and Keygate's client, discovered once (again after a failure). */
  private client(p: IdpConfig): Promise<oidc.Configuration> {
    let c = this.discovered.get(p.name);
    if (c === undefined) {
      c = this.discover(p);
      this.discovered.set(p.name, c);
      c.catch(() => this.discovered.delete(p.name));
    }
    return c;
  }

  private async discover(p: IdpConfig): Promise<oidc.Configuration> {
    const issuer = new URL(p.issuer);
    let auth: oidc.ClientAuth = oidc.None();
    if (p.clientSecretEnv !== undefined) auth = oidc.ClientSecretBasic(this.d.env[p.clientSecretEnv] ?? '');
    if (p.privateKeyFile !== undefined) {
      const pem = readFileSync(p.privateKeyFile, 'utf8');
      const alg = createPrivateKey(pem).asymmetricKeyType === 'ec' ? 'ES256' : 'RS256';
      auth = oidc.PrivateKeyJwt(await importPKCS8(pem, alg));
    }
    // Plain http only for a provider on this machine (tests, a local Keycloak).
    const execute = issuer.protocol === 'http:' && isLoopback(issuer) ? [oidc.allowInsecureRequests] : [];
    return oidc.discovery(issuer, p.clientId, undefined, auth, { execute, timeout: 10 });
  }

  /**
   * Step 1 (OIDC Core §3.1.2.1): the authorization request — PKCE S256, a random state and
   * nonce, kept server-side bound to this browser. `fresh` asks the provider to log the person
   * in again (max_age=0, prompt=login).
   */
  async begin(p: IdpConfig, o: { returnTo: string; binding: string; fresh?: boolean }): Promise<URL> {
    const cfg = await this.client(p);
    const verifier = oidc.randomPKCECodeVerifier();
    const state = randomId(32);
    const nonce = randomId(32);
    const record: LoginState = {
      provider: p.name,
      verifier,
      nonce,
      returnTo: o.returnTo,
      binding: sha256Hex(o.binding),
    };
    await this.d.store.upsertOAuthArtifact({
      model: STATE_MODEL,
      id: state,
      payload: JSON.stringify(record),
      grantId: null,
      userCode: null,
      uid: null,
      expiresAt: this.d.clock.now() + STATE_TTL_MS,
      consumedAt: null,
    });
    const preset = PRESETS[p.preset];
    return oidc.buildAuthorizationUrl(cfg, {
      redirect_uri: this.callbackUrl(p),
      scope: (p.scopes ?? preset.scopes).join(' '),
      state,
      nonce,
      code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
      ...(o.fresh ? { max_age: '0', prompt: 'login' } : {}),
    });
  }

  /**
   * Step 2 (OIDC Core §3.1.3): the callback. The state must be one this gateway issued, unused,
   * unexpired, for this provider and this browser; then openid-client redeems the code with the
   * PKCE verifier and validates the ID token (signature, iss, aud, exp, iat, nonce).
   */
  async complete(p: IdpConfig, callback: URL, binding: string | undefined): Promise<IdpLogin> {
    const state = callback.searchParams.get('state') ?? '';
    const found =
      state === '' ? null : await this.d.store.findOAuthArtifact(STATE_MODEL, 'id', state, this.d.clock.now());
    // Single use, whatever happens next.
    if (found !== null) await this.d.store.destroyOAuthArtifact(STATE_MODEL, state);
    const s = found === null ? null : (JSON.parse(found.payload) as LoginState);
    if (s === null || s.provider !== p.name || binding === undefined || sha256Hex(binding) !== s.binding) {
      throw new IdpFailure('idp_state', 'unknown, used, expired or foreign state');
    }
    const providerError = callback.searchParams.get('error');
    if (providerError !== null) {
      throw new IdpFailure('idp_refused', `provider error ${providerError.slice(0, 64)}`);
    }
    let tokens: oidc.TokenEndpointResponse & oidc.TokenEndpointResponseHelpers;
    try {
      tokens = await oidc.authorizationCodeGrant(await this.client(p), callback, {
        pkceCodeVerifier: s.verifier,
        expectedState: state,
        expectedNonce: s.nonce,
        idTokenExpected: true,
      });
    } catch (e) {
      throw new IdpFailure('idp_token', `the code or ID token was refused: ${describe(e)}`);
    }
    const claims = tokens.claims() as Record<string, unknown> | undefined;
    if (claims === undefined) throw new IdpFailure('idp_token', 'no ID token');
    const login = this.mapClaims(p, claims);
    return {
      ...login,
      sealedRefresh:
        tokens.refresh_token === undefined || this.d.sealer === null
          ? null
          : this.d.sealer.seal(tokens.refresh_token, SEAL_PURPOSE),
      returnTo: s.returnTo,
    };
  }

  /** The claims a login stands on, by the provider's preset or its configured claim names. */
  private mapClaims(p: IdpConfig, claims: Record<string, unknown>): Omit<IdpLogin, 'sealedRefresh' | 'returnTo'> {
    const preset = PRESETS[p.preset];
    const emailClaim = p.claims.email ?? preset.email;
    const email = claims[emailClaim];
    if (typeof email !== 'string' || !/^[^\s@]+@[^\s@]+$/.test(email)) {
      throw new IdpFailure('idp_claims', `claim ${emailClaim} is not an email address`);
    }
    // A provider that says the address is not verified is not trusted with it (Google, Keycloak).
    if (claims.email_verified === false && emailClaim === 'email') {
      throw new IdpFailure(
        'idp_email_unverified',
        'email_verified is false',
        'Your email address is not verified at your identity provider.',
      );
    }
    const name = claims[p.claims.name ?? preset.name];
    const amr = Array.isArray(claims.amr) ? claims.amr.filter((x): x is string => typeof x === 'string') : [];
    return {
      provider: p,
      subject: String(claims.sub),
      email: email.toLowerCase(),
      displayName: typeof name === 'string' && name.trim() !== '' ? name.trim().slice(0, 128) : email,
      groups: this.groupsOf(p, claims),
      amr,
      acr: typeof claims.acr === 'string' ? claims.acr : undefined,
    };
  }

  private groupsOf(p: IdpConfig, claims: Record<string, unknown>): string[] {
    const claim = p.claims.groups ?? PRESETS[p.preset].groups;
    if (claim === undefined) return [];
    const v = claims[claim];
    const list = typeof v === 'string' ? [v] : Array.isArray(v) ? v : [];
    const groups = list.filter((g): g is string => typeof g === 'string' && g !== '' && g.length <= 256);
    return [...new Set(groups)].sort().slice(0, MAX_GROUPS);
  }

  /**
   * trust-idp-mfa: the ID token must show phishing-resistant MFA — an accepted `amr` value
   * (RFC 8176: hwk, fido, …) or an accepted `acr`.
   */
  checkMfa(login: IdpLogin): void {
    const p = login.provider;
    if (login.amr.some((a) => p.acceptedAmr.includes(a))) return;
    if (login.acr !== undefined && p.acceptedAcr.includes(login.acr)) return;
    const wanted = [
      ...(p.acceptedAmr.length > 0 ? [`amr containing one of ${p.acceptedAmr.join(', ')}`] : []),
      ...(p.acceptedAcr.length > 0 ? [`acr ${p.acceptedAcr.join(' or ')}`] : []),
    ].join(', or ');
    throw new IdpFailure(
      'idp_mfa',
      `amr [${login.amr.join(',')}] acr ${login.acr ?? '-'}`,
      `${p.displayName ?? p.name} did not report phishing-resistant MFA for this login. Your identity provider must require a security key or passkey (${wanted}) for Keygate.`,
    );
  }

  /**
   * Re-confirm a person's groups with the provider's refresh token. The provider refusing the
   * token (the person was disabled or removed there) throws; a provider that cannot be reached
   * answers null (the groups lapse until it can).
   */
  async refresh(p: IdpConfig, sealed: string): Promise<{ groups: string[]; sealedRefresh: string } | null> {
    if (this.d.sealer === null) return null;
    let token: string;
    try {
      token = this.d.sealer.open(sealed, SEAL_PURPOSE);
    } catch {
      return null;
    }
    let cfg: oidc.Configuration;
    try {
      cfg = await this.client(p);
    } catch {
      return null;
    }
    let tokens: oidc.TokenEndpointResponse & oidc.TokenEndpointResponseHelpers;
    try {
      tokens = await oidc.refreshTokenGrant(cfg, token);
    } catch (e) {
      if (e instanceof oidc.ResponseBodyError) throw new IdpFailure('idp_refused', `refresh refused: ${e.error}`);
      return null;
    }
    let claims = tokens.claims() as Record<string, unknown> | undefined;
    if (claims === undefined) {
      try {
        claims = (await oidc.fetchUserInfo(cfg, tokens.access_token, oidc.skipSubjectCheck)) as Record<string, unknown>;
      } catch {
        return null;
      }
    }
    return {
      groups: this.groupsOf(p, claims),
      sealedRefresh: this.d.sealer.seal(tokens.refresh_token ?? token, SEAL_PURPOSE),
    };
  }
}

function describe(e: unknown): string {
  if (e instanceof oidc.ResponseBodyError) return `${e.error}${e.error_description ? ` (${e.error_description})` : ''}`;
  return ((e as Error).message ?? String(e)).slice(0, 200);
}
