// Anonymous endpoints: host metadata, OIDC discovery, the JWKS of issued tokens, and the token
// endpoint (client_credentials and RFC 8693 token exchange). See databricks-api.md §1.2–§1.6.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { SimContext } from './context.js';
import { OAuthError } from './errors.js';
import type { Federation } from './federation.js';
import { type BaseRequest, ok, type Reply, type Route } from './http.js';
import type { SimIdentity, TokenRequestRecord } from './types.js';

const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const JWT_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:jwt';

export interface Client {
  secret: string;
  identity: SimIdentity;
}

export function oauthRoutes(ctx: SimContext, clients: Map<string, Client>, federation: Federation): Route<BaseRequest>[] {
  const oidc = `${ctx.url}/oidc`;
  const discovery = (): Reply =>
    ok({
      issuer: oidc,
      authorization_endpoint: `${oidc}/v1/authorize`,
      token_endpoint: `${oidc}/v1/token`,
      jwks_uri: `${oidc}/jwks.json`,
      response_types_supported: ['code'],
      grant_types_supported: ['client_credentials', TOKEN_EXCHANGE],
      token_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post'],
      scopes_supported: ['all-apis', 'offline_access', 'openid', 'email', 'profile'],
      subject_types_supported: ['public'],
      id_token_signing_alg_values_supported: ['ES256'],
      code_challenge_methods_supported: ['S256'],
    });

  return [
    {
      method: 'GET',
      path: '/.well-known/databricks-config',
      handle: () =>
        ok({
          oidc_endpoint: oidc,
          workspace_id: ctx.workspaceId,
          cloud: 'AWS',
          host_type: 'WORKSPACE_HOST',
          token_federation_default_oidc_audiences: [`${oidc}/v1/token`],
        }),
    },
    { method: 'GET', path: '/oidc/.well-known/oauth-authorization-server', handle: discovery },
    { method: 'GET', path: '/oidc/.well-known/openid-configuration', handle: discovery },
    { method: 'GET', path: '/oidc/jwks.json', handle: () => ok({ keys: [ctx.tokens.publicJwk] }) },
    { method: 'POST', path: '/oidc/v1/token', handle: (req) => tokenEndpoint(ctx, clients, federation, req) },
  ];
}

async function tokenEndpoint(ctx: SimContext, clients: Map<string, Client>, federation: Federation, req: BaseRequest): Promise<Reply> {
  const form = new URLSearchParams(req.rawBody.toString('utf8'));
  const grantType = form.get('grant_type') ?? '';
  const record: TokenRequestRecord = { at: ctx.now(), grantType, clientId: null, ok: false };
  ctx.tokenRequests.push(record);
  try {
    // Ensure the body is a form (RFC 6749 §4.4.2).
    if (!String(req.headers['content-type'] ?? '').startsWith('application/x-www-form-urlencoded')) {
      throw new OAuthError(400, 'invalid_request', 'Content-Type must be application/x-www-form-urlencoded.');
    }
    const scope = form.get('scope') ?? 'all-apis';
    let identity: SimIdentity;
    let ttl = ctx.tokenTtlSeconds;
    if (grantType === 'client_credentials') {
      const client = authenticateClient(req, form, clients, record);
      identity = client.identity;
    } else if (grantType === TOKEN_EXCHANGE) {
      const subjectToken = form.get('subject_token');
      if (!subjectToken) throw new OAuthError(400, 'invalid_request', 'Missing subject_token.');
      if (form.get('subject_token_type') !== JWT_TOKEN_TYPE) {
        throw new OAuthError(400, 'invalid_request', `subject_token_type must be ${JWT_TOKEN_TYPE}.`);
      }
      record.clientId = form.get('client_id');
      const result = await federation.exchange(subjectToken, record.clientId);
      identity = result.identity;
      record.subject = result.subject;
      if (result.keyId !== undefined) record.keyId = result.keyId;
      // The issued token never outlives the federated one [DOC-FEDX].
      ttl = Math.min(ttl, result.expiresAt - Math.floor(ctx.now() / 1000));
    } else if (grantType === '') {
      throw new OAuthError(400, 'invalid_request', 'Missing grant_type.');
    } else {
      throw new OAuthError(400, 'unsupported_grant_type', `Grant type '${grantType}' is not supported.`);
    }
    const accessToken = await ctx.tokens.issue(identity, { issuer: `${ctx.url}/oidc`, ttlSeconds: ttl, scope, clientId: record.clientId });
    record.ok = true;
    record.identity = identity.userName;
    ctx.log({ msg: 'token issued', grantType, clientId: record.clientId, identity: identity.userName, expiresIn: ttl });
    return { status: 200, body: { access_token: accessToken, token_type: 'Bearer', expires_in: ttl, scope }, headers: noStore() };
  } catch (err) {
    if (!(err instanceof OAuthError)) throw err;
    record.error = err.error;
    if (err.subject !== undefined) record.subject = err.subject;
    if (err.keyId !== undefined) record.keyId = err.keyId;
    ctx.log({ msg: 'token request rejected', grantType, clientId: record.clientId, error: err.error, reason: err.description });
    const headers = noStore();
    if (err.status === 401) headers['www-authenticate'] = 'Basic realm="oidc"';
    return { status: err.status, body: { error: err.error, error_description: err.description }, headers };
  }
}

/** client_secret_basic or client_secret_post, never both (RFC 6749 §2.3). */
function authenticateClient(req: BaseRequest, form: URLSearchParams, clients: Map<string, Client>, record: TokenRequestRecord): Client {
  const basic = parseBasic(req.headers.authorization);
  const formId = form.get('client_id');
  if (basic && formId !== null) throw new OAuthError(400, 'invalid_request', 'Use one client authentication method, not two.');
  const presented = basic ?? (formId !== null ? { id: formId, secret: form.get('client_secret') ?? '' } : null);
  if (!presented) throw new OAuthError(401, 'invalid_client', 'Client authentication is required.');
  // The Databricks SDKs do not percent-encode before base64; RFC 6749 §2.3.1 says to. Accept both.
  for (const { id, secret } of [presented, percentDecoded(presented)]) {
    const client = clients.get(id);
    if (client && sameSecret(client.secret, secret)) {
      record.clientId = id;
      return client;
    }
  }
  record.clientId = presented.id;
  throw new OAuthError(401, 'invalid_client', 'Client authentication failed.');
}

function parseBasic(header: string | undefined): { id: string; secret: string } | null {
  const m = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header ?? '');
  if (!m?.[1]) return null;
  const decoded = Buffer.from(m[1], 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) throw new OAuthError(401, 'invalid_client', 'Malformed Basic credentials.');
  // Split on the FIRST colon: a secret may contain ':'.
  return { id: decoded.slice(0, colon), secret: decoded.slice(colon + 1) };
}

function percentDecoded(c: { id: string; secret: string }): { id: string; secret: string } {
  try {
    return { id: decodeURIComponent(c.id.replace(/\+/g, ' ')), secret: decodeURIComponent(c.secret.replace(/\+/g, ' ')) };
  } catch {
    return c;
  }
}

function sameSecret(expected: string, presented: string): boolean {
  const a = createHash('sha256').update(expected).digest();
  const b = createHash('sha256').update(presented).digest();
  return timingSafeEqual(a, b);
}

function noStore(): Record<string, string> {
  return { 'cache-control': 'no-store', pragma: 'no-cache' };
}
