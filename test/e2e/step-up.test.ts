/**
 * Step-up in a real browser: a signed-in admin whose login is older than the step-up window
 * opens a sensitive page, is sent to the step-up page, taps the key (Chromium's virtual
 * authenticator), and lands on the page they asked for.
 */
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { demoSimOptions, type Simulator, startSimulator } from '../../sim/index.js';
import { addVirtualAuthenticator, chromiumAvailable, launchChromium } from '../helpers/chromium.js';
import { simUpstream, startGateway, type TestGateway } from '../helpers/index.js';

const hasBrowser = chromiumAvailable();
let browser: Browser;
let sim: Simulator;
let g: TestGateway;

beforeAll(async () => {
  if (!hasBrowser) return;
  sim = await startSimulator(demoSimOptions());
  g = await startGateway(
    { authorization: { stepUpMaxAge: '2s' }, upstreams: simUpstream(sim.url) },
    { identifiers: [] },
  );
  browser = await launchChromium();
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await g?.close();
  await sim?.close();
});

describe('step-up in the browser', () => {
  it.skipIf(!hasBrowser)('a stale login is asked for a fresh tap, then reaches the sensitive page', async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    try {
      await addVirtualAuthenticator(page, 'usb');
      const link = await g.gw.auth.enrollment.invite(g.gw.publicOrigin, {
        email: 'stepup-admin@example.com',
        roles: ['admin'],
        createdBy: 'e2e',
      });
      await page.goto(link.url);
      await page.click('#register');
      await expect.poll(() => page.textContent('#status'), { timeout: 15_000 }).toMatch(/registered/i);

      // Let the login age past the 2 s window, then open a sensitive page (secrets are step-up).
      await new Promise((r) => setTimeout(r, 3_500));
      await page.goto(`${g.gw.publicOrigin}/api/2.0/secrets/scopes/list`);
      expect(new URL(page.url()).pathname).toBe('/.keygate/step-up');
      expect(await page.textContent('#target')).toBe('/api/2.0/secrets/scopes/list');

      await page.click('#step-up');
      await page.waitForURL((u) => u.pathname === '/api/2.0/secrets/scopes/list', { timeout: 15_000 });
      expect(JSON.parse((await page.textContent('body')) ?? '{}')).toHaveProperty('scopes');
      const [event] = await g.gw.store.listAuthEvents({ limit: 1 });
      expect(event).toMatchObject({ kind: 'auth.step_up', outcome: 'success', uv: true });
    } finally {
      await context.close();
    }
  });

  it.skipIf(!hasBrowser)('a stale form submission is shown for approval, then sent once after a tap', async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    try {
      await addVirtualAuthenticator(page, 'internal');
      const link = await g.gw.auth.enrollment.invite(g.gw.publicOrigin, {
        email: 'form-deployer@example.com',
        roles: ['ml-deployer'],
        createdBy: 'e2e',
      });
      await page.goto(link.url);
      await page.click('#register');
      await expect.poll(() => page.textContent('#status'), { timeout: 15_000 }).toMatch(/registered/i);

      // A same-origin page with a form that creates a job (jobs:manage is a step-up action).
      // text/plain encoding turns name=value into a JSON body: {"name":"nightly","x":"="}.
      const formUrl = `${g.gw.publicOrigin}/e2e-form`;
      await page.route(formUrl, (route) =>
        route.fulfill({
          contentType: 'text/html',
          body: `<form method="post" action="/api/2.1/jobs/create" enctype="text/plain">
            <input type="hidden" name='{"name":"nightly","x":"' value='"}'>
            <button id="submit">Create job</button></form>`,
        }),
      );
      await new Promise((r) => setTimeout(r, 3_500)); // past the 2 s step-up window
      sim.reset();
      await page.goto(formUrl);
      await page.click('#submit');
      await page.waitForURL((u) => u.pathname === '/.keygate/step-up', { timeout: 15_000 });
      await expect.poll(() => page.textContent('#approve-target')).toBe('/api/2.1/jobs/create');
      expect(await page.textContent('#approve-method')).toBe('POST');
      expect(await page.textContent('#approve-body')).toContain('"nightly"');
      expect(sim.requests.filter((r) => r.path.endsWith('/jobs/create'))).toEqual([]);

      await page.click('#step-up');
      await expect.poll(() => page.textContent('#result-status'), { timeout: 15_000 }).toMatch(/^200/);
      expect(await page.textContent('#result-body')).toContain('job_id');
      expect(sim.requests.filter((r) => r.path.endsWith('/jobs/create'))).toHaveLength(1);
    } finally {
      await context.close();
    }
  });
});
