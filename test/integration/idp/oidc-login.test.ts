/**
 * Logging in through a corporate identity provider (a real oidc-provider on 127.0.0.1 with
 * people, groups and amr values), in both enforcement modes:
 *  - require-local-key: the provider login, then a tap of a key registered to that same person
 *    (the first time, the provider login lets them enroll one); another person's key is refused;
 *  - trust-idp-mfa: the provider's phishing-resistant MFA (amr) stands in for the key; without it
 *    the login is refused with what the provider must enforce.
 * Group claims become Keygate groups and roles; after `groupsTtl` they are re-confirmed with the
 * provider's refresh token (a lost group loses its role; a removed person's session ends).
 * Refusals: a foreign or replayed state, a wrong nonce or issuer in the ID token, an unverified
 * email, an account that is not pre-approved. Each outcome is an auth.idp_login event.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportJWK, exportPKCS8, generateKeyPair } from 'jose';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BrowserClient } from '../../helpers/browser-client.js';
import { type CorporateIdp, startCorporateIdp } from '../../helpers/corporate-idp.js';
import { freePort, startGateway, startRecordingUpstream, type TestGateway } from '../../helpers/index.js';
import { browserFor, enroll, invite } from '../../helpers/people.js';
import { SoftAuthenticator } from '../../helpers/soft-authenticator.js';

const SECRET = 'corp-client-secret';
let ahead = 0;
const clock = { now: () => Date.now() + ahead };
let idp: CorporateIdp;
let g: TestGateway;
let up: Awaited<ReturnType<typeof startRecordingUpstream>>;

const PEOPLE = [
  { sub: 'u-alice', email: 'alice@corp.example', name: 'Alice Corp', groups: ['ml-admins', 'everyone'] },
  { sub: 'u-bob', email: 'bob@corp.example', name: 'Bob Corp', groups: ['everyone'] },
  { sub: 'u-hwk', email: 'hana@corp.example', name: 'Hana', groups: ['everyone'], amr: ['hwk', 'mfa'] },
  { sub: 'u-pwd', email: 'pat@corp.example', name: 'Pat', groups: ['everyone'], amr: ['pwd'] },
  { sub: 'u-acr', email: 'ada@corp.example', name: 'Ada', groups: [], amr: ['pwd'], acr: 'phr-policy' },
  { sub: 'u-unverified', email: 'una@corp.example', name: 'Una', groups: [], emailVerified: false },
  { sub: 'u-outsider', email: 'otto@corp.example', name: 'Otto', groups: ['contractors'] },
  { sub: 'u-insider', email: 'ines@corp.example', name: 'Ines', groups: ['keygate-users'] },
  { sub: 'u-ttl', email: 'tess@corp.example', name: 'Tess', groups: ['ml-admins'] },
];

beforeAll(async () => {
  up = await startRecordingUpstream();
  const port = await freePort();
  const origin = `http://localhost:${port}`;
  const names = ['corp', 'corp-mfa', 'corp-strict'];
  // One client authenticates with private_key_jwt: Keygate holds the private key in a PEM file.
  const { publicKey, privateKey } = await generateKeyPair('ES256', { extractable: true });
  const keyFile = join(mkdtempSync(join(tmpdir(), 'kg-idp-key-')), 'corp-jwt.pem');
  writeFileSync(keyFile, await exportPKCS8(privateKey), { mode: 0o600 });
  idp = await startCorporateIdp({
    clients: [
      ...names.map((n) => ({
        client_id: `keygate-${n}`,
        client_secret: SECRET,
        redirect_uris: [`${origin}/.keygate/idp/${n}/callback`],
      })),
      {
        client_id: 'keygate-corp-jwt',
        jwks: { keys: [{ ...(await exportJWK(publicKey)), alg: 'ES256', use: 'sig' }] },
        redirect_uris: [`${origin}/.keygate/idp/corp-jwt/callback`],
      },
    ],
    users: PEOPLE,
  });
  process.env.TEST_CORP_SECRET = SECRET;
  process.env.TEST_KEYGATE_SECRET_KEY = randomBytes(32).toString('base64');
  const common = {
    issuer: idp.issuer,
    clientSecretEnv: 'TEST_CORP_SECRET',
    scopes: ['openid', 'email', 'profile', 'groups'],
  };
  g = await startGateway(
    {
      listen: { host: '127.0.0.1', port },
      upstreams: { ws: { url: up.url, preset: 'databricks', credential: { type: 'none' } } },
      secretKeyEnv: 'TEST_KEYGATE_SECRET_KEY',
      identityProviders: [
        { ...common, name: 'corp', displayName: 'Corp SSO', clientId: 'keygate-corp' },
        {
          ...common,
          name: 'corp-mfa',
          clientId: 'keygate-corp-mfa',
          mode: 'trust-idp-mfa',
          acceptedAcr: ['phr-policy'],
        },
        {
          issuer: idp.issuer,
          privateKeyFile: keyFile,
          scopes: ['openid', 'email', 'profile', 'groups'],
          name: 'corp-jwt',
          clientId: 'keygate-corp-jwt',
          mode: 'trust-idp-mfa',
        },
        {
          ...common,
          name: 'corp-strict',
          clientId: 'keygate-corp-strict',
          enrollment: 'pre-approved',
          enrollGroups: ['keygate-users'],
        },
      ],
      authorization: { bindings: [{ group: 'ml-admins', roles: ['admin'] }] },
    },
    { identifiers: [], clock },
  );
});
afterAll(async () => {
  await g?.close();
  await idp?.close();
  await up?.close();
});

interface Walk {
  status: number;
  /** The last Keygate URL reached (path and query), or the failure page's. */
  at: string;
  body: string;
}

/**
 * A browser going through a provider login: Keygate's cookies in `browser`, the provider's in
 * their own jar; stops at the first Keygate page that is not part of the provider exchange.
 */
async function providerLogin(
  browser: BrowserClient,
  provider: string,
  who: string,
  o: { editCallback?: (u: URL) => void; returnTo?: string } = {},
): Promise<Walk> {
  idp.loginAs(who);
  const keygate = new URL(g.gw.publicOrigin);
  const idpJar = new Map<string, string>();
  let url = new URL(`/.keygate/idp/${provider}/start?return_to=${encodeURIComponent(o.returnTo ?? '/')}`, keygate);
  for (let i = 0; i < 20; i++) {
    const ours = url.origin === keygate.origin;
    if (ours && url.pathname.endsWith('/callback')) o.editCallback?.(url);
    const jar = ours ? browser.cookies : idpJar;
    const target = ours ? `${g.url}${url.pathname}${url.search}` : url.href;
    const res = await request(target, {
      headers: { cookie: [...jar].map(([k, v]) => `${k}=${v}`).join('; '), accept: 'text/html' },
    });
    for (const c of ([] as string[]).concat((res.headers['set-cookie'] as string | string[] | undefined) ?? [])) {
      const [pair, ...attrs] = c.split(';');
      const eq = (pair ?? '').indexOf('=');
      const name = (pair ?? '').slice(0, eq).trim();
      const value = (pair ?? '').slice(eq + 1).trim();
      if (value === '' || attrs.some((a) => /max-age=0/i.test(a.trim()))) jar.delete(name);
      else jar.set(name, value);
    }
    const body = await res.body.text();
    const loc = res.headers.location as string | undefined;
    if (loc === undefined || res.statusCode < 300 || res.statusCode >= 400) {
      return { status: res.statusCode, at: `${url.pathname}${url.search}`, body };
    }
    const nextUrl = new URL(loc, url);
    if (nextUrl.origin === keygate.origin && !nextUrl.pathname.startsWith('/.keygate/idp/')) {
      return { status: res.statusCode, at: `${nextUrl.pathname}${nextUrl.search}`, body };
    }
    url = nextUrl;
  }
  throw new Error('too many redirects');
}

/** The key tap that completes a require-local-key login (what the login page does with ?idp=). */
async function tapAfterProvider(browser: BrowserClient, authenticator: SoftAuthenticator) {
  const options = await browser.post<Parameters<SoftAuthenticator['get']>[0]>(
    '/.keygate/api/webauthn/authentication/options',
    { idp: true },
  );
  if (options.status !== 200) return options;
  return browser.post<{ user?: { email: string }; returnTo?: string }>('/.keygate/api/webauthn/authentication/verify', {
    response: authenticator.get(options.body),
    idp: true,
  });
}

/** The first key, enrolled through the one-time link the provider login led to. */
async function enrollFirstKey(browser: BrowserClient, at: string): Promise<SoftAuthenticator> {
  const token = new URL(at, 'http://x').searchParams.get('token') as string;
  const authenticator = new SoftAuthenticator(g.gw.publicOrigin);
  await enroll(g, '', { browser, authenticator, token });
  return authenticator;
}

async function session(browser: BrowserClient) {
  return browser.get<{
    user: { email: string; groups: string[] };
    session: { method: string; idp?: string; uv: boolean };
  }>('/.keygate/api/session');
}

async function lastIdpEvent() {
  const events = await g.gw.store.listAuthEvents({ limit: 30 });
  return events.find((e) => e.kind === 'auth.idp_login');
}

describe('require-local-key', () => {
  let aliceKey: SoftAuthenticator;

  it('first login: the provider vouches, the person enrolls a key, and the session records both', async () => {
    const browser = browserFor(g);
    const walk = await providerLogin(browser, 'corp', 'u-alice', { returnTo: '/api/2.0/serving-endpoints' });
    expect(walk.at).toMatch(/^\/\.keygate\/enroll\?token=/);
    aliceKey = await enrollFirstKey(browser, walk.at);
    const s = await session(browser);
    expect(s.status).toBe(200);
    expect(s.body.user.email).toBe('alice@corp.example');
    expect(s.body.session).toMatchObject({ method: 'webauthn', idp: 'corp' });
    expect(s.body.user.groups).toEqual(['everyone', 'ml-admins']);
    // The provider's group ml-admins is bound to admin: the admin API answers.
    expect((await browser.get('/.keygate/api/admin/v1/users')).status).toBe(200);
    const user = await g.gw.store.getUserByEmail('alice@corp.example');
    expect(await g.gw.store.findUserIdentity('corp', 'u-alice')).toBe(user?.id);
  });

  it('next login: the provider, then a tap of her own key; the session has her provider groups', async () => {
    const browser = browserFor(g);
    const walk = await providerLogin(browser, 'corp', 'u-alice', { returnTo: '/somewhere' });
    expect(walk.at).toBe(`/.keygate/login?idp=corp&return_to=${encodeURIComponent('/somewhere')}`);
    // The login page learns whom it is finishing for.
    const pending = await browser.get<{ pending: { email: string; provider: string } }>('/.keygate/api/idp');
    expect(pending.body.pending).toEqual({ email: 'alice@corp.example', provider: 'Corp SSO' });
    // Before the tap there is no session.
    expect((await session(browser)).status).toBe(401);
    const tap = await tapAfterProvider(browser, aliceKey);
    expect(tap.status).toBe(200);
    const s = await session(browser);
    expect(s.body.session).toMatchObject({ method: 'webauthn', idp: 'corp' });
    expect(s.body.user.groups).toEqual(['everyone', 'ml-admins']);
    const login = (await g.gw.store.listAuthEvents({ limit: 5 })).find((e) => e.kind === 'auth.login');
    expect(login).toMatchObject({
      outcome: 'success',
      userId: (await g.gw.store.getUserByEmail('alice@corp.example'))?.id,
    });
    expect((await lastIdpEvent())?.outcome).toBe('success');
  });

  it("another person's key cannot finish Alice's provider login", async () => {
    const { authenticator: malloryKey } = await enroll(g, 'mallory@example.com', {
      token: await invite(g, 'mallory@example.com'),
    });
    const browser = browserFor(g);
    await providerLogin(browser, 'corp', 'u-alice');
    // Mallory's authenticator answers the ceremony bound to Alice's provider login with her own key.
    const options = await browser.post<Parameters<SoftAuthenticator['get']>[0]>(
      '/.keygate/api/webauthn/authentication/options',
      { idp: true },
    );
    const tap = await browser.post('/.keygate/api/webauthn/authentication/verify', {
      response: malloryKey.get({ ...options.body, allowCredentials: [] }),
      idp: true,
    });
    expect(tap.status).toBe(401);
    expect((await session(browser)).status).toBe(401);
    const [e] = await g.gw.store.listAuthEvents({ limit: 1 });
    expect(e).toMatchObject({ kind: 'auth.login', outcome: 'failure', reason: 'credential_not_allowed' });
  });

  it('without a provider login first, the tap has nothing to finish: 401', async () => {
    const r = await browserFor(g).post<{ error_code: string }>('/.keygate/api/webauthn/authentication/options', {
      idp: true,
    });
    expect(r.status).toBe(401);
    expect(r.body.error_code).toBe('UNAUTHENTICATED');
  });

  it('a person without the provider group loses the role: bob is no admin', async () => {
    const browser = browserFor(g);
    const walk = await providerLogin(browser, 'corp', 'u-bob');
    await enrollFirstKey(browser, walk.at);
    expect((await session(browser)).body.user.groups).toEqual(['everyone']);
    expect((await browser.get('/.keygate/api/admin/v1/users')).status).toBe(403);
  });
});

describe('trust-idp-mfa', () => {
  it('accepts the provider login when amr shows a hardware key: a session with no local key', async () => {
    const browser = browserFor(g);
    const walk = await providerLogin(browser, 'corp-mfa', 'u-hwk', { returnTo: '/after' });
    expect(walk.at, walk.body).toBe('/after');
    const s = await session(browser);
    expect(s.body.session).toMatchObject({ method: 'oidc', idp: 'corp-mfa', uv: true });
    expect(
      await g.gw.store.listCredentials((await g.gw.store.getUserByEmail('hana@corp.example'))?.id as string),
    ).toEqual([]);
  });

  it('a provider client that authenticates with private_key_jwt (no shared secret) works the same', async () => {
    const browser = browserFor(g);
    const walk = await providerLogin(browser, 'corp-jwt', 'u-hwk', { returnTo: '/after-jwt' });
    expect(walk.at, walk.body).toBe('/after-jwt');
    expect((await session(browser)).body.session).toMatchObject({ method: 'oidc', idp: 'corp-jwt' });
  });

  it('accepts an accepted acr', async () => {
    const browser = browserFor(g);
    await providerLogin(browser, 'corp-mfa', 'u-acr');
    expect((await session(browser)).body.session.method).toBe('oidc');
  });

  it('refuses a password-only login, saying what the provider must enforce', async () => {
    const browser = browserFor(g);
    const walk = await providerLogin(browser, 'corp-mfa', 'u-pwd');
    expect(walk.status).toBe(403);
    expect(walk.body).toContain('did not report phishing-resistant MFA');
    expect(walk.body).toContain('hwk');
    expect((await session(browser)).status).toBe(401);
    expect(await lastIdpEvent()).toMatchObject({ outcome: 'failure', reason: 'idp_mfa' });
  });
});

describe('refusals', () => {
  it('a callback whose state this browser did not start is refused (login CSRF)', async () => {
    const browser = browserFor(g);
    const walk = await providerLogin(browser, 'corp', 'u-alice', {
      editCallback: (u) => u.searchParams.set('state', 'forged-state-value'),
    });
    expect(walk.status).toBe(400);
    expect((await session(browser)).status).toBe(401);
    expect(await lastIdpEvent()).toMatchObject({ outcome: 'failure', reason: 'idp_state' });
  });

  it("a callback replayed in another browser (without the starter's cookie) is refused", async () => {
    const browser = browserFor(g);
    let callback: URL | undefined;
    await providerLogin(browser, 'corp', 'u-bob', {
      editCallback: (u) => {
        callback = new URL(u);
      },
    });
    const other = browserFor(g);
    const r = await request(`${g.url}${(callback as URL).pathname}${(callback as URL).search}`);
    expect(r.statusCode).toBe(400);
    await r.body.text();
    expect((await session(other)).status).toBe(401);
  });

  it('an ID token with another nonce is refused', async () => {
    idp.tamper({ nonce: 'not-the-nonce-keygate-sent' });
    const browser = browserFor(g);
    const walk = await providerLogin(browser, 'corp', 'u-alice');
    expect(walk.status).toBe(400);
    expect((await session(browser)).status).toBe(401);
    expect(await lastIdpEvent()).toMatchObject({ outcome: 'failure', reason: 'idp_token' });
  });

  it('an ID token from another issuer is refused', async () => {
    idp.tamper({ iss: 'https://evil.example.test' });
    const browser = browserFor(g);
    const walk = await providerLogin(browser, 'corp', 'u-alice');
    expect(walk.status).toBe(400);
    expect(await lastIdpEvent()).toMatchObject({ outcome: 'failure', reason: 'idp_token' });
  });

  it('an ID token for another client (aud) is refused', async () => {
    idp.tamper({ aud: 'someone-else' });
    const walk = await providerLogin(browserFor(g), 'corp', 'u-alice');
    expect(walk.status).toBe(400);
    expect(await lastIdpEvent()).toMatchObject({ outcome: 'failure', reason: 'idp_token' });
  });

  it('an email the provider has not verified is refused', async () => {
    const walk = await providerLogin(browserFor(g), 'corp', 'u-unverified');
    expect(walk.status).toBe(400);
    expect(walk.body).toContain('not verified');
    expect(await lastIdpEvent()).toMatchObject({ outcome: 'failure', reason: 'idp_email_unverified' });
    expect(await g.gw.store.getUserByEmail('una@corp.example')).toBeNull();
  });

  it('pre-approved enrollment: an unknown person outside the groups is refused; a member enrolls', async () => {
    const refused = await providerLogin(browserFor(g), 'corp-strict', 'u-outsider');
    expect(refused.status).toBe(403);
    expect(refused.body).toContain('not approved');
    expect(await g.gw.store.getUserByEmail('otto@corp.example')).toBeNull();
    expect(await lastIdpEvent()).toMatchObject({ outcome: 'failure', reason: 'idp_not_approved' });

    const browser = browserFor(g);
    const ok = await providerLogin(browser, 'corp-strict', 'u-insider');
    expect(ok.at).toMatch(/^\/\.keygate\/enroll\?token=/);
    await enrollFirstKey(browser, ok.at);
    expect((await session(browser)).body.session.idp).toBe('corp-strict');
  });

  it('an unknown provider name is 404', async () => {
    const r = await request(`${g.url}/.keygate/idp/nope/start`);
    expect(r.statusCode).toBe(404);
    await r.body.text();
  });
});

describe('groups after the TTL', () => {
  it('are re-confirmed with the refresh token: a lost group loses its role; a removed person loses the session', async () => {
    const browser = browserFor(g);
    const walk = await providerLogin(browser, 'corp', 'u-ttl');
    await enrollFirstKey(browser, walk.at);
    expect((await browser.get('/.keygate/api/admin/v1/users')).status).toBe(200);
    // The provider takes the group away; within the TTL Keygate still trusts the login's groups.
    idp.setGroups('u-ttl', ['everyone']);
    expect((await browser.get('/.keygate/api/admin/v1/users')).status).toBe(200);
    try {
      ahead = 6 * 60_000;
      expect((await browser.get('/.keygate/api/admin/v1/users')).status).toBe(403);
      expect((await session(browser)).body.user.groups).toEqual(['everyone']);
      // Removed at the provider: the next re-confirmation is refused, and the session ends.
      idp.remove('u-ttl');
      ahead = 12 * 60_000;
      expect((await session(browser)).status).toBe(401);
      expect(await lastIdpEvent()).toMatchObject({ outcome: 'failure', reason: 'idp_refused' });
    } finally {
      ahead = 0;
    }
  });
});
