/**
 * What reaches the upstream, and what a caller without an identity gets.
 */
import { connect } from 'node:net';
import { decodeJwt, decodeProtectedHeader, importJWK, jwtVerify, type JWK } from 'jose';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { asUser, type RunningUpstream, startGateway, startUpstream, type TestGateway } from '../../helpers/index.js';

interface Seen {
  method: string;
  url: string;
  headers: Record<string, string | string[] | undefined>;
  raw: string[];
}
let up: RunningUpstream;
let gw: TestGateway;
let seen: Seen[] = [];

beforeAll(async () => {
  up = await startUpstream((req, res) => {
    seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, raw: req.rawHeaders });
    if (req.url?.startsWith('/redirect')) {
      res.writeHead(303, { location: `${up.url}/api/2.0/next?x=1` });
      res.end();
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json', connection: 'keep-alive, x-hop', 'x-hop': 'secret' });
    res.end('{"ok":true}');
  });
  process.env.HYGIENE_TOKEN = 'upstream-secret-token-123';
  gw = await startGateway({
    publicUrl: 'https://keygate.example.com',
    upstreams: { ws: { url: `${up.url}/`, credential: { type: 'static', tokenEnv: 'HYGIENE_TOKEN' } } },
  });
});

afterAll(async () => {
  await gw?.close();
  await up?.close();
});

/** Send raw bytes (for headers fetch clients refuse to send) and return the response text. */
function rawRequest(port: number, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1', () => s.write(text));
    s.setTimeout(5000, () => s.destroy(new Error('raw request timed out')));
    let out = '';
    s.on('data', (d) => {
      out += d.toString();
    });
    s.on('end', () => resolve(out));
    s.on('error', reject);
  });
}

describe('header hygiene', () => {
  it('forged identity headers, the client credential and Keygate cookies never reach the upstream', async () => {
    seen = [];
    const res = await request(`${gw.url}/api/2.0/serving-endpoints`, {
      headers: asUser('alice', {
        // A scheme Keygate does not use: ignored for identification, and never forwarded.
        authorization: 'Basic bWFsbG9yeTpzZWNyZXQ=',
        'x-forwarded-user': 'mallory',
        'x-forwarded-email': 'mallory@evil.example',
        'x-auth-request-user': 'mallory',
        'x-keygate-assertion': 'forged.jwt.here',
        'x-forwarded-for': '6.6.6.6',
        cookie: 'keygate_session=abc; theme=dark',
      }),
    });
    expect(res.statusCode).toBe(200);
    await res.body.text();
    const h = seen[0]?.headers ?? {};
    expect(h['x-forwarded-user']).toBeUndefined();
    expect(h['x-forwarded-email']).toBeUndefined();
    expect(h['x-auth-request-user']).toBeUndefined();
    expect(h.authorization).toBe('Bearer upstream-secret-token-123');
    expect(h['x-keygate-assertion']).not.toBe('forged.jwt.here');
    expect(h['x-forwarded-for']).toBe('127.0.0.1');
    expect(h.cookie).toBe('theme=dark');
  });

  it('underscore variants of identity headers are dropped too', async () => {
    seen = [];
    const { port } = new URL(gw.url);
    const out = await rawRequest(
      Number(port),
      'GET /x HTTP/1.1\r\nHost: a\r\nx-test-identity: test-identity-secret:alice\r\n' +
        'X_Forwarded_User: mallory\r\nX-Auth_Request-Email: m@evil.example\r\nX_Keygate_Roles: admin\r\nConnection: close\r\n\r\n',
    );
    expect(out).toMatch(/^HTTP\/1.1 200/);
    const names = (seen[0]?.raw ?? []).filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase());
    expect(names).not.toContain('x_forwarded_user');
    expect(names).not.toContain('x-auth_request-email');
    expect(names).not.toContain('x_keygate_roles');
  });

  it('the upstream receives a verifiable identity assertion naming the user and auth event', async () => {
    seen = [];
    await (await request(`${gw.url}/api/2.0/x`, { headers: asUser('bob') })).body.text();
    const jwt = seen[0]?.headers['x-keygate-assertion'] as string;
    expect(decodeProtectedHeader(jwt)).toMatchObject({ alg: 'ES256', typ: 'keygate-assertion+jwt' });
    const jwks = (await (await request(`${gw.url}/.keygate/oauth/jwks`)).body.json()) as { keys: JWK[] };
    const key = await importJWK(jwks.keys.find((k) => k.kid === decodeProtectedHeader(jwt).kid) as JWK, 'ES256');
    const { payload } = await jwtVerify(jwt, key, {
      issuer: 'https://keygate.example.com',
      audience: `${up.url}/`,
      algorithms: ['ES256'],
    });
    expect(payload).toMatchObject({
      sub: 'bob',
      email: 'bob@example.com',
      auth: { event_id: 'evt-bob', method: 'test' },
    });
    expect((payload.exp as number) - (payload.iat as number)).toBe(60);
  });

  it('assertions are per identity: two users never share one', async () => {
    seen = [];
    await (await request(`${gw.url}/a`, { headers: asUser('carol') })).body.text();
    await (await request(`${gw.url}/a`, { headers: asUser('dave') })).body.text();
    const subs = seen.map((s) => decodeJwt(s.headers['x-keygate-assertion'] as string).sub);
    expect(subs).toEqual(['carol', 'dave']);
  });

  it('X-Request-Id is propagated when well-formed, replaced when not, and returned to the client', async () => {
    seen = [];
    const a = await request(`${gw.url}/a`, { headers: asUser('alice', { 'x-request-id': 'trace-123' }) });
    await a.body.text();
    expect(a.headers['x-request-id']).toBe('trace-123');
    expect(seen[0]?.headers['x-request-id']).toBe('trace-123');
    const b = await request(`${gw.url}/a`, { headers: asUser('alice', { 'x-request-id': 'bad id\twith junk' }) });
    await b.body.text();
    expect(b.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    expect(seen[1]?.headers['x-request-id']).toBe(b.headers['x-request-id']);
  });

  it('hop-by-hop response headers are removed and upstream redirects point at the public origin', async () => {
    const r = await request(`${gw.url}/a`, { headers: asUser() });
    await r.body.text();
    expect(r.headers['x-hop']).toBeUndefined();
    const red = await request(`${gw.url}/redirect`, { headers: asUser() });
    await red.body.text();
    expect(red.statusCode).toBe(303);
    expect(red.headers.location).toBe('https://keygate.example.com/api/2.0/next?x=1');
  });

  it('the upstream base path is kept and the normalized path is what it sees', async () => {
    seen = [];
    await (await request(`${gw.url}/api//2.0/./a/../serving-endpoints?q=1`, { headers: asUser() })).body.text();
    expect(seen[0]?.url).toBe('/api/2.0/serving-endpoints?q=1');
  });
});

describe('callers without an identity', () => {
  it('an API client gets 401 with WWW-Authenticate and the JSON error shape; nothing reaches the upstream', async () => {
    seen = [];
    const r = await request(`${gw.url}/api/2.0/serving-endpoints`);
    expect(r.statusCode).toBe(401);
    expect(r.headers['www-authenticate']).toBe('Bearer realm="keygate"');
    const body = (await r.body.json()) as Record<string, string>;
    expect(body.error_code).toBe('UNAUTHENTICATED');
    expect(body.request_id).toBe(r.headers['x-request-id']);
    // Nothing left unread on the connection: it stays open for the next request.
    expect(r.headers.connection).not.toBe('close');
    expect(seen).toEqual([]);
  });

  it('a bearer token that is not a Keygate token gets 401 invalid_token; nothing reaches the upstream', async () => {
    seen = [];
    const r = await request(`${gw.url}/api/2.0/serving-endpoints`, { headers: { authorization: 'Bearer whatever' } });
    expect(r.statusCode).toBe(401);
    expect(r.headers['www-authenticate']).toBe('Bearer realm="keygate", error="invalid_token", error_description="malformed"');
    expect(((await r.body.json()) as Record<string, string>).error_code).toBe('UNAUTHENTICATED');
    expect(seen).toEqual([]);
  });

  it('a wrong test secret is not an identity either', async () => {
    seen = [];
    const r = await request(`${gw.url}/a`, { headers: { 'x-test-identity': 'nope:alice' } });
    expect(r.statusCode).toBe(401);
    await r.body.text();
    expect(seen).toEqual([]);
  });

  it('a browser is redirected to the login page with a same-origin return path', async () => {
    const r = await request(`${gw.url}/ml/experiments?id=1`, {
      headers: { accept: 'text/html,application/xhtml+xml' },
    });
    expect(r.statusCode).toBe(302);
    expect(r.headers.location).toBe('/.keygate/login?return_to=%2Fml%2Fexperiments%3Fid%3D1');
    await r.body.text();
  });

  it('an ambiguous path is refused with 400 before identification or forwarding', async () => {
    seen = [];
    const r = await request(`${gw.url}/api%2F2.0/x`, { headers: asUser() });
    expect(r.statusCode).toBe(400);
    expect(await r.body.json()).toMatchObject({ error_code: 'BAD_REQUEST' });
    expect(seen).toEqual([]);
  });
});

describe('malformed HTTP', () => {
  it('conflicting Content-Length and Transfer-Encoding (smuggling) gets 400 JSON and never reaches the upstream', async () => {
    seen = [];
    const { port } = new URL(gw.url);
    const out = await rawRequest(
      Number(port),
      'POST /x HTTP/1.1\r\nHost: a\r\nx-test-identity: test-identity-secret:alice\r\nContent-Length: 4\r\n' +
        'Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n',
    );
    expect(out).toMatch(/^HTTP\/1.1 400/);
    expect(out).toContain('"error_code":"BAD_REQUEST"');
    expect(seen).toEqual([]);
  });

  it('oversized headers get 431 JSON', async () => {
    const { port } = new URL(gw.url);
    const out = await rawRequest(
      Number(port),
      `GET /x HTTP/1.1\r\nHost: a\r\nX-Big: ${'a'.repeat(20_000)}\r\nConnection: close\r\n\r\n`,
    );
    expect(out).toMatch(/^HTTP\/1.1 431/);
    expect(out).toContain('"error_code":"HEADERS_TOO_LARGE"');
  });

  it('CR/LF injected in a header line is refused', async () => {
    seen = [];
    const { port } = new URL(gw.url);
    const out = await rawRequest(
      Number(port),
      'GET /x HTTP/1.1\r\nHost: a\r\nX-A: b\rX-Forwarded-User: m\r\nConnection: close\r\n\r\n',
    );
    expect(out).toMatch(/^HTTP\/1.1 400/);
    expect(seen).toEqual([]);
  });
});
