/**
 * Sessions after a WebAuthn login: cookie attributes, fixation, idle and absolute expiry,
 * logout, revocation, cross-site refusal, the proxy using the session, the devices API and
 * recovery, and the login rate limits.
 */
import { decodeJwt } from 'jose';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEMO_SP, demoSimOptions, type Simulator, startSimulator } from '../../../sim/index.js';
import { ManualClock } from '../../../src/lib/clock.js';
import { simUpstream, startGateway, type TestGateway } from '../../helpers/index.js';
import { browserFor, enroll, invite, lastAuthEvent, login } from '../../helpers/people.js';
import { SoftAuthenticator } from '../../helpers/soft-authenticator.js';

let g: TestGateway;
let sim: Simulator;
const clock = new ManualClock(Date.UTC(2026, 10, 1));

beforeAll(async () => {
  sim = await startSimulator(demoSimOptions());
  g = await startGateway(
    {
      rateLimits: { perIpPerMinute: 10_000, perAccountPerMinute: 10_000 },
      upstreams: simUpstream(sim.url),
    },
    { clock, identifiers: [] },
  );
});

afterAll(async () => {
  await g?.close();
  await sim?.close();
});

describe('session cookie', () => {
  it('holds only an opaque random id: HttpOnly, SameSite=Lax, Path=/ (and no __Host-/Secure on http)', async () => {
    const { authenticator } = await enroll(g, 'cookie@example.com');
    const b = browserFor(g);
    const options = await b.post<Record<string, unknown>>('/.keygate/api/webauthn/authentication/options', {});
    const res = await request(`${g.url}/.keygate/api/webauthn/authentication/verify`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', origin: g.gw.publicOrigin, cookie: b.cookieHeader() },
      body: JSON.stringify({ response: authenticator.get(options.body as never) }),
    });
    await res.body.text();
    const set = ([] as string[]).concat(res.headers['set-cookie'] ?? []);
    const session = set.find((c) => c.startsWith('keygate_session='));
    expect(session).toMatch(/^keygate_session=[A-Za-z0-9_-]{43}; Path=\/; HttpOnly; SameSite=Lax; Max-Age=43200$/);
  });

  it('uses the __Host- prefix and Secure when the public URL is https', async () => {
    const https = await startGateway({ publicUrl: 'https://localhost' }, { clock });
    try {
      expect(https.gw.auth.sessions.cookieName).toBe('__Host-keygate_session');
      expect(https.gw.auth.sessions.cookie('x'.repeat(43))).toContain('; Secure');
    } finally {
      await https.close();
    }
  });

  it('a login issues a new session id and ends the one the browser had (no fixation)', async () => {
    const { browser, authenticator } = await enroll(g, 'fixation@example.com');
    const before = browser.cookies.get('keygate_session');
    expect(before).toBeDefined();
    const r = await login(browser, authenticator);
    expect(r.status).toBe(200);
    const after = browser.cookies.get('keygate_session');
    expect(after).not.toBe(before);
    // The old id no longer works.
    const old = await request(`${g.url}/.keygate/api/session`, { headers: { cookie: `keygate_session=${before}` } });
    expect(old.statusCode).toBe(401);
    await old.body.text();
  });

  it('an attacker-chosen session id is never adopted', async () => {
    const { authenticator } = await enroll(g, 'planted@example.com');
    const b = browserFor(g);
    b.cookies.set('keygate_session', 'A'.repeat(43));
    await login(b, authenticator);
    expect(b.cookies.get('keygate_session')).not.toBe('A'.repeat(43));
  });
});

describe('expiry and logout', () => {
  it('idle timeout ends a session that is not used', async () => {
    const { browser } = await enroll(g, 'idle@example.com');
    clock.advance(30 * 60_000);
    expect((await browser.get('/.keygate/api/session')).status).toBe(200); // use resets the idle clock
    clock.advance(59 * 60_000);
    expect((await browser.get('/.keygate/api/session')).status).toBe(200);
    clock.advance(61 * 60_000);
    const r = await browser.get('/.keygate/api/session');
    expect(r.status).toBe(401);
    expect(r.body).toMatchObject({ error_code: 'UNAUTHENTICATED' });
  });

  it('absolute lifetime ends a session however busy', async () => {
    const { browser } = await enroll(g, 'absolute@example.com');
    for (let i = 0; i < 23; i++) {
      clock.advance(30 * 60_000);
      expect((await browser.get('/.keygate/api/session')).status).toBe(200);
    }
    clock.advance(31 * 60_000); // 12 h 1 min after login
    expect((await browser.get('/.keygate/api/session')).status).toBe(401);
  });

  it('logout ends the session at once and clears the cookie', async () => {
    const { browser } = await enroll(g, 'logout@example.com');
    const value = browser.cookies.get('keygate_session') as string;
    const r = await browser.post('/.keygate/api/session/logout');
    expect(r.status).toBe(204);
    expect(browser.cookies.has('keygate_session')).toBe(false);
    const reuse = await request(`${g.url}/.keygate/api/session`, { headers: { cookie: `keygate_session=${value}` } });
    expect(reuse.statusCode).toBe(401);
    await reuse.body.text();
    expect(await lastAuthEvent(g)).toMatchObject({ kind: 'auth.logout', outcome: 'success' });
  });
});

describe('cross-site requests', () => {
  it('a state-changing API call from another origin is refused', async () => {
    const { browser } = await enroll(g, 'csrf@example.com');
    const r = await browser.post('/.keygate/api/session/logout', {}, { origin: 'https://evil.example' });
    expect(r.status).toBe(403);
    expect(r.body).toMatchObject({ error_code: 'CROSS_SITE_REQUEST' });
    expect((await browser.get('/.keygate/api/session')).status).toBe(200); // still logged in
    const site = await browser.call('DELETE', '/.keygate/api/devices/x', undefined, {
      origin: '',
      'sec-fetch-site': 'cross-site',
    });
    expect(site.status).toBe(403);
  });

  it('a cookie-authenticated state change to a proxied path from another origin is refused before the upstream', async () => {
    const { browser } = await enroll(g, 'csrf-proxy@example.com');
    sim.reset();
    const r = await browser.post('/api/2.1/jobs/run-now', { job_id: 11 }, { origin: 'https://evil.example' });
    expect(r.status).toBe(403);
    expect(r.body).toMatchObject({ error_code: 'CROSS_SITE_REQUEST' });
    expect(sim.requests).toEqual([]);
  });
});

describe('the proxy uses the session', () => {
  it('a logged-in browser reaches the workspace; the assertion names the user and the auth event', async () => {
    const { authenticator } = await enroll(g, 'proxy@example.com', {
      token: await invite(g, 'proxy@example.com', ['ml-engineer']),
    });
    const b = browserFor(g);
    expect((await login(b, authenticator)).status).toBe(200);
    const loginEvent = await lastAuthEvent(g);
    sim.reset();
    const r = await b.get<{ endpoints: unknown[] }>('/api/2.0/serving-endpoints');
    expect(r.status).toBe(200);
    expect(r.body.endpoints.length).toBeGreaterThan(0);
    expect(sim.requests[0]?.identity).toBe(DEMO_SP.userName);
    const assertion = decodeJwt(sim.requests[0]?.headers['x-keygate-assertion'] as string);
    expect(assertion).toMatchObject({
      email: 'proxy@example.com',
      auth: { method: 'webauthn', event_id: loginEvent.id, uv: true, device_bound: true },
    });
    // The session cookie itself never reaches the workspace.
    expect(sim.requests[0]?.headers.cookie).toBeUndefined();
  });

  it('a browser without a session is sent to the login page; an API client gets 401', async () => {
    const page = await request(`${g.url}/api/2.0/serving-endpoints`, { headers: { accept: 'text/html' } });
    expect(page.statusCode).toBe(302);
    expect(page.headers.location).toBe('/.keygate/login?return_to=%2Fapi%2F2.0%2Fserving-endpoints');
    await page.body.text();
    const api = await request(`${g.url}/api/2.0/serving-endpoints`, {
      headers: { cookie: 'keygate_session=' + 'B'.repeat(43) },
    });
    expect(api.statusCode).toBe(401);
    await api.body.text();
  });

  it('return_to from the login is sanitized', async () => {
    const { authenticator } = await enroll(g, 'redirect@example.com');
    for (const [given, expected] of [
      ['/ml/x?y=1', '/ml/x?y=1'],
      ['//evil.example', '/'],
      ['https://evil.example', '/'],
      ['/\\evil.example', '/'],
      ['/%2F%2Fevil.example', '/'],
    ]) {
      const r = await login(browserFor(g), authenticator, { returnTo: given as string });
      expect(r.body).toMatchObject({ returnTo: expected });
    }
  });
});

describe('devices', () => {
  it('lists, renames and revokes credentials; a revoked key ends its sessions and cannot log in', async () => {
    const first = await enroll(g, 'devices@example.com');
    const b = first.browser;
    // A backup key, added from the (fresh) session.
    const opts = await b.post<Parameters<typeof first.authenticator.create>[0]>(
      '/.keygate/api/webauthn/registration/options',
      {},
    );
    expect(opts.status).toBe(200);
    const backupAuth = new SoftAuthenticator(g.gw.publicOrigin);
    const added = await b.post('/.keygate/api/webauthn/registration/verify', {
      response: backupAuth.create(opts.body),
      name: 'Backup',
    });
    expect(added.status).toBe(200);

    const list = await b.get<{ credentials: { id: string; name: string; current: boolean }[] }>(
      '/.keygate/api/devices',
    );
    expect(list.body.credentials.map((c) => c.name)).toEqual(['Test key', 'Backup']);
    const [firstKey, backupKey] = list.body.credentials as unknown as [{ id: string }, { id: string }];

    const renamed = await b.call('PATCH', `/.keygate/api/devices/${backupKey.id}`, { name: 'Spare YubiKey' });
    expect(renamed.body).toMatchObject({ name: 'Spare YubiKey' });

    // Log in with the backup on a second browser, then revoke the first key from there.
    const b2 = browserFor(g);
    expect((await login(b2, backupAuth)).status).toBe(200);
    expect((await b2.call('DELETE', `/.keygate/api/devices/${firstKey.id}`)).status).toBe(204);
    // The session opened with the revoked key ends at once.
    expect((await b.get('/.keygate/api/session')).status).toBe(401);
    const refused = await login(browserFor(g), first.authenticator);
    expect(refused.status).toBe(401);
    expect(await lastAuthEvent(g)).toMatchObject({ reason: 'credential_revoked' });

    // The last key cannot be removed without a way back…
    const last = await b2.call('DELETE', `/.keygate/api/devices/${backupKey.id}`);
    expect(last.status).toBe(409);
    expect(last.body).toMatchObject({ error_code: 'LAST_CREDENTIAL' });
    // …but can once an admin issued a recovery link.
    await g.gw.auth.enrollment.recover(g.gw.publicOrigin, 'devices@example.com', 'admin');
    expect((await b2.get<{ hasRecovery: boolean }>('/.keygate/api/devices')).body.hasRecovery).toBe(true);
    expect((await b2.call('DELETE', `/.keygate/api/devices/${backupKey.id}`)).status).toBe(204);
  });

  it("a user cannot touch another user's credential", async () => {
    const alice = await enroll(g, 'alice-dev@example.com');
    const bob = await enroll(g, 'bob-dev@example.com');
    const aliceKey = [...alice.authenticator.keys.keys()][0] as string;
    expect((await bob.browser.call('PATCH', `/.keygate/api/devices/${aliceKey}`, { name: 'mine' })).status).toBe(404);
    expect((await bob.browser.call('DELETE', `/.keygate/api/devices/${aliceKey}`)).status).toBe(404);
    expect((await g.gw.store.getCredential(aliceKey))?.revokedAt).toBeNull();
  });

  it('a recovery link registers a new key without revoking anything, and is audited', async () => {
    const lost = await enroll(g, 'recover@example.com');
    const link = await g.gw.auth.enrollment.recover(g.gw.publicOrigin, 'recover@example.com', 'admin');
    const again = await enroll(g, 'recover@example.com', { token: link.token });
    expect(again.result.status).toBe(200);
    const events = await g.gw.store.listAuthEvents({ limit: 3 });
    expect(events.map((e) => e.kind)).toContain('auth.recovery_used');
    // The old key still works: recovery revokes nothing by itself.
    expect((await login(browserFor(g), lost.authenticator)).status).toBe(200);
  });
});

describe('rate limits', () => {
  it('login attempts per account get 429 with Retry-After, and the window expires', async () => {
    const limited = await startGateway({ rateLimits: { perIpPerMinute: 1000, perAccountPerMinute: 3 } });
    try {
      const b = browserFor(limited);
      const statuses: number[] = [];
      for (let i = 0; i < 5; i++) {
        statuses.push(
          (await b.post('/.keygate/api/webauthn/authentication/options', { email: 'rl@example.com' })).status,
        );
      }
      expect(statuses).toEqual([200, 200, 200, 429, 429]);
      const r = await b.post('/.keygate/api/webauthn/authentication/options', { email: 'rl@example.com' });
      expect(r.body).toMatchObject({ error_code: 'REQUEST_LIMIT_EXCEEDED' });
      expect(Number(r.headers['retry-after'])).toBeGreaterThan(0);
      expect(Number(r.headers['retry-after'])).toBeLessThanOrEqual(60);
      // Another account from the same address is not affected.
      expect(
        (await b.post('/.keygate/api/webauthn/authentication/options', { email: 'other@example.com' })).status,
      ).toBe(200);
    } finally {
      await limited.close();
    }
  });

  it("Keygate's other APIs are limited per client address too", async () => {
    const limited = await startGateway({ rateLimits: { apiPerIpPerMinute: 3 } });
    try {
      const b = browserFor(limited);
      const statuses: number[] = [];
      for (let i = 0; i < 5; i++) statuses.push((await b.get('/.keygate/api/devices')).status);
      expect(statuses).toEqual([401, 401, 401, 429, 429]);
      // Health and metrics are not Keygate APIs and stay reachable.
      expect((await b.get('/.keygate/healthz')).status).toBe(200);
    } finally {
      await limited.close();
    }
  });

  it('per client address across accounts', async () => {
    const limited = await startGateway({ rateLimits: { perIpPerMinute: 4, perAccountPerMinute: 100 } });
    try {
      const b = browserFor(limited);
      const statuses: number[] = [];
      for (let i = 0; i < 6; i++) {
        statuses.push(
          (await b.post('/.keygate/api/webauthn/authentication/options', { email: `u${i}@example.com` })).status,
        );
      }
      expect(statuses).toEqual([200, 200, 200, 200, 429, 429]);
    } finally {
      await limited.close();
    }
  });
});
