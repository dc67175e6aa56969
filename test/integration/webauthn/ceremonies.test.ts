/**
 * WebAuthn ceremonies at the protocol level, with a software authenticator: the happy paths,
 * and each negative case asserting the specific rejection (status, error code, and the reason
 * recorded in the auth event).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../../src/lib/clock.js';
import { startGateway, type TestGateway } from '../../helpers/index.js';
import { browserFor, enroll, invite, lastAuthEvent, login, loginOptions } from '../../helpers/people.js';
import { FLAGS, SoftAuthenticator } from '../../helpers/soft-authenticator.js';

let g: TestGateway;
const clock = new ManualClock(Date.UTC(2026, 10, 1));

beforeAll(async () => {
  g = await startGateway({ rateLimits: { perIpPerMinute: 10_000, perAccountPerMinute: 10_000 } }, { clock });
});

afterAll(async () => {
  await g?.close();
});

async function expectLoginRefused(
  res: { status: number; body: unknown },
  code: string,
  reason: string,
  status = code === 'CHALLENGE_INVALID' ? 400 : 401,
) {
  expect(res.status).toBe(status);
  expect(res.body).toMatchObject({ error_code: code });
  expect(JSON.stringify(res.body)).not.toContain(reason); // the reason is for operators only
  const e = await lastAuthEvent(g);
  expect(e).toMatchObject({ kind: 'auth.login', outcome: 'failure', reason });
}

describe('enrollment and login (happy paths)', () => {
  it('an enrollment link registers a key, logs the person in, and is spent', async () => {
    const token = await invite(g, 'happy@example.com');
    const { browser, result } = await enroll(g, 'happy@example.com', { token });
    expect(result.status).toBe(200);
    expect(result.body).toMatchObject({ returnTo: '/.keygate/devices', credential: { name: 'Test key' } });
    const me = await browser.get<{ user: { email: string } }>('/.keygate/api/session');
    expect(me.status).toBe(200);
    expect(me.body.user.email).toBe('happy@example.com');
    expect(await lastAuthEvent(g)).toMatchObject({ kind: 'auth.register', outcome: 'success' });
    const again = await browserFor(g).post('/.keygate/api/webauthn/registration/options', { enrollmentToken: token });
    expect(again.status).toBe(403);
    expect(again.body).toMatchObject({ error_code: 'ENROLLMENT_TOKEN_INVALID' });
  });

  it('discoverable login (no email) and username-first login both work', async () => {
    const { authenticator } = await enroll(g, 'both@example.com');
    const a = await login(browserFor(g), authenticator);
    expect(a.status).toBe(200);
    expect(a.body).toMatchObject({ user: { email: 'both@example.com' }, returnTo: '/' });
    const b = await login(browserFor(g), authenticator, { email: 'both@example.com' });
    expect(b.status).toBe(200);
    expect(await lastAuthEvent(g)).toMatchObject({ kind: 'auth.login', outcome: 'success', uv: true });
  });

  it('the stored counter increases with each login', async () => {
    const { authenticator, result } = await enroll(g, 'counter@example.com');
    const id = (result.body.credential as { id: string }).id;
    await login(browserFor(g), authenticator);
    await login(browserFor(g), authenticator);
    expect((await g.gw.store.getCredential(id))?.counter).toBe(2);
  });
});

describe('challenges', () => {
  it('a replayed challenge is refused (consumed on first use)', async () => {
    const { authenticator } = await enroll(g, 'replay@example.com');
    const browser = browserFor(g);
    const options = await loginOptions(browser);
    const response = authenticator.get(options);
    const first = await browser.post('/.keygate/api/webauthn/authentication/verify', { response });
    expect(first.status).toBe(200);
    const second = await browser.post('/.keygate/api/webauthn/authentication/verify', { response });
    await expectLoginRefused(second, 'CHALLENGE_INVALID', 'challenge_unknown');
  });

  it('a challenge is consumed by a failed attempt too', async () => {
    const { authenticator } = await enroll(g, 'consumed@example.com');
    const browser = browserFor(g);
    const options = await loginOptions(browser);
    const bad = authenticator.get(options, { badSignature: true });
    expect((await browser.post('/.keygate/api/webauthn/authentication/verify', { response: bad })).status).toBe(401);
    const good = authenticator.get(options);
    await expectLoginRefused(
      await browser.post('/.keygate/api/webauthn/authentication/verify', { response: good }),
      'CHALLENGE_INVALID',
      'challenge_unknown',
    );
  });

  it('an expired challenge is refused', async () => {
    const { authenticator } = await enroll(g, 'expired@example.com');
    const browser = browserFor(g);
    const options = await loginOptions(browser);
    clock.advance(5 * 60_000 + 1);
    const res = await browser.post('/.keygate/api/webauthn/authentication/verify', {
      response: authenticator.get(options),
    });
    await expectLoginRefused(res, 'CHALLENGE_INVALID', 'challenge_expired');
  });

  it('a challenge issued to another browser is refused', async () => {
    const { authenticator } = await enroll(g, 'binding@example.com');
    const options = await loginOptions(browserFor(g));
    const res = await browserFor(g).post('/.keygate/api/webauthn/authentication/verify', {
      response: authenticator.get(options),
    });
    await expectLoginRefused(res, 'CHALLENGE_INVALID', 'challenge_binding');
  });

  it('a registration challenge cannot be used to log in', async () => {
    const { authenticator, browser } = await enroll(g, 'kind@example.com');
    const token = await g.gw.auth.enrollment.recover(g.gw.publicOrigin, 'kind@example.com', 'test');
    const regOptions = await browser.post<{ challenge: string; rp: { id: string } }>(
      '/.keygate/api/webauthn/registration/options',
      { enrollmentToken: token.token },
    );
    const res = await browser.post('/.keygate/api/webauthn/authentication/verify', {
      response: authenticator.get({ challenge: regOptions.body.challenge, rpId: 'localhost' }),
    });
    await expectLoginRefused(res, 'CHALLENGE_INVALID', 'challenge_wrong_kind');
  });
});

describe('login negatives', () => {
  let auth: SoftAuthenticator;
  beforeAll(async () => {
    auth = (await enroll(g, 'neg@example.com')).authenticator;
  });

  it('wrong origin', async () => {
    await expectLoginRefused(
      await login(browserFor(g), auth, { bend: { origin: 'https://evil.example' } }),
      'LOGIN_FAILED',
      'origin',
    );
  });

  it('wrong RP ID hash', async () => {
    await expectLoginRefused(
      await login(browserFor(g), auth, { bend: { rpId: 'evil.example' } }),
      'LOGIN_FAILED',
      'rp_id',
    );
  });

  it('user presence flag missing', async () => {
    await expectLoginRefused(
      await login(browserFor(g), auth, { bend: { flags: FLAGS.UV } }),
      'LOGIN_FAILED',
      'user_presence',
    );
  });

  it('user verification flag missing while UV is required', async () => {
    await expectLoginRefused(
      await login(browserFor(g), auth, { bend: { flags: FLAGS.UP } }),
      'LOGIN_FAILED',
      'user_verification',
    );
  });

  it('bad signature', async () => {
    await expectLoginRefused(
      await login(browserFor(g), auth, { bend: { badSignature: true } }),
      'LOGIN_FAILED',
      'signature',
    );
  });

  it('wrong ceremony type in clientDataJSON', async () => {
    await expectLoginRefused(
      await login(browserFor(g), auth, { bend: { type: 'webauthn.create' } }),
      'LOGIN_FAILED',
      'verification_failed',
    );
  });

  it('unknown credential', async () => {
    const stranger = new SoftAuthenticator(g.gw.publicOrigin);
    stranger.create({
      challenge: 'x',
      rp: { id: 'localhost', name: 'x' },
      user: { id: 'AAAA', name: 'x', displayName: 'x' },
      pubKeyCredParams: [],
    });
    await expectLoginRefused(await login(browserFor(g), stranger), 'LOGIN_FAILED', 'unknown_credential');
  });

  it("another user's credential in a username-first login", async () => {
    const other = (await enroll(g, 'other@example.com')).authenticator;
    const browser = browserFor(g);
    const options = await loginOptions(browser, 'neg@example.com');
    // Bob's authenticator answers Alice's challenge with Bob's key.
    const bobKey = [...other.keys.keys()][0] as string;
    const res = await browser.post('/.keygate/api/webauthn/authentication/verify', {
      response: other.get({ ...options, allowCredentials: [] }, { credentialId: bobKey }),
    });
    await expectLoginRefused(res, 'LOGIN_FAILED', 'credential_not_allowed');
  });

  it('userHandle that does not match the credential owner', async () => {
    await expectLoginRefused(
      await login(browserFor(g), auth, { bend: { userHandle: Buffer.alloc(32, 7).toString('base64url') } }),
      'LOGIN_FAILED',
      'user_handle_mismatch',
    );
  });

  it('a discoverable login without a userHandle', async () => {
    await expectLoginRefused(
      await login(browserFor(g), auth, { bend: { userHandle: null } }),
      'LOGIN_FAILED',
      'user_handle_missing',
    );
  });

  it('a counter that does not increase marks the credential as possibly cloned and refuses it from then on', async () => {
    const { authenticator: a, result } = await enroll(g, 'clone@example.com');
    const id = (result.body.credential as { id: string }).id;
    expect((await login(browserFor(g), a, { bend: { counter: 5 } })).status).toBe(200);
    await expectLoginRefused(
      await login(browserFor(g), a, { bend: { counter: 5 } }),
      'LOGIN_FAILED',
      'counter_regression',
    );
    expect((await g.gw.store.getCredential(id))?.clonedAt).not.toBeNull();
    await expectLoginRefused(
      await login(browserFor(g), a, { bend: { counter: 9 } }),
      'LOGIN_FAILED',
      'credential_cloned',
    );
  });

  it('a change of backup eligibility (a different authenticator) is refused', async () => {
    await expectLoginRefused(
      await login(browserFor(g), auth, { bend: { flags: FLAGS.UP | FLAGS.UV | FLAGS.BE } }),
      'LOGIN_FAILED',
      'backup_eligibility_changed',
    );
  });

  it("an unknown email gets options that look like a real user's (no enumeration)", async () => {
    const known = await loginOptions(browserFor(g), 'neg@example.com');
    const unknown = await loginOptions(browserFor(g), 'nobody@example.com');
    expect(Object.keys(unknown).sort()).toEqual(Object.keys(known).sort());
    expect(unknown.allowCredentials).toHaveLength(1);
    expect(unknown.allowCredentials?.[0]?.id).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(unknown.allowCredentials?.[0]).not.toHaveProperty('transports');
    expect(known.allowCredentials?.[0]).not.toHaveProperty('transports');
    // Stable: the same decoy every time.
    expect((await loginOptions(browserFor(g), 'nobody@example.com')).allowCredentials).toEqual(
      unknown.allowCredentials,
    );
  });
});

describe('registration negatives', () => {
  it('re-registering a credential id that exists is refused', async () => {
    const { authenticator } = await enroll(g, 'dup1@example.com');
    const existing = [...authenticator.keys.keys()][0] as string;
    const { result } = await enroll(g, 'dup2@example.com', { bend: { credentialId: existing } });
    expect(result.status).toBe(409);
    expect(result.body).toMatchObject({ error_code: 'CREDENTIAL_ALREADY_REGISTERED' });
    expect(await lastAuthEvent(g)).toMatchObject({
      kind: 'auth.register',
      outcome: 'failure',
      reason: 'duplicate_credential',
    });
  });

  it('an enrollment token that is expired is refused', async () => {
    const token = await invite(g, 'late@example.com');
    clock.advance(24 * 3_600_000 + 1);
    const r = await browserFor(g).post('/.keygate/api/webauthn/registration/options', { enrollmentToken: token });
    expect(r.status).toBe(403);
    expect(r.body).toMatchObject({ error_code: 'ENROLLMENT_TOKEN_INVALID' });
  });

  it('an enrollment token reused after options were issued twice registers only once', async () => {
    const token = await invite(g, 'twice@example.com');
    const a = browserFor(g);
    const auth = new SoftAuthenticator(g.gw.publicOrigin);
    const o1 = await a.post<Parameters<SoftAuthenticator['create']>[0]>('/.keygate/api/webauthn/registration/options', {
      enrollmentToken: token,
    });
    const o2 = await a.post<Parameters<SoftAuthenticator['create']>[0]>('/.keygate/api/webauthn/registration/options', {
      enrollmentToken: token,
    });
    const first = await a.post('/.keygate/api/webauthn/registration/verify', {
      response: auth.create(o1.body),
      enrollmentToken: token,
    });
    expect(first.status).toBe(200);
    const second = await a.post('/.keygate/api/webauthn/registration/verify', {
      response: auth.create(o2.body),
      enrollmentToken: token,
    });
    expect(second.status).toBe(403);
    expect(second.body).toMatchObject({ error_code: 'ENROLLMENT_TOKEN_INVALID' });
    expect(await lastAuthEvent(g)).toMatchObject({ reason: 'enrollment_token_invalid' });
  });

  it('registration with the wrong origin, or without UV, is refused', async () => {
    const o = await enroll(g, 'rego@example.com', { bend: { origin: 'https://evil.example' } });
    expect(o.result.status).toBe(400);
    expect(o.result.body).toMatchObject({ error_code: 'REGISTRATION_REFUSED' });
    expect(await lastAuthEvent(g)).toMatchObject({ reason: 'origin' });
    const u = await enroll(g, 'reguv@example.com', { bend: { flags: FLAGS.UP | FLAGS.AT } });
    expect(u.result.status).toBe(400);
    expect(await lastAuthEvent(g)).toMatchObject({ reason: 'user_verification' });
  });

  it('adding a key without an enrollment link needs a logged-in, recent session', async () => {
    const anon = await browserFor(g).post('/.keygate/api/webauthn/registration/options', {});
    expect(anon.status).toBe(401);
    expect(anon.body).toMatchObject({ error_code: 'UNAUTHENTICATED' });
    const { browser } = await enroll(g, 'stale@example.com');
    clock.advance(5 * 60_000 + 1);
    const stale = await browser.post('/.keygate/api/webauthn/registration/options', {});
    expect(stale.status).toBe(401);
    expect(stale.body).toMatchObject({ error_code: 'FRESH_LOGIN_REQUIRED' });
  });

  it('malformed bodies get 400 BAD_REQUEST, never 500', async () => {
    const b = browserFor(g);
    for (const body of [
      { response: 'nope' },
      { response: { id: 'a', rawId: 'a', type: 'public-key', response: {} } },
      {
        response: {
          id: '!!',
          rawId: '!!',
          type: 'public-key',
          clientExtensionResults: {},
          response: { clientDataJSON: 'x', attestationObject: 'y' },
        },
      },
      { extra: 1 },
    ]) {
      const r = await b.post('/.keygate/api/webauthn/registration/verify', body);
      expect(r.status).toBe(400);
      expect(r.body).toMatchObject({ error_code: 'BAD_REQUEST' });
    }
    const garbage = await b.post('/.keygate/api/webauthn/authentication/verify', {
      response: {
        id: 'AAAA',
        rawId: 'AAAA',
        type: 'public-key',
        clientExtensionResults: {},
        response: { clientDataJSON: 'bm90IGpzb24', authenticatorData: 'AAAA', signature: 'AAAA' },
      },
    });
    expect(garbage.status).toBe(400);
    expect(garbage.body).toMatchObject({ error_code: 'CHALLENGE_INVALID' });
  });
});

describe('policy', () => {
  it('an AAGUID not on the allow-list is refused at registration', async () => {
    const strict = await startGateway(
      { webauthn: { aaguidAllowList: ['cb69481e-8ff7-4039-93ec-0a2729a154a8'] } },
      { clock },
    );
    try {
      const other = new SoftAuthenticator(strict.gw.publicOrigin, { aaguid: '11111111-2222-3333-4444-555555555555' });
      const r = await enroll(strict, 'aaguid@example.com', { authenticator: other });
      expect(r.result.status).toBe(400);
      expect(r.result.body).toMatchObject({
        error_code: 'REGISTRATION_REFUSED',
        message: 'This authenticator model is not allowed here.',
      });
      expect(await lastAuthEvent(strict)).toMatchObject({
        reason: 'aaguid_not_allowed',
        aaguid: '11111111-2222-3333-4444-555555555555',
      });
      const yubi = new SoftAuthenticator(strict.gw.publicOrigin, { aaguid: 'cb69481e-8ff7-4039-93ec-0a2729a154a8' });
      const ok = await enroll(strict, 'aaguid2@example.com', { authenticator: yubi });
      expect(ok.result.status).toBe(200);
      expect(ok.result.body).toMatchObject({ credential: { authenticator: 'YubiKey 5 Series' } });
    } finally {
      await strict.close();
    }
  });

  it('synced passkeys can be refused by policy; backup flags are stored and shown', async () => {
    const strict = await startGateway({ webauthn: { allowSyncedPasskeys: false } }, { clock });
    try {
      const synced = new SoftAuthenticator(strict.gw.publicOrigin, { backupEligible: true, backedUp: true });
      const r = await enroll(strict, 'synced@example.com', { authenticator: synced });
      expect(r.result.status).toBe(400);
      expect(await lastAuthEvent(strict)).toMatchObject({
        reason: 'synced_passkey_refused',
        backupEligible: true,
        backedUp: true,
      });
    } finally {
      await strict.close();
    }
    const synced = new SoftAuthenticator(g.gw.publicOrigin, { backupEligible: true, backedUp: true });
    const ok = await enroll(g, 'synced-ok@example.com', { authenticator: synced });
    expect(ok.result.body).toMatchObject({ credential: { synced: true, deviceBound: false } });
  });

  it('attestation "direct" refuses a credential without an attestation statement and accepts a verified one', async () => {
    const strict = await startGateway({ webauthn: { attestation: 'direct' } }, { clock });
    try {
      const none = await enroll(strict, 'att-none@example.com');
      expect(none.result.status).toBe(400);
      expect(await lastAuthEvent(strict)).toMatchObject({ reason: 'attestation_required' });
      const packed = await enroll(strict, 'att-packed@example.com', { bend: { fmt: 'packed-self' } });
      expect(packed.result.status).toBe(200);
    } finally {
      await strict.close();
    }
  });
});
