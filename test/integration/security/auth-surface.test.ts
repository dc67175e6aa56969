/**
 * Security review findings on Keygate's own surface (sessions, ceremonies, enrollment, the
 * step-up hold). Tests named `BUG:` fail against the current code and pass once it is fixed;
 * the others pin properties that were untested.
 */
import type { PublicKeyCredentialRequestOptionsJSON } from '@simplewebauthn/server';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../../src/lib/clock.js';
import { PendingSteps } from '../../../src/authorize/pending.js';
import { startGateway, type TestGateway } from '../../helpers/index.js';
import { browserFor, enroll, invite, login, loginOptions } from '../../helpers/people.js';

let g: TestGateway;
const clock = new ManualClock(Date.UTC(2026, 10, 1));

beforeAll(async () => {
  g = await startGateway(
    { rateLimits: { perIpPerMinute: 10_000, perAccountPerMinute: 10_000 } },
    { clock, identifiers: [] },
  );
});

afterAll(async () => {
  await g?.close();
});

/** Raw request carrying a browser's cookies but an explicit (cross-site) Origin. */
async function raw(
  method: string,
  path: string,
  cookie: string,
  headers: Record<string, string> = {},
  body?: unknown,
): Promise<{ status: number; body: Record<string, unknown> | null }> {
  const res = await request(`${g.url}${path}`, {
    method: method as 'POST',
    headers: {
      cookie,
      accept: 'application/json',
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      ...headers,
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.body.text();
  return { status: res.statusCode, body: text === '' ? null : (JSON.parse(text) as Record<string, unknown>) };
}

describe('cross-site check on Keygate APIs', () => {
  it('a percent-encoded "/.keygate/%61pi/" path does not skip the cross-site check', async () => {
    const { browser } = await enroll(g, 'csrf-enc@example.com');
    expect((await browser.get('/.keygate/api/session')).status).toBe(200);
    // The router decodes %61 to "a" and dispatches to POST /.keygate/api/session/logout; the
    // onRequest hook compares the raw URL with "/.keygate/api/" and lets it through.
    const r = await raw('POST', '/.keygate/%61pi/session/logout', browser.cookieHeader(), {
      origin: 'https://evil.example',
    });
    expect(r.status).toBe(403);
    expect(r.body).toMatchObject({ error_code: 'CROSS_SITE_REQUEST' });
    expect((await browser.get('/.keygate/api/session')).status).toBe(200);
  });

  it('refuses a cross-site logout and device deletion on the plain path (pins the existing check)', async () => {
    const { browser } = await enroll(g, 'csrf-plain@example.com');
    const devices = await browser.get<{ credentials: { id: string }[] }>('/.keygate/api/devices');
    const id = devices.body.credentials[0]?.id as string;
    for (const [method, path] of [
      ['POST', '/.keygate/api/session/logout'],
      ['DELETE', `/.keygate/api/devices/${id}`],
      ['PATCH', `/.keygate/api/devices/${id}`],
      ['POST', '/.keygate/api/admin/v1/invitations'],
      ['POST', '/.keygate/api/step-up/pending/x/replay'],
    ] as const) {
      const r = await raw(method, path, browser.cookieHeader(), { 'sec-fetch-site': 'same-site' }, { name: 'x' });
      expect(r.status, `${method} ${path}`).toBe(403);
      expect(r.body).toMatchObject({ error_code: 'CROSS_SITE_REQUEST' });
    }
  });
});

describe('return_to after a ceremony', () => {
  it('a dot segment that collapses to "//host" is never returned as a return path (no open redirect)', async () => {
    const { browser, authenticator } = await enroll(g, 'redirect@example.com');
    for (const returnTo of ['/.keygate/..//evil.example/x', '/a/%2e%2e//evil.example', '/a/.%2E//evil.example']) {
      const r = await login(browser, authenticator, { returnTo });
      expect(r.status).toBe(200);
      // step-up.ts does location.assign(result.returnTo) with no client-side check.
      expect(r.body.returnTo, returnTo).not.toMatch(/^\/\//);
    }
  });
});

describe('enrollment and recovery links', () => {
  it('a recovery-link registration must present the token again, and is audited as recovery', async () => {
    const { authenticator } = await enroll(g, 'recover@example.com');
    const link = await g.gw.auth.enrollment.recover(g.gw.publicOrigin, 'recover@example.com', 'admin');
    const b = browserFor(g);
    const options = await b.post<Parameters<typeof authenticator.create>[0]>(
      '/.keygate/api/webauthn/registration/options',
      {
        enrollmentToken: link.token,
      },
    );
    expect(options.status).toBe(200);
    // The body omits enrollmentToken: the challenge's enrollment hash is then never compared.
    const r = await b.post('/.keygate/api/webauthn/registration/verify', {
      response: authenticator.create(options.body),
    });
    const events = await g.gw.store.listAuthEvents({ limit: 20 });
    const recoveryUsed = events.some((e) => e.kind === 'auth.recovery_used' && e.userId === link.user.id);
    // Either the verify must name the link it was issued for, or the recovery must be audited.
    expect(r.status === 200 ? recoveryUsed : true).toBe(true);
    expect(r.status).not.toBe(200);
  });

  it('a link is single use even under concurrent verifies with two challenges', async () => {
    const token = await invite(g, 'race@example.com');
    const a = browserFor(g);
    const bb = browserFor(g);
    const { SoftAuthenticator } = await import('../../helpers/soft-authenticator.js');
    const ka = new SoftAuthenticator(g.gw.publicOrigin);
    const kb = new SoftAuthenticator(g.gw.publicOrigin);
    const oa = await a.post<Parameters<typeof ka.create>[0]>('/.keygate/api/webauthn/registration/options', {
      enrollmentToken: token,
    });
    const ob = await bb.post<Parameters<typeof kb.create>[0]>('/.keygate/api/webauthn/registration/options', {
      enrollmentToken: token,
    });
    const [ra, rb] = await Promise.all([
      a.post('/.keygate/api/webauthn/registration/verify', { response: ka.create(oa.body), enrollmentToken: token }),
      bb.post('/.keygate/api/webauthn/registration/verify', { response: kb.create(ob.body), enrollmentToken: token }),
    ]);
    expect([ra.status, rb.status].sort()).toEqual([200, 403]);
    expect([ra.body, rb.body]).toContainEqual(expect.objectContaining({ error_code: 'ENROLLMENT_TOKEN_INVALID' }));
    const user = await g.gw.store.getUserByEmail('race@example.com');
    expect((await g.gw.store.listCredentials(user?.id as string)).length).toBe(1);
  });
});

describe('user enumeration on login options (ASVS 6.3.8)', () => {
  it('the decoy for an unknown email looks like a real account (no transports, a 32-byte id)', async () => {
    await enroll(g, 'known@example.com');
    const b = browserFor(g);
    const known: PublicKeyCredentialRequestOptionsJSON = await loginOptions(b, 'known@example.com');
    const unknown: PublicKeyCredentialRequestOptionsJSON = await loginOptions(b, 'nobody-here@example.com');
    const shape = (o: PublicKeyCredentialRequestOptionsJSON) =>
      (o.allowCredentials ?? []).map((c) => ({
        bytes: Buffer.from(c.id, 'base64url').length,
        transports: [...(c.transports ?? [])].sort(),
      }));
    expect(shape(unknown)).toEqual(shape(known));
  });
});

describe('devices (ASVS 7.5.1)', () => {
  it('a stale session cannot revoke a credential: removing one needs a fresh login, like adding one', async () => {
    const { browser } = await enroll(g, 'stale@example.com');
    // A second key, added while the login is fresh.
    const { SoftAuthenticator } = await import('../../helpers/soft-authenticator.js');
    const second = new SoftAuthenticator(g.gw.publicOrigin);
    const opts = await browser.post<Parameters<typeof second.create>[0]>(
      '/.keygate/api/webauthn/registration/options',
      {},
    );
    expect(opts.status).toBe(200);
    const added = await browser.post<{ credential: { id: string } }>('/.keygate/api/webauthn/registration/verify', {
      response: second.create(opts.body),
    });
    expect(added.status).toBe(200);
    clock.advance(10 * 60_000); // beyond the 5-minute fresh-login window, within the 1-hour idle timeout
    expect((await browser.post('/.keygate/api/webauthn/registration/options', {})).body).toMatchObject({
      error_code: 'FRESH_LOGIN_REQUIRED',
    });
    const del = await browser.call('DELETE', `/.keygate/api/devices/${added.body.credential.id}`);
    expect(del.body).toMatchObject({ error_code: 'FRESH_LOGIN_REQUIRED' });
  });
});

describe('held step-up submissions', () => {
  it("one user cannot evict another user's held submission, and held bodies are bounded", () => {
    const pending = new PendingSteps(new ManualClock(Date.UTC(2026, 10, 1)));
    const victim = pending.add({
      userId: 'victim',
      method: 'PUT',
      target: '/x',
      contentType: undefined,
      body: Buffer.from('{}'),
    });
    for (let i = 0; i < 1000; i++) {
      pending.add({ userId: 'attacker', method: 'PUT', target: '/x', contentType: undefined, body: Buffer.alloc(1) });
    }
    expect(victim).toBeDefined();
    expect(pending.get(victim?.id ?? '', 'victim')).toBeDefined();
    // 64 MiB of held bodies in all: past that, nothing more is held.
    for (let i = 0; i < 70; i++) {
      pending.add({
        userId: `u${i}`,
        method: 'PUT',
        target: '/x',
        contentType: undefined,
        body: Buffer.alloc(1024 * 1024),
      });
    }
    expect(
      pending.add({
        userId: 'late',
        method: 'PUT',
        target: '/x',
        contentType: undefined,
        body: Buffer.alloc(1024 * 1024),
      }),
    ).toBeUndefined();
  });
});
