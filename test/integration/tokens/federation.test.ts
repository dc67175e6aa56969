/**
 * Workload identity federation (RFC 8693 token exchange): a fake CI platform signs JWTs with
 * keys Keygate knows inline or fetches from a JWKS URL on 127.0.0.1; each trust maps them to a
 * secretless service principal. Covers the issued token (on the proxy, and its claims), every
 * audited refusal, client_credentials for secretless and secret-holding principals, and the
 * Databricks workspace path (host metadata audience, POST /oidc/v1/token).
 */
import { randomUUID } from 'node:crypto';
import {
  createRemoteJWKSet,
  decodeJwt,
  exportJWK,
  generateKeyPair,
  importJWK,
  type JWK,
  type JWTPayload,
  jwtVerify,
  SignJWT,
} from 'jose';
import * as oidc from 'openid-client';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../../src/lib/clock.js';
import type { AuthEventRecord } from '../../../src/store/types.js';
import {
  type RunningUpstream,
  type SeenRequest,
  startGateway,
  startRecordingUpstream,
  startUpstream,
  type TestGateway,
} from '../../helpers/index.js';

const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const JWT_TYPE = 'urn:ietf:params:oauth:token-type:jwt';
const MAIN = 'repo:acme/ml:ref:refs/heads/main';

type Alg = 'RS256' | 'ES256';
type Key = Awaited<ReturnType<typeof generateKeyPair>>['privateKey'];

/** A CI platform as Keygate sees it: an issuer whose tokens carry `aud` and are signed by `key`. */
interface Platform {
  iss: string;
  aud: string;
  alg: Alg;
  kid: string;
  key: Key;
}

interface Claims {
  sub?: string;
  iss?: string;
  aud?: string;
  /** Epoch seconds. */
  iat?: number;
  /** Epoch seconds; null: no exp at all. */
  exp?: number | null;
  /** Epoch seconds. */
  nbf?: number;
  /** More claims (set after the registered ones, so they can replace them). */
  extra?: Record<string, unknown>;
  /** null: no jti at all. */
  jti?: string | null;
  key?: Key;
  kid?: string;
  alg?: string;
}

const nowS = () => Math.floor(Date.now() / 1000);

/** A platform token like GitHub Actions' OIDC token: five minutes, a jti, the workload in `sub`. */
async function platformToken(p: Platform, c: Claims = {}): Promise<string> {
  const iat = c.iat ?? nowS();
  const payload: JWTPayload = {
    iss: c.iss ?? p.iss,
    aud: c.aud ?? p.aud,
    sub: c.sub ?? MAIN,
    iat,
    ...(c.exp === null ? {} : { exp: c.exp ?? iat + 300 }),
    ...(c.nbf === undefined ? {} : { nbf: c.nbf }),
    ...(c.jti === null ? {} : { jti: c.jti ?? randomUUID() }),
    ...c.extra,
  };
  return new SignJWT(payload)
    .setProtectedHeader({ alg: c.alg ?? p.alg, kid: c.kid ?? p.kid, typ: 'JWT' })
    .sign(c.key ?? p.key);
}

async function publicJwk(key: Key, kid: string, alg: Alg): Promise<Record<string, unknown>> {
  const jwk: JWK = await exportJWK(key);
  return { ...jwk, kid, alg, use: 'sig' };
}

interface Exchange {
  status: number;
  body: Record<string, unknown>;
}

function form(fields: Record<string, string>): string {
  return new URLSearchParams(fields).toString();
}

async function postForm(url: string, fields: Record<string, string>, headers: Record<string, string> = {}) {
  const res = await request(url, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
    body: form(fields),
  });
  return { status: res.statusCode, body: (await res.body.json()) as Record<string, unknown> };
}

/** The token exchange exactly as a CI job (or the Databricks SDK) sends it. */
function exchange(base: string, subjectToken: string, clientId: string, path = '/.keygate/oauth/token') {
  return postForm(`${base}${path}`, {
    grant_type: TOKEN_EXCHANGE,
    subject_token: subjectToken,
    subject_token_type: JWT_TYPE,
    scope: 'all-apis',
    client_id: clientId,
  }) as Promise<Exchange>;
}

/** The auth events `act` wrote (the store lists newest first). */
async function eventsDuring(g: TestGateway, act: () => Promise<unknown>): Promise<AuthEventRecord[]> {
  const before = new Set((await g.gw.store.listAuthEvents({ limit: 100 })).map((e) => e.id));
  await act();
  return (await g.gw.store.listAuthEvents({ limit: 20 })).filter((e) => !before.has(e.id));
}

// ---------------------------------------------------------------------------------------------

const INLINE_ISS = 'https://ci-inline.example.test';
const REMOTE_ISS = 'https://ci-remote.example.test';
const SHARED_ISS = 'https://ci-shared.example.test';

let up: RunningUpstream & { seen: SeenRequest[] };
let jwksServer: RunningUpstream;
let jwksHits = 0;
let g: TestGateway;
let inline: Platform;
let remote: Platform;
let shared: Platform;
/** Another key pair that no trust knows. */
let rogue: { rs: Key; es: Key };
let inlineAsPss: Key;
let deployer: string;
let builder: string;
let teamA: string;
let teamB: string;

beforeAll(async () => {
  const rsa = await generateKeyPair('RS256', { extractable: true });
  const ec = await generateKeyPair('ES256');
  const rsaShared = await generateKeyPair('RS256');
  rogue = { rs: (await generateKeyPair('RS256')).privateKey, es: (await generateKeyPair('ES256')).privateKey };
  // The trusted RSA key itself, for signing with an algorithm no trust accepts.
  inlineAsPss = (await importJWK(await exportJWK(rsa.privateKey), 'PS256')) as Key;
  inline = { iss: INLINE_ISS, aud: 'keygate-inline', alg: 'RS256', kid: 'inline-1', key: rsa.privateKey };
  remote = { iss: REMOTE_ISS, aud: 'keygate-remote', alg: 'ES256', kid: 'remote-1', key: ec.privateKey };
  shared = { iss: SHARED_ISS, aud: 'keygate-shared', alg: 'RS256', kid: 'shared-1', key: rsaShared.privateKey };

  const remoteKeys = { keys: [await publicJwk(ec.publicKey, remote.kid, 'ES256')] };
  jwksServer = await startUpstream((req, res) => {
    if (req.url !== '/.well-known/jwks') {
      res.writeHead(404).end();
      return;
    }
    jwksHits++;
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(remoteKeys));
  });
  up = await startRecordingUpstream();
  const sharedKeys = { keys: [await publicJwk(rsaShared.publicKey, shared.kid, 'RS256')] };
  g = await startGateway(
    {
      upstreams: { api: { url: up.url, preset: 'generic', credential: { type: 'none' }, rules: [] } },
      tokens: {
        federation: [
          {
            name: 'gha-inline',
            issuer: INLINE_ISS,
            jwks: { keys: [await publicJwk(rsa.publicKey, inline.kid, 'RS256')] },
            audience: inline.aud,
            subject: MAIN,
            servicePrincipal: 'gha-deployer',
          },
          {
            name: 'gha-remote',
            issuer: REMOTE_ISS,
            jwksUrl: `${jwksServer.url}/.well-known/jwks`,
            audience: remote.aud,
            subject: 'repo:acme/ml:ref:refs/heads/*',
            servicePrincipal: 'gha-builder',
          },
          // One issuer, two teams: the same subject pattern trusted for two principals.
          {
            name: 'shared-a',
            issuer: SHARED_ISS,
            jwks: sharedKeys,
            audience: shared.aud,
            subject: 'repo:acme/*',
            servicePrincipal: 'team-a',
          },
          {
            name: 'shared-b',
            issuer: SHARED_ISS,
            jwks: sharedKeys,
            audience: shared.aud,
            subject: 'repo:acme/*',
            servicePrincipal: 'team-b',
          },
        ],
      },
    },
    { identifiers: [] },
  );
  const create = async (name: string) =>
    (await g.gw.oauth.sps.create({ name, roles: ['ml-reader'], createdBy: 'test', withSecret: false })).sp.id;
  deployer = await create('gha-deployer');
  builder = await create('gha-builder');
  teamA = await create('team-a');
  teamB = await create('team-b');
});

afterAll(async () => {
  await g?.close();
  await up?.close();
  await jwksServer?.close();
});

/** The request reaches the upstream with this token (and only then). */
async function proxiedWith(token: string): Promise<number> {
  const before = up.seen.length;
  const res = await request(`${g.url}/anything`, { headers: { authorization: `Bearer ${token}` } });
  await res.body.text();
  expect(up.seen.length).toBe(res.statusCode === 200 ? before + 1 : before);
  return res.statusCode;
}

describe('federation: success', () => {
  it('an inline-jwks trust (RS256) issues the principal a short token the proxy accepts', async () => {
    const subject = await platformToken(inline);
    const remaining = (decodeJwt(subject).exp as number) - nowS();
    const events = await eventsDuring(g, async () => {
      const r = await exchange(g.url, subject, deployer);
      expect(r.status).toBe(200);
      const body = r.body;
      expect(body.token_type).toBe('Bearer');
      expect(body.issued_token_type).toBe('urn:ietf:params:oauth:token-type:access_token');
      expect(body.expires_in).toBeGreaterThan(0);
      expect(body.expires_in).toBeLessThanOrEqual(remaining);
      expect(body.expires_in).toBeLessThanOrEqual(900);

      const token = body.access_token as string;
      // Signed by Keygate, verifiable with its published keys, an RFC 9068 access token.
      const { payload, protectedHeader } = await jwtVerify(
        token,
        createRemoteJWKSet(new URL(`${g.url}/.keygate/oauth/jwks`)),
        { issuer: g.gw.publicOrigin, typ: 'at+jwt', algorithms: ['ES256'] },
      );
      expect(protectedHeader.typ).toBe('at+jwt');
      expect(payload).toMatchObject({
        sub: deployer,
        client_id: deployer,
        kg_pt: 'sp',
        kg_gty: 'token-exchange',
        kg_fed: 'gha-inline',
        kg_wl: MAIN,
        name: 'gha-deployer',
        roles: ['ml-reader'],
      });
      expect(String(payload.scope).split(' ')).toContain('all-apis');
      expect((payload.exp as number) - (payload.iat as number)).toBe(body.expires_in);
      expect(payload.exp as number).toBeLessThanOrEqual(decodeJwt(subject).exp as number);

      expect(await proxiedWith(token)).toBe(200);
    });
    const issued = events.filter((e) => e.kind === 'token.issued');
    expect(issued).toHaveLength(1);
    expect(issued[0]).toMatchObject({ outcome: 'success', userId: deployer });
    expect(events.filter((e) => e.kind === 'token.refused')).toEqual([]);
  });

  it('a token with an hour left is capped at the machine lifetime (900 s)', async () => {
    const subject = await platformToken(inline, { exp: nowS() + 3600 });
    const r = await exchange(g.url, subject, deployer);
    expect(r.status).toBe(200);
    expect(r.body.expires_in).toBeLessThanOrEqual(900);
    expect(r.body.expires_in).toBeGreaterThan(890);
  });

  it('a token with two minutes left gives a token that ends with it', async () => {
    const subject = await platformToken(inline, { exp: nowS() + 120 });
    const r = await exchange(g.url, subject, deployer);
    expect(r.status).toBe(200);
    expect(r.body.expires_in).toBeLessThanOrEqual(120);
    expect(r.body.expires_in).toBeGreaterThan(100);
    const claims = decodeJwt(r.body.access_token as string);
    expect(claims.exp as number).toBeLessThanOrEqual(decodeJwt(subject).exp as number);
  });

  it('a jwksUrl trust (ES256, keys fetched from 127.0.0.1) with a `*` subject accepts any branch, through openid-client', async () => {
    const config = await oidc.discovery(new URL(g.gw.publicOrigin), builder, undefined, oidc.None(), {
      execute: [oidc.allowInsecureRequests],
    });
    expect(config.serverMetadata().grant_types_supported).toContain(TOKEN_EXCHANGE);
    const branch = 'repo:acme/ml:ref:refs/heads/feature/new-model';
    const subject = await platformToken(remote, { sub: branch });
    const tokens = await oidc.genericGrantRequest(config, TOKEN_EXCHANGE, {
      subject_token: subject,
      subject_token_type: JWT_TYPE,
      scope: 'all-apis',
    });
    expect(tokens.token_type.toLowerCase()).toBe('bearer');
    expect(jwksHits).toBeGreaterThanOrEqual(1);
    const claims = decodeJwt(tokens.access_token) as JWTPayload & Record<string, unknown>;
    expect(claims).toMatchObject({ sub: builder, kg_pt: 'sp', kg_fed: 'gha-remote', kg_wl: branch });
    expect(tokens.expires_in).toBeLessThanOrEqual(300);
    expect(await proxiedWith(tokens.access_token)).toBe(200);
  });

  it('of two trusts for one issuer and subject, the one for the asking principal is used', async () => {
    // Each principal's trust is checked: a matching trust for another principal must not
    // block this one (Databricks federation policies, too, belong to one service principal).
    for (const [sp, trust] of [
      [teamA, 'shared-a'],
      [teamB, 'shared-b'],
    ] as const) {
      const r = await exchange(g.url, await platformToken(shared, { sub: 'repo:acme/ml:ref:refs/heads/main' }), sp);
      expect(r.body.error).toBeUndefined();
      expect(r.status).toBe(200);
      expect(decodeJwt(r.body.access_token as string)).toMatchObject({ sub: sp, kg_fed: trust });
    }
  });
});

describe('federation: refusals are invalid_grant and audited with their reason', () => {
  /** Exchange once, expect 400 invalid_grant and exactly one `token.refused` with `reason`. */
  async function refused(subject: string, clientId: string, reason: string, who: string = clientId) {
    let r: Exchange | undefined;
    const events = await eventsDuring(g, async () => {
      r = await exchange(g.url, subject, clientId);
    });
    expect(r?.status).toBe(400);
    expect(r?.body.error).toBe('invalid_grant');
    expect(r?.body.access_token).toBeUndefined();
    expect(events.map((e) => [e.kind, e.outcome, e.reason, e.userId])).toEqual([
      ['token.refused', 'failure', reason, who],
    ]);
  }

  it('an issuer no trust names', async () => {
    await refused(await platformToken(inline, { iss: 'https://evil.example.test' }), deployer, 'federation_issuer');
  });

  it('a subject other than the exact one trusted', async () => {
    await refused(
      await platformToken(inline, { sub: 'repo:acme/ml:ref:refs/heads/dev' }),
      deployer,
      'federation_subject',
    );
    await refused(
      await platformToken(inline, { sub: 'repo:acme/other:ref:refs/heads/main' }),
      deployer,
      'federation_subject',
    );
  });

  it('a subject outside a `*` pattern (a tag, a pull request, a look-alike repo)', async () => {
    for (const sub of [
      'repo:acme/ml:ref:refs/tags/v1.0.0',
      'repo:acme/ml:pull_request',
      'repo:acme/ml-fork:ref:refs/heads/main',
      'xrepo:acme/ml:ref:refs/heads/main',
    ]) {
      await refused(await platformToken(remote, { sub }), builder, 'federation_subject');
    }
  });

  it('another audience', async () => {
    await refused(await platformToken(inline, { aud: 'some-other-service' }), deployer, 'federation_audience');
    // The audience of another trust is not this trust's.
    await refused(await platformToken(inline, { aud: remote.aud }), deployer, 'federation_audience');
  });

  it('an expired platform token', async () => {
    const iat = nowS() - 600;
    await refused(await platformToken(inline, { iat, exp: iat + 300 }), deployer, 'federation_expired');
    await refused(await platformToken(remote, { iat, exp: nowS() - 1 }), builder, 'federation_expired');
  });

  it('a token signed by another key (same kid, unknown kid), or with an algorithm not allowed', async () => {
    await refused(await platformToken(inline, { key: rogue.rs }), deployer, 'federation_signature');
    await refused(await platformToken(inline, { key: rogue.rs, kid: 'rogue' }), deployer, 'federation_signature');
    await refused(await platformToken(remote, { key: rogue.es }), builder, 'federation_signature');
    // The trusted key, but PS256: only RS256 and ES256 are accepted.
    await refused(await platformToken(inline, { alg: 'PS256', key: inlineAsPss }), deployer, 'federation_signature');
  });

  it('a signed token without exp, or with a sub that is not a string, is malformed', async () => {
    await refused(await platformToken(inline, { exp: null }), deployer, 'federation_malformed');
    // A `*` pattern must not match a non-string subject by its string form ('repo:acme/ml').
    await refused(await platformToken(shared, { extra: { sub: ['repo:acme/ml'] } }), teamA, 'federation_malformed');
  });

  it('a token not valid yet (nbf in the future) is outside its validity window', async () => {
    await refused(await platformToken(inline, { nbf: nowS() + 120 }), deployer, 'federation_expired');
  });

  it('the same platform token presented twice', async () => {
    const subject = await platformToken(inline);
    const first = await exchange(g.url, subject, deployer);
    expect(first.status).toBe(200);
    await refused(subject, deployer, 'federation_replayed', deployer);
    // Another token with the same issuer and jti is the same token.
    const jti = randomUUID();
    expect((await exchange(g.url, await platformToken(inline, { jti }), deployer)).status).toBe(200);
    await refused(await platformToken(inline, { jti }), deployer, 'federation_replayed');
  });

  it('a narrowed scope stays narrowed (all-apis is not added)', async () => {
    const r = await postForm(`${g.url}/.keygate/oauth/token`, {
      grant_type: TOKEN_EXCHANGE,
      subject_token: await platformToken(inline),
      subject_token_type: JWT_TYPE,
      client_id: deployer,
      scope: 'serving:invoke/fraud-* not-a-scope',
    });
    expect(r.status).toBe(200);
    const claims = JSON.parse(Buffer.from(String(r.body.access_token).split('.')[1] as string, 'base64url').toString());
    expect(claims.scope).toBe('serving:invoke/fraud-*');
  });

  it('a request for an unknown resource is invalid_target and does not spend the platform token', async () => {
    const subject = await platformToken(inline);
    const bad = await postForm(`${g.url}/.keygate/oauth/token`, {
      grant_type: TOKEN_EXCHANGE,
      subject_token: subject,
      subject_token_type: JWT_TYPE,
      client_id: deployer,
      resource: 'https://elsewhere.example.test/',
    });
    expect(bad.status).toBe(400);
    expect(bad.body.error).toBe('invalid_target');
    expect((await exchange(g.url, subject, deployer)).status).toBe(200);
  });

  it('a platform token without a jti is still exchanged only once', async () => {
    const subject = await platformToken(remote, { jti: null });
    expect((await exchange(g.url, subject, builder)).status).toBe(200);
    await refused(subject, builder, 'federation_replayed');
  });

  it('a valid token for a trust whose service principal is not the client asking', async () => {
    // gha-inline maps to gha-deployer; gha-builder presents a genuine token for it.
    await refused(await platformToken(inline), builder, 'federation_client', builder);
    // And the token was not used up by the refused attempt: its own principal can still exchange it.
    const subject = await platformToken(inline);
    await refused(subject, builder, 'federation_client');
    expect((await exchange(g.url, subject, deployer)).status).toBe(200);
  });

  it('a malformed request is invalid_request; an unknown client is invalid_client', async () => {
    const noType = await postForm(`${g.url}/.keygate/oauth/token`, {
      grant_type: TOKEN_EXCHANGE,
      subject_token: await platformToken(inline),
      client_id: deployer,
    });
    expect(noType.status).toBe(400);
    expect(noType.body.error).toBe('invalid_request');
    const unknown = await exchange(g.url, await platformToken(inline), randomUUID());
    expect(unknown.status).toBe(401);
    expect(unknown.body.error).toBe('invalid_client');
  });
});

describe('client_credentials and secrets', () => {
  const token = `/.keygate/oauth/token`;

  it('a secret-holding principal gets no token without its secret, and one with it', async () => {
    const { sp, secret } = await g.gw.oauth.sps.create({
      name: 'nightly-job',
      roles: ['ml-reader'],
      createdBy: 'test',
    });
    expect(secret).not.toBeNull();
    const bare = await postForm(`${g.url}${token}`, { grant_type: 'client_credentials', client_id: sp.id });
    expect(bare.status).toBe(401);
    expect(bare.body.error).toBe('invalid_client');
    expect(bare.body.access_token).toBeUndefined();

    const basic = (s: string) => ({ authorization: `Basic ${Buffer.from(`${sp.id}:${s}`).toString('base64')}` });
    const wrong = await postForm(`${g.url}${token}`, { grant_type: 'client_credentials' }, basic('kgs_wrong'));
    expect(wrong.status).toBe(401);
    expect(wrong.body.error).toBe('invalid_client');

    // Control: the same request with the real secret succeeds.
    const ok = await postForm(
      `${g.url}${token}`,
      { grant_type: 'client_credentials' },
      basic(secret?.secret as string),
    );
    expect(ok.status).toBe(200);
    expect(typeof ok.body.access_token).toBe('string');
  });

  it('a federation-only principal cannot use client_credentials at all', async () => {
    const bare = await postForm(`${g.url}${token}`, { grant_type: 'client_credentials', client_id: deployer });
    expect(bare.status).toBe(400);
    // RFC 6749 §5.2 names this unauthorized_client; oidc-provider 9 answers invalid_request.
    expect(bare.body.error).toBe('invalid_request');
    expect(bare.body.error_description).toBe('requested grant type is not allowed for this client');
    expect(bare.body.access_token).toBeUndefined();
    // Nor by inventing a secret: it has none, so client_secret_basic is not its method.
    const withSecret = await postForm(
      `${g.url}${token}`,
      { grant_type: 'client_credentials' },
      { authorization: `Basic ${Buffer.from(`${deployer}:made-up`).toString('base64')}` },
    );
    expect(withSecret.status).toBe(401);
    expect(withSecret.body.error).toBe('invalid_client');
  });
});

describe('two trusts with the same name', () => {
  it("never verifies one trust's tokens with the other's keys", async () => {
    const a = await generateKeyPair('ES256');
    const b = await generateKeyPair('RS256');
    const pa: Platform = { iss: 'https://ci-a.example.test', aud: 'kg', alg: 'ES256', kid: 'k1', key: a.privateKey };
    const pb: Platform = { iss: 'https://ci-b.example.test', aud: 'kg', alg: 'RS256', kid: 'k1', key: b.privateKey };
    const trust = async (p: Platform, pub: Key, sp: string) => ({
      name: 'ci',
      issuer: p.iss,
      jwks: { keys: [await publicJwk(pub, p.kid, p.alg)] },
      audience: p.aud,
      subject: MAIN,
      servicePrincipal: sp,
    });
    const dup = await startGateway(
      {
        upstreams: { api: { url: up.url, preset: 'generic', credential: { type: 'none' }, rules: [] } },
        tokens: { federation: [await trust(pa, a.publicKey, 'ci-a'), await trust(pb, b.publicKey, 'ci-b')] },
      },
      { identifiers: [] },
    ).catch((e: unknown) => e as Error);
    if (dup instanceof Error) {
      // Refusing the configuration is as good: then no key set can be confused.
      expect(String(dup)).toMatch(/federation/);
      return;
    }
    try {
      const create = async (name: string) =>
        (await dup.gw.oauth.sps.create({ name, roles: ['ml-reader'], createdBy: 'test', withSecret: false })).sp.id;
      const idA = await create('ci-a');
      const idB = await create('ci-b');
      // Each token verifies with its own trust's keys, whichever trust was used first.
      expect((await exchange(dup.url, await platformToken(pa), idA)).status).toBe(200);
      const rb = await exchange(dup.url, await platformToken(pb), idB);
      expect(rb.body.error).toBeUndefined();
      expect(rb.status).toBe(200);
    } finally {
      await dup.close();
    }
  });
});

describe('as time passes (ManualClock)', () => {
  it('the lifetime follows the platform token to the second, and an expired token never becomes fresh again', async () => {
    const clock = new ManualClock();
    const kp = await generateKeyPair('ES256');
    const p: Platform = {
      iss: 'https://ci-clock.example.test',
      aud: 'kg',
      alg: 'ES256',
      kid: 'c1',
      key: kp.privateKey,
    };
    const tg = await startGateway(
      {
        upstreams: { api: { url: up.url, preset: 'generic', credential: { type: 'none' }, rules: [] } },
        tokens: {
          federation: [
            {
              name: 'clocked',
              issuer: p.iss,
              jwks: { keys: [await publicJwk(kp.publicKey, p.kid, p.alg)] },
              audience: p.aud,
              subject: MAIN,
              servicePrincipal: 'clocked-sp',
            },
          ],
        },
      },
      { identifiers: [], clock },
    );
    try {
      const id = (
        await tg.gw.oauth.sps.create({ name: 'clocked-sp', roles: ['ml-reader'], createdBy: 'test', withSecret: false })
      ).sp.id;
      const iat = clock.now() / 1000;
      const subject = await platformToken(p, { iat, exp: iat + 300 });
      const first = await exchange(tg.url, subject, id);
      expect(first.status).toBe(200);
      expect(first.body.expires_in).toBe(300);

      const reasonOf = async () => {
        let r: Exchange | undefined;
        const ev = await eventsDuring(tg, async () => {
          r = await exchange(tg.url, subject, id);
        });
        expect(r?.status).toBe(400);
        expect(r?.body.error).toBe('invalid_grant');
        return ev.map((e) => e.reason);
      };
      // The last millisecond of its life: still remembered as used.
      clock.advance(300_000 - 1);
      expect(await reasonOf()).toEqual(['federation_replayed']);
      // At exp the replay record may go, and the token is expired: no window between the two.
      clock.advance(1);
      expect(await reasonOf()).toEqual(['federation_expired']);
      clock.advance(3_600_000);
      expect(await reasonOf()).toEqual(['federation_expired']);

      // A fresh token a minute before its end gives a one-minute token.
      const late = clock.now() / 1000;
      const short = await platformToken(p, { iat: late - 240, exp: late + 60 });
      const r = await exchange(tg.url, short, id);
      expect(r.status).toBe(200);
      expect(r.body.expires_in).toBe(60);
    } finally {
      await tg.close();
    }
  });
});

describe('the Databricks workspace path', () => {
  const PUBLIC = 'https://keygate.example.test';
  let dbxUp: RunningUpstream & { seen: SeenRequest[] };
  let dg: TestGateway;
  let platform: Platform;
  let spId: string;

  beforeAll(async () => {
    const kp = await generateKeyPair('ES256');
    // The audience the SDK uses by default: the first of the host metadata's audiences.
    platform = {
      iss: 'https://ci-dbx.example.test',
      aud: `${PUBLIC}/oidc/v1/token`,
      alg: 'ES256',
      kid: 'dbx-1',
      key: kp.privateKey,
    };
    dbxUp = await startRecordingUpstream();
    dg = await startGateway(
      {
        publicUrl: PUBLIC,
        upstreams: { workspace: { url: dbxUp.url, preset: 'databricks', credential: { type: 'none' } } },
        tokens: {
          federation: [
            {
              name: 'dbx-wif',
              issuer: platform.iss,
              jwks: { keys: [await publicJwk(kp.publicKey, platform.kid, 'ES256')] },
              audience: platform.aud,
              subject: 'repo:acme/ml:environment:prod',
              servicePrincipal: 'dbx-deployer',
            },
          ],
        },
      },
      { identifiers: [] },
    );
    spId = (
      await dg.gw.oauth.sps.create({ name: 'dbx-deployer', roles: ['ml-reader'], createdBy: 'test', withSecret: false })
    ).sp.id;
  });
  afterAll(async () => {
    await dg?.close();
    await dbxUp?.close();
  });

  it('host metadata names the federation audience and /oidc/v1/token exchanges a platform token', async () => {
    const meta = await request(`${dg.url}/.well-known/databricks-config`);
    expect(meta.statusCode).toBe(200);
    const m = (await meta.body.json()) as Record<string, unknown>;
    expect(m.token_federation_default_oidc_audiences).toEqual([`${PUBLIC}/oidc/v1/token`]);
    const audience = (m.token_federation_default_oidc_audiences as string[])[0] as string;

    const subject = await platformToken({ ...platform, aud: audience }, { sub: 'repo:acme/ml:environment:prod' });
    const r = await exchange(dg.url, subject, spId, '/oidc/v1/token');
    expect(r.status).toBe(200);
    expect(r.body.token_type).toBe('Bearer');
    expect(r.body.expires_in).toBeLessThanOrEqual(300);
    const claims = decodeJwt(r.body.access_token as string);
    expect(claims).toMatchObject({
      iss: PUBLIC,
      sub: spId,
      kg_pt: 'sp',
      kg_fed: 'dbx-wif',
      kg_wl: 'repo:acme/ml:environment:prod',
    });

    // The same refusals, audited, on this path too.
    const events = await eventsDuring(dg, async () => {
      const again = await exchange(dg.url, subject, spId, '/oidc/v1/token');
      expect(again.status).toBe(400);
      expect(again.body.error).toBe('invalid_grant');
    });
    expect(events.map((e) => [e.kind, e.reason])).toEqual([['token.refused', 'federation_replayed']]);
  });

  it('the exchanged token is accepted on the workspace API', async () => {
    const subject = await platformToken(platform, { sub: 'repo:acme/ml:environment:prod' });
    const r = await exchange(dg.url, subject, spId, '/oidc/v1/token');
    expect(r.status).toBe(200);
    const before = dbxUp.seen.length;
    const res = await request(`${dg.url}/api/2.0/serving-endpoints`, {
      headers: { authorization: `Bearer ${r.body.access_token as string}` },
    });
    const text = await res.body.text();
    expect(res.statusCode, text).toBe(200);
    expect(dbxUp.seen.length).toBe(before + 1);
    expect(dbxUp.seen.at(-1)?.url).toBe('/api/2.0/serving-endpoints');
  });
});
