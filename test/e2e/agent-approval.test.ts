/**
 * Approving an agent's request in a real browser: the agent (a script here) asks to change a
 * serving endpoint's configuration and gets APPROVAL_REQUIRED; the person opens the approval
 * page in Chromium, sees what changes, taps the key (the virtual authenticator signs the
 * challenge derived from that request); the agent's identical retry then goes through once.
 */
import type { Browser } from 'playwright-core';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { demoSimOptions, type Simulator, startSimulator } from '../../sim/index.js';
import { APPROVAL_HEADER } from '../../src/agents/approvals.js';
import { exchangeGrant } from '../helpers/agents.js';
import { addVirtualAuthenticator, chromiumAvailable, launchChromium } from '../helpers/chromium.js';
import { simUpstream, startGateway, type TestGateway } from '../helpers/index.js';

const hasBrowser = chromiumAvailable();
let browser: Browser;
let sim: Simulator;
let g: TestGateway;

beforeAll(async () => {
  if (!hasBrowser) return;
  sim = await startSimulator({ ...demoSimOptions(), deployPolls: 0 });
  g = await startGateway({ upstreams: simUpstream(sim.url) }, { identifiers: [] });
  browser = await launchChromium();
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await g?.close();
  await sim?.close();
});

const config = {
  served_entities: [
    {
      name: 'iris-7',
      entity_name: 'main.ml.iris',
      entity_version: '7',
      workload_size: 'Small',
      scale_to_zero_enabled: true,
    },
  ],
};

describe('approving an agent’s request in the browser', () => {
  it.skipIf(!hasBrowser)(
    'the person sees the change, taps the key, and the identical retry goes through once',
    async () => {
      const context = await browser.newContext();
      const page = await context.newPage();
      try {
        await addVirtualAuthenticator(page, 'internal');
        const link = await g.gw.auth.enrollment.invite(g.gw.publicOrigin, {
          email: 'owner@example.com',
          roles: ['ml-deployer'],
          createdBy: 'e2e',
        });
        await page.goto(link.url);
        await page.click('#register');
        await expect.poll(() => page.textContent('#status'), { timeout: 15_000 }).toMatch(/registered/i);

        const made = await g.gw.oauth.sps.create({ name: 'deploy-bot', roles: [], createdBy: 'e2e', withSecret: true });
        // The person delegates from their page (the form posts to the grants API).
        await page.goto(`${g.gw.publicOrigin}/.keygate/devices`);
        await page.fill('#grant-agent', 'deploy-bot');
        await page.fill('#grant-actions', 'serving:read, serving:manage');
        await page.fill('#grant-ttl', '1h');
        await page.click('#grant-add');
        await expect.poll(() => page.textContent('#grant-id'), { timeout: 10_000 }).toMatch(/^dlg_/);
        const grant = { id: (await page.textContent('#grant-id')) as string };
        // The agent script.
        const token = (
          await exchangeGrant(g.url, { id: made.sp.id, secret: (made.secret as { secret: string }).secret }, grant.id)
        ).body.access_token as string;
        const put = async (approval?: string) => {
          const r = await request(`${g.url}/api/2.0/serving-endpoints/iris/config`, {
            method: 'PUT',
            headers: {
              authorization: `Bearer ${token}`,
              'content-type': 'application/json',
              ...(approval === undefined ? {} : { [APPROVAL_HEADER]: approval }),
            },
            body: JSON.stringify(config),
          });
          return { status: r.statusCode, body: (await r.body.json()) as Record<string, string> };
        };
        sim.reset();
        const asked = await put();
        expect(asked.status).toBe(401);
        expect(asked.body.error_code).toBe('APPROVAL_REQUIRED');
        expect(sim.requests).toEqual([]);

        // The person finds it in their queue (or follows the link the agent was given).
        await page.goto(`${g.gw.publicOrigin}/.keygate/devices`);
        const queued = page.locator(`#approvals [data-approval="${asked.body.approval_id}"] a`);
        await expect.poll(() => queued.textContent()).toBe('deploy-bot: PUT /api/2.0/serving-endpoints/iris/config');
        expect(await page.textContent('#grants')).toContain('deploy-bot');
        await queued.click();
        await page.waitForURL(asked.body.approval_url as string);
        await expect.poll(() => page.textContent('#path')).toBe('/api/2.0/serving-endpoints/iris/config');
        expect(await page.textContent('#agent')).toBe('deploy-bot');
        expect(await page.textContent('#changes-rows')).toContain('served_entities[0].entity_version');
        await page.click('#approve');
        await expect.poll(() => page.textContent('#status'), { timeout: 15_000 }).toMatch(/Approved/);
        expect(await page.textContent('#state')).toBe('approved');

        const sent = await put(asked.body.approval_id);
        expect(sent.status).toBe(200);
        expect(sim.requests.filter((r) => r.method === 'PUT')).toHaveLength(1);
        expect((await put(asked.body.approval_id)).status).toBe(403);
        await g.gw.audit.flushed();
        const taps = (await g.gw.audit.query({ kind: 'auth.approval' }, { limit: 10 })).lines.map(
          (l) => JSON.parse(l) as { outcome: string; actor: { uv?: boolean; via?: string; credentialId?: string } },
        );
        expect(taps).toHaveLength(1);
        expect(taps[0]).toMatchObject({
          outcome: 'success',
          actor: { uv: true, via: `approval:${asked.body.approval_id}` },
        });
      } finally {
        await context.close();
      }
    },
  );
});
