/**
 * Keygate's own access tokens on the proxy (RFC 9068, RFC 9449): a valid token reaches the
 * upstream; every kind of bad token or bad DPoP proof gets its specific refusal and nothing
 * reaches the upstream. Tokens come from the real token endpoint (and from openid-client).
 */
import { createHash, createPublicKey, randomUUID } from 'node:crypto';
import {
  base64url,
  calculateJwkThumbprint,
  decodeJwt,
  decodeProtectedHeader,
  exportJWK,
  generateKeyPair,
  type JWK,
  SignJWT,
} from 'jose';
import * as oidc from 'openid-client';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../../src/lib/clock.js';
import {
  type RunningUpstream,
  type SeenRequest,
  startGateway,
  startRecordingUpstream,
  type TestGateway,
} from '../../helpers/index.js';

type Recording = RunningUpstream & { seen: SeenRequest[] };
type KeyPair = Awaited<ReturnType<typeof oidc.randomDPoPKeyPair>>;

interface Client {
  id: string;
  secret: string;
}

interface Answer {
  status: number;
  errorCode: string | undefined;
  /** The `error=` of WWW-Authenticate. */
  error: string | undefined;
  /** The `error_description=` of WWW-Authenticate. */
  description: string | undefined;
  /** How many requests the upstream received during the call. */
  reached: number;
}

const nowS = (ms: number) => Math.floor(ms / 1000);

function basic(c: Client): string {
  return `Basic ${Buffer.from(`${encodeURIComponent(c.id)}:${encodeURIComponent(c.secret)}`).toString('base64')}`;
}

async function newClient(g: TestGateway, name: string, roles: string[]): Promise<Client> {
  const { sp, secret } = await g.gw.oauth.sps.create({ name, roles, createdBy: 'test' });
  return { id: sp.id, secret: secret?.secret as string };
}

/** POST a form to one of the authorization server's endpoints with client_secret_basic. */
async function oauthPost(
  g: TestGateway,
  endpoint: 'token' | 'revoke' | 'introspect',
  c: Client,
  form: Record<string, string>,
): Promise<{ status: number; body: string }> {
  const res = await request(`${g.url}/.keygate/oauth/${endpoint}`, {
    method: 'POST',
    headers: { authorization: basic(c), 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(form).toString(),
  });
  return { status: res.statusCode, body: await res.body.text() };
}

/** client_credentials at the token endpoint; the access token. */
async function mint(g: TestGateway, c: Client, extra: Record<string, string> = {}): Promise<string> {
  const r = await oauthPost(g, 'token', c, { grant_type: 'client_credentials', ...extra });
  expect(r.status, r.body).toBe(200);
  const body = JSON.parse(r.body) as { access_token: string; token_type: string };
  expect(body.token_type).toBe('Bearer');
  return body.access_token;
}

/** A DPoP-bound token for `kp`, through openid-client. */
async function mintBound(g: TestGateway, c: Client, kp: KeyPair): Promise<string> {
  const config = await oidc.discovery(new URL(g.gw.publicOrigin), c.id, undefined, oidc.ClientSecretBasic(c.secret), {
    execute: [oidc.allowInsecureRequests],
  });
  const tokens = await oidc.clientCredentialsGrant(config, {}, { DPoP: oidc.getDPoPHandle(config, kp) });
  expect(tokens.token_type.toLowerCase()).toBe('dpop');
  return tokens.access_token;
}

function param(header: string | undefined, name: string): string | undefined {
  return header === undefined ? undefined : new RegExp(`${name}="([^"]*)"`).exec(header)?.[1];
}

/** One proxied request, and what came back (and whether the upstream saw it). */
async function call(
  up: Recording,
  url: string,
  headers: Record<string, string>,
  method: 'GET' | 'POST' = 'GET',
): Promise<Answer> {
  const before = up.seen.length;
  const res = await request(url, { method, headers, ...(method === 'POST' ? { body: '{}' } : {}) });
  const text = await res.body.text();
  const www = res.headers['www-authenticate'] as string | undefined;
  let errorCode: string | undefined;
  if (res.statusCode >= 400) errorCode = (JSON.parse(text) as { error_code?: string }).error_code;
  return {
    status: res.statusCode,
    errorCode,
    error: param(www, 'error'),
    description: param(www, 'error_description'),
    reached: up.seen.length - before,
  };
}

function ath(token: string): string {
  return createHash('sha256').update(token).digest('base64url');
}

interface ProofClaims {
  htm?: string;
  htu?: string;
  iat?: number;
  jti?: string;
  ath?: string;
}

/** A hand-made DPoP proof (RFC 9449 §4.2); `jwk` is the key put in the header (default: kp's public key). */
async function proof(kp: KeyPair, claims: ProofClaims, header: { jwk?: JWK; typ?: string } = {}): Promise<string> {
  const jwk = header.jwk ?? (await exportJWK(kp.publicKey));
  return new SignJWT({ jti: randomUUID(), ...claims } as Record<string, unknown>)
    .setProtectedHeader({ alg: 'ES256', typ: header.typ ?? 'dpop+jwt', jwk })
    .sign(kp.privateKey);
}

/** A JWT with the given header and payload, signed by nothing (`alg: none`). */
function unsigned(header: Record<string, unknown>, payload: Record<string, unknown>): string {
  const enc = (o: Record<string, unknown>) => base64url.encode(JSON.stringify(o));
  return `${enc(header)}.${enc(payload)}.`;
}

function expectRefused(a: Answer, status: 401 | 403, errorCode: string, error: string, description?: string): void {
  expect(a.status).toBe(status);
  expect(a.errorCode).toBe(errorCode);
  expect(a.error).toBe(error);
  if (description !== undefined) expect(a.description).toBe(description);
  expect(a.reached).toBe(0);
}

const invalidToken = (a: Answer, description?: string) =>
  expectRefused(a, 401, 'UNAUTHENTICATED', 'invalid_token', description);
const invalidProof = (a: Answer, description?: string) =>
  expectRefused(a, 401, 'UNAUTHENTICATED', 'invalid_dpop_proof', description);

describe('access tokens on the proxy', () => {
  let api: Recording;
  let other: Recording;
  let g: TestGateway;
  let reader: Client;
  let inference: Client;
  let target: string;

  beforeAll(async () => {
    api = await startRecordingUpstream();
    other = await startRecordingUpstream();
    g = await startGateway(
      {
        upstreams: {
          api: { url: api.url, preset: 'generic', credential: { type: 'none' }, rules: [] },
          other: { url: other.url, preset: 'generic', credential: { type: 'none' }, rules: [] },
        },
        routes: [
          { prefix: '/api', upstream: 'api' },
          { prefix: '/other', upstream: 'other' },
        ],
      },
      { identifiers: [] },
    );
    reader = await newClient(g, 'reader-bot', ['ml-reader']);
    inference = await newClient(g, 'inference-bot', ['ml-inference']);
    target = `${g.url}/api/things`;
  });
  afterAll(async () => {
    await g?.close();
    await api?.close();
    await other?.close();
  });

  describe('bearer tokens', () => {
    it('a valid token reaches the upstream, and its audience is the first upstream', async () => {
      const token = await mint(g, reader);
      expect(decodeJwt(token).aud).toBe(api.url);
      expect(decodeProtectedHeader(token)).toMatchObject({ alg: 'ES256', typ: 'at+jwt' });
      const a = await call(api, target, { authorization: `Bearer ${token}` });
      expect(a.status).toBe(200);
      expect(a.reached).toBe(1);
    });

    it('a token for another upstream (aud) is refused, and works where it belongs', async () => {
      const token = await mint(g, reader, { resource: other.url });
      expect(decodeJwt(token).aud).toBe(other.url);
      invalidToken(await call(api, target, { authorization: `Bearer ${token}` }), 'wrong audience');
      const ok = await call(other, `${g.url}/other/things`, { authorization: `Bearer ${token}` });
      expect(ok.status).toBe(200);
      expect(ok.reached).toBe(1);
    });

    it('alg none is refused', async () => {
      const claims = decodeJwt(await mint(g, reader));
      const token = unsigned({ alg: 'none', typ: 'at+jwt' }, claims);
      invalidToken(await call(api, target, { authorization: `Bearer ${token}` }), 'algorithm not allowed');
    });

    it('HS256 with the public key as the HMAC secret is refused', async () => {
      const good = await mint(g, reader);
      const res = await request(`${g.url}/.keygate/oauth/jwks`);
      const jwks = (await res.body.json()) as { keys: JWK[] };
      const kid = decodeProtectedHeader(good).kid as string;
      const pub = jwks.keys.find((k) => k.kid === kid) as JWK;
      expect(pub).toBeDefined();
      const pem = createPublicKey({ key: pub as never, format: 'jwk' }).export({ type: 'spki', format: 'pem' });
      // Each rendering of the public key an attacker might try as the secret.
      const secrets = [Buffer.from(pem), Buffer.from(JSON.stringify(pub)), base64url.decode(pub.x as string)];
      for (const secret of secrets) {
        const token = await new SignJWT(decodeJwt(good))
          .setProtectedHeader({ alg: 'HS256', typ: 'at+jwt', kid })
          .sign(secret);
        invalidToken(await call(api, target, { authorization: `Bearer ${token}` }), 'algorithm not allowed');
      }
    });

    it('a token signed by an unknown ES256 key is refused, with our kid or its own', async () => {
      const good = await mint(g, reader);
      const kid = decodeProtectedHeader(good).kid as string;
      const { privateKey } = await generateKeyPair('ES256');
      const forge = (k: string) =>
        new SignJWT(decodeJwt(good)).setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid: k }).sign(privateKey);
      invalidToken(await call(api, target, { authorization: `Bearer ${await forge(kid)}` }), 'bad signature');
      invalidToken(
        await call(api, target, { authorization: `Bearer ${await forge('attacker-key')}` }),
        'signed by an unknown key',
      );
    });

    it('a tampered signature or a tampered payload is refused', async () => {
      const good = await mint(g, reader);
      const [h, p, s] = good.split('.') as [string, string, string];
      // Flip a character in the middle: the last one may only carry padding bits.
      const i = Math.floor(s.length / 2);
      const flipped = `${s.slice(0, i)}${s[i] === 'A' ? 'B' : 'A'}${s.slice(i + 1)}`;
      invalidToken(await call(api, target, { authorization: `Bearer ${h}.${p}.${flipped}` }), 'bad signature');
      const escalated = base64url.encode(JSON.stringify({ ...decodeJwt(good), roles: ['admin'] }));
      invalidToken(await call(api, target, { authorization: `Bearer ${h}.${escalated}.${s}` }), 'bad signature');
      // The untouched token still works: the refusals were about the changes.
      expect((await call(api, target, { authorization: `Bearer ${good}` })).status).toBe(200);
    });

    it('a token revoked (RFC 7009) is refused on the next request, cached verification or not', async () => {
      const token = await mint(g, reader);
      expect((await call(api, target, { authorization: `Bearer ${token}` })).status).toBe(200);
      const r = await oauthPost(g, 'revoke', reader, { token });
      expect(r.status).toBe(200);
      invalidToken(await call(api, target, { authorization: `Bearer ${token}` }), 'token revoked');
    });

    it("another client's revocation is answered 200 and leaves the token alone", async () => {
      const token = await mint(g, reader);
      const r = await oauthPost(g, 'revoke', inference, { token });
      expect(r.status).toBe(200);
      const a = await call(api, target, { authorization: `Bearer ${token}` });
      expect(a.status).toBe(200);
      expect(a.reached).toBe(1);
    });

    it('introspection (RFC 7662): active with sub and client_id, then inactive after revocation', async () => {
      const token = await mint(g, reader);
      const live = await oauthPost(g, 'introspect', reader, { token });
      expect(live.status).toBe(200);
      expect(JSON.parse(live.body)).toMatchObject({
        active: true,
        sub: reader.id,
        client_id: reader.id,
        aud: api.url,
        token_type: 'Bearer',
        jti: decodeJwt(token).jti,
      });
      expect((await oauthPost(g, 'revoke', reader, { token })).status).toBe(200);
      const dead = await oauthPost(g, 'introspect', reader, { token });
      expect(dead.status).toBe(200);
      expect(JSON.parse(dead.body)).toEqual({ active: false });
    });

    it('the upstream gets neither the token nor the proof, and its identity assertion is no token', async () => {
      const token = await mint(g, reader);
      let headers: Record<string, unknown> = {};
      api.server.prependOnceListener('request', (req: { headers: Record<string, unknown> }) => {
        headers = req.headers;
      });
      const a = await call(api, target, { authorization: `Bearer ${token}`, dpop: 'not-a-proof' });
      expect(a.status).toBe(200);
      expect(headers.authorization).toBeUndefined();
      expect(headers.dpop).toBeUndefined();
      const assertion = headers['x-keygate-assertion'] as string;
      expect(decodeJwt(assertion).aud).toBe(api.url);
      // An upstream replaying what it received is refused like any stranger.
      invalidToken(await call(api, target, { authorization: `Bearer ${assertion}` }), 'signed by an unknown key');
    });

    it('an unbound token presented with the DPoP scheme is refused', async () => {
      const token = await mint(g, reader);
      const kp = await oidc.randomDPoPKeyPair('ES256');
      const dpop = await proof(kp, { htm: 'GET', htu: target, iat: nowS(Date.now()), ath: ath(token) });
      invalidToken(await call(api, target, { authorization: `DPoP ${token}`, dpop }), 'token is not DPoP-bound');
    });
  });

  describe('scope', () => {
    it('a token narrowed to api:read may GET but not POST, though policy allows the POST', async () => {
      // Control: without a narrowing scope, ml-inference may POST (api:invoke).
      const wide = await mint(g, inference);
      const control = await call(api, target, { authorization: `Bearer ${wide}` }, 'POST');
      expect(control.status).toBe(200);
      expect(control.reached).toBe(1);

      const token = await mint(g, inference, { scope: 'api:read' });
      expect(decodeJwt(token).scope).toBe('api:read');
      const read = await call(api, target, { authorization: `Bearer ${token}` });
      expect(read.status).toBe(200);
      expect(read.reached).toBe(1);
      const post = await call(api, target, { authorization: `Bearer ${token}` }, 'POST');
      expectRefused(post, 403, 'PERMISSION_DENIED', 'insufficient_scope');
    });

    it('a token narrowed to serving:invoke may not read a generic API that policy lets it read', async () => {
      const token = await mint(g, reader, { scope: 'serving:invoke' });
      expectRefused(
        await call(api, target, { authorization: `Bearer ${token}` }),
        403,
        'PERMISSION_DENIED',
        'insufficient_scope',
      );
    });
  });

  describe('DPoP-bound tokens', () => {
    let kp: KeyPair;
    let token: string;
    const dpopAuth = () => ({ authorization: `DPoP ${token}` });
    const fresh = (extra: ProofClaims = {}) =>
      proof(kp, { htm: 'GET', htu: target, iat: nowS(Date.now()), ath: ath(token), ...extra });

    beforeAll(async () => {
      kp = await oidc.randomDPoPKeyPair('ES256');
      token = await mintBound(g, reader, kp);
      expect(decodeJwt(token).cnf).toEqual({ jkt: await calculateJwkThumbprint(await exportJWK(kp.publicKey)) });
    });

    it('openid-client with its DPoP handle reaches the upstream', async () => {
      const config = await oidc.discovery(
        new URL(g.gw.publicOrigin),
        reader.id,
        undefined,
        oidc.ClientSecretBasic(reader.secret),
        { execute: [oidc.allowInsecureRequests] },
      );
      const key = await oidc.randomDPoPKeyPair('ES256');
      const DPoP = oidc.getDPoPHandle(config, key);
      const tokens = await oidc.clientCredentialsGrant(config, {}, { DPoP });
      const before = api.seen.length;
      const res = await oidc.fetchProtectedResource(
        config,
        tokens.access_token,
        new URL(`${g.gw.publicOrigin}/api/things`),
        'GET',
        undefined,
        undefined,
        { DPoP },
      );
      expect(res.status).toBe(200);
      await res.text();
      expect(api.seen.length).toBe(before + 1);
    });

    it('a hand-made proof of the bound key reaches the upstream', async () => {
      const a = await call(api, target, { ...dpopAuth(), dpop: await fresh() });
      expect(a.status).toBe(200);
      expect(a.reached).toBe(1);
    });

    it('a replayed proof is refused the second time', async () => {
      const dpop = await fresh();
      const first = await call(api, target, { ...dpopAuth(), dpop });
      expect(first.status).toBe(200);
      expect(first.reached).toBe(1);
      invalidProof(await call(api, target, { ...dpopAuth(), dpop }), 'proof replayed');
    });

    it('the same proof sent twice at once is accepted once', async () => {
      const dpop = await fresh();
      const before = api.seen.length;
      const answers = await Promise.all([1, 2].map(() => call(api, target, { ...dpopAuth(), dpop })));
      expect(answers.map((a) => a.status).sort()).toEqual([200, 401]);
      expect(api.seen.length - before).toBe(1);
      const refused = answers.find((a) => a.status === 401) as Answer;
      expect(refused.error).toBe('invalid_dpop_proof');
      expect(refused.description).toBe('proof replayed');
    });

    it('a bound token for another upstream (aud) is refused even with a good proof', async () => {
      const elsewhere = await oidc.randomDPoPKeyPair('ES256');
      const config = await oidc.discovery(
        new URL(g.gw.publicOrigin),
        reader.id,
        undefined,
        oidc.ClientSecretBasic(reader.secret),
        { execute: [oidc.allowInsecureRequests] },
      );
      const DPoP = oidc.getDPoPHandle(config, elsewhere);
      const t = (await oidc.clientCredentialsGrant(config, { resource: other.url }, { DPoP })).access_token;
      expect(decodeJwt(t).aud).toBe(other.url);
      const dpop = await proof(elsewhere, { htm: 'GET', htu: target, iat: nowS(Date.now()), ath: ath(t) });
      invalidToken(await call(api, target, { authorization: `DPoP ${t}`, dpop }), 'wrong audience');
    });

    it('a proof for another URL (htu) is refused', async () => {
      invalidProof(
        await call(api, target, { ...dpopAuth(), dpop: await fresh({ htu: `${g.url}/api/elsewhere` }) }),
        'htu does not match the request URL',
      );
      invalidProof(
        await call(api, target, { ...dpopAuth(), dpop: await fresh({ htu: 'https://evil.example/api/things' }) }),
        'htu does not match the request URL',
      );
      // Naming the same origin in the Host header does not make it ours (RFC 9449 §4.3 step 9).
      const path = new URL(target).pathname;
      invalidProof(
        await call(api, target, {
          ...dpopAuth(),
          host: 'evil.example',
          dpop: await fresh({ htu: `http://evil.example${path}` }),
        }),
        'htu does not match the request URL',
      );
    });

    it('a proof for another method (htm) is refused', async () => {
      invalidProof(
        await call(api, target, { ...dpopAuth(), dpop: await fresh({ htm: 'POST' }) }),
        'htm does not match the request method',
      );
    });

    it('a proof without ath, or with the ath of another token, is refused', async () => {
      const noAth = await proof(kp, { htm: 'GET', htu: target, iat: nowS(Date.now()) });
      invalidProof(await call(api, target, { ...dpopAuth(), dpop: noAth }), 'ath does not match the access token');
      const another = await mintBound(g, reader, kp);
      invalidProof(
        await call(api, target, { ...dpopAuth(), dpop: await fresh({ ath: ath(another) }) }),
        'ath does not match the access token',
      );
    });

    it('a proof signed by another key than cnf.jkt is refused', async () => {
      const stranger = await oidc.randomDPoPKeyPair('ES256');
      const dpop = await proof(stranger, { htm: 'GET', htu: target, iat: nowS(Date.now()), ath: ath(token) });
      invalidProof(await call(api, target, { ...dpopAuth(), dpop }), 'proof key is not the key the token is bound to');
    });

    it('a proof whose header names the bound key but is signed by another is refused', async () => {
      const stranger = await oidc.randomDPoPKeyPair('ES256');
      const dpop = await proof(
        stranger,
        { htm: 'GET', htu: target, iat: nowS(Date.now()), ath: ath(token) },
        { jwk: await exportJWK(kp.publicKey) },
      );
      invalidProof(await call(api, target, { ...dpopAuth(), dpop }), 'bad signature');
    });

    it('a proof of the wrong type or carrying a private key is refused', async () => {
      const claims = { htm: 'GET', htu: target, iat: nowS(Date.now()), ath: ath(token) };
      invalidProof(
        await call(api, target, { ...dpopAuth(), dpop: await proof(kp, claims, { typ: 'JWT' }) }),
        'claim typ not valid',
      );
      const own = await oidc.randomDPoPKeyPair('ES256', { extractable: true });
      const withPrivate = await exportJWK(own.privateKey);
      invalidProof(
        await call(api, target, {
          ...dpopAuth(),
          dpop: await proof(own, claims, { jwk: withPrivate }),
        }),
        'malformed',
      );
    });

    it('a missing DPoP header is refused', async () => {
      invalidProof(await call(api, target, dpopAuth()), 'missing DPoP proof');
    });

    it('a bound token presented as a plain Bearer token is refused', async () => {
      invalidToken(
        await call(api, target, { authorization: `Bearer ${token}` }),
        'DPoP-bound token presented as a bearer token',
      );
      invalidToken(
        await call(api, target, { authorization: `Bearer ${token}`, dpop: await fresh() }),
        'DPoP-bound token presented as a bearer token',
      );
    });
  });
});

describe('time: expiry and the DPoP iat window (ManualClock)', () => {
  let up: Recording;
  let g: TestGateway;
  let c: Client;
  let target: string;
  // Whole seconds, so the window's edges are exact.
  const clock = new ManualClock(nowS(Date.now()) * 1000);

  beforeAll(async () => {
    up = await startRecordingUpstream();
    g = await startGateway(
      { upstreams: { api: { url: up.url, preset: 'generic', credential: { type: 'none' }, rules: [] } } },
      { identifiers: [], clock },
    );
    c = await newClient(g, 'timed-bot', ['ml-reader']);
    target = `${g.url}/things`;
  });
  afterAll(async () => {
    await g?.close();
    await up?.close();
  });

  it('a proof is accepted from 60 s old to 5 s ahead, and refused outside', async () => {
    const kp = await oidc.randomDPoPKeyPair('ES256');
    const token = await mintBound(g, c, kp);
    const now = nowS(clock.now());
    const at = (iat: number) => proof(kp, { htm: 'GET', htu: target, iat, ath: ath(token) });
    const auth = { authorization: `DPoP ${token}` };
    for (const iat of [now - 60, now, now + 5]) {
      const a = await call(up, target, { ...auth, dpop: await at(iat) });
      expect(a.status, `iat ${iat - now}`).toBe(200);
      expect(a.reached).toBe(1);
    }
    invalidProof(await call(up, target, { ...auth, dpop: await at(now - 61) }), 'iat outside the accepted window');
    invalidProof(await call(up, target, { ...auth, dpop: await at(now + 6) }), 'iat outside the accepted window');
    // A fresh proof that grows stale while held.
    const held = await at(now);
    clock.advance(61_000);
    invalidProof(await call(up, target, { ...auth, dpop: held }), 'iat outside the accepted window');
  });

  it('a machine token lives 15 minutes: valid until its exp, refused from then on', async () => {
    const token = await mint(g, c);
    const { iat, exp } = decodeJwt(token) as { iat: number; exp: number };
    expect(exp - iat).toBe(15 * 60);
    const auth = { authorization: `Bearer ${token}` };
    // The clock is set to the last second of the token's life; it was verified (and cached) before.
    expect((await call(up, target, auth)).status).toBe(200);
    clock.advance(exp * 1000 - 1000 - clock.now());
    const last = await call(up, target, auth);
    expect(last.status).toBe(200);
    expect(last.reached).toBe(1);
    clock.advance(1000);
    invalidToken(await call(up, target, auth), 'expired');
  });
});
