/**
 * Logging in through a corporate identity provider in Chromium: the login page's "Continue
 * with Corp SSO", the provider (a real oidc-provider on 127.0.0.1), back to Keygate, and
 *  - require-local-key: the first time the person enrolls a key (virtual authenticator) and
 *    lands where they were going; the next time the page asks for a key of that person and the
 *    session records both the provider and the key;
 *  - trust-idp-mfa: the provider's hardware-key MFA is enough, no local key.
 * No page logs a console error; each step leaves a screenshot in test-artifacts/screenshots/.
 */
import { mkdirSync } from 'node:fs';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addVirtualAuthenticator, chromiumAvailable, launchChromium } from '../helpers/chromium.js';
import { type CorporateIdp, startCorporateIdp } from '../helpers/corporate-idp.js';
import { freePort, startGateway, startRecordingUpstream, type TestGateway } from '../helpers/index.js';

const hasBrowser = chromiumAvailable();
const SHOTS = new URL('../../test-artifacts/screenshots/', import.meta.url).pathname;
let browser: Browser;
let idp: CorporateIdp;
let g: TestGateway;
let up: Awaited<ReturnType<typeof startRecordingUpstream>>;
const consoleErrors: string[] = [];

beforeAll(async () => {
  if (!hasBrowser) return;
  mkdirSync(SHOTS, { recursive: true });
  up = await startRecordingUpstream();
  const port = await freePort();
  const origin = `http://localhost:${port}`;
  idp = await startCorporateIdp({
    clients: ['corp', 'corp-mfa'].map((n) => ({
      client_id: `keygate-${n}`,
      client_secret: 'e2e-secret',
      redirect_uris: [`${origin}/.keygate/idp/${n}/callback`],
    })),
    users: [
      { sub: 'u-alice', email: 'alice@corp.example', name: 'Alice Corp', groups: ['ml-admins'] },
      { sub: 'u-hana', email: 'hana@corp.example', name: 'Hana', groups: ['ml-admins'], amr: ['hwk'] },
    ],
  });
  process.env.E2E_CORP_SECRET = 'e2e-secret';
  const common = {
    issuer: idp.issuer,
    clientSecretEnv: 'E2E_CORP_SECRET',
    scopes: ['openid', 'email', 'profile', 'groups'],
  };
  g = await startGateway(
    {
      listen: { host: '127.0.0.1', port },
      upstreams: { ws: { url: up.url, preset: 'databricks', credential: { type: 'none' } } },
      identityProviders: [
        { ...common, name: 'corp', displayName: 'Corp SSO', clientId: 'keygate-corp' },
        { ...common, name: 'corp-mfa', displayName: 'Corp MFA', clientId: 'keygate-corp-mfa', mode: 'trust-idp-mfa' },
      ],
      authorization: { bindings: [{ group: 'ml-admins', roles: ['admin'] }] },
    },
    { identifiers: [] },
  );
  browser = await launchChromium();
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await g?.close();
  await idp?.close();
  await up?.close();
});

async function newPage(): Promise<{ context: BrowserContext; page: Page }> {
  const context = await browser.newContext();
  const page = await context.newPage();
  page.on('console', (m) => {
    if (m.type() === 'error') consoleErrors.push(`${page.url()}: ${m.text()}`);
  });
  page.on('pageerror', (e) => consoleErrors.push(`${page.url()}: ${e.message}`));
  return { context, page };
}

async function sessionOf(page: Page) {
  return page.evaluate(async () => {
    const r = await fetch('/.keygate/api/session');
    return { status: r.status, body: (await r.json()) as Record<string, Record<string, unknown>> };
  });
}

describe.skipIf(!hasBrowser)('login through a corporate identity provider, in Chromium', () => {
  it('require-local-key: first a key is enrolled, then the provider login is finished with it', async () => {
    const { context, page } = await newPage();
    try {
      await addVirtualAuthenticator(page, 'internal');
      idp.loginAs('u-alice');
      await page.goto(`${g.gw.publicOrigin}/.keygate/login?return_to=/.keygate/devices`);
      await page.locator('#idp-corp').waitFor();
      await page.screenshot({ path: `${SHOTS}idp-login-page.png`, fullPage: true });
      await page.click('#idp-corp');
      // The provider vouched; no key yet: the enrollment page, in the same sitting.
      await page.waitForURL((u) => u.pathname === '/.keygate/enroll', { timeout: 15_000 });
      await page.fill('#key-name', 'Laptop passkey');
      await page.click('#register');
      // Registered and signed in; "Continue" goes where she was going before the provider.
      await page.locator('#continue').waitFor({ state: 'visible', timeout: 15_000 });
      expect(await page.getAttribute('#continue', 'href')).toBe('/.keygate/devices');
      await page.click('#continue');
      await page.waitForURL((u) => u.pathname === '/.keygate/devices', { timeout: 15_000 });
      const first = await sessionOf(page);
      expect(first.body.session).toMatchObject({ method: 'webauthn', idp: 'corp' });
      expect(first.body.user).toMatchObject({ email: 'alice@corp.example', groups: ['ml-admins'] });

      // Signed out, she comes back through the provider: the page asks for her key.
      await page.click('#signout');
      await page.waitForURL((u) => u.pathname === '/.keygate/login');
      await page.goto(`${g.gw.publicOrigin}/.keygate/login?return_to=/.keygate/admin/`);
      await page.click('#idp-corp');
      await page.waitForURL((u) => u.pathname === '/.keygate/login' && u.searchParams.get('idp') === 'corp');
      await expect.poll(() => page.textContent('#lead')).toContain('Signed in through Corp SSO as alice@corp.example');
      await page.screenshot({ path: `${SHOTS}idp-confirm-key.png`, fullPage: true });
      await page.click('#signin');
      await page.waitForURL((u) => u.pathname === '/.keygate/admin/', { timeout: 15_000 });
      const second = await sessionOf(page);
      expect(second.body.session).toMatchObject({ method: 'webauthn', idp: 'corp' });
      // Her provider group made her an admin: the console's API answers.
      const users = await page.evaluate(async () => (await fetch('/.keygate/api/admin/v1/users')).status);
      expect(users).toBe(200);
    } finally {
      await context.close();
    }
  }, 90_000);

  it('trust-idp-mfa: the provider reported a hardware key; no local key is asked for', async () => {
    const { context, page } = await newPage();
    try {
      idp.loginAs('u-hana');
      await page.goto(`${g.gw.publicOrigin}/.keygate/login?return_to=/.keygate/devices`);
      await page.click('#idp-corp-mfa');
      await page.waitForURL((u) => u.pathname === '/.keygate/devices', { timeout: 15_000 });
      const s = await sessionOf(page);
      expect(s.body.session).toMatchObject({ method: 'oidc', idp: 'corp-mfa' });
      await page.screenshot({ path: `${SHOTS}idp-mfa-devices.png`, fullPage: true });
    } finally {
      await context.close();
    }
  }, 60_000);

  it('no page logged a console error', () => {
    expect(consoleErrors).toEqual([]);
  });
});
