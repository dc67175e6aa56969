/**
 * People's tokens through the real openid-client library: authorization code + PKCE after a
 * fresh WebAuthn login, DPoP binding, refresh rotation with reuse detection, revocation, the
 * absolute end of a refresh family, and the Databricks CLI's public client on the workspace's
 * own /oidc paths.
 */
import { randomUUID } from 'node:crypto';
import { exportJWK, SignJWT } from 'jose';
import * as oidc from 'openid-client';
import { request } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import type { ChainedRecord } from '../../../src/audit/record.js';
import type { BrowserClient } from '../../helpers/browser-client.js';
import { type SeenRequest, startGateway, startRecordingUpstream, type TestGateway } from '../../helpers/index.js';
import { walkAuthorization } from '../../helpers/oauth.js';
import { enroll, invite } from '../../helpers/people.js';
import type { SoftAuthenticator } from '../../helpers/soft-authenticator.js';

let up: Awaited<ReturnType<typeof startRecordingUpstream>>;
let g: TestGateway;
let seen: SeenRequest[];
let browser: BrowserClient;
let authenticator: SoftAuthenticator;
let cli: oidc.Configuration;
const REDIRECT = 'http://127.0.0.1:45678/callback';

beforeAll(async () => {
  up = await startRecordingUpstream();
  seen = up.seen;
  g = await startGateway(
    { upstreams: { ws: { url: up.url, preset: 'databricks', credential: { type: 'none' } } } },
    { identifiers: [] },
  );
  ({ browser, authenticator } = await enroll(g, 'alice@example.com', {
    token: await invite(g, 'alice@example.com', ['ml-reader']),
  }));
  cli = await oidc.discovery(new URL(g.gw.publicOrigin), 'keygate-cli', undefined, oidc.None(), {
    execute: [oidc.allowInsecureRequests],
  });
});
afterAll(async () => {
  await g?.close();
  await up?.close();
});
afterEach(() => {
  vi.useRealTimers();
});

async function codeFlow(
  config: oidc.Configuration,
  scope: string,
  redirect = REDIRECT,
  via?: string,
  person: { browser: BrowserClient; authenticator: SoftAuthenticator } = { browser, authenticator },
) {
  const verifier = oidc.randomPKCECodeVerifier();
  const state = oidc.randomState();
  let url = oidc.buildAuthorizationUrl(config, {
    redirect_uri: redirect,
    scope,
    code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    state,
  });
  if (via !== undefined) url = new URL(`${via}${url.search}`, g.url);
  const walk = await walkAuthorization(g, person.browser, url, person.authenticator, redirect);
  return { ...walk, verifier, state };
}

/** A CLI login (code flow, a fresh tap) redeemed with a new DPoP key: the bound tokens. */
async function cliTokens(scope: string, person?: { browser: BrowserClient; authenticator: SoftAuthenticator }) {
  const flow = await codeFlow(cli, scope, REDIRECT, undefined, person);
  const key = await oidc.randomDPoPKeyPair('ES256', { extractable: true });
  const DPoP = oidc.getDPoPHandle(cli, key);
  const tokens = await oidc.authorizationCodeGrant(
    cli,
    flow.callback,
    { pkceCodeVerifier: flow.verifier, expectedState: flow.state },
    undefined,
    { DPoP },
  );
  return { flow, key, DPoP, tokens };
}

function claimsOf(jwt: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(jwt.split('.')[1] as string, 'base64url').toString()) as Record<string, unknown>;
}

describe('authorization code + PKCE for the Keygate CLI', () => {
  it('needs a tap made after the request began, then gives a DPoP-bound token the proxy accepts', async () => {
    // alice has a browser session from enrolling, made before this request: not enough.
    const { flow, DPoP, tokens } = await cliTokens('openid offline_access');
    expect(flow.logins).toBe(1);
    expect(flow.hops[0]?.location).toMatch(/^\/\.keygate\/oauth\/interaction\//);
    expect(tokens.token_type.toLowerCase()).toBe('dpop');
    expect(tokens.refresh_token).toBeTruthy();
    expect(tokens.expires_in).toBe(600);
    const c = claimsOf(tokens.access_token);
    expect(c).toMatchObject({ kg_pt: 'user', email: 'alice@example.com', client_id: 'keygate-cli', kg_uv: true });
    expect(c.aud).toBe(up.url);
    expect((c.cnf as { jkt: string }).jkt).toMatch(/^[A-Za-z0-9_-]{43}$/);
    // The token descends from the WebAuthn login event that approved it.
    const events = await g.gw.store.listAuthEvents({ limit: 10 });
    const loginEvent = events.find((e) => e.kind === 'auth.login' && e.outcome === 'success');
    expect(c.kg_aev).toBe(loginEvent?.id);

    const before = seen.length;
    const res = await oidc.fetchProtectedResource(
      cli,
      tokens.access_token,
      new URL(`${g.url}/api/2.0/serving-endpoints`),
      'GET',
      undefined,
      undefined,
      { DPoP },
    );
    expect(res.status).toBe(200);
    expect(seen.length).toBe(before + 1);
  });

  it('a second authorization in the same browser needs its own tap (no silent approval from earlier sessions)', async () => {
    // The browser holds Keygate's session and the provider's own session from the flows above.
    const again = await codeFlow(cli, 'openid offline_access');
    expect(again.logins).toBe(1);
    const databricksCli = new oidc.Configuration(cli.serverMetadata(), 'databricks-cli', undefined, oidc.None());
    oidc.allowInsecureRequests(databricksCli);
    const viaDatabricks = await codeFlow(databricksCli, 'offline_access all-apis', 'http://localhost:8022/');
    expect(viaDatabricks.logins).toBe(1);
  });

  it('a grant narrowed by scope gives narrowed tokens, also after a refresh', async () => {
    const { DPoP, tokens: t } = await cliTokens('openid offline_access serving:read');
    const t2 = await oidc.refreshTokenGrant(cli, t.refresh_token as string, undefined, { DPoP });
    for (const at of [t.access_token, t2.access_token]) {
      expect(claimsOf(at).scope).toBe('serving:read');
      const get = (path: string) =>
        oidc
          .fetchProtectedResource(cli, at, new URL(`${g.url}${path}`), 'GET', undefined, undefined, { DPoP })
          .then((r) => r.status)
          .catch((e: { status?: number }) => e.status);
      expect(await get('/api/2.0/serving-endpoints')).toBe(200);
      // ml-reader may read MLflow, but this token was narrowed to serving:read.
      expect(await get('/api/2.0/mlflow/experiments/search')).toBe(403);
    }
  });

  it('PKCE is required and a redirect to a non-loopback address is refused', async () => {
    const noPkce = new URL('/.keygate/oauth/authorize', g.url);
    noPkce.search = new URLSearchParams({
      client_id: 'keygate-cli',
      response_type: 'code',
      redirect_uri: REDIRECT,
      scope: 'openid',
    }).toString();
    const r1 = await request(noPkce);
    const loc1 = new URL(r1.headers.location as string);
    expect(loc1.origin + loc1.pathname).toBe(REDIRECT);
    expect(loc1.searchParams.get('error')).toBe('invalid_request');
    await r1.body.text();

    const evil = new URL('/.keygate/oauth/authorize', g.url);
    evil.search = new URLSearchParams({
      client_id: 'keygate-cli',
      response_type: 'code',
      redirect_uri: 'http://evil.example/callback',
      scope: 'openid',
      code_challenge: 'a'.repeat(43),
      code_challenge_method: 'S256',
    }).toString();
    const r2 = await request(evil);
    // Never redirected to an unregistered URI: an error page instead.
    expect(r2.statusCode).toBe(400);
    expect(r2.headers.location).toBeUndefined();
    expect(await r2.body.text()).toContain('redirect_uri');
  });

  it('refresh tokens rotate; presenting a used one revokes the whole family, audited, and its access tokens stop working', async () => {
    const { DPoP, tokens: t1 } = await cliTokens('openid offline_access');
    const t2 = await oidc.refreshTokenGrant(cli, t1.refresh_token as string, undefined, { DPoP });
    expect(t2.refresh_token).not.toBe(t1.refresh_token);
    // The refresh is audited against the login behind the grant, as device-bound.
    await g.gw.audit.flushed();
    const refreshed = (await g.gw.audit.query({ kind: 'token.refreshed' }, { limit: 1000 }))
      .lines.map((l) => JSON.parse(l) as ChainedRecord)
      .at(-1);
    expect(refreshed).toMatchObject({
      outcome: 'success',
      actor: {
        type: 'user',
        id: claimsOf(t1.access_token).sub,
        authEventId: claimsOf(t1.access_token).kg_aev,
        uv: true,
        deviceBound: true,
      },
      detail: { client: 'keygate-cli' },
    });
    // The refresh token is bound to the DPoP key: another key cannot use it.
    const otherKey = oidc.getDPoPHandle(cli, await oidc.randomDPoPKeyPair('ES256'));
    await expect(
      oidc.refreshTokenGrant(cli, t2.refresh_token as string, undefined, { DPoP: otherKey }),
    ).rejects.toMatchObject({
      error: 'invalid_grant',
    });
    // Reuse of the first (rotated) refresh token: refused, and the family is gone.
    await expect(oidc.refreshTokenGrant(cli, t1.refresh_token as string, undefined, { DPoP })).rejects.toMatchObject({
      error: 'invalid_grant',
    });
    await expect(oidc.refreshTokenGrant(cli, t2.refresh_token as string, undefined, { DPoP })).rejects.toMatchObject({
      error: 'invalid_grant',
    });
    const reuse = (await g.gw.store.listAuthEvents({ limit: 20 })).find((e) => e.kind === 'token.reuse_detected');
    expect(reuse?.reason).toBe('refresh_token_reused');
    // An access token of the revoked family is refused by the proxy at once; nothing reaches the upstream.
    const before = seen.length;
    const res = await oidc
      .fetchProtectedResource(
        cli,
        t2.access_token,
        new URL(`${g.url}/api/2.0/serving-endpoints`),
        'GET',
        undefined,
        undefined,
        {
          DPoP,
        },
      )
      .catch((e: { status?: number; cause?: { parameters?: { error_description?: string } }[] }) => e);
    expect((res as { status: number }).status).toBe(401);
    expect(
      (res as { cause: { parameters: { error_description: string } }[] }).cause[0]?.parameters.error_description,
    ).toBe('token revoked');
    expect(seen.length).toBe(before);
  });

  it('logout revokes the refresh token (RFC 7009) and with it the family', async () => {
    const { DPoP, tokens: t } = await cliTokens('openid offline_access');
    await oidc.tokenRevocation(cli, t.refresh_token as string, { token_type_hint: 'refresh_token' });
    await expect(oidc.refreshTokenGrant(cli, t.refresh_token as string, undefined, { DPoP })).rejects.toMatchObject({
      error: 'invalid_grant',
    });
    const res = await oidc
      .fetchProtectedResource(
        cli,
        t.access_token,
        new URL(`${g.url}/api/2.0/serving-endpoints`),
        'GET',
        undefined,
        undefined,
        {
          DPoP,
        },
      )
      .catch((e: { status?: number }) => e);
    expect((res as { status: number }).status).toBe(401);
  });

  it('a refresh family ends 12 h after the login that started it', async () => {
    const { DPoP, tokens: t } = await cliTokens('openid offline_access');
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(Date.now() + 11 * 3_600_000);
    const t2 = await oidc.refreshTokenGrant(cli, t.refresh_token as string, undefined, { DPoP });
    vi.setSystemTime(Date.now() + 3_600_000 + 5_000);
    await expect(oidc.refreshTokenGrant(cli, t2.refresh_token as string, undefined, { DPoP })).rejects.toMatchObject({
      error: 'invalid_grant',
    });
  });
});

describe('trading a DPoP-bound token for a short bearer token (what `keygate token` does)', () => {
  async function exchange(subject: string, dpop: oidc.DPoPHandle | undefined) {
    return oidc.genericGrantRequest(
      cli,
      'urn:ietf:params:oauth:grant-type:token-exchange',
      { subject_token: subject, subject_token_type: 'urn:ietf:params:oauth:token-type:access_token' },
      dpop === undefined ? {} : { DPoP: dpop },
    );
  }

  it('needs a proof of the bound key; the bearer token carries the same login and is refused for sensitive actions', async () => {
    // ml-deployer may create serving endpoints: only policy about bearer tokens stands in the way.
    const { browser: b2, authenticator: a2 } = await enroll(g, 'dana@example.com', {
      token: await invite(g, 'dana@example.com', ['ml-deployer']),
    });
    const { DPoP, tokens: bound } = await cliTokens('openid offline_access', { browser: b2, authenticator: a2 });

    // Without a proof, or with a proof by another key: refused, and audited.
    await expect(exchange(bound.access_token, undefined)).rejects.toMatchObject({ error: 'invalid_grant' });
    const thief = oidc.getDPoPHandle(cli, await oidc.randomDPoPKeyPair('ES256'));
    await expect(exchange(bound.access_token, thief)).rejects.toMatchObject({ error: 'invalid_grant' });
    const refused = (await g.gw.store.listAuthEvents({ limit: 5 })).filter((e) => e.kind === 'token.refused');
    expect(refused.map((e) => e.reason)).toContain('exchange_proof_invalid');

    const plain = await exchange(bound.access_token, DPoP);
    expect(plain.token_type.toLowerCase()).toBe('bearer');
    expect(plain.expires_in).toBe(600);
    const pc = claimsOf(plain.access_token);
    const bc = claimsOf(bound.access_token);
    expect(pc.cnf).toBeUndefined();
    expect(pc).toMatchObject({
      sub: bc.sub,
      kg_aev: bc.kg_aev,
      kg_grant: bc.kg_grant,
      aud: bc.aud,
      kg_gty: 'token-exchange',
    });

    const call = async (
      method: 'GET' | 'POST',
      path: string,
      authorization: string,
      extra: Record<string, string> = {},
    ) => {
      const r = await request(`${g.url}${path}`, {
        method,
        headers: { authorization, 'content-type': 'application/json', ...extra },
        ...(method === 'POST' ? { body: JSON.stringify({ name: 'fraud-v2', config: {} }) } : {}),
      });
      return { status: r.statusCode, body: (await r.body.json()) as Record<string, unknown> };
    };
    const before = seen.length;
    expect((await call('GET', '/api/2.0/serving-endpoints', `Bearer ${plain.access_token}`)).status).toBe(200);
    const denied = await call('POST', '/api/2.0/serving-endpoints', `Bearer ${plain.access_token}`);
    expect(denied.status).toBe(403);
    expect(denied.body.error_code).toBe('PERMISSION_DENIED');
    expect(denied.body.message).toContain('needs a device-bound token');
    expect(seen.length).toBe(before + 1);
    // The device-bound token may (a fresh login, so no step-up either).
    const ok = await oidc.fetchProtectedResource(
      cli,
      bound.access_token,
      new URL(`${g.url}/api/2.0/serving-endpoints`),
      'POST',
      JSON.stringify({ name: 'fraud-v2', config: {} }),
      new Headers({ 'content-type': 'application/json' }),
      { DPoP },
    );
    expect(ok.status).toBe(200);
    expect(seen.length).toBe(before + 2);
    // A revoked family takes its exchanged tokens with it.
    await oidc.tokenRevocation(cli, bound.refresh_token as string);
    expect((await call('GET', '/api/2.0/serving-endpoints', `Bearer ${plain.access_token}`)).status).toBe(401);
  });
});

describe('a DPoP proof is spent wherever it was first used', () => {
  it('a proof seen at the token endpoint (a refresh) cannot be replayed to trade the bound token for a bearer one', async () => {
    const { key, tokens: bound } = await cliTokens('openid offline_access');
    const tokenUrl = `${g.url}/.keygate/oauth/token`;
    const proof = await new SignJWT({
      htm: 'POST',
      htu: tokenUrl,
      iat: Math.floor(Date.now() / 1000),
      jti: randomUUID(),
    })
      .setProtectedHeader({ alg: 'ES256', typ: 'dpop+jwt', jwk: await exportJWK(key.publicKey) })
      .sign(key.privateKey);
    const post = async (form: Record<string, string>) => {
      const r = await request(tokenUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', dpop: proof },
        body: new URLSearchParams({ client_id: 'keygate-cli', ...form }).toString(),
      });
      return { status: r.statusCode, body: (await r.body.json()) as Record<string, string> };
    };
    const refreshed = await post({ grant_type: 'refresh_token', refresh_token: bound.refresh_token as string });
    expect(refreshed.status).toBe(200);
    const replayed = await post({
      grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
      subject_token: refreshed.body.access_token as string,
      subject_token_type: 'urn:ietf:params:oauth:token-type:access_token',
    });
    expect(replayed.status).toBe(400);
    expect(replayed.body.error).toBe('invalid_grant');
  });
});

describe("the Databricks CLI's browser login on the workspace's own paths", () => {
  it('/oidc discovery → /oidc/v1/authorize → WebAuthn → /oidc/v1/token gives a Keygate token, not an upstream one', async () => {
    const disc = await request(`${g.url}/oidc/.well-known/oauth-authorization-server`);
    expect(disc.statusCode).toBe(200);
    const doc = (await disc.body.json()) as Record<string, string>;
    expect(doc.authorization_endpoint).toBe(`${g.gw.publicOrigin}/oidc/v1/authorize`);
    expect(doc.token_endpoint).toBe(`${g.gw.publicOrigin}/oidc/v1/token`);
    const meta = (await (await request(`${g.url}/.well-known/databricks-config`)).body.json()) as Record<
      string,
      unknown
    >;
    expect(meta.oidc_endpoint).toBe(`${g.gw.publicOrigin}/oidc`);

    const config = new oidc.Configuration(
      {
        issuer: g.gw.publicOrigin,
        authorization_endpoint: doc.authorization_endpoint as string,
        token_endpoint: `${g.url}/oidc/v1/token`,
      },
      'databricks-cli',
      undefined,
      oidc.None(),
    );
    oidc.allowInsecureRequests(config);
    // The Go CLI's loopback listener (ports 8020–8040); the trailing slash as a URL parser writes it.
    const redirect = 'http://localhost:8021/';
    const flow = await codeFlow(config, 'offline_access all-apis', redirect, '/oidc/v1/authorize');
    const tokens = await oidc
      .authorizationCodeGrant(config, flow.callback, { pkceCodeVerifier: flow.verifier, expectedState: flow.state })
      .catch((e: { error?: string; error_description?: string }) => {
        throw new Error(`${e.error}: ${e.error_description}`);
      });
    expect(tokens.token_type.toLowerCase()).toBe('bearer');
    expect(tokens.refresh_token).toBeTruthy();
    const c = claimsOf(tokens.access_token);
    expect(c).toMatchObject({ iss: g.gw.publicOrigin, client_id: 'databricks-cli', kg_pt: 'user', scope: 'all-apis' });
    const before = seen.length;
    const res = await request(`${g.url}/api/2.0/serving-endpoints`, {
      headers: { authorization: `Bearer ${tokens.access_token}` },
    });
    expect(res.statusCode).toBe(200);
    await res.body.text();
    expect(seen.length).toBe(before + 1);
    // The upstream saw Keygate's identity assertion, never the person's token.
    expect(seen.at(-1)?.url).toBe('/api/2.0/serving-endpoints');
  });
});

/** The proxy's answer to a GET of the serving endpoints with this token (and its DPoP key). */
async function servingStatus(accessToken: string, DPoP: oidc.DPoPHandle): Promise<number | undefined> {
  return oidc
    .fetchProtectedResource(
      cli,
      accessToken,
      new URL(`${g.url}/api/2.0/serving-endpoints`),
      'GET',
      undefined,
      undefined,
      {
        DPoP,
      },
    )
    .then((r) => r.status)
    .catch((e: { status?: number }) => e.status);
}

describe('token families in the admin API', () => {
  it("lists a person's CLI login; ending it stops its refresh and access tokens at once, audited", async () => {
    const { browser: admin } = await enroll(g, 'families-admin@example.com', {
      token: await invite(g, 'families-admin@example.com', ['admin']),
    });
    const { DPoP, tokens } = await cliTokens('openid offline_access');
    const claims = claimsOf(tokens.access_token);
    const list = await admin.get<{ tokenFamilies: { id: string; userId: string; client: string }[] }>(
      `/.keygate/api/admin/v1/token-families?user=${claims.sub}`,
    );
    expect(list.status).toBe(200);
    expect(list.body.tokenFamilies).toContainEqual(
      expect.objectContaining({ id: claims.kg_grant, userId: claims.sub, client: 'keygate-cli' }),
    );
    const del = await admin.call('DELETE', `/.keygate/api/admin/v1/token-families/${claims.kg_grant}`);
    expect(del.status).toBe(204);
    // The access token is refused by the proxy at once; nothing reaches the upstream.
    const before = seen.length;
    expect(await servingStatus(tokens.access_token, DPoP)).toBe(401);
    expect(seen.length).toBe(before);
    await expect(
      oidc.refreshTokenGrant(cli, tokens.refresh_token as string, undefined, { DPoP }),
    ).rejects.toMatchObject({
      error: 'invalid_grant',
    });
    await g.gw.audit.flushed();
    const rec = (await g.gw.audit.query({ kind: 'admin.change' }, { limit: 1000 }))
      .lines.map((l) => JSON.parse(l) as ChainedRecord)
      .find((r) => r.change?.target === `token_family:${claims.kg_grant}`);
    expect(rec?.change).toMatchObject({
      op: 'token_family.revoke',
      before: { user: claims.sub, client: 'keygate-cli' },
    });
    expect((await admin.call('DELETE', `/.keygate/api/admin/v1/token-families/${claims.kg_grant}`)).status).toBe(404);
  });

  it('disabling a person ends their token families too: their access token is refused at once', async () => {
    const { browser: admin } = await enroll(g, 'families-admin2@example.com', {
      token: await invite(g, 'families-admin2@example.com', ['admin']),
    });
    const person = await enroll(g, 'leaver@example.com', {
      token: await invite(g, 'leaver@example.com', ['ml-reader']),
    });
    const { DPoP, tokens } = await cliTokens('openid offline_access', person);
    const sub = claimsOf(tokens.access_token).sub as string;
    expect(await servingStatus(tokens.access_token, DPoP)).toBe(200);
    expect((await admin.post(`/.keygate/api/admin/v1/users/${sub}/disable`)).status).toBe(200);
    expect(await servingStatus(tokens.access_token, DPoP)).toBe(401);
  });
});
