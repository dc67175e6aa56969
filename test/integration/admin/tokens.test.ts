/**
 * The admin API called with tokens instead of a browser session (`keygate admin … --gateway`
 * and automation): only a token whose audience is Keygate itself is accepted — a person's CLI
 * token exchanged for that audience (still DPoP-bound), or a service principal's token asked
 * for it — and the same policy decides: a non-admin gets 403, a person's change needs a fresh
 * login, a narrowed scope limits the call. A token made for an upstream is refused.
 */
import * as oidc from 'openid-client';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ChainedRecord } from '../../../src/audit/record.js';
import type { BrowserClient } from '../../helpers/browser-client.js';
import { startGateway, startRecordingUpstream, type TestGateway } from '../../helpers/index.js';
import { walkAuthorization } from '../../helpers/oauth.js';
import { enroll, invite } from '../../helpers/people.js';
import type { SoftAuthenticator } from '../../helpers/soft-authenticator.js';

/** Real time (DPoP proofs carry the client's clock), moved ahead by hand for the step-up test. */
let ahead = 0;
const clock = { now: () => Date.now() + ahead };
const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const ACCESS_TOKEN = 'urn:ietf:params:oauth:token-type:access_token';
const REDIRECT = 'http://127.0.0.1:45678/callback';
const API = '/.keygate/api/admin/v1';

let g: TestGateway;
let up: Awaited<ReturnType<typeof startRecordingUpstream>>;
let cli: oidc.Configuration;
let issuer: string;

beforeAll(async () => {
  up = await startRecordingUpstream();
  g = await startGateway(
    {
      upstreams: { ws: { url: up.url, preset: 'databricks', credential: { type: 'none' } } },
      authorization: { stepUpMaxAge: '5m' },
    },
    { identifiers: [], clock },
  );
  issuer = g.gw.publicOrigin;
  cli = await oidc.discovery(new URL(issuer), 'keygate-cli', undefined, oidc.None(), {
    execute: [oidc.allowInsecureRequests],
  });
});
afterAll(async () => {
  await g?.close();
  await up?.close();
});

interface Person {
  browser: BrowserClient;
  authenticator: SoftAuthenticator;
}

/** A person's CLI login (code flow with a tap, DPoP-bound tokens), as `keygate login` makes it. */
async function cliLogin(p: Person) {
  const verifier = oidc.randomPKCECodeVerifier();
  const state = oidc.randomState();
  const url = oidc.buildAuthorizationUrl(cli, {
    redirect_uri: REDIRECT,
    scope: 'openid offline_access',
    code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    state,
  });
  const walk = await walkAuthorization(g, p.browser, url, p.authenticator, REDIRECT);
  const key = await oidc.randomDPoPKeyPair('ES256', { extractable: true });
  const DPoP = oidc.getDPoPHandle(cli, key);
  const tokens = await oidc.authorizationCodeGrant(
    cli,
    walk.callback,
    { pkceCodeVerifier: verifier, expectedState: state },
    undefined,
    { DPoP },
  );
  return { DPoP, key, tokens };
}

/** What `keygate admin --gateway` does: the CLI token exchanged for Keygate's own audience. */
async function adminToken(p: Person) {
  const { DPoP, key, tokens } = await cliLogin(p);
  const t = await oidc
    .genericGrantRequest(
      cli,
      TOKEN_EXCHANGE,
      { subject_token: tokens.access_token, subject_token_type: ACCESS_TOKEN, resource: issuer },
      { DPoP },
    )
    .catch(async (e: unknown) => {
      const ev = (await g.gw.store.listAuthEvents({ limit: 1 })).map((x) => `${x.kind}:${x.reason}`);
      throw new Error(`exchange refused: ${JSON.stringify((e as { cause?: unknown }).cause)} ${ev.join(' ')}`);
    });
  return { DPoP, key, token: t.access_token, tokenType: t.token_type, upstreamToken: tokens.access_token };
}

/** An admin API call with a DPoP-bound token and a proof of its key. */
async function dpopCall(
  DPoP: oidc.DPoPHandle,
  token: string,
  method: string,
  path: string,
  body?: unknown,
  config = cli,
) {
  const r = await oidc
    .fetchProtectedResource(
      config,
      token,
      new URL(`${g.url}${API}${path}`),
      method,
      body === undefined ? undefined : JSON.stringify(body),
      new Headers(body === undefined ? {} : { 'content-type': 'application/json' }),
      { DPoP },
    )
    .catch(answerOf);
  return { status: r.status, body: (r.status === 204 ? undefined : await r.json()) as Record<string, unknown> };
}

/** openid-client throws on a WWW-Authenticate challenge: the answer is what the test looks at. */
function answerOf(e: unknown): Response {
  const r = (e as { response?: Response }).response;
  if (r === undefined) throw e;
  return r;
}

async function bearerCall(token: string, method: string, path: string, body?: unknown) {
  const r = await request(`${g.url}${API}${path}`, {
    method: method as 'GET',
    headers: {
      authorization: `Bearer ${token}`,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await r.body.text();
  return { status: r.statusCode, body: (text === '' ? undefined : JSON.parse(text)) as Record<string, unknown> };
}

async function person(email: string, roles: string[]): Promise<Person> {
  return enroll(g, email, { token: await invite(g, email, roles) });
}

async function spToken(roles: string[], extra: Record<string, string>): Promise<string> {
  const { sp, secret } = await g.gw.oauth.sps.create({
    name: `robot-${Math.random().toString(36).slice(2, 8)}`,
    roles,
    createdBy: 'test',
    withSecret: true,
  });
  const r = await request(`${g.url}/.keygate/oauth/token`, {
    method: 'POST',
    headers: {
      authorization: `Basic ${Buffer.from(`${sp.id}:${secret?.secret as string}`).toString('base64')}`,
      'content-type': 'application/x-www-form-urlencoded',
    },
    body: new URLSearchParams({ grant_type: 'client_credentials', ...extra }).toString(),
  });
  const body = (await r.body.json()) as { access_token?: string; error?: string };
  if (body.access_token === undefined) throw new Error(`no token: ${JSON.stringify(body)}`);
  return body.access_token;
}

describe("a person's token (keygate admin --gateway)", () => {
  it('the exchange gives a DPoP-bound token for Keygate itself; an admin reads and, fresh, changes', async () => {
    const root = await person('root@example.com', ['admin']);
    const { DPoP, token, tokenType } = await adminToken(root);
    expect(tokenType.toLowerCase()).toBe('dpop');
    const claims = JSON.parse(Buffer.from(token.split('.')[1] as string, 'base64url').toString()) as {
      aud: string;
      cnf?: { jkt?: string };
    };
    expect(claims.aud).toBe(issuer);
    expect(typeof claims.cnf?.jkt).toBe('string');

    const list = await dpopCall(DPoP, token, 'GET', '/users');
    expect(list.status).toBe(200);
    expect((list.body.users as { email: string }[]).map((u) => u.email)).toContain('root@example.com');
    const made = await dpopCall(DPoP, token, 'POST', '/groups', { name: 'from-the-cli' });
    expect(made.status).toBe(201);
    // Audited as the person, with the login behind the token.
    await g.gw.audit.flushed();
    const rec = (await g.gw.audit.query({ kind: 'admin.change' }, { limit: 100 }))
      .lines.map((l) => JSON.parse(l) as ChainedRecord)
      .find((r) => r.change?.op === 'group.create');
    expect(rec?.actor).toMatchObject({ type: 'user', email: 'root@example.com', method: 'dpop', deviceBound: true });
    // The login behind the CLI token: the WebAuthn event of its code flow.
    const login = (await g.gw.store.listAuthEvents({ limit: 50 })).find((e) => e.id === rec?.actor.authEventId);
    expect(login).toMatchObject({ kind: 'auth.login', outcome: 'success' });
  });

  it('a change needs a login within the step-up window: 401 FRESH_LOGIN_REQUIRED; reads still work', async () => {
    const root = await person('stale@example.com', ['admin']);
    const { key, token } = await adminToken(root);
    // Six minutes on the gateway's clock; the client's proofs follow it (clock skew, seconds).
    ahead = 6 * 60_000;
    try {
      const later = await oidc.discovery(new URL(issuer), 'keygate-cli', { [oidc.clockSkew]: 6 * 60 }, oidc.None(), {
        execute: [oidc.allowInsecureRequests],
      });
      const DPoP = oidc.getDPoPHandle(later, key);
      expect((await dpopCall(DPoP, token, 'GET', '/groups', undefined, later)).status).toBe(200);
      const late = await dpopCall(DPoP, token, 'POST', '/groups', { name: 'too-late' }, later);
      expect(late.status).toBe(401);
      expect(late.body).toMatchObject({ error_code: 'FRESH_LOGIN_REQUIRED' });
      expect(String(late.body.message)).toContain('keygate login');
      expect((await g.gw.store.listGroups()).map((x) => x.name)).not.toContain('too-late');
    } finally {
      ahead = 0;
    }
  });

  it('a person without an admin role gets 403 from policy', async () => {
    const dana = await person('dana@example.com', ['ml-engineer']);
    const { DPoP, token } = await adminToken(dana);
    const r = await dpopCall(DPoP, token, 'GET', '/users');
    expect(r.status).toBe(403);
    expect(r.body).toMatchObject({ error_code: 'PERMISSION_DENIED' });
  });

  it("refuses the token made for an upstream, and the admin token presented without its key's proof", async () => {
    const root = await person('root2@example.com', ['admin']);
    const { DPoP, token, upstreamToken } = await adminToken(root);
    const wrong = await dpopCall(DPoP, upstreamToken, 'GET', '/users');
    expect(wrong.status).toBe(401);
    expect(wrong.body).toMatchObject({ error_code: 'UNAUTHENTICATED' });
    expect(String(wrong.body.message)).toContain('not for the admin API');
    const bare = await bearerCall(token, 'GET', '/users');
    expect(bare.status).toBe(401);
    expect(bare.body).toMatchObject({ error_code: 'UNAUTHENTICATED' });
    // The admin token is no good on the proxy either: its audience is not the workspace.
    const before = up.seen.length;
    const proxied = await oidc
      .fetchProtectedResource(cli, token, new URL(`${g.url}/api/2.0/serving-endpoints`), 'GET', undefined, undefined, {
        DPoP,
      })
      .catch(answerOf);
    expect(proxied.status).toBe(401);
    expect(up.seen.length).toBe(before);
  });

  it('a garbage token is refused, never read as the cookie behind it', async () => {
    const r = await bearerCall('not-a-token', 'GET', '/users');
    expect(r.status).toBe(401);
    expect(r.body).toMatchObject({ error_code: 'UNAUTHENTICATED' });
  });
});

describe("a service principal's token (automation)", () => {
  it('with an admin role and resource = Keygate: reads and changes without a step-up (no person to tap)', async () => {
    const token = await spToken(['admin'], { resource: issuer });
    expect((await bearerCall(token, 'GET', '/users')).status).toBe(200);
    const made = await bearerCall(token, 'POST', '/groups', { name: 'made-by-a-robot' });
    expect(made.status).toBe(201);
    await g.gw.audit.flushed();
    const rec = (await g.gw.audit.query({ kind: 'admin.change' }, { limit: 1000 }))
      .lines.map((l) => JSON.parse(l) as ChainedRecord)
      .find((r) => r.change?.target === `group:${made.body.id as string}`);
    expect(rec?.actor).toMatchObject({ type: 'service_principal' });
  });

  it('its token for the upstream (the default resource) is refused here', async () => {
    const token = await spToken(['admin'], {});
    const r = await bearerCall(token, 'GET', '/users');
    expect(r.status).toBe(401);
    expect(String(r.body.message)).toContain('not for the admin API');
  });

  it('a token narrowed to admin:read reads but cannot change: 403 naming the scope', async () => {
    const token = await spToken(['admin'], { resource: issuer, scope: 'admin:read' });
    expect((await bearerCall(token, 'GET', '/groups')).status).toBe(200);
    const r = await bearerCall(token, 'POST', '/groups', { name: 'narrowed' });
    expect(r.status).toBe(403);
    expect(r.body).toMatchObject({ error_code: 'PERMISSION_DENIED' });
    expect(String(r.body.message)).toContain('scope does not include admin:manage');
    expect((await g.gw.store.listGroups()).map((x) => x.name)).not.toContain('narrowed');
  });

  it('without an admin role: 403', async () => {
    const token = await spToken(['ml-reader'], { resource: issuer });
    const r = await bearerCall(token, 'GET', '/users');
    expect(r.status).toBe(403);
    expect(r.body).toMatchObject({ error_code: 'PERMISSION_DENIED' });
  });
});

describe('deleting a person', () => {
  it('refuses the access tokens they hold at once, before anything reaches the upstream', async () => {
    const gone = await person('leaving@example.com', ['ml-reader']);
    const { DPoP, tokens } = await cliLogin(gone);
    const proxied = async () =>
      oidc
        .fetchProtectedResource(
          cli,
          tokens.access_token,
          new URL(`${g.url}/api/2.0/serving-endpoints`),
          'GET',
          undefined,
          undefined,
          { DPoP },
        )
        .catch(answerOf);
    expect((await proxied()).status).toBe(200);
    const id = (await g.gw.store.getUserByEmail('leaving@example.com'))?.id as string;
    const robot = await spToken(['admin'], { resource: issuer });
    expect((await bearerCall(robot, 'DELETE', `/users/${id}`)).status).toBe(204);
    const before = up.seen.length;
    const after = await proxied();
    expect(after.status).toBe(401);
    expect(after.headers.get('www-authenticate')).toContain('token revoked');
    expect(up.seen.length).toBe(before);
  });
});

describe("ending all of a person's token families", () => {
  it('refuses the access tokens of every family and stops their refresh tokens; audited', async () => {
    const p = await person('two-laptops@example.com', ['ml-reader']);
    const first = await cliLogin(p);
    const second = await cliLogin(p);
    const call = (t: { DPoP: oidc.DPoPHandle; tokens: oidc.TokenEndpointResponse }) =>
      oidc
        .fetchProtectedResource(
          cli,
          t.tokens.access_token,
          new URL(`${g.url}/api/2.0/serving-endpoints`),
          'GET',
          undefined,
          undefined,
          {
            DPoP: t.DPoP,
          },
        )
        .catch(answerOf);
    expect((await call(first)).status).toBe(200);
    expect((await call(second)).status).toBe(200);
    const id = (await g.gw.store.getUserByEmail('two-laptops@example.com'))?.id as string;
    const robot = await spToken(['admin'], { resource: issuer });
    expect((await bearerCall(robot, 'DELETE', `/users/${id}/token-families`)).status).toBe(204);
    const before = up.seen.length;
    expect((await call(first)).status).toBe(401);
    expect((await call(second)).status).toBe(401);
    expect(up.seen.length).toBe(before);
    for (const t of [first, second]) {
      await expect(
        oidc.refreshTokenGrant(cli, t.tokens.refresh_token as string, undefined, { DPoP: t.DPoP }),
      ).rejects.toMatchObject({
        error: 'invalid_grant',
      });
    }
    await g.gw.audit.flushed();
    const rec = (await g.gw.audit.query({ kind: 'admin.change' }, { limit: 1000 }))
      .lines.map((l) => JSON.parse(l) as ChainedRecord)
      .find((r) => r.change?.op === 'token_family.revoke_all');
    expect(rec?.change).toMatchObject({ target: `user:${id}` });
    expect(rec?.change?.before).toMatchObject({ tokenFamilies: [expect.any(String), expect.any(String)] });
  });
});
