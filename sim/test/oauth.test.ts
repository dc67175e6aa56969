// The token endpoint: client_credentials (Basic, form, percent-encoded) and RFC 8693 token exchange
// against federation policies, with a local ES256 issuer.
import { generateKeyPair, SignJWT } from 'jose';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { DEMO_ALICE, DEMO_BOB, DEMO_SP, DEMO_SP_SECRET, demoSimOptions, type Simulator, type SimIdentity, startSimulator } from '../index.js';
import { basic, call, form, startIssuer, type TestIssuer } from './helpers.js';

const EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const JWT_TYPE = 'urn:ietf:params:oauth:token-type:jwt';
const WORKLOAD: SimIdentity = { id: '3001', userName: '0a1b2c3d-0000-4000-8000-00000000ci01', displayName: 'ci-deployer', kind: 'service_principal' };
const COLON_SECRET = 'se:cret%41';

let sim: Simulator;
let issuer: TestIssuer;
let audience: string;

beforeAll(async () => {
  issuer = await startIssuer();
  audience = 'https://workspace.example/oidc/v1/token';
  const demo = demoSimOptions();
  sim = await startSimulator({
    ...demo,
    servicePrincipals: [
      ...(demo.servicePrincipals ?? []),
      { clientId: WORKLOAD.userName, clientSecret: 'unused', identity: WORKLOAD },
      { clientId: 'colon-client', clientSecret: COLON_SECRET, identity: { ...WORKLOAD, userName: 'colon-client' } },
    ],
    federationPolicies: [
      { issuer: issuer.url, audiences: [audience] }, // account-wide: sub = user email
      { issuer: issuer.url, audiences: ['ci'], subject: 'repo:acme/models:ref:refs/heads/main', servicePrincipalClientId: WORKLOAD.userName },
    ],
  });
});
afterAll(async () => {
  await sim.close();
  await issuer.close();
});
beforeEach(() => sim.reset());

describe('client_credentials', () => {
  it('issues a Bearer token for HTTP Basic client auth, as the SDKs send it', async () => {
    const r = await form(sim, { scope: 'all-apis', grant_type: 'client_credentials' }, { authorization: basic(DEMO_SP.userName, DEMO_SP_SECRET) });
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ token_type: 'Bearer', expires_in: 3600, scope: 'all-apis' });
    expect(String(r.body.access_token)).toMatch(/^eyJ[\w-]+\.[\w-]+\.[\w-]+$/);
    expect(r.headers.get('cache-control')).toBe('no-store');
    const me = await call(sim, 'GET', '/api/2.0/preview/scim/v2/Me', { token: String(r.body.access_token) });
    expect(me.body).toMatchObject({ userName: DEMO_SP.userName, applicationId: DEMO_SP.userName });
    expect(sim.tokenRequests).toEqual([
      { at: expect.any(Number), grantType: 'client_credentials', clientId: DEMO_SP.userName, ok: true, identity: DEMO_SP.userName },
    ]);
  });

  it('accepts client_id and client_secret in the form', async () => {
    const r = await form(sim, { grant_type: 'client_credentials', client_id: DEMO_SP.userName, client_secret: DEMO_SP_SECRET });
    expect(r.status).toBe(200);
  });

  it('splits Basic credentials on the first colon, raw or percent-encoded', async () => {
    const raw = await form(sim, { grant_type: 'client_credentials' }, { authorization: basic('colon-client', COLON_SECRET) });
    expect(raw.status).toBe(200);
    const encoded = await form(sim, { grant_type: 'client_credentials' }, { authorization: basic('colon-client', encodeURIComponent(COLON_SECRET)) });
    expect(encoded.status).toBe(200);
  });

  it('401 invalid_client for a wrong secret or unknown client, and records the failure', async () => {
    for (const auth of [basic(DEMO_SP.userName, 'wrong'), basic('nobody', DEMO_SP_SECRET)]) {
      const r = await form(sim, { grant_type: 'client_credentials' }, { authorization: auth });
      expect(r.status).toBe(401);
      expect(r.body).toEqual({ error: 'invalid_client', error_description: 'Client authentication failed.' });
      expect(r.headers.get('www-authenticate')).toContain('Basic');
    }
    expect(sim.tokenRequests.map((t) => [t.clientId, t.ok, t.error])).toEqual([
      [DEMO_SP.userName, false, 'invalid_client'],
      ['nobody', false, 'invalid_client'],
    ]);
  });

  it('rejects missing client auth, two auth methods, and bad requests with OAuth codes', async () => {
    expect((await form(sim, { grant_type: 'client_credentials' })).body.error).toBe('invalid_client');
    const both = await form(
      sim,
      { grant_type: 'client_credentials', client_id: DEMO_SP.userName, client_secret: DEMO_SP_SECRET },
      { authorization: basic(DEMO_SP.userName, DEMO_SP_SECRET) },
    );
    expect([both.status, both.body.error]).toEqual([400, 'invalid_request']);
    expect((await form(sim, {})).body.error).toBe('invalid_request');
    const pw = await form(sim, { grant_type: 'password', username: 'a', password: 'b' });
    expect([pw.status, pw.body.error]).toEqual([400, 'unsupported_grant_type']);
    const json = await call(sim, 'POST', '/oidc/v1/token', { body: { grant_type: 'client_credentials' } });
    expect([json.status, json.body.error]).toEqual([400, 'invalid_request']);
    expect(sim.tokenRequests).toHaveLength(5);
    expect(sim.tokenRequests.every((t) => !t.ok)).toBe(true);
  });
});

describe('token exchange (RFC 8693)', () => {
  const exchange = (subjectToken: string, extra: Record<string, string> = {}) =>
    form(sim, { grant_type: EXCHANGE, subject_token: subjectToken, subject_token_type: JWT_TYPE, scope: 'all-apis', ...extra });

  it('account-wide policy: maps sub to a workspace user, who then calls /Me', async () => {
    const jwt = await issuer.sign({ sub: DEMO_BOB.userName, aud: audience });
    const r = await exchange(jwt);
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ token_type: 'Bearer', scope: 'all-apis' });
    expect(r.body.expires_in).toBeGreaterThan(500); // capped by the subject token's 10 min lifetime
    expect(r.body.expires_in).toBeLessThanOrEqual(600);
    const me = await call(sim, 'GET', '/api/2.0/preview/scim/v2/Me', { token: String(r.body.access_token) });
    expect(me.body.userName).toBe('bob@example.com');
    expect(sim.requests.at(-1)).toMatchObject({ identity: 'bob@example.com', tokenKind: 'oauth' });
    expect(sim.tokenRequests).toEqual([
      {
        at: expect.any(Number),
        grantType: EXCHANGE,
        clientId: null,
        ok: true,
        subject: 'bob@example.com',
        keyId: 'test-key-1',
        identity: 'bob@example.com',
      },
    ]);
  });

  it('SP (workload) policy: client_id + matching subject maps to the service principal', async () => {
    const jwt = await issuer.sign({ sub: 'repo:acme/models:ref:refs/heads/main', aud: 'ci' });
    const r = await exchange(jwt, { client_id: WORKLOAD.userName });
    expect(r.status).toBe(200);
    const me = await call(sim, 'GET', '/api/2.0/preview/scim/v2/Me', { token: String(r.body.access_token) });
    expect(me.body.userName).toBe(WORKLOAD.userName);
  });

  it('SP policy rejects another subject', async () => {
    const jwt = await issuer.sign({ sub: 'repo:acme/models:ref:refs/heads/feature', aud: 'ci' });
    const r = await exchange(jwt, { client_id: WORKLOAD.userName });
    expect([r.status, r.body.error]).toEqual([400, 'invalid_grant']);
  });

  it('rejects an unknown user rather than auto-creating one', async () => {
    const r = await exchange(await issuer.sign({ sub: 'stranger@example.com', aud: audience }));
    expect([r.status, r.body.error]).toEqual([400, 'invalid_grant']);
    expect(r.body.error_description).toContain('stranger@example.com');
  });

  it.each([
    ['wrong audience', /claim 'aud'/, () => issuer.sign({ sub: DEMO_BOB.userName, aud: 'https://elsewhere' })],
    ['wrong issuer', /No federation policy trusts issuer/, () => issuer.sign({ sub: DEMO_BOB.userName, aud: audience, iss: 'https://evil.example' })],
    ['expired', /expired/, () => issuer.sign({ sub: DEMO_BOB.userName, aud: audience }, { expiresIn: Math.floor(Date.now() / 1000) - 60 })],
    ['no exp', /claim 'exp'/, () => issuer.sign({ sub: DEMO_BOB.userName, aud: audience }, { expiresIn: null })],
    ['not yet valid', /claim 'nbf'/, () => issuer.sign({ sub: DEMO_BOB.userName, aud: audience }, { notBefore: Math.floor(Date.now() / 1000) + 600 })],
    ['unknown kid', /No key in the issuer's JWKS/, () => issuer.sign({ sub: DEMO_BOB.userName, aud: audience }, { kid: 'rotated-away' })],
    [
      'bad signature',
      /signature verification failed/,
      async () => {
        const [h, p, s] = (await issuer.sign({ sub: DEMO_BOB.userName, aud: audience })).split('.');
        // Re-sign-free tampering: change the payload, keep the old signature.
        const forged = Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(p ?? '', 'base64url').toString()), sub: DEMO_ALICE.userName })).toString('base64url');
        return `${h}.${forged}.${s}`;
      },
    ],
    [
      'signed by another key under the same kid',
      /signature verification failed/,
      async () => {
        const { privateKey } = await generateKeyPair('ES256');
        return new SignJWT({ sub: DEMO_BOB.userName, aud: audience, iss: issuer.url })
          .setProtectedHeader({ alg: 'ES256', kid: 'test-key-1' })
          .setExpirationTime('5m')
          .sign(privateKey);
      },
    ],
    [
      'HS256',
      /algorithm 'HS256' is not allowed/,
      () =>
        new SignJWT({ sub: DEMO_BOB.userName, aud: audience, iss: issuer.url })
          .setProtectedHeader({ alg: 'HS256' })
          .setExpirationTime('5m')
          .sign(new TextEncoder().encode('a-shared-secret-of-at-least-32-bytes!')),
    ],
    ['not a JWT', /not a valid JWT/, async () => 'definitely-not-a-jwt'],
  ])('rejects %s with invalid_grant', async (_name, reason, make) => {
    const r = await exchange(await make());
    expect(r.status).toBe(400);
    expect(r.body.error).toBe('invalid_grant');
    expect(String(r.body.error_description)).toMatch(reason);
    expect(sim.tokenRequests.at(-1)).toMatchObject({ grantType: EXCHANGE, ok: false, error: 'invalid_grant' });
  });

  it('the unmodified token of the negative cases is accepted (the cases fail for their stated reason)', async () => {
    expect((await exchange(await issuer.sign({ sub: DEMO_BOB.userName, aud: audience }))).status).toBe(200);
  });

  it('requires subject_token and the JWT subject_token_type', async () => {
    expect((await form(sim, { grant_type: EXCHANGE, subject_token_type: JWT_TYPE })).body.error).toBe('invalid_request');
    const jwt = await issuer.sign({ sub: DEMO_BOB.userName, aud: audience });
    const r = await form(sim, { grant_type: EXCHANGE, subject_token: jwt, subject_token_type: 'urn:ietf:params:oauth:token-type:access_token' });
    expect(r.body.error).toBe('invalid_request');
  });

  it('an unknown client_id is invalid_client', async () => {
    const jwt = await issuer.sign({ sub: 'repo:acme/models:ref:refs/heads/main', aud: 'ci' });
    const r = await exchange(jwt, { client_id: 'not-an-sp' });
    expect([r.status, r.body.error]).toEqual([401, 'invalid_client']);
  });
});
