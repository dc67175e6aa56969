/**
 * RFC 8693 token exchange at the token endpoint, two uses:
 *
 *  1. Workload identity federation: a CI job or a Kubernetes workload presents its platform's
 *     signed JWT (`subject_token_type` jwt or id_token). A configured trust (issuer, keys,
 *     audience, subject pattern) maps it to a service principal; the answer is that
 *     principal's short-lived access token. No static secret is involved.
 *  3. An agent (a service principal, authenticating as itself) presents a person's delegation
 *     grant (`subject_token_type` delegation-grant, src/agents/grants.ts): the answer is a token
 *     whose `sub` is the person and whose `act` claim names the agent (RFC 8693 §4.1), scoped
 *     to the grant's actions and no longer-lived than the grant.
 *  2. The CLI trades its DPoP-bound access token (with a proof of its key) for a short plain
 *     bearer token, for tools that can only send `Authorization: Bearer` (`keygate token`).
 *     Policy decides where such tokens are accepted. With `resource` = Keygate's own issuer,
 *     the answer is a token for Keygate's admin API instead, still bound to the same key
 *     (`keygate admin … --gateway`).
 *
 * Every refusal is `invalid_grant` (or `invalid_request` for a malformed request) and is
 * recorded as an auth event with its reason.
 */
import { createHash } from 'node:crypto';
import {
  createLocalJWKSet,
  createRemoteJWKSet,
  decodeJwt,
  type JSONWebKeySet,
  type JWTPayload,
  type JWTVerifyGetKey,
  jwtVerify,
} from 'jose';
import type Provider from 'oidc-provider';
import type { KoaContextWithOIDC, ResourceServer as ResourceServerInfo } from 'oidc-provider';
import { oidcModule } from './oidc-module.js';
import type { AuthFailureReason } from '../authenticate/auth-events.js';
import type { Config } from '../config/schema.js';
import { isKeygateError } from '../errors/index.js';
import { globMatch } from '../lib/glob.js';
import { DELEGATION_TOKEN_TYPE, delegatedScope, delegationFamily } from '../agents/grants.js';
import { TOKEN_EXCHANGE } from './adapter.js';
import { ALL_APIS, CLI_CLIENT_ID, type ProviderDeps, requestedScopes, type TokenState } from './provider.js';

const JWT_TYPES = new Set(['urn:ietf:params:oauth:token-type:jwt', 'urn:ietf:params:oauth:token-type:id_token']);
const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';
const PARAMS = [
  'subject_token',
  'subject_token_type',
  'actor_token',
  'actor_token_type',
  'requested_token_type',
  'audience',
  'resource',
  'scope',
];

type Trust = Config['tokens']['federation'][number];

export function registerTokenExchange(provider: Provider, d: ProviderDeps, r: Resources): void {
  // Keyed by where the keys are, not the trust's name (a label): stored trusts are re-read as
  // new objects, and a remote key set keeps its cache across those reloads.
  const keySets = new Map<string, JWTVerifyGetKey>();
  const keysFor = (t: Trust): JWTVerifyGetKey => {
    const id = t.jwks !== undefined ? JSON.stringify(t.jwks) : `url:${t.jwksUrl as string}`;
    let k = keySets.get(id);
    if (k === undefined) {
      k =
        t.jwks !== undefined
          ? createLocalJWKSet(t.jwks as JSONWebKeySet)
          : createRemoteJWKSet(new URL(t.jwksUrl as string), { timeoutDuration: 5_000, cooldownDuration: 30_000 });
      if (keySets.size >= 1_000) keySets.clear();
      keySets.set(id, k);
    }
    return k;
  };

  provider.registerGrantType(
    TOKEN_EXCHANGE,
    async (ctx: KoaContextWithOIDC) => {
      const params = ctx.oidc.params as Record<string, string | undefined>;
      const type = params.subject_token_type;
      const subject = params.subject_token;
      if (typeof subject !== 'string' || subject.length === 0)
        throw new (oidcModule().errors.InvalidRequest)('missing subject_token');
      if (params.actor_token !== undefined)
        throw new (oidcModule().errors.InvalidRequest)('actor tokens are not supported here');
      if (type !== undefined && JWT_TYPES.has(type)) {
        await federate(provider, d, r, ctx, subject, keysFor);
        return;
      }
      if (type === ACCESS_TOKEN_TYPE) {
        await unbind(provider, d, r, ctx, subject);
        return;
      }
      if (type === DELEGATION_TOKEN_TYPE) {
        await delegate(provider, d, r, ctx, subject);
        return;
      }
      throw new (oidcModule().errors.InvalidRequest)('unsupported subject_token_type');
    },
    PARAMS,
  );
}

async function refuse(
  d: ProviderDeps,
  ctx: KoaContextWithOIDC,
  reason: AuthFailureReason,
  who: string | null,
): Promise<never> {
  // Federation refusals name the client asking (a service principal); exchange refusals a person.
  const machine = reason.startsWith('federation_');
  await d.events.record('token.refused', eventContext(d, ctx), {
    outcome: 'failure',
    reason,
    userId: who,
    principalType: machine ? 'service_principal' : 'user',
  });
  throw new (oidcModule().errors.InvalidGrant)(reason.replaceAll('_', ' '));
}

function eventContext(d: ProviderDeps, ctx: KoaContextWithOIDC): { ip: string; userAgent: string } {
  return { ip: d.clientIp(ctx.req), userAgent: String(ctx.req.headers['user-agent'] ?? '') };
}

/** Use 1: a platform's JWT for a service principal's token. */
async function federate(
  provider: Provider,
  d: ProviderDeps,
  r: Resources,
  ctx: KoaContextWithOIDC,
  subjectToken: string,
  keysFor: (t: Trust) => JWTVerifyGetKey,
): Promise<void> {
  const client = ctx.oidc.client;
  if (!client) throw new (oidcModule().errors.InvalidClient)('client required');
  let unverified: JWTPayload;
  try {
    unverified = decodeJwt(subjectToken);
  } catch {
    return refuse(d, ctx, 'federation_malformed', client.clientId);
  }
  // Step 1: a trust for this issuer.
  const trusts = d.trusts().filter((t) => t.issuer === unverified.iss);
  if (trusts.length === 0) return refuse(d, ctx, 'federation_issuer', client.clientId);
  let reason: AuthFailureReason = 'federation_subject';
  for (const trust of trusts) {
    // Step 2: the token's signature, issuer, audience and lifetime (RS256 or ES256 only).
    let payload: JWTPayload;
    try {
      payload = (
        await jwtVerify(subjectToken, keysFor(trust), {
          issuer: trust.issuer,
          audience: trust.audience,
          algorithms: ['RS256', 'ES256'],
          requiredClaims: ['exp', 'iat', 'sub'],
          currentDate: new Date(d.clock.now()),
        })
      ).payload;
    } catch (e) {
      reason = verifyFailure(e);
      continue;
    }
    // Step 3: the subject (a string, RFC 7519 §4.1.2) matches the trust's pattern.
    if (typeof payload.sub !== 'string') {
      reason = 'federation_malformed';
      continue;
    }
    if (!globMatch(trust.subject, payload.sub)) {
      reason = 'federation_subject';
      continue;
    }
    // Step 4: the trust's service principal is the client asking, and it is enabled. One issuer
    // (and subject pattern) may be trusted for several principals: another principal's trust is
    // not a refusal while a later trust may be this client's.
    const sp = await d.sps.find(trust.servicePrincipal);
    if (!sp || sp.disabledAt !== null) {
      reason = 'federation_principal';
      continue;
    }
    if (sp.id !== client.clientId) {
      reason = 'federation_client';
      continue;
    }
    // The resource must be known before the platform token is spent (an unknown one is invalid_target).
    const state = ctx.state as TokenState;
    const exp = (payload.exp as number) * 1000;
    state.kgFederation = { trust: trust.name, subject: payload.sub, expiresAt: exp };
    const resourceServer = await resourceServerFor(provider, r, ctx);
    // Step 5: each platform token is exchanged once.
    const replayKey =
      typeof payload.jti === 'string'
        ? `${trust.issuer} ${payload.jti}`
        : createHash('sha256').update(subjectToken).digest('base64url');
    const fresh = await d.store.insertOAuthArtifactIfAbsent(
      {
        model: 'FederationReplay',
        id: replayKey,
        payload: '{}',
        grantId: null,
        userCode: null,
        uid: null,
        expiresAt: exp,
        consumedAt: null,
      },
      d.clock.now(),
    );
    if (!fresh) return refuse(d, ctx, 'federation_replayed', sp.id);

    const event = await d.events.record('token.issued', eventContext(d, ctx), {
      outcome: 'success',
      userId: sp.id,
      principalType: 'service_principal',
      via: `federation:${trust.name}`,
    });
    state.kgEventId = event.id;
    // Exactly the valid scopes asked for (none: not narrowed).
    const scope = requestedScopes(ctx.oidc.params?.scope).join(' ');
    const token = new provider.ClientCredentials({ client, ...(scope === '' ? {} : { scope }) });
    token.resourceServer = resourceServer;
    const value = await token.save();
    ctx.body = tokenResponse(value, token.expiration, token.scope);
    return;
  }
  return refuse(d, ctx, reason, client.clientId);
}

/** Use 3: an agent's token for the person who delegated to it. */
async function delegate(
  provider: Provider,
  d: ProviderDeps,
  r: Resources,
  ctx: KoaContextWithOIDC,
  grantId: string,
): Promise<void> {
  const client = ctx.oidc.client;
  // The agent proves it is itself (client_secret or private_key_jwt): a grant id alone is not enough.
  if (!client || client.clientId === CLI_CLIENT_ID || client.clientAuthMethod === 'none')
    throw new (oidcModule().errors.UnauthorizedClient)('an agent must authenticate as its service principal');
  if (d.agentGrants === undefined) throw new (oidcModule().errors.InvalidRequest)('delegation is not enabled here');
  const found = await d.agentGrants.forExchange(grantId, client.clientId);
  if ('refused' in found) {
    await d.events.record('token.refused', eventContext(d, ctx), {
      outcome: 'failure',
      reason: 'delegation_invalid',
      userId: client.clientId,
      principalType: 'service_principal',
      via: `delegation:${found.refused}`,
    });
    throw new (oidcModule().errors.InvalidGrant)(`delegation refused: ${found.refused}`);
  }
  const { grant, user, agent } = found;
  // The scope: what was asked, narrowed to the grant's actions (nothing asked: all of them).
  const scope = delegatedScope(grant.actions, requestedScopes(ctx.oidc.params?.scope));
  if (scope.length === 0)
    throw new (oidcModule().errors.InvalidScope)(
      'the grant allows none of the scopes asked for',
      String(ctx.oidc.params?.scope ?? ''),
    );
  const state = ctx.state as TokenState;
  state.kgDelegation = { grantId: grant.id, expiresAt: grant.expiresAt, agentId: agent.id, agentName: agent.name };
  const event = await d.events.record('token.issued', eventContext(d, ctx), {
    outcome: 'success',
    userId: user.id,
    principalType: 'user',
    via: `agent:${agent.name}:${grant.id}`,
  });
  state.kgEventId = event.id;
  const token = new provider.AccessToken({
    accountId: user.id,
    client,
    gty: 'token-exchange',
    scope: scope.join(' '),
    // The grant's revocation family: revoking the grant refuses this token at once.
    grantId: delegationFamily(grant.id),
  });
  token.resourceServer = await resourceServerFor(provider, r, ctx);
  const value = await token.save();
  ctx.body = tokenResponse(value, token.expiration, token.scope);
}

/** Which check of step 2 a platform token failed, for the audit record. */
function verifyFailure(e: unknown): AuthFailureReason {
  const { code, claim, reason } = e as { code?: string; claim?: string; reason?: string };
  if (code === 'ERR_JWT_EXPIRED') return 'federation_expired';
  // Not verified at all: wrong key, unknown kid, an algorithm other than RS256/ES256.
  if (code !== 'ERR_JWT_CLAIM_VALIDATION_FAILED') return 'federation_signature';
  if (claim === 'aud') return 'federation_audience';
  // Signed, but exp, iat or sub is absent or not of its type (RFC 7519 §4.1).
  if (reason === 'missing' || reason === 'invalid') return 'federation_malformed';
  // nbf still in the future: outside its validity window.
  return 'federation_expired';
}

/**
 * Use 2: the CLI's DPoP-bound token (with a proof of its key) for a short plain bearer token
 * for its upstream, or a token for Keygate's admin API bound to the same key.
 */
async function unbind(
  provider: Provider,
  d: ProviderDeps,
  r: Resources,
  ctx: KoaContextWithOIDC,
  subjectToken: string,
): Promise<void> {
  const client = ctx.oidc.client;
  if (!client || client.clientId !== CLI_CLIENT_ID)
    throw new (oidcModule().errors.UnauthorizedClient)('only the Keygate CLI may exchange its tokens');
  const tokens = d.accessTokens();
  let v: Awaited<ReturnType<typeof tokens.verify>>;
  try {
    v = await tokens.verify(subjectToken);
  } catch (e) {
    if (isKeygateError(e)) return refuse(d, ctx, 'exchange_subject_invalid', null);
    throw e;
  }
  const c = v.claims;
  if (c.client_id !== CLI_CLIENT_ID || c.kg_pt !== 'user') return refuse(d, ctx, 'exchange_subject_invalid', null);
  if (d.revocations.isRevoked(c.jti as string, c.kg_grant, c.sub))
    return refuse(d, ctx, 'exchange_subject_revoked', c.sub ?? null);
  // A disabled person gets no new token, even from a token that has not expired yet.
  const person = await d.store.getUser(c.sub as string);
  if (!person || person.disabledAt !== null) return refuse(d, ctx, 'exchange_subject_revoked', c.sub ?? null);
  const jkt = c.cnf?.jkt;
  if (jkt === undefined) return refuse(d, ctx, 'exchange_subject_not_bound', c.sub ?? null);
  // The caller proves it holds the key the subject token is bound to (RFC 9449 proof of this request).
  try {
    await tokens.checkProof(ctx.req, undefined, jkt);
  } catch {
    return refuse(d, ctx, 'exchange_proof_invalid', c.sub ?? null);
  }
  if (c.kg_grant === undefined) return refuse(d, ctx, 'exchange_subject_invalid', c.sub ?? null);
  const forKeygate = ctx.oidc.params?.resource === r.keygate;
  const token = new provider.AccessToken({
    accountId: c.sub as string,
    client,
    gty: 'token-exchange',
    scope: c.scope ?? ALL_APIS,
    grantId: c.kg_grant,
  });
  token.resourceServer = await resourceServerFor(provider, r, ctx, forKeygate ? r.keygate : v.audiences[0]);
  // Keygate's own API is never reached with a plain bearer token from this exchange: the new
  // token carries the subject token's key binding (cnf.jkt, RFC 9449 §6).
  if (forKeygate) token.setThumbprint('jkt', jkt);
  const value = await token.save();
  ctx.body = tokenResponse(value, token.expiration, token.scope, forKeygate ? 'DPoP' : 'Bearer');
}

/** How the provider describes a resource server (audience, lifetime, format), shared with its own grants. */
export interface Resources {
  defaultResource: string;
  /** Keygate's own audience (its issuer URL): tokens for the admin API. */
  keygate: string;
  info(
    ctx: KoaContextWithOIDC,
    indicator: string,
    client: NonNullable<KoaContextWithOIDC['oidc']['client']>,
  ): Promise<ResourceServerInfo>;
}

async function resourceServerFor(provider: Provider, r: Resources, ctx: KoaContextWithOIDC, resource?: string) {
  const asked = ctx.oidc.params?.resource;
  const indicator = resource ?? (typeof asked === 'string' ? asked : r.defaultResource);
  const client = ctx.oidc.client;
  if (!client) throw new (oidcModule().errors.InvalidClient)('client required');
  return new provider.ResourceServer(indicator, await r.info(ctx, indicator, client));
}

function tokenResponse(
  accessToken: string,
  expiresIn: number,
  scope: string | undefined,
  tokenType: 'Bearer' | 'DPoP' = 'Bearer',
): Record<string, unknown> {
  return {
    access_token: accessToken,
    issued_token_type: ACCESS_TOKEN_TYPE,
    token_type: tokenType,
    expires_in: expiresIn,
    ...(scope === undefined || scope === '' ? {} : { scope }),
  };
}
