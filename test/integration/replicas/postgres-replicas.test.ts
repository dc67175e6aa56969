/**
 * Two gateways (replicas behind one public URL) on one throwaway PostgreSQL: a WebAuthn
 * challenge issued by one replica completes on the other, once; a login's session works on
 * both; a session ended on one is refused by the other within a second; the same refresh token
 * raced on both replicas succeeds exactly once and the reuse ends its family.
 */
import { createHash, randomUUID } from 'node:crypto';
import { decodeProtectedHeader, exportJWK, generateKeyPair, SignJWT } from 'jose';
import { request } from 'undici';
import * as oidc from 'openid-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BrowserClient } from '../../helpers/browser-client.js';
import { freePort, startGateway, startRecordingUpstream, type TestGateway, trueWithin } from '../../helpers/index.js';
import { assertionGrant, clientAssertion, clientCredentials, walkAuthorization } from '../../helpers/oauth.js';
import { enroll, invite, login } from '../../helpers/people.js';
import { postgresAvailable, startPostgres, type TestPostgres } from '../../helpers/postgres.js';
import { SoftAuthenticator } from '../../helpers/soft-authenticator.js';

const hasPostgres = postgresAvailable();
let pg: TestPostgres;
let a: TestGateway;
let b: TestGateway;
let up: Awaited<ReturnType<typeof startRecordingUpstream>>;
let publicUrl: string;
const REDIRECT = 'http://127.0.0.1:45679/callback';

beforeAll(async () => {
  if (!hasPostgres) return;
  pg = await startPostgres();
  up = await startRecordingUpstream();
  const port = await freePort();
  publicUrl = `http://localhost:${port}`;
  const config = {
    publicUrl,
    store: { driver: 'postgres' as const, url: pg.url },
    upstreams: { ws: { url: up.url, preset: 'databricks' as const, credential: { type: 'none' as const } } },
  };
  // The store comes from the config (no in-memory SQLite): both replicas share PostgreSQL.
  // Keys are re-read every 500 ms here (30 s by default).
  a = await startGateway({ ...config, listen: { host: '127.0.0.1', port } }, { identifiers: [], keyReloadMs: 500 });
  b = await startGateway(config, { identifiers: [], keyReloadMs: 500 });
}, 60_000);
afterAll(async () => {
  await a?.close();
  await b?.close();
  await up?.close();
  await pg?.stop();
});

/** The same browser (cookies) talking to the other replica. */
function on(g: TestGateway, browser: BrowserClient): BrowserClient {
  const other = new BrowserClient(g.url, publicUrl);
  for (const [k, v] of browser.cookies) other.cookies.set(k, v);
  return other;
}

describe.skipIf(!hasPostgres)('replicas on one PostgreSQL', () => {
  it('a registration challenge from replica B completes on replica A, and only once', async () => {
    expect(a.gw.store.driver).toBe('postgres');
    const token = await invite(a, 'alice@example.com', ['ml-reader']);
    const onB = new BrowserClient(b.url, publicUrl);
    const authenticator = new SoftAuthenticator(publicUrl);
    const options = await onB.post<Parameters<SoftAuthenticator['create']>[0]>(
      '/.keygate/api/webauthn/registration/options',
      {
        enrollmentToken: token,
      },
    );
    expect(options.status).toBe(200);
    const response = authenticator.create(options.body);
    const onA = on(a, onB);
    const done = await onA.post('/.keygate/api/webauthn/registration/verify', {
      response,
      enrollmentToken: token,
      name: 'k',
    });
    expect(done.status).toBe(200);
    // The challenge and the enrollment link are spent for every replica.
    const again = await on(b, onB).post('/.keygate/api/webauthn/registration/verify', {
      response,
      enrollmentToken: token,
      name: 'k',
    });
    expect(again.status).toBe(400);
    expect(
      (await a.gw.store.listCredentials((await a.gw.store.getUserByEmail('alice@example.com'))?.id as string)).length,
    ).toBe(1);
  });

  it('a login whose options came from A completes on B; the session works on both; ended on A, B refuses within a second', async () => {
    const { authenticator } = await enroll(a, 'bob@example.com', { token: await invite(a, 'bob@example.com') });
    const browser = new BrowserClient(a.url, publicUrl);
    const options = await browser.post<Parameters<SoftAuthenticator['get']>[0]>(
      '/.keygate/api/webauthn/authentication/options',
      {},
    );
    const onB = on(b, browser);
    const verified = await onB.post('/.keygate/api/webauthn/authentication/verify', {
      response: authenticator.get(options.body),
    });
    expect(verified.status).toBe(200);
    const onA = on(a, onB);
    expect((await onA.get('/.keygate/api/session')).status).toBe(200);
    expect((await onB.get('/.keygate/api/session')).status).toBe(200);
    // A logout on A: B (which has the session cached) refuses it within a second.
    expect((await onA.post('/.keygate/api/session/logout', {})).status).toBeLessThan(300);
    expect(
      await trueWithin(1_000, async () => (await onB.get('/.keygate/api/session')).status === 401),
      'refused on B within a second',
    ).toBe(true);
    // And a second login (another replica's challenge again) still works: nothing is stuck.
    expect((await login(new BrowserClient(b.url, publicUrl), authenticator)).status).toBe(200);
  });

  it('the same refresh token raced on both replicas: exactly one succeeds, and the reuse ends the family', async () => {
    const { browser, authenticator } = await enroll(a, 'carol@example.com', {
      token: await invite(a, 'carol@example.com'),
    });
    const cliA = await oidc.discovery(new URL(publicUrl), 'keygate-cli', undefined, oidc.None(), {
      execute: [oidc.allowInsecureRequests],
      [oidc.customFetch]: (url: string, init: oidc.CustomFetchOptions) =>
        fetch(url.replace(publicUrl, a.url), init as unknown as RequestInit),
    });
    const cliB = await oidc.discovery(new URL(publicUrl), 'keygate-cli', undefined, oidc.None(), {
      execute: [oidc.allowInsecureRequests],
      [oidc.customFetch]: (url: string, init: oidc.CustomFetchOptions) =>
        fetch(url.replace(publicUrl, b.url), init as unknown as RequestInit),
    });
    const verifier = oidc.randomPKCECodeVerifier();
    const state = oidc.randomState();
    const start = oidc.buildAuthorizationUrl(cliA, {
      redirect_uri: REDIRECT,
      scope: 'openid offline_access',
      code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
      state,
    });
    const walk = await walkAuthorization(a, browser, start, authenticator, REDIRECT);
    const key = await oidc.randomDPoPKeyPair('ES256', { extractable: true });
    const tokens = await oidc.authorizationCodeGrant(
      cliA,
      walk.callback,
      { pkceCodeVerifier: verifier, expectedState: state },
      undefined,
      {
        DPoP: oidc.getDPoPHandle(cliA, key),
      },
    );
    const rt = tokens.refresh_token as string;
    const results = await Promise.allSettled([
      oidc.refreshTokenGrant(cliA, rt, undefined, { DPoP: oidc.getDPoPHandle(cliA, key) }),
      oidc.refreshTokenGrant(cliB, rt, undefined, { DPoP: oidc.getDPoPHandle(cliB, key) }),
    ]);
    const ok = results.filter((r) => r.status === 'fulfilled') as PromiseFulfilledResult<oidc.TokenEndpointResponse>[];
    expect(ok).toHaveLength(1);
    expect(results.find((r) => r.status === 'rejected')).toMatchObject({ reason: { error: 'invalid_grant' } });
    // The reuse revoked the family: the winner's new refresh token is dead too.
    await expect(
      oidc.refreshTokenGrant(cliB, ok[0]?.value.refresh_token as string, undefined, {
        DPoP: oidc.getDPoPHandle(cliB, key),
      }),
    ).rejects.toMatchObject({ error: 'invalid_grant' });
  });

  it('one client assertion (private_key_jwt) sent to both replicas at once gets one token: its jti is claimed once', async () => {
    const { publicKey, privateKey } = await generateKeyPair('ES256', { extractable: true });
    const { sp } = await a.gw.oauth.sps.create({
      name: 'raced-bot',
      roles: ['ml-reader'],
      createdBy: 'test',
      jwks: { keys: [{ ...(await exportJWK(publicKey)), kid: 'race-1', alg: 'ES256' }] },
    });
    for (let attempt = 0; attempt < 5; attempt++) {
      const assertion = await clientAssertion(privateKey, {
        kid: 'race-1',
        clientId: sp.id,
        audience: publicUrl,
        jti: `race-${attempt}-${Date.now()}`,
      });
      const send = async (g: TestGateway) => (await assertionGrant(g.url, sp.id, assertion)).status;
      const statuses = await Promise.all([send(a), send(b), send(a), send(b)]);
      expect(
        statuses.filter((x) => x === 200),
        JSON.stringify(statuses),
      ).toHaveLength(1);
    }
  });

  it('a DPoP proof used on one replica is refused on the other (single use across replicas)', async () => {
    const { sp, secret } = await a.gw.oauth.sps.create({
      name: 'dpop-bot',
      roles: ['ml-reader'],
      createdBy: 'test',
      withSecret: true,
    });
    const kp = await oidc.randomDPoPKeyPair('ES256');
    const config = await oidc.discovery(
      new URL(publicUrl),
      sp.id,
      undefined,
      oidc.ClientSecretBasic((secret as { secret: string }).secret),
      { execute: [oidc.allowInsecureRequests] },
    );
    const { access_token: token, token_type } = await oidc.clientCredentialsGrant(
      config,
      {},
      {
        DPoP: oidc.getDPoPHandle(config, kp),
      },
    );
    expect(token_type.toLowerCase()).toBe('dpop');
    const path = '/api/2.0/serving-endpoints';
    const proof = await new SignJWT({
      jti: randomUUID(),
      htm: 'GET',
      htu: `${publicUrl}${path}`,
      iat: Math.floor(Date.now() / 1000),
      ath: createHash('sha256').update(token).digest('base64url'),
    })
      .setProtectedHeader({ alg: 'ES256', typ: 'dpop+jwt', jwk: await exportJWK(kp.publicKey) })
      .sign(kp.privateKey);
    const send = async (g: TestGateway) => {
      const r = await request(`${g.url}${path}`, { headers: { authorization: `DPoP ${token}`, dpop: proof } });
      return {
        status: r.statusCode,
        body: (await r.body.json()) as { error_code?: string },
        wwwAuth: r.headers['www-authenticate'],
      };
    };
    const seen = up.seen.length;
    expect((await send(a)).status).toBe(200);
    const replayed = await send(b);
    expect(replayed.status).toBe(401);
    expect(replayed.body.error_code).toBe('UNAUTHENTICATED');
    expect(String(replayed.wwwAuth)).toContain('error="invalid_dpop_proof"');
    expect(String(replayed.wwwAuth)).toContain('proof replayed');
    expect(up.seen.length).toBe(seen + 1);
  });

  it('a signing key rotated on one replica is used by the other within a second, and each accepts the other’s tokens', async () => {
    const { sp, secret } = await a.gw.oauth.sps.create({
      name: 'rotation-bot',
      roles: ['ml-reader'],
      createdBy: 'test',
      withSecret: true,
    });
    const tokenFrom = async (g: TestGateway) =>
      (await clientCredentials(g.url, sp.id, (secret as { secret: string }).secret)).body.access_token as string;
    const before = decodeProtectedHeader(await tokenFrom(b)).kid;
    const rotated = await a.gw.oauth.rotateKeys();
    expect(rotated).not.toBe(before);
    expect(decodeProtectedHeader(await tokenFrom(a)).kid).toBe(rotated);
    expect(
      await trueWithin(2_000, async () => decodeProtectedHeader(await tokenFrom(b)).kid === rotated),
      'replica B signs with the new key',
    ).toBe(true);
    for (const [from, to] of [
      [a, b],
      [b, a],
    ] as const) {
      const r = await request(`${to.url}/api/2.0/serving-endpoints`, {
        headers: { authorization: `Bearer ${await tokenFrom(from)}` },
      });
      await r.body.text();
      expect(r.statusCode).toBe(200);
    }
  });
});
