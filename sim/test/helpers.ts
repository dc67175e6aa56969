// Shared test helpers: a fetch wrapper that returns status, headers and parsed JSON, and a tiny
// ES256 OIDC issuer (discovery + JWKS on 127.0.0.1) for token-exchange tests.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type CryptoKey, exportJWK, generateKeyPair, type JWK, type JWTPayload, SignJWT } from 'jose';
import type { Simulator } from '../index.js';

export interface CallResult {
  status: number;
  headers: Headers;
  body: Record<string, unknown>;
  text: string;
}

export interface CallOptions {
  token?: string;
  body?: unknown;
  headers?: Record<string, string>;
}

export async function call(sim: Simulator, method: string, path: string, opts: CallOptions = {}): Promise<CallResult> {
  const headers: Record<string, string> = { ...opts.headers };
  if (opts.token !== undefined) headers.authorization = `Bearer ${opts.token}`;
  let body: string | undefined;
  if (opts.body !== undefined) {
    body = typeof opts.body === 'string' ? opts.body : JSON.stringify(opts.body);
    headers['content-type'] ??= 'application/json';
  }
  const res = await fetch(sim.url + path, { method, headers, ...(body !== undefined ? { body } : {}) });
  const text = await res.text();
  let parsed: Record<string, unknown> = {};
  try {
    parsed = JSON.parse(text) as Record<string, unknown>;
  } catch {
    // Non-JSON bodies (SSE) are checked through `text`.
  }
  return { status: res.status, headers: res.headers, body: parsed, text };
}

export async function form(sim: Simulator, fields: Record<string, string>, headers: Record<string, string> = {}): Promise<CallResult> {
  const res = await fetch(`${sim.url}/oidc/v1/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
    body: new URLSearchParams(fields).toString(),
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: JSON.parse(text) as Record<string, unknown>, text };
}

export const basic = (id: string, secret: string): string => `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}`;

export interface TestIssuer {
  url: string;
  /** Signs a JWT with the issuer's current key (or with a `kid` override for negative tests). */
  sign(claims: JWTPayload, opts?: { kid?: string; expiresIn?: number | string | null; notBefore?: number }): Promise<string>;
  /** A new current key (`test-key-2`, then `-3`, …); the old ones stay published. */
  rotate(): Promise<string>;
  /** GETs of the JWKS so far. */
  readonly jwksFetches: number;
  /** The published key set. */
  jwks(): { keys: JWK[] };
  close(): Promise<void>;
}

/** A minimal OIDC issuer: `/.well-known/openid-configuration` and `/jwks` with ES256 keys. */
export async function startIssuer(): Promise<TestIssuer> {
  const keys: { kid: string; privateKey: CryptoKey; jwk: JWK }[] = [];
  const addKey = async () => {
    const { privateKey, publicKey } = await generateKeyPair('ES256');
    const kid = `test-key-${keys.length + 1}`;
    keys.push({ kid, privateKey, jwk: { ...(await exportJWK(publicKey)), kid, alg: 'ES256', use: 'sig' } });
    return kid;
  };
  await addKey();
  let url = '';
  let jwksFetches = 0;
  const server: Server = createServer((req, res) => {
    if (req.url === '/jwks') jwksFetches++;
    const body =
      req.url === '/.well-known/openid-configuration'
        ? { issuer: url, jwks_uri: `${url}/jwks`, id_token_signing_alg_values_supported: ['ES256'] }
        : req.url === '/jwks'
          ? { keys: keys.map((k) => k.jwk) }
          : null;
    res.writeHead(body ? 200 : 404, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body ?? { error: 'not found' }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    async sign(claims, opts = {}) {
      const current = keys.at(-1) as (typeof keys)[number];
      const jwt = new SignJWT({ iss: url, ...claims }).setProtectedHeader({ alg: 'ES256', kid: opts.kid ?? current.kid }).setIssuedAt();
      // null omits `exp` entirely.
      if (opts.expiresIn !== null) jwt.setExpirationTime(opts.expiresIn ?? '10m');
      if (opts.notBefore !== undefined) jwt.setNotBefore(opts.notBefore);
      return jwt.sign(current.privateKey);
    },
    rotate: addKey,
    get jwksFetches() {
      return jwksFetches;
    },
    jwks: () => ({ keys: keys.map((k) => k.jwk) }),
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

export const IRIS_COLUMNS = ['sepal_length', 'sepal_width', 'petal_length', 'petal_width'];
/** Textbook rows: the first rows of the setosa and virginica classes in Fisher's table. */
export const SETOSA_ROW = [5.1, 3.5, 1.4, 0.2];
export const VIRGINICA_ROW = [6.3, 3.3, 6.0, 2.5];
