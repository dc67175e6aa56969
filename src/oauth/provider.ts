/**
 * The built-in OAuth 2.0 authorization server, on oidc-provider: grant handling, PKCE, the
 * device grant, DPoP binding, refresh-token rotation and client authentication are the
 * library's. Keygate supplies the pieces around it: its store as persistence, service
 * principals as clients, the WebAuthn login as the interaction, its claims in the JWT access
 * tokens (RFC 9068), and the token-exchange grant (RFC 8693) for workload federation and for
 * trading a device-bound token for a short plain one.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { JWK } from 'jose';
import type Provider from 'oidc-provider';
import type { Configuration, KoaContextWithOIDC, ResourceServer as ResourceServerInfo } from 'oidc-provider';
import { oidcModule } from './oidc-module.js';
import type { AuthEvents } from '../authenticate/auth-events.js';
import type { Config } from '../config/schema.js';
import type { Clock } from '../lib/clock.js';
import type { Store } from '../store/types.js';
import { adapterFactory, TOKEN_EXCHANGE } from './adapter.js';
import { type AgentGrants, delegationFamily } from '../agents/grants.js';
import type { AccessTokens } from './access-tokens.js';
import type { Revocations } from './revocations.js';
import type { ServicePrincipals } from './service-principals.js';
import { registerTokenExchange } from './token-exchange.js';
import { devicePages } from './pages.js';
import { ACTION_NAMES } from '../authorize/actions.js';

/** The CLI's public client (RFC 8252 native app: loopback redirect on any port, PKCE). */
export const CLI_CLIENT_ID = 'keygate-cli';
/** The Databricks CLI and SDKs' public client for their browser login (U2M). */
export const DATABRICKS_CLI_CLIENT_ID = 'databricks-cli';

export const OAUTH_PREFIX = '/.keygate/oauth';
export const ROUTES = {
  authorization: `${OAUTH_PREFIX}/authorize`,
  token: `${OAUTH_PREFIX}/token`,
  device_authorization: `${OAUTH_PREFIX}/device_authorization`,
  code_verification: `${OAUTH_PREFIX}/device`,
  jwks: `${OAUTH_PREFIX}/jwks`,
  revocation: `${OAUTH_PREFIX}/revoke`,
  introspection: `${OAUTH_PREFIX}/introspect`,
  userinfo: `${OAUTH_PREFIX}/userinfo`,
  end_session: `${OAUTH_PREFIX}/end_session`,
  pushed_authorization_request: `${OAUTH_PREFIX}/par`,
  registration: `${OAUTH_PREFIX}/register`,
  backchannel_authentication: `${OAUTH_PREFIX}/backchannel`,
  challenge: `${OAUTH_PREFIX}/challenge`,
} as const;

/** Scopes a token can be narrowed to: every action, optionally with a resource name glob (`serving:invoke/fraud-*`). */
const ACTION_SCOPE = new RegExp(
  `^(${ACTION_NAMES.map((a) => a.replace(/[*:]/g, (c) => `\\${c}`)).join('|')})(/[A-Za-z0-9._*-]{1,128})?$`,
);
export const ALL_APIS = 'all-apis';

/** What the interaction recorded about the login behind a grant; read when tokens are minted. */
export interface GrantContext {
  authEventId: string;
  credentialId: string;
  aaguid: string;
  uv: boolean;
  /** Epoch ms of the WebAuthn assertion. */
  authTime: number;
}
const GRANT_CONTEXT = 'KeygateGrantContext';

export interface ProviderDeps {
  config: Config;
  store: Store;
  clock: Clock;
  events: AuthEvents;
  sps: ServicePrincipals;
  revocations: Revocations;
  accessTokens: () => AccessTokens;
  /** The current token signing key, private JWK with kid. */
  signingKey: () => JWK;
  cookieKeys: string[];
  /** Upstream audiences, the first is the default resource. */
  audiences: readonly string[];
  /** Workload federation trusts: keygate.yaml's and those made through the admin API. */
  trusts: () => readonly Config['tokens']['federation'][number][];
  clientIp: (req: IncomingMessage) => string;
  log: (detail: Record<string, unknown>, msg: string) => void;
  /** People's delegations to agents (token exchange of a delegation grant). */
  agentGrants?: AgentGrants;
}

/** State a grant handler leaves for the claims hook (per request, on ctx.state). */
export interface TokenState {
  kgEventId?: string;
  kgFederation?: { trust: string; subject: string; expiresAt: number };
  /** An agent's token for its person: the grant, and the agent (a service principal). */
  kgDelegation?: { grantId: string; expiresAt: number; agentId: string; agentName: string };
  kgGrantContext?: GrantContext;
}

function loopbackPorts(from: number, to: number): string[] {
  const out: string[] = [];
  for (let p = from; p <= to; p++) out.push(`http://localhost:${p}`, `http://localhost:${p}/`);
  return out;
}

export async function saveGrantContext(
  store: Store,
  grantId: string,
  c: GrantContext,
  expiresAt: number,
): Promise<void> {
  await store.upsertOAuthArtifact({
    model: GRANT_CONTEXT,
    id: grantId,
    payload: JSON.stringify(c),
    grantId,
    userCode: null,
    uid: null,
    expiresAt,
    consumedAt: null,
  });
}

export async function loadGrantContext(store: Store, grantId: string, now: number): Promise<GrantContext | null> {
  const r = await store.findOAuthArtifact(GRANT_CONTEXT, 'id', grantId, now);
  return r === null ? null : (JSON.parse(r.payload) as GrantContext);
}

export function createProvider(issuer: string, d: ProviderDeps): Provider {
  const { config, store, clock } = d;
  const peopleTtlS = Math.floor(config.tokens.peopleAccessTokenLifetime / 1000);
  const machineTtlS = Math.floor(config.tokens.machineAccessTokenLifetime / 1000);
  const refreshMs = config.tokens.refreshLifetime;
  const defaultResource = d.audiences[0] ?? issuer;
  const resources = new Set([...d.audiences, issuer]);

  const resourceInfo = async (
    ctx: KoaContextWithOIDC,
    indicator: string,
    client: { clientId: string },
  ): Promise<ResourceServerInfo> => {
    if (!resources.has(indicator)) throw new (oidcModule().errors.InvalidTarget)('unknown resource');
    const machine = client.clientId !== CLI_CLIENT_ID && client.clientId !== DATABRICKS_CLI_CLIENT_ID;
    const state = ctx.state as TokenState;
    let ttl = machine ? machineTtlS : peopleTtlS;
    // A federated token lives no longer than the platform token it was exchanged for; an
    // agent's token no longer than its grant.
    const until = state.kgFederation?.expiresAt ?? state.kgDelegation?.expiresAt;
    if (until !== undefined) ttl = Math.max(1, Math.min(ttl, Math.floor((until - clock.now()) / 1000)));
    return {
      audience: indicator,
      scope: resourceScopes(ctx),
      accessTokenTTL: ttl,
      accessTokenFormat: 'jwt',
      jwt: { sign: { alg: 'ES256' } },
    };
  };

  const configuration: Configuration = {
    adapter: adapterFactory(store, clock, {
      onGrantRevoked: (grantId) => d.revocations.revokeGrant(grantId),
    }),
    clients: [
      {
        client_id: CLI_CLIENT_ID,
        client_name: 'Keygate CLI',
        application_type: 'native',
        token_endpoint_auth_method: 'none',
        redirect_uris: ['http://127.0.0.1/callback'],
        grant_types: [
          'authorization_code',
          'refresh_token',
          'urn:ietf:params:oauth:grant-type:device_code',
          TOKEN_EXCHANGE,
        ],
        response_types: ['code'],
        // RFC 9449 §5: the CLI's tokens are always bound to its key.
        dpop_bound_access_tokens: true,
      },
      {
        client_id: DATABRICKS_CLI_CLIENT_ID,
        client_name: 'Databricks CLI / SDK',
        application_type: 'native',
        token_endpoint_auth_method: 'none',
        redirect_uris: loopbackPorts(8020, 8040),
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
      },
    ],
    clientDefaults: { id_token_signed_response_alg: 'ES256', grant_types: [], response_types: [] },
    clientAuthMethods: ['none', 'client_secret_basic', 'private_key_jwt'],
    enabledJWA: {
      clientAuthSigningAlgValues: ['ES256', 'ES384', 'RS256', 'PS256', 'EdDSA'],
      dPoPSigningAlgValues: ['ES256', 'EdDSA'],
      idTokenSigningAlgValues: ['ES256'],
      userinfoSigningAlgValues: ['ES256'],
      introspectionSigningAlgValues: ['ES256'],
    },
    jwks: { keys: [d.signingKey()] as never },
    cookies: {
      keys: d.cookieKeys,
      long: { signed: true, httpOnly: true, sameSite: 'lax' },
      short: { signed: true, httpOnly: true, sameSite: 'lax' },
    },
    routes: ROUTES,
    pkce: { required: () => true },
    responseTypes: ['code'],
    scopes: ['openid', 'offline_access'],
    claims: { openid: ['sub'], email: ['email'], profile: ['name'] },
    rotateRefreshToken: true,
    // Refresh tokens for the first-party public clients whenever they may use the grant; the
    // family's absolute end is the TTL below.
    issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
    conformIdTokenClaims: true,
    clientBasedCORS: () => false,
    findAccount: async (_ctx, sub) => {
      const user = await store.getUser(sub);
      if (!user || user.disabledAt !== null) return undefined;
      return {
        accountId: user.id,
        claims: async () => ({ sub: user.id, email: user.email, name: user.displayName }),
      };
    },
    interactions: { url: (_ctx, interaction) => `${OAUTH_PREFIX}/interaction/${interaction.uid}` },
    // Never reuse a grant from the provider's session: every authorization goes through the
    // consent interaction, which needs a tap made for it (see OAuthServer.interaction).
    loadExistingGrant: async (ctx) => {
      const grantId = ctx.oidc.result?.consent?.grantId;
      return grantId === undefined ? undefined : ctx.oidc.provider.Grant.find(grantId);
    },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      introspection: {
        enabled: true,
        // A public client may introspect only its own tokens.
        allowedPolicy: async (ctx, client, token) =>
          client.clientAuthMethod !== 'none' || token.clientId === ctx.oidc.client?.clientId,
      },
      revocation: {
        enabled: true,
        allowedPolicy: async (ctx, _client, token) => token.clientId === ctx.oidc.client?.clientId,
      },
      dPoP: { enabled: true, nonceSecret: undefined },
      userinfo: { enabled: true },
      rpInitiatedLogout: { enabled: false },
      deviceFlow: {
        enabled: true,
        charset: 'base-20',
        mask: '****-****',
        ...devicePages(),
      },
      resourceIndicators: {
        enabled: true,
        defaultResource: async () => defaultResource,
        useGrantedResource: async () => true,
        getResourceServerInfo: (ctx, indicator, client) => resourceInfo(ctx, indicator, client),
      },
    },
    extraTokenClaims: async (ctx, token) => tokenClaims(d, ctx, token as TokenLike),
    ttl: {
      AccessToken: (_ctx, token) => (token.resourceServer?.accessTokenTTL as number | undefined) ?? peopleTtlS,
      ClientCredentials: (_ctx, token) => (token.resourceServer?.accessTokenTTL as number | undefined) ?? machineTtlS,
      AuthorizationCode: 60,
      DeviceCode: Math.floor(config.tokens.deviceCodeLifetime / 1000),
      BackchannelAuthenticationRequest: 60,
      IdToken: peopleTtlS,
      Interaction: 600,
      Session: Math.floor(refreshMs / 1000),
      Grant: Math.floor(refreshMs / 1000),
      PreAuthorizedCode: 60,
      // A refresh-token family ends `refreshLifetime` after the login that started it.
      RefreshToken: (_ctx, token) => {
        const started = (token.authTime ?? Math.floor(clock.now() / 1000)) * 1000;
        return Math.max(1, Math.floor((started + refreshMs - clock.now()) / 1000));
      },
    },
    renderError: async (ctx, out) => {
      ctx.type = 'html';
      ctx.body = errorPage(String(out.error), String(out.error_description ?? ''));
    },
  };

  const provider = new (oidcModule().default)(issuer, configuration);
  // Behind a TLS terminator the public URL is fixed in config; don't trust X-Forwarded-* here.
  provider.proxy = false;

  // Secrets are stored hashed: compare the presented one against the principal's live hashes.
  (
    provider.Client.prototype as unknown as {
      compareClientSecret(this: { clientId: string }, s: string): Promise<boolean>;
    }
  ).compareClientSecret = async function (this: { clientId: string }, secret: string) {
    return d.sps.verifySecret(this.clientId, secret);
  };

  registerTokenExchange(provider, d, { defaultResource, keygate: issuer, info: resourceInfo });
  return provider;
}

interface TokenLike {
  kind: string;
  jti: string;
  accountId?: string;
  clientId?: string;
  grantId?: string;
  gty?: string;
  scope?: string;
}

async function tokenClaims(
  d: ProviderDeps,
  ctx: KoaContextWithOIDC,
  token: TokenLike,
): Promise<Record<string, unknown> | undefined> {
  if (token.kind !== 'AccessToken' && token.kind !== 'ClientCredentials') return undefined;
  const state = (ctx.state ?? {}) as TokenState;
  if (token.kind === 'ClientCredentials') {
    const sp = await d.store.getServicePrincipal(token.clientId as string);
    if (!sp) return undefined;
    if (state.kgEventId === undefined) {
      // client_credentials: each issuance is its own authentication event.
      const ev = await d.events.record(
        'token.issued',
        { ip: d.clientIp(ctx.req), userAgent: String(ctx.req.headers['user-agent'] ?? '') },
        {
          outcome: 'success',
          userId: sp.id,
          principalType: 'service_principal',
          via: ctx.oidc.client?.clientAuthMethod ?? 'client_credentials',
        },
      );
      state.kgEventId = ev.id;
    }
    return {
      kg_pt: 'sp',
      name: sp.name,
      roles: sp.roles,
      kg_gty: state.kgFederation ? 'token-exchange' : 'client_credentials',
      ...(state.kgEventId === undefined ? {} : { kg_aev: state.kgEventId }),
      ...(state.kgFederation ? { kg_fed: state.kgFederation.trust, kg_wl: state.kgFederation.subject } : {}),
    };
  }
  const user = await d.store.getUser(token.accountId as string);
  if (!user) return undefined;
  if (state.kgDelegation !== undefined) {
    // RFC 8693 §4.1: `sub` is the person, `act` the agent acting for them.
    const dl = state.kgDelegation;
    return {
      kg_pt: 'agent',
      email: user.email,
      name: user.displayName,
      roles: user.roles,
      groups: user.groups,
      act: { sub: dl.agentId, name: dl.agentName },
      kg_grant: delegationFamily(dl.grantId),
      kg_dlg: dl.grantId,
      kg_gty: 'token-exchange',
      ...(state.kgEventId === undefined ? {} : { kg_aev: state.kgEventId }),
    };
  }
  const gc =
    state.kgGrantContext ??
    (token.grantId === undefined ? null : await loadGrantContext(d.store, token.grantId, d.clock.now()));
  return {
    kg_pt: 'user',
    email: user.email,
    name: user.displayName,
    roles: user.roles,
    groups: user.groups,
    ...(token.grantId === undefined ? {} : { kg_grant: token.grantId }),
    kg_gty: token.gty,
    ...(gc === null
      ? {}
      : {
          kg_aev: gc.authEventId,
          kg_cred: gc.credentialId,
          kg_aaguid: gc.aaguid,
          kg_uv: gc.uv,
          auth_time: Math.floor(gc.authTime / 1000),
        }),
  };
}

/** The valid scopes among those asked for: all-apis, and actions (optionally narrowed to a resource glob). */
export function requestedScopes(requested: unknown): string[] {
  const asked = typeof requested === 'string' ? requested.split(' ').filter((s) => s.length > 0) : [];
  return [...new Set(asked.filter((s) => s === ALL_APIS || ACTION_SCOPE.test(s)))];
}

/**
 * The scopes a resource server offers in this request: all-apis and every valid action scope
 * the request names — in its `scope` parameter, or (at the token endpoint, where a code, a
 * device code or a refresh token is redeemed without one) in what was granted then. Without
 * the latter, a narrowed grant would come back as an unnarrowed token.
 */
export function resourceScopes(ctx: KoaContextWithOIDC): string {
  const entities = ctx.oidc.entities as Record<string, { scope?: string } | undefined>;
  const granted = ['AuthorizationCode', 'DeviceCode', 'RefreshToken', 'BackchannelAuthenticationRequest']
    .map((k) => entities[k]?.scope ?? '')
    .join(' ');
  return [...new Set([ALL_APIS, ...requestedScopes(ctx.oidc.params?.scope), ...requestedScopes(granted)])].join(' ');
}

function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

export function errorPage(error: string, description: string): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Sign-in error · Keygate</title>
<link rel="stylesheet" href="/.keygate/assets/style.css"></head><body><div class="shell"><main class="card">
<h1>Sign-in could not continue</h1><p><code>${esc(error)}</code></p><p>${esc(description)}</p>
<p>Start again from your tool (for example <code>keygate login</code>).</p></main></div></body></html>`;
}

export type { IncomingMessage, ServerResponse };
