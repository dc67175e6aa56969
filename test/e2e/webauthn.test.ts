/**
 * A person in a real browser: Debian's Chromium with Chrome's virtual authenticator (CDP
 * WebAuthn domain), once as a platform authenticator (internal) and once as a USB security
 * key. They open the enrollment link, register, log out, log in with a discoverable passkey,
 * reach a proxied simulator endpoint, add a backup key, revoke the first, and fail to log in
 * with the revoked one.
 */
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEMO_SP, demoSimOptions, type Simulator, startSimulator } from '../../sim/index.js';
import {
  addVirtualAuthenticator,
  chromiumAvailable,
  launchChromium,
  type VirtualAuthenticator,
} from '../helpers/chromium.js';
import { simUpstream, startGateway, type TestGateway } from '../helpers/index.js';

const hasBrowser = chromiumAvailable();
let browser: Browser;
let sim: Simulator;
let g: TestGateway;

beforeAll(async () => {
  if (!hasBrowser) return;
  sim = await startSimulator(demoSimOptions());
  // WebAuthn needs a domain RP ID: the browser uses http://localhost:PORT (the listener is 127.0.0.1).
  g = await startGateway({ upstreams: simUpstream(sim.url) }, { identifiers: [] });
  browser = await launchChromium();
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await g?.close();
  await sim?.close();
});

async function credentialsOf(a: VirtualAuthenticator) {
  return (await a.cdp.send('WebAuthn.getCredentials', { authenticatorId: a.id })).credentials;
}

async function newPage(): Promise<{ context: BrowserContext; page: Page }> {
  const context = await browser.newContext();
  return { context, page: await context.newPage() };
}

async function invite(email: string): Promise<string> {
  return (await g.gw.auth.enrollment.invite(g.gw.publicOrigin, { email, roles: ['ml-engineer'], createdBy: 'e2e' }))
    .url;
}

describe.each(['internal', 'usb'] as const)('a person with a %s authenticator', (transport) => {
  it.skipIf(!hasBrowser)(
    'enrolls, logs out, logs in with a passkey, reaches the workspace, replaces the key',
    async () => {
      const email = `${transport}-person@example.com`;
      const { context, page } = await newPage();
      try {
        const first = await addVirtualAuthenticator(page, transport);

        // 1. The enrollment link.
        await page.goto(await invite(email));
        await page.fill('#key-name', 'First key');
        await page.click('#register');
        await expect.poll(() => page.textContent('#status'), { timeout: 15_000 }).toMatch(/registered/i);
        expect(await credentialsOf(first)).toHaveLength(1);

        // 2. Log out from the devices page.
        await page.goto(`${g.gw.publicOrigin}/.keygate/devices`);
        await expect.poll(() => page.textContent('#user-email')).toContain(email);
        await page.click('#signout');
        await page.waitForURL((u) => u.pathname === '/.keygate/login');

        // 3. A discoverable login (no email typed), straight back to where the person was going.
        await page.goto(`${g.gw.publicOrigin}/.keygate/login?return_to=/api/2.0/serving-endpoints`);
        await page.click('#signin');
        await page.waitForURL((u) => u.pathname === '/api/2.0/serving-endpoints', { timeout: 15_000 });
        const endpoints = JSON.parse((await page.textContent('body')) ?? '{}') as { endpoints: { name: string }[] };
        expect(endpoints.endpoints.map((e) => e.name)).toContain('iris');
        expect(sim.requests.at(-1)?.identity).toBe(DEMO_SP.userName);

        // 4. A backup key, added from the devices page while the login is fresh.
        const firstCreds = await credentialsOf(first);
        await first.cdp.send('WebAuthn.removeVirtualAuthenticator', { authenticatorId: first.id });
        const backup = await addVirtualAuthenticator(page, transport);
        await page.goto(`${g.gw.publicOrigin}/.keygate/devices`);
        await page.fill('#new-key-name', 'Backup key');
        await page.click('#add-key');
        await expect.poll(() => page.textContent('#status'), { timeout: 15_000 }).toMatch(/registered/i);
        await expect.poll(() => page.locator('#credentials [data-credential-id]').count()).toBe(2);

        // 5. Revoke the first key (log in with the backup first, so this session survives).
        await page.click('#signout');
        await page.waitForURL((u) => u.pathname === '/.keygate/login');
        await page.click('#signin');
        await page.waitForURL((u) => !u.pathname.startsWith('/.keygate/login'), { timeout: 15_000 });
        await page.goto(`${g.gw.publicOrigin}/.keygate/devices`);
        const firstId = (firstCreds[0]?.credentialId ?? '')
          .replaceAll('+', '-')
          .replaceAll('/', '_')
          .replace(/=+$/, '');
        const row = page.locator(`#credentials [data-credential-id="${firstId}"]`);
        await row.locator('.remove').click();
        await row.locator('.confirm-remove').click();
        await expect.poll(() => page.locator('#credentials [data-credential-id]').count()).toBe(1);
        await page.click('#signout');
        await page.waitForURL((u) => u.pathname === '/.keygate/login');

        // 6. The revoked key, put back into a fresh authenticator, cannot log in.
        await backup.cdp.send('WebAuthn.removeVirtualAuthenticator', { authenticatorId: backup.id });
        const thief = await addVirtualAuthenticator(page, transport);
        await thief.cdp.send('WebAuthn.addCredential', {
          authenticatorId: thief.id,
          credential: firstCreds[0] as never,
        });
        await page.goto(`${g.gw.publicOrigin}/.keygate/login`);
        await page.click('#signin');
        await expect.poll(() => page.textContent('#error'), { timeout: 15_000 }).toMatch(/\S/);
        expect(new URL(page.url()).pathname).toBe('/.keygate/login');
        const [event] = await g.gw.store.listAuthEvents({ limit: 1 });
        expect(event).toMatchObject({ kind: 'auth.login', outcome: 'failure', reason: 'credential_revoked' });
      } finally {
        await context.close();
      }
    },
  );
});

describe('user verification', () => {
  it.skipIf(!hasBrowser)('an authenticator that cannot verify the user is refused when UV is required', async () => {
    const { context, page } = await newPage();
    try {
      await addVirtualAuthenticator(page, 'usb', { uv: false });
      await page.goto(await invite('no-uv@example.com'));
      await page.fill('#key-name', 'No UV');
      await page.click('#register');
      await expect.poll(() => page.textContent('#error'), { timeout: 15_000 }).toMatch(/\S/);
      const user = await g.gw.store.getUserByEmail('no-uv@example.com');
      expect(await g.gw.store.listCredentials(user?.id ?? '')).toEqual([]);
    } finally {
      await context.close();
    }
  });
});
