/**
 * The admin console in a real browser: Debian's Chromium with Chrome's virtual authenticator.
 * An admin enrolls, is sent to the login page from the console and back, invites a person (roles
 * ticked from the API's list), revokes another person's key, makes a group and moves a person in
 * and out of it from either page, deletes a person (and is refused deleting themself), creates
 * a SCIM token (shown once, used by the test as an identity provider would, then revoked and
 * refused), creates a service principal (its secret shown exactly once) and registers another one's public key
 * (a private key is refused), adds and removes a federation trust, finds a denied proxied
 * request in the audit log, asks the policy tester, and opens every view at 1280×800 (and four
 * at 390×844), saving a screenshot of each into the git-ignored test-artifacts/screenshots/.
 * Console errors and page errors are collected over the whole run.
 *
 * Each view is its own `it`, in order, on one page: a view whose endpoint is missing fails
 * alone, with the API's message on screen.
 */
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { exportJWK, generateKeyPair } from 'jose';
import * as oidc from 'openid-client';
import type { Browser, BrowserContext, Locator, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { demoSimOptions, type Simulator, startSimulator } from '../../sim/index.js';
import { addVirtualAuthenticator, chromiumAvailable, launchChromium } from '../helpers/chromium.js';
import { simUpstream, startGateway, type TestGateway } from '../helpers/index.js';
import { enroll } from '../helpers/people.js';

const hasBrowser = chromiumAvailable();
const SHOTS = new URL('../../test-artifacts/screenshots/', import.meta.url).pathname;
const ADMIN = 'console-admin@example.com';
const DESKTOP = { width: 1280, height: 800 };
const PHONE = { width: 390, height: 844 };

let browser: Browser;
let sim: Simulator;
let g: TestGateway;
let context: BrowserContext;
let page: Page;
let origin: string;

/** What the browser reported: console errors and uncaught page errors, with the step they happened in. */
const reported: { step: string; text: string; url: string }[] = [];
let step = 'setup';
const shots: string[] = [];

/**
 * The only errors the run may show. Chrome logs every 4xx answer to a fetch as a console error
 * ("Failed to load resource"), so the steps that provoke one on purpose name it here.
 */
const ALLOWED: { step: string | null; url: RegExp; text: RegExp }[] = [
  { step: null, url: /\/favicon\.ico$/, text: /status of 404/ },
  // Signed out on purpose: the session and the view's first call answer 401, and the console goes to the login page.
  { step: 'signed-out visit', url: /\/\.keygate\/api\//, text: /status of 401/ },
  // A change answered 401 FRESH_LOGIN_REQUIRED (simulated with page.route).
  { step: 'fresh login', url: /\/\.keygate\/api\/admin\/v1\/service-principals$/, text: /status of 401/ },
  { step: 'fresh login: groups', url: /\/\.keygate\/api\/admin\/v1\/groups$/, text: /status of 401/ },
  { step: 'scim: fresh login', url: /\/\.keygate\/api\/admin\/v1\/scim-tokens$/, text: /status of 401/ },
  // A person without an admin role opens the console: the admin API answers 403 (the user list,
  // the roles offered in the invitation form, and the SCIM tokens).
  { step: 'not an admin', url: /\/\.keygate\/api\/admin\/v1\/(users\?|roles$|scim-tokens$)/, text: /status of 403/ },
  // Refusals shown in the API's words: deleting yourself, a private key, a trust's bad issuer.
  { step: 'delete yourself', url: /\/\.keygate\/api\/admin\/v1\/users\/[^/?]+$/, text: /status of 400/ },
  { step: 'sp keys: private', url: /\/admin\/v1\/service-principals\/[^/]+\/keys$/, text: /status of 400/ },
  { step: 'trust: bad issuer', url: /\/\.keygate\/api\/admin\/v1\/federation-trusts$/, text: /status of 400/ },
];

beforeAll(async () => {
  if (!hasBrowser) return;
  mkdirSync(SHOTS, { recursive: true });
  sim = await startSimulator(demoSimOptions());
  g = await startGateway(
    {
      // The group made in the console holds a role from keygate.yaml (bindings naming it stay).
      authorization: { stepUpMaxAge: '10m', bindings: [{ group: 'ml-platform', roles: ['ml-reader'] }] },
      upstreams: simUpstream(sim.url),
    },
    { identifiers: [] },
  );
  origin = g.gw.publicOrigin;
  browser = await launchChromium();
  context = await browser.newContext({ viewport: DESKTOP });
  page = await context.newPage();
  watch(page);
  await addVirtualAuthenticator(page, 'usb');
}, 60_000);

afterAll(async () => {
  await context?.close();
  await browser?.close();
  await g?.close();
  await sim?.close();
});

function watch(p: Page): void {
  p.on('console', (m) => {
    if (m.type() === 'error') reported.push({ step, text: m.text(), url: m.location().url });
  });
  p.on('pageerror', (e) => reported.push({ step, text: `pageerror: ${e.message}`, url: p.url() }));
}

/** A screenshot of the whole page, or of one part of it. */
async function shot(name: string, of?: Locator): Promise<void> {
  const path = `${SHOTS}${name}.png`;
  if (of) await of.screenshot({ path });
  else await page.screenshot({ path, fullPage: true });
  shots.push(path);
}

/** Follow a nav link, as a person would, and wait for the view's heading. */
async function open(nav: string, heading: string | RegExp): Promise<void> {
  await page.click(`#nav a[data-nav="${nav}"]`);
  await expect.poll(() => page.locator('#view h1').textContent()).toMatch(heading);
}

/** Confirm the open dialog; a destructive one starts on Cancel. */
async function confirmDialog(): Promise<string> {
  const dialog = page.locator('dialog.modal[open]');
  await expect.poll(() => dialog.count()).toBe(1);
  expect(await page.evaluate<string | null>('document.activeElement?.textContent ?? null')).toBe('Cancel');
  const text = (await dialog.textContent()) ?? '';
  await dialog.locator('button[value="confirm"]').click();
  await expect.poll(() => dialog.count()).toBe(0);
  return text;
}

/**
 * Answer changes (POSTs) to an admin API path with 401 FRESH_LOGIN_REQUIRED, as the API does when
 * the login is older than stepUpMaxAge; other calls pass. Resolves to the function that stops it.
 */
async function staleLogin(path: string): Promise<() => Promise<void>> {
  const url = `${origin}/.keygate/api/admin/v1/${path}`;
  await page.route(url, (route) =>
    route.request().method() === 'POST'
      ? route.fulfill({
          status: 401,
          contentType: 'application/json',
          body: JSON.stringify({
            error_code: 'FRESH_LOGIN_REQUIRED',
            message: 'Changes need a login within the last few minutes: tap your security key again, then retry.',
            request_id: 'e2e',
          }),
        })
      : route.continue(),
  );
  return () => page.unroute(url);
}

/** A change from this button opens the fresh-login prompt; Escape closes it and focus goes back to the button. */
async function promptedThenEscape(buttonId: string): Promise<void> {
  const prompt = page.locator('dialog#fresh-login[open]');
  await page.click(`#${buttonId}`);
  await expect.poll(() => prompt.count()).toBe(1);
  expect(await prompt.textContent()).toContain('Confirm with your security key');
  await page.keyboard.press('Escape');
  await expect.poll(() => prompt.count()).toBe(0);
  expect(await page.evaluate<string | null>('document.activeElement?.id ?? null')).toBe(buttonId);
}

/**
 * Submit a form (its `field` filled with `value`) while the API asks for a fresh login on `path`:
 * the prompt opens and closes, and the view's `msg` says nothing (the prompt said it all).
 */
async function refusedForFreshLogin(
  path: string,
  field: string,
  value: string,
  buttonId: string,
  msg: string,
): Promise<void> {
  const unroute = await staleLogin(path);
  try {
    await page.fill(field, value);
    await promptedThenEscape(buttonId);
    expect(await page.textContent(msg)).toBe('');
  } finally {
    await unroute();
  }
}

/** The groups a person is in, by the store. */
async function groupsOf(id: string): Promise<string[] | undefined> {
  return (await g.gw.store.getUser(id))?.groups;
}

/** The in-view error, if the view shows one (a missing endpoint, say). */
async function viewErrors(): Promise<string[]> {
  return page.locator('#view .view-error').allTextContents();
}

describe('the admin console', () => {
  it.skipIf(!hasBrowser)(
    'sends a signed-out admin to the login page and back to the view they asked for',
    async () => {
      step = 'enroll';
      const link = await g.gw.auth.enrollment.invite(origin, { email: ADMIN, roles: ['admin'], createdBy: 'e2e' });
      await page.goto(link.url);
      await page.click('#register');
      await expect.poll(() => page.textContent('#status'), { timeout: 15_000 }).toMatch(/registered/i);

      step = 'signed-out visit';
      await context.clearCookies();
      await page.goto(`${origin}/.keygate/admin/#/users`);
      await page.waitForURL((u) => u.pathname === '/.keygate/login', { timeout: 15_000 });
      expect(new URL(page.url()).searchParams.get('return_to')).toBe('/.keygate/admin/#/users');

      step = 'login';
      await page.click('#signin');
      await page.waitForURL((u) => u.pathname === '/.keygate/admin/' && u.hash === '#/users', { timeout: 15_000 });
      await expect.poll(() => page.textContent('#user-email')).toBe(ADMIN);
      await expect.poll(() => page.locator('#view h1').textContent()).toBe('Users');
      expect(await page.getAttribute('#nav a[data-nav="users"]', 'aria-current')).toBe('page');
    },
    60_000,
  );

  it.skipIf(!hasBrowser)('invites a person: the one-time link appears once, with a copy button', async () => {
    step = 'users';
    await page.fill('#invite-form input[name="email"]', 'newcomer@example.com');
    await page.check('#invite-form input[name="roles"][value="ml-engineer"]');
    await page.click('#invite-submit');
    const value = page.locator('#invite-result input.once-value');
    await expect.poll(() => value.inputValue(), { timeout: 10_000 }).toMatch(/\/\.keygate\/enroll\?token=/);
    expect((await value.inputValue()).startsWith(`${origin}/.keygate/enroll?token=`)).toBe(true);
    expect(await page.locator('#invite-result button', { hasText: 'Copy' }).count()).toBe(1);
    await expect.poll(() => page.textContent('#user-list')).toContain('newcomer@example.com');
    const invited = await g.gw.store.getUserByEmail('newcomer@example.com');
    expect(invited?.roles).toEqual(['ml-engineer']);
    await shot('users');
  });

  it.skipIf(!hasBrowser)("revokes another person's key from their page", async () => {
    step = 'user';
    await enroll(g, 'bob@example.com');
    const bob = await g.gw.store.getUserByEmail('bob@example.com');
    expect(bob).toBeTruthy();

    await page.fill('#user-search input[name="q"]', 'bob');
    await page.press('#user-search input[name="q"]', 'Enter');
    await page.locator('#user-list a', { hasText: 'bob@example.com' }).click();
    await expect.poll(() => page.locator('#view h1').textContent()).toBe('bob@example.com');
    expect(new URL(page.url()).hash).toBe(`#/users/${bob?.id}`);

    const revoke = page.locator('#user-keys .revoke-key');
    await expect.poll(() => revoke.count()).toBe(1);
    // The key's authenticator: a model the short list does not know, shown with the unknown glyph.
    const model = page.locator('#user-keys .auth-model');
    expect(await model.getAttribute('data-kind')).toBe('unknown');
    expect(await model.locator('svg.auth-icon').count()).toBe(1);
    expect(await model.textContent()).toBe('Unknown authenticator');
    await revoke.click();
    const dialog = page.locator('dialog.modal[open]');
    await expect.poll(() => dialog.count()).toBe(1);
    // A destructive dialog starts on Cancel.
    expect(await page.evaluate<string | null>('document.activeElement?.textContent ?? null')).toBe('Cancel');
    await dialog.locator('button[value="confirm"]').click();
    await expect.poll(() => page.textContent('#user-msg')).toMatch(/revoked/);
    await expect.poll(() => page.textContent('#user-keys')).toContain('Revoked');
    const creds = await g.gw.store.listCredentials(bob?.id ?? '');
    expect(creds.map((c) => c.revokedAt !== null)).toEqual([true]);
    await shot('user');
  });

  it.skipIf(!hasBrowser)(
    'makes a group, adds a person from its page and from theirs, removes them, deletes the group',
    async () => {
      step = 'groups';
      const bob = await g.gw.store.getUserByEmail('bob@example.com');
      const bobId = bob?.id ?? '';
      await open('groups', 'Groups');
      await page.fill('#group-form input[name="name"]', 'ml-platform');
      await page.fill('#group-form input[name="description"]', 'The ML platform team');
      await page.press('#group-form input[name="description"]', 'Enter'); // the keyboard submits
      const listed = page.locator('#group-list tr', { hasText: 'ml-platform' });
      await expect.poll(() => listed.count(), { timeout: 10_000 }).toBe(1);
      const group = await g.gw.store.getGroup('ml-platform');
      expect(group?.description).toBe('The ML platform team');
      // Its roles come from the binding in keygate.yaml.
      expect(await listed.textContent()).toContain('ml-reader');
      await shot('groups');

      step = 'group';
      await listed.locator('a.group-link').click();
      await expect.poll(() => page.locator('#view h1').textContent()).toBe('ml-platform');
      expect(new URL(page.url()).hash).toBe(`#/groups/${group?.id}`);
      // An email nobody has is refused before any change.
      await page.fill('#member-form input[name="email"]', 'nobody@example.com');
      await page.click('#member-add');
      await expect.poll(() => page.textContent('#group-msg'), { timeout: 10_000 }).toContain('Nobody has the email');
      expect(await page.getAttribute('#member-form input[name="email"]', 'aria-invalid')).toBe('true');
      await page.fill('#member-form input[name="email"]', 'Bob@Example.com');
      await page.click('#member-add');
      await expect.poll(() => page.textContent('#group-members'), { timeout: 10_000 }).toContain('bob@example.com');
      expect(await page.textContent('#group-msg')).toContain('bob@example.com is now in ml-platform');
      expect((await g.gw.store.listGroupMembers(group?.id ?? '')).map((u) => u.email)).toEqual(['bob@example.com']);
      expect(await groupsOf(bobId)).toEqual(['ml-platform']);
      await shot('group');

      // Bob's page lists the group; removing him there takes him out.
      step = 'user groups';
      await page.locator('#group-members a', { hasText: 'bob@example.com' }).click();
      await expect.poll(() => page.locator('#view h1').textContent()).toBe('bob@example.com');
      const mine = page.locator('#user-groups tr', { hasText: 'ml-platform' });
      await expect.poll(() => mine.count(), { timeout: 10_000 }).toBe(1);
      expect(await mine.textContent()).toContain('ml-reader');
      await mine.locator('button.remove-member').click();
      expect(await confirmDialog()).toContain('Remove bob@example.com from ml-platform?');
      await expect.poll(() => page.textContent('#user-groups'), { timeout: 10_000 }).toContain('Not in any group');
      expect(await groupsOf(bobId)).toEqual([]);

      // And back in from his page, the group chosen from the list of groups.
      await page.selectOption('#user-group-form select[name="group"]', { label: 'ml-platform' });
      await page.click('#user-group-add');
      await expect.poll(() => mine.count(), { timeout: 10_000 }).toBe(1);
      expect(await groupsOf(bobId)).toEqual(['ml-platform']);

      // Removed on the group's page, then the group is deleted after a confirmation.
      step = 'group delete';
      await mine.locator('a', { hasText: 'ml-platform' }).click();
      await expect.poll(() => page.locator('#view h1').textContent()).toBe('ml-platform');
      const member = page.locator('#group-members tr', { hasText: 'bob@example.com' });
      await expect.poll(() => member.count(), { timeout: 10_000 }).toBe(1);
      await member.locator('button.remove-member').click();
      await confirmDialog();
      await expect.poll(() => page.textContent('#group-members'), { timeout: 10_000 }).toContain('No members yet.');
      expect(await groupsOf(bobId)).toEqual([]);
      await page.fill('#member-form input[name="email"]', 'bob@example.com');
      await page.click('#member-add');
      await expect.poll(() => member.count(), { timeout: 10_000 }).toBe(1);

      await page.locator('#view .actions button', { hasText: 'Delete group' }).click();
      expect(await confirmDialog()).toContain('Its 1 member(s) lose it');
      await page.waitForURL((u) => u.hash === '#/groups', { timeout: 10_000 });
      await expect.poll(() => page.textContent('#status')).toBe('Group ml-platform deleted.');
      await expect.poll(() => page.locator('#group-list[aria-busy]').count(), { timeout: 10_000 }).toBe(0);
      expect(await page.textContent('#group-list')).toContain('No groups yet.');
      expect(await g.gw.store.getGroup('ml-platform')).toBeNull();
      expect(await groupsOf(bobId)).toEqual([]);
    },
    60_000,
  );

  it.skipIf(!hasBrowser)('deletes a person after a confirmation, and refuses to delete yourself', async () => {
    step = 'delete a person';
    await enroll(g, 'erin@example.com');
    const erin = await g.gw.store.getUserByEmail('erin@example.com');
    await open('users', 'Users');
    await page.fill('#user-search input[name="q"]', 'erin');
    await page.press('#user-search input[name="q"]', 'Enter');
    await page.locator('#user-list a', { hasText: 'erin@example.com' }).click();
    await expect.poll(() => page.locator('#view h1').textContent()).toBe('erin@example.com');
    await page.click('#view .actions button.delete-user');
    expect(await confirmDialog()).toContain('This cannot be undone.');
    await page.waitForURL((u) => u.hash === '#/users', { timeout: 10_000 });
    await expect.poll(() => page.textContent('#status')).toBe('erin@example.com was deleted.');
    await expect.poll(() => page.textContent('#user-list'), { timeout: 10_000 }).toContain(ADMIN);
    expect(await page.textContent('#user-list')).not.toContain('erin@example.com');
    expect(await g.gw.store.getUser(erin?.id ?? '')).toBeNull();
    expect(await g.gw.store.getUserByEmail('erin@example.com')).toBeNull();

    step = 'delete yourself';
    const me = await g.gw.store.getUserByEmail(ADMIN);
    await page.locator('#user-list a', { hasText: ADMIN }).click();
    await expect.poll(() => page.locator('#view h1').textContent()).toBe(ADMIN);
    await page.click('#view .actions button.delete-user');
    await confirmDialog();
    await expect.poll(() => page.textContent('#user-msg'), { timeout: 10_000 }).toBe('You cannot delete yourself.');
    expect(await g.gw.store.getUser(me?.id ?? '')).not.toBeNull();
  });

  it.skipIf(!hasBrowser)(
    'creates a SCIM token, shown once, that an identity provider can use until it is revoked',
    async () => {
      step = 'scim: fresh login';
      const me = await g.gw.store.getUserByEmail(ADMIN);
      await open('users', 'Users');
      const list = page.locator('#scim-list');
      await expect.poll(() => list.textContent(), { timeout: 10_000 }).toContain('No SCIM tokens yet.');
      await refusedForFreshLogin('scim-tokens', '#scim-form input[name="name"]', 'okta', 'scim-create', '#scim-msg');
      expect(await g.gw.store.listScimTokens()).toEqual([]);

      step = 'scim: create';
      await page.press('#scim-form input[name="name"]', 'Enter'); // the keyboard submits
      const tokenInput = page.locator('#scim-once input.secret-value');
      await expect.poll(() => tokenInput.count(), { timeout: 10_000 }).toBe(1);
      const token = await tokenInput.inputValue();
      expect(token.length).toBeGreaterThan(20);
      const scimBase = `${origin}/.keygate/scim/v2`;
      expect(await page.locator('#scim-once input.once-value:not(.secret-value)').inputValue()).toBe(scimBase);
      expect(await page.textContent('#scim-once')).toMatch(/shown only once/i);
      expect(await page.locator('#scim-once button', { hasText: 'Copy' }).count()).toBe(2);
      // Focus is on the panel's title, so it is read out.
      expect(await page.evaluate<string | null>('document.activeElement?.textContent ?? null')).toBe(
        'SCIM token for okta',
      );
      expect(await page.inputValue('#scim-form input[name="name"]')).toBe('');
      const row = page.locator('#scim-list tr', { hasText: 'okta' });
      await expect.poll(() => row.count(), { timeout: 10_000 }).toBe(1);
      expect(await row.textContent()).toMatch(/Never.*Live/);
      await shot('scim', page.locator('#view section', { has: list }));
      const kept = await page.evaluate<string>('JSON.stringify([{ ...localStorage }, { ...sessionStorage }])');
      expect(kept).not.toContain(token);

      step = 'scim: use';
      const listUsers = () => fetch(`${scimBase}/Users`, { headers: { authorization: `Bearer ${token}` } });
      const ok = await listUsers();
      expect(ok.status).toBe(200);
      expect(ok.headers.get('content-type')).toContain('application/scim+json');
      expect(JSON.stringify(await ok.json())).toContain(ADMIN);
      const [made] = await g.gw.store.listScimTokens();
      expect(made).toMatchObject({ name: 'okta', createdBy: me?.id, revokedAt: null });
      expect(made?.lastUsedAt).not.toBeNull();

      step = 'scim: revoke';
      await row.locator('button.revoke-scim-token').click();
      expect(await confirmDialog()).toContain('Revoke the SCIM token okta?');
      await expect.poll(() => row.textContent(), { timeout: 10_000 }).toContain('Revoked');
      expect(await page.textContent('#scim-msg')).toBe('SCIM token okta revoked.');
      expect(await row.textContent()).not.toContain('Never'); // its use shows
      expect(await row.locator('button').count()).toBe(0);
      // The button went with the change: focus is on the section's heading.
      expect(await page.evaluate<string | null>('document.activeElement?.textContent ?? null')).toBe(
        'Provisioning (SCIM)',
      );
      const refused = await listUsers();
      expect(refused.status).toBe(401);
      await refused.body?.cancel();
      const after = await g.gw.store.listScimTokens();
      expect(after.map((t) => [t.name, t.revokedAt !== null])).toEqual([['okta', true]]);

      // Dismissed from the keyboard, the token is gone from the page.
      await page.focus('#scim-once .once-actions button');
      await page.keyboard.press('Enter');
      await expect.poll(() => page.locator('#scim-once').textContent()).toBe('');
      expect(await page.content()).not.toContain(token);
    },
    60_000,
  );

  it.skipIf(!hasBrowser)('creates a service principal and shows its secret exactly once', async () => {
    step = 'service-principals';
    await open('service-principals', 'Service principals');
    await page.fill('#sp-form input[name="name"]', 'ci-deployer');
    await page.check('#sp-form input[name="roles"][value="ml-inference"]');
    await page.click('#sp-create');
    const secretInput = page.locator('#sp-secret input.secret-value');
    await expect.poll(() => secretInput.count(), { timeout: 10_000 }).toBe(1);
    const secret = await secretInput.inputValue();
    expect(secret.length).toBeGreaterThan(20);
    expect(await page.textContent('#sp-secret')).toMatch(/shown only once/i);
    await expect.poll(() => page.textContent('#sp-list')).toContain('ci-deployer');
    expect((await g.gw.store.getServicePrincipalByName('ci-deployer'))?.roles).toEqual(['ml-inference']);
    await page.locator('#sp-secret button', { hasText: 'Copy' }).last().click();
    await expect.poll(() => page.textContent('#sp-secret .copy-note')).toMatch(/copied|selected/);
    await shot('service-principals');

    // Nothing kept it: not in storage, and a reload shows the list without it.
    const stored = await page.evaluate<string>('JSON.stringify([{ ...localStorage }, { ...sessionStorage }])');
    expect(stored).not.toContain(secret);
    await page.reload();
    await expect.poll(() => page.textContent('#sp-list')).toContain('ci-deployer');
    expect(await page.content()).not.toContain(secret);
    expect(await page.locator('#sp-secret').textContent()).toBe('');
  });

  it.skipIf(!hasBrowser)('disables a service principal after a confirmation', async () => {
    step = 'service-principal-disable';
    const row = page.locator('#sp-list tr', { hasText: 'ci-deployer' });
    await row.locator('button.disable-sp').click();
    const dialog = page.locator('dialog.modal[open]');
    await expect.poll(() => dialog.count()).toBe(1);
    await dialog.locator('button[value="confirm"]').click();
    await expect.poll(() => row.textContent(), { timeout: 10_000 }).toContain('Disabled');
    const sp = await g.gw.store.getServicePrincipalByName('ci-deployer');
    expect(sp?.disabledAt).not.toBeNull();
  });

  it.skipIf(!hasBrowser)('lists federation trusts on the service principals page', async () => {
    step = 'federation-trusts';
    await expect.poll(() => page.locator('#trusts[aria-busy]').count(), { timeout: 10_000 }).toBe(0);
    expect(await page.locator('#trusts .view-error').allTextContents()).toEqual([]);
  });

  it.skipIf(!hasBrowser)(
    "registers a service principal's public key: a private key is refused, the public one makes it private_key_jwt",
    async () => {
      step = 'sp keys';
      await page.fill('#sp-form input[name="name"]', 'ml-signer');
      await page.check('#sp-form input[name="roles"][value="ml-reader"]');
      await page.click('#sp-create');
      const row = page.locator('#sp-list tr', { hasText: 'ml-signer' });
      await expect.poll(() => row.textContent(), { timeout: 10_000 }).toContain('Client secret');
      const { publicKey, privateKey } = await generateKeyPair('ES256', { extractable: true });
      const key = { kid: 'e2e-signer', alg: 'ES256' };

      step = 'sp keys: private';
      await page.selectOption('#keys-form select[name="servicePrincipal"]', { label: 'ml-signer' });
      await page.fill('#keys-form textarea[name="keys"]', JSON.stringify({ ...(await exportJWK(privateKey)), ...key }));
      await page.click('#keys-submit');
      await expect
        .poll(() => page.textContent('#keys-msg'), { timeout: 10_000 })
        .toBe('keys: Register the public key only (the JWK has private members).');
      expect((await g.gw.store.getServicePrincipalByName('ml-signer'))?.jwks).toBeNull();

      step = 'sp keys: public';
      const pub = { ...(await exportJWK(publicKey)), ...key };
      await page.fill('#keys-form textarea[name="keys"]', JSON.stringify({ keys: [pub] }));
      await page.click('#keys-submit');
      await expect.poll(() => row.textContent(), { timeout: 10_000 }).toContain('Private key JWT');
      expect(await page.textContent('#keys-msg')).toBe(
        'Keys registered for ml-signer: it authenticates with Private key JWT now.',
      );
      const sp = await g.gw.store.getServicePrincipalByName('ml-signer');
      expect(JSON.parse(sp?.jwks ?? 'null')).toEqual({ keys: [pub] });
      // The token endpoint agrees: a client_credentials grant signed with the private key.
      const config = await oidc.discovery(
        new URL(origin),
        sp?.id ?? '',
        undefined,
        oidc.PrivateKeyJwt({ key: privateKey, kid: key.kid }),
        { execute: [oidc.allowInsecureRequests] },
      );
      const tokens = await oidc.clientCredentialsGrant(config, {});
      expect(tokens.access_token.length).toBeGreaterThan(20);
    },
  );

  it.skipIf(!hasBrowser)('adds a federation trust (the API names a wrong field) and removes it', async () => {
    step = 'trust: bad issuer';
    const signer = await g.gw.store.getServicePrincipalByName('ml-signer');
    const jwk = { ...(await exportJWK((await generateKeyPair('ES256', { extractable: true })).publicKey)), kid: 'ci' };
    await page.fill('#trust-form input[name="name"]', 'github-ml');
    await page.fill('#trust-form input[name="issuer"]', 'token.actions.githubusercontent.com');
    await page.fill('#trust-form input[name="audience"]', 'keygate');
    await page.fill('#trust-form input[name="subject"]', 'repo:acme/ml:ref:refs/heads/*');
    await page.selectOption('#trust-form select[name="servicePrincipal"]', { label: 'ml-signer' });
    await page.fill('#trust-form textarea[name="jwks"]', JSON.stringify(jwk));
    await page.click('#trust-create');
    await expect
      .poll(() => page.textContent('#trust-msg'), { timeout: 10_000 })
      .toMatch(/^Invalid request body: issuer: /);
    expect(await page.getAttribute('#trust-form input[name="issuer"]', 'aria-invalid')).toBe('true');
    expect(await page.evaluate<string | null>('document.activeElement?.getAttribute("name") ?? null')).toBe('issuer');
    expect(await g.gw.store.listFederationTrusts()).toEqual([]);

    step = 'trust: add';
    await page.fill('#trust-form input[name="issuer"]', 'https://token.actions.githubusercontent.com');
    await page.click('#trust-create');
    const row = page.locator('#trusts tr', { hasText: 'github-ml' });
    await expect.poll(() => row.count(), { timeout: 10_000 }).toBe(1);
    expect(await row.textContent()).toContain('this console');
    expect(await page.getAttribute('#trust-form input[name="issuer"]', 'aria-invalid')).toBeNull();
    const stored = await g.gw.store.listFederationTrusts();
    expect(stored.map((t) => t.name)).toEqual(['github-ml']);
    expect(JSON.parse(stored[0]?.spec ?? 'null')).toMatchObject({
      issuer: 'https://token.actions.githubusercontent.com',
      audience: 'keygate',
      subject: 'repo:acme/ml:ref:refs/heads/*',
      servicePrincipal: signer?.id,
      jwks: { keys: [jwk] },
    });
    await shot('federation-trusts');

    step = 'trust: remove';
    await row.locator('button.remove-trust').click();
    expect(await confirmDialog()).toContain('Remove the trust github-ml?');
    await expect.poll(() => row.count(), { timeout: 10_000 }).toBe(0);
    expect(await page.textContent('#trust-msg')).toBe('Trust github-ml removed.');
    expect(await g.gw.store.listFederationTrusts()).toEqual([]);
  });

  it.skipIf(!hasBrowser)('finds a denied proxied request in the audit log, and follows new ones', async () => {
    step = 'audit';
    const carol = await enroll(g, 'carol@example.com');
    const denied = await carol.browser.get('/api/2.0/serving-endpoints');
    expect(denied.status).toBe(403);

    await open('audit', 'Audit log');
    await page.selectOption('#af-decision', 'deny');
    await page.click('#af-apply');
    expect(new URL(page.url()).hash).toBe('#/audit?decision=deny');
    const row = page.locator('#audit-list li', { hasText: 'carol@example.com' });
    await expect.poll(() => row.count(), { timeout: 10_000 }).toBe(1);
    expect(await row.textContent()).toContain('/api/2.0/serving-endpoints');
    expect(await page.locator('#audit-list li', { hasText: 'allow' }).count()).toBe(0);

    // Expanded: the authentication event behind it and its place in the chain.
    await row.locator('summary').click();
    const body = (await row.locator('.a-body').textContent()) ?? '';
    expect(body).toContain('Authentication event');
    expect(body).toContain('authEventId');
    expect(body).toMatch(/prevHash[0-9a-f]{64}/);
    expect(body).toMatch(/hash[0-9a-f]{64}/);
    await shot('audit');

    // Follow: a second denial appears without reloading.
    await page.click('#audit-follow');
    expect(await page.getAttribute('#audit-follow', 'aria-pressed')).toBe('true');
    await carol.browser.get('/api/2.0/serving-endpoints/iris');
    await expect
      .poll(() => page.locator('#audit-list li', { hasText: 'carol@example.com' }).count(), { timeout: 10_000 })
      .toBe(2);
    await page.click('#audit-follow');
    expect(await page.getAttribute('#audit-follow', 'aria-pressed')).toBe('false');
  });

  it.skipIf(!hasBrowser)('verifies the audit chain', async () => {
    step = 'audit-verify';
    await page.click('#audit-verify');
    await expect.poll(() => page.textContent('#verify-result'), { timeout: 15_000 }).toMatch(/Chain intact|broken|:/);
    expect(await page.textContent('#verify-result')).toMatch(/^Chain intact: \d+ records/);
  });

  it.skipIf(!hasBrowser)('answers "may carol deploy fraud-model now?" in the policy tester', async () => {
    step = 'policy';
    await open('policy', 'Policy');
    // The action suggestions come from the API's own description: every action of the catalogue.
    await expect
      .poll(() =>
        page
          .locator('#policy-form datalist option')
          .evaluateAll((os) => os.map((o) => (o as unknown as { value: string }).value)),
      )
      .toEqual(expect.arrayContaining(['serving:manage', 'credentials:mint', 'admin:manage']));
    await page.fill('#pt-principal', 'carol@example.com');
    await page.fill('#pt-action', 'serving:manage');
    await page.fill('#pt-resource', 'Endpoint::fraud-model');
    await page.click('#pt-submit');
    await expect.poll(() => page.textContent('#policy-result .decision'), { timeout: 10_000 }).toBe('Denied');

    await page.fill('#pt-principal', `user:${ADMIN}`);
    await page.click('#pt-submit');
    await expect.poll(() => page.textContent('#policy-result .decision'), { timeout: 10_000 }).toBe('Allowed');
    expect(await page.textContent('#policy-result')).toContain('admin');

    // By method and path: the preset classifies it.
    await page.check('#pt-mode-path');
    await page.selectOption('#pt-method', 'POST');
    await page.fill('#pt-path', '/api/2.0/token/create');
    await page.click('#pt-submit');
    await expect.poll(() => page.textContent('#policy-result')).toContain('credentials:mint');
    expect(await page.textContent('#policy-result .decision')).toBe('Denied');
    await shot('policy');
  });

  it.skipIf(!hasBrowser)('lists roles and bindings, and adds and removes a binding', async () => {
    step = 'roles';
    await expect.poll(() => page.locator('#roles[aria-busy]').count(), { timeout: 10_000 }).toBe(0);
    expect(await page.locator('#roles .view-error').allTextContents()).toEqual([]);
    expect(await page.textContent('#roles')).toContain('ml-engineer');

    await page.selectOption('#bind-form select[name="kind"]', 'user');
    await page.fill('#bind-form input[name="subject"]', 'binding-test@example.com');
    await page.selectOption('#bind-form select[name="role"]', 'ml-reader');
    await page.click('#bind-submit');
    await expect.poll(() => page.textContent('#bindings'), { timeout: 10_000 }).toContain('binding-test@example.com');
    expect(await page.textContent('#bindings')).toContain('this console');
    const stored = await g.gw.store.listRoleBindings();
    expect(stored.map((b) => [b.subject, b.role])).toContainEqual(['binding-test@example.com', 'ml-reader']);

    await page.locator('#bindings button', { hasText: 'Remove' }).click();
    const dialog = page.locator('dialog.modal[open]');
    await expect.poll(() => dialog.count()).toBe(1);
    await dialog.locator('button[value="confirm"]').click();
    await expect
      .poll(() => page.textContent('#bindings'), { timeout: 10_000 })
      .not.toContain('binding-test@example.com');
    expect(await g.gw.store.listRoleBindings()).toEqual([]);
  });

  it.skipIf(!hasBrowser)('lists live sessions and token families', async () => {
    step = 'sessions';
    await open('sessions', 'Sessions');
    await expect.poll(() => page.textContent('#session-list'), { timeout: 10_000 }).toContain(ADMIN);
    await expect.poll(() => page.locator('#family-list[aria-busy]').count()).toBe(0);
    expect(await viewErrors()).toEqual([]);
    await shot('sessions');
  });

  it.skipIf(!hasBrowser)('shows the dashboard: requests by decision, busiest principals and endpoints', async () => {
    step = 'dashboard';
    await open('dashboard', 'Dashboard');
    await expect.poll(() => page.locator('.counters-wrap[aria-busy]').count(), { timeout: 10_000 }).toBe(0);
    await shot('dashboard');
    expect(await viewErrors()).toEqual([]);
    expect(await page.locator('svg.chart title').first().textContent()).toMatch(/Requests per minute/);
    expect(await page.locator('svg.chart desc').count()).toBe(1);
    expect(await page.locator('figure table.visually-hidden caption').count()).toBe(1);
    expect(await page.textContent('.counters')).toMatch(/Denials\s*\d+/);
    await page.click('.segmented button:has-text("24 hours")');
    await expect.poll(() => new URL(page.url()).hash).toBe('#/dashboard?window=24h');
    await expect.poll(() => page.locator('.counters-wrap[aria-busy]').count(), { timeout: 10_000 }).toBe(0);
    expect(await viewErrors()).toEqual([]);
  });

  it.skipIf(!hasBrowser)(
    'asks for a fresh key tap for the new changes too (a group), and changes nothing',
    async () => {
      step = 'fresh login: groups';
      await open('groups', 'Groups');
      await refusedForFreshLogin(
        'groups',
        '#group-form input[name="name"]',
        'needs-fresh-login',
        'group-create',
        '#groups-msg',
      );
      expect(await g.gw.store.getGroup('needs-fresh-login')).toBeNull();
    },
  );

  it.skipIf(!hasBrowser)(
    'asks for a fresh key tap when a change needs one, and comes back to the same view',
    async () => {
      step = 'fresh login';
      await open('service-principals', 'Service principals');
      const unroute = await staleLogin('service-principals');
      try {
        await page.fill('#sp-form input[name="name"]', 'needs-fresh-login');
        await promptedThenEscape('sp-create');

        await page.click('#sp-create');
        await expect.poll(() => page.locator('dialog#fresh-login[open]').count()).toBe(1);
        await page.click('#fresh-login-go');
        await page.waitForURL((u) => u.pathname === '/.keygate/login', { timeout: 15_000 });
        expect(new URL(page.url()).searchParams.get('return_to')).toBe('/.keygate/admin/#/service-principals');
      } finally {
        await unroute();
      }
      step = 'fresh login: sign in';
      await page.click('#signin');
      await page.waitForURL((u) => u.pathname === '/.keygate/admin/' && u.hash === '#/service-principals', {
        timeout: 15_000,
      });
      await expect.poll(() => page.locator('#view h1').textContent()).toBe('Service principals');
    },
    60_000,
  );

  it.skipIf(!hasBrowser)("shows the API's message to a signed-in person who is not an admin", async () => {
    step = 'not an admin';
    // Dana has no roles; her session (made through the API) goes into a browser of her own.
    const dana = await enroll(g, 'dana@example.com');
    const other = await browser.newContext({ viewport: DESKTOP });
    try {
      const host = new URL(origin).hostname;
      await other.addCookies(
        [...dana.browser.cookies].map(([name, value]) => ({ name, value, domain: host, path: '/' })),
      );
      const p = await other.newPage();
      watch(p);
      await p.goto(`${origin}/.keygate/admin/#/users`);
      await expect.poll(() => p.textContent('#user-email')).toBe('dana@example.com');
      const error = p.locator('#user-list .view-error');
      await expect.poll(() => error.count(), { timeout: 10_000 }).toBe(1);
      expect(await error.textContent()).toMatch(/This needs admin:read on Keygate::users \(denied by [^)]+\)/);
      expect(await error.textContent()).toContain('PERMISSION_DENIED');
      const scimError = p.locator('#scim-list .view-error');
      await expect.poll(() => scimError.count(), { timeout: 10_000 }).toBe(1);
      expect(await scimError.textContent()).toContain('PERMISSION_DENIED');
    } finally {
      await other.close();
    }
  });

  it.skipIf(!hasBrowser)('is usable from the keyboard: a skip link, then the nav', async () => {
    step = 'keyboard';
    await page.goto(`${origin}/.keygate/admin/#/users`);
    await page.reload(); // a fresh document: Tab starts from the top
    await expect.poll(() => page.locator('#view h1').textContent()).toBe('Users');
    await page.keyboard.press('Tab');
    expect(await page.evaluate<string | null>('document.activeElement?.id ?? null')).toBe('skip');
    await page.keyboard.press('Enter');
    expect(await page.evaluate<string | null>('document.activeElement?.id ?? null')).toBe('main');
    expect(new URL(page.url()).hash).toBe('#/users'); // the route is untouched

    // Tabbing from the top reaches the nav; Enter on a link opens the view and focuses its heading.
    await page.focus('#nav a[data-nav="sessions"]');
    await page.keyboard.press('Enter');
    await expect.poll(() => page.evaluate<string | null>('document.activeElement?.tagName ?? null')).toBe('H1');
    expect(await page.evaluate<string | null>('document.activeElement?.textContent ?? null')).toBe('Sessions');
  });

  it.skipIf(!hasBrowser)('fits a phone screen (390×844): the nav wraps, nothing scrolls sideways', async () => {
    step = 'phone';
    await page.setViewportSize(PHONE);
    try {
      for (const [hash, heading, name] of [
        ['#/users', 'Users', 'phone-users'],
        ['#/audit', 'Audit log', 'phone-audit'],
        ['#/groups', 'Groups', 'phone-groups'],
        ['#/service-principals', 'Service principals', 'phone-service-principals'],
      ] as const) {
        await page.goto(`${origin}/.keygate/admin/${hash}`);
        await expect.poll(() => page.locator('#view h1').textContent()).toBe(heading);
        await expect.poll(() => page.locator('#view [aria-busy="true"]').count(), { timeout: 10_000 }).toBe(0);
        await shot(name);
        const overflow = await page.evaluate<number>('document.documentElement.scrollWidth - window.innerWidth');
        expect(overflow, `${hash} scrolls sideways by ${overflow}px`).toBeLessThanOrEqual(0);
        const nav = await page.locator('#nav').boundingBox();
        expect(nav?.width ?? 0).toBeLessThanOrEqual(PHONE.width);
      }
    } finally {
      await page.setViewportSize(DESKTOP);
    }
  });

  it.skipIf(!hasBrowser)('saved a screenshot of every view', () => {
    const expected = [
      'users',
      'user',
      'groups',
      'group',
      'scim',
      'service-principals',
      'federation-trusts',
      'audit',
      'policy',
      'sessions',
      'dashboard',
      'phone-users',
      'phone-audit',
      'phone-groups',
      'phone-service-principals',
    ].map((n) => `${SHOTS}${n}.png`);
    for (const f of expected) {
      expect(existsSync(f), f).toBe(true);
      expect(statSync(f).size).toBeGreaterThan(1000);
    }
    expect(shots.sort()).toEqual(expected.sort());
  });

  it.skipIf(!hasBrowser)('logged no console errors and no page errors over the whole run', () => {
    const unexpected = reported.filter(
      (r) => !ALLOWED.some((a) => (a.step === null || a.step === r.step) && a.url.test(r.url) && a.text.test(r.text)),
    );
    expect(unexpected).toEqual([]);
  });
});
