/**
 * OAuth helpers for tests: follow an authorization request the way a browser would (cookies,
 * redirects), logging in with a software authenticator when Keygate asks for it, until the
 * redirect to the client's callback.
 */
import { type CryptoKey, SignJWT } from 'jose';
import { request } from 'undici';
import type { BrowserClient } from './browser-client.js';
import type { TestGateway } from './index.js';
import { login } from './people.js';
import type { SoftAuthenticator } from './soft-authenticator.js';

export interface Hop {
  status: number;
  path: string;
  location: string | undefined;
}

/** GET with the browser's cookies, remembering the cookies the answer sets. */
export async function browserGet(
  g: TestGateway,
  browser: BrowserClient,
  path: string,
): Promise<Hop & { body: string }> {
  const r = await request(`${g.url}${path}`, { headers: { cookie: browser.cookieHeader(), accept: 'text/html' } });
  for (const c of ([] as string[]).concat((r.headers['set-cookie'] as string | string[] | undefined) ?? [])) {
    const [pair] = c.split(';');
    const eq = (pair ?? '').indexOf('=');
    const name = (pair ?? '').slice(0, eq);
    const value = (pair ?? '').slice(eq + 1);
    if (value === '' || /expires=Thu, 01 Jan 1970/i.test(c)) browser.cookies.delete(name);
    else browser.cookies.set(name, value);
  }
  const location = r.headers.location as string | undefined;
  return { status: r.statusCode, path, location, body: await r.body.text() };
}

/**
 * Walk from an authorization URL to the client's redirect. `onLogin` runs when Keygate sends
 * the browser to its login page (default: a WebAuthn login with `authenticator`).
 */
export async function walkAuthorization(
  g: TestGateway,
  browser: BrowserClient,
  start: URL,
  authenticator: SoftAuthenticator,
  redirectPrefix: string,
  opts: { maxLogins?: number } = {},
): Promise<{ callback: URL; hops: Hop[]; logins: number }> {
  const hops: Hop[] = [];
  let logins = 0;
  let path = start.pathname + start.search;
  for (let i = 0; i < 16; i++) {
    const hop = await browserGet(g, browser, path);
    hops.push({ status: hop.status, path: hop.path, location: hop.location });
    const loc = hop.location;
    if (loc === undefined) throw new Error(`authorization stopped at ${path}: ${hop.status} ${hop.body.slice(0, 300)}`);
    if (loc.startsWith(redirectPrefix)) return { callback: new URL(loc), hops, logins };
    if (loc.startsWith('/.keygate/login')) {
      if (logins >= (opts.maxLogins ?? 1)) throw new Error('asked to log in again');
      const r = await login(browser, authenticator);
      if (r.status !== 200) throw new Error(`login failed: ${r.status}`);
      logins++;
      path = new URL(loc, 'http://x').searchParams.get('return_to') as string;
      continue;
    }
    const u = new URL(loc, g.url);
    path = u.pathname + u.search;
  }
  throw new Error('too many redirects');
}

/** A client_credentials token request with client_secret_basic, as a machine sends it. */
export async function clientCredentials(
  baseUrl: string,
  clientId: string,
  secret: string,
): Promise<{ status: number; body: Record<string, string> }> {
  const r = await request(`${baseUrl}/.keygate/oauth/token`, {
    method: 'POST',
    headers: {
      authorization: `Basic ${Buffer.from(`${clientId}:${secret}`).toString('base64')}`,
      'content-type': 'application/x-www-form-urlencoded',
    },
    body: 'grant_type=client_credentials',
  });
  return { status: r.statusCode, body: (await r.body.json()) as Record<string, string> };
}

/** A private_key_jwt client assertion (RFC 7523) for `clientId`, audience the issuer. */
export function clientAssertion(
  key: CryptoKey,
  o: { kid: string; clientId: string; audience: string; jti: string },
): Promise<string> {
  return new SignJWT({ jti: o.jti })
    .setProtectedHeader({ alg: 'ES256', kid: o.kid })
    .setIssuer(o.clientId)
    .setSubject(o.clientId)
    .setAudience(o.audience)
    .setIssuedAt()
    .setExpirationTime('2m')
    .sign(key);
}

/** A client_credentials request authenticated by a client assertion: the status and body. */
export async function assertionGrant(
  baseUrl: string,
  clientId: string,
  assertion: string,
): Promise<{ status: number; body: { error?: string; access_token?: string } }> {
  const r = await request(`${baseUrl}/.keygate/oauth/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      grant_type: 'client_credentials',
      client_id: clientId,
      client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
      client_assertion: assertion,
    }).toString(),
  });
  return { status: r.statusCode, body: (await r.body.json()) as { error?: string; access_token?: string } };
}
