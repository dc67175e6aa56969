/**
 * Step-up (RFC 9470) through the API: a sensitive action with a stale login gets the
 * insufficient_user_authentication challenge and reaches nothing; after a fresh, verified
 * assertion the retry succeeds, and the upstream's assertion names the step-up event.
 */
import { decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { demoSimOptions, type Simulator, startSimulator } from '../../../sim/index.js';
import { ManualClock } from '../../../src/lib/clock.js';
import { simUpstream, startGateway, type TestGateway } from '../../helpers/index.js';
import { enroll, invite, lastAuthEvent } from '../../helpers/people.js';
import { FLAGS } from '../../helpers/soft-authenticator.js';

let g: TestGateway;
let sim: Simulator;
const clock = new ManualClock(Date.now());

beforeAll(async () => {
  sim = await startSimulator({ ...demoSimOptions(), deployPolls: 0 });
  g = await startGateway(
    {
      upstreams: simUpstream(sim.url),
    },
    { clock, identifiers: [] },
  );
});

afterAll(async () => {
  await g?.close();
  await sim?.close();
});

const deploy = {
  served_entities: [
    {
      name: 'iris-2',
      entity_name: 'main.ml.iris',
      entity_version: '2',
      workload_size: 'Small',
      scale_to_zero_enabled: true,
    },
  ],
};

describe('step-up through the API', () => {
  it('a stale login gets the RFC 9470 challenge; a fresh tap lets the retry through', async () => {
    const { browser, authenticator } = await enroll(g, 'deployer@example.com', {
      token: await invite(g, 'deployer@example.com', ['ml-deployer']),
    });
    // Fresh from enrollment: a deploy goes through.
    sim.reset();
    const first = await browser.call('PUT', '/api/2.0/serving-endpoints/iris/config', deploy);
    expect(first.status).toBe(200);

    clock.advance(6 * 60_000);
    sim.reset();
    const stale = await browser.call('PUT', '/api/2.0/serving-endpoints/iris/config', deploy);
    expect(stale.status).toBe(401);
    expect(stale.body).toMatchObject({ error_code: 'STEP_UP_REQUIRED' });
    expect(stale.headers['www-authenticate']).toBe(
      'Bearer error="insufficient_user_authentication", error_description="A fresh, user-verified authentication is required", max_age=300',
    );
    expect(sim.requests).toEqual([]);
    // Reading stays possible without a step-up.
    expect((await browser.get('/api/2.0/serving-endpoints/iris')).status).toBe(200);

    const options = await browser.post<Parameters<typeof authenticator.get>[0]>(
      '/.keygate/api/webauthn/step-up/options',
      {},
    );
    expect(options.status).toBe(200);
    expect(options.body).toMatchObject({ userVerification: 'required' });
    const verified = await browser.post<{ stepUp: { eventId: string } }>('/.keygate/api/webauthn/step-up/verify', {
      response: authenticator.get(options.body),
    });
    expect(verified.status).toBe(200);
    const event = await lastAuthEvent(g);
    expect(event).toMatchObject({
      kind: 'auth.step_up',
      outcome: 'success',
      uv: true,
      id: verified.body.stepUp.eventId,
    });

    sim.reset();
    const retry = await browser.call('PUT', '/api/2.0/serving-endpoints/iris/config', deploy);
    expect(retry.status).toBe(200);
    const assertion = decodeJwt(sim.requests.at(-1)?.headers['x-keygate-assertion'] as string);
    expect(assertion).toMatchObject({ auth: { event_id: event.id } });
  });

  it('a step-up without user verification is refused', async () => {
    const { browser, authenticator } = await enroll(g, 'nouv@example.com', {
      token: await invite(g, 'nouv@example.com', ['ml-deployer']),
    });
    const options = await browser.post<Parameters<typeof authenticator.get>[0]>(
      '/.keygate/api/webauthn/step-up/options',
      {},
    );
    const r = await browser.post('/.keygate/api/webauthn/step-up/verify', {
      response: authenticator.get(options.body, { flags: FLAGS.UP }),
    });
    expect(r.status).toBe(401);
    expect(await lastAuthEvent(g)).toMatchObject({
      kind: 'auth.step_up',
      outcome: 'failure',
      reason: 'user_verification',
    });
  });

  it("someone else's key cannot step up my session", async () => {
    const mine = await enroll(g, 'mine@example.com', { token: await invite(g, 'mine@example.com', ['ml-deployer']) });
    const theirs = await enroll(g, 'theirs@example.com');
    const options = await mine.browser.post<Parameters<typeof mine.authenticator.get>[0]>(
      '/.keygate/api/webauthn/step-up/options',
      {},
    );
    const theirKey = [...theirs.authenticator.keys.keys()][0] as string;
    const r = await mine.browser.post('/.keygate/api/webauthn/step-up/verify', {
      response: theirs.authenticator.get({ ...options.body, allowCredentials: [] }, { credentialId: theirKey }),
    });
    expect(r.status).toBe(401);
    expect(await lastAuthEvent(g)).toMatchObject({ kind: 'auth.step_up', reason: 'credential_not_allowed' });
  });

  it('step-up needs a session', async () => {
    const { browser } = await enroll(g, 'gone@example.com');
    await browser.post('/.keygate/api/session/logout');
    const r = await browser.post('/.keygate/api/webauthn/step-up/options', {});
    expect(r.status).toBe(401);
    expect(r.body).toMatchObject({ error_code: 'UNAUTHENTICATED' });
  });

  it('without the role, a sensitive action is a 403 that names it, not a step-up', async () => {
    const { browser } = await enroll(g, 'reader@example.com', {
      token: await invite(g, 'reader@example.com', ['ml-reader']),
    });
    sim.reset();
    const r = await browser.call('PUT', '/api/2.0/serving-endpoints/iris/config', deploy);
    expect(r.status).toBe(403);
    expect(r.body).toMatchObject({
      error_code: 'PERMISSION_DENIED',
      message:
        'You are not allowed to create, reconfigure or delete a serving endpoint (serving:manage) on Endpoint "iris".',
    });
    expect(sim.requests).toEqual([]);
  });
});

describe('step-up for a browser submission', () => {
  it('a stale browser submission is held and shown for approval; nothing is sent before the tap', async () => {
    const { browser } = await enroll(g, 'submit@example.com', {
      token: await invite(g, 'submit@example.com', ['ml-deployer']),
    });
    clock.advance(6 * 60_000);
    sim.reset();
    const held = await browser.call('PUT', '/api/2.0/serving-endpoints/iris/config', deploy, {
      'sec-fetch-mode': 'navigate',
      accept: 'text/html',
    });
    expect(held.status).toBe(303);
    const location = held.headers.location as string;
    expect(location).toMatch(/^\/\.keygate\/step-up\?pending=[A-Za-z0-9_-]{32}$/);
    expect(sim.requests).toEqual([]);
    const id = new URL(location, 'http://x').searchParams.get('pending') as string;

    // The page shows what is being approved.
    const shown = await browser.get<{ method: string; target: string; body: { text: string } }>(
      `/.keygate/api/step-up/pending/${id}`,
    );
    expect(shown.status).toBe(200);
    expect(shown.body).toMatchObject({ method: 'PUT', target: '/api/2.0/serving-endpoints/iris/config' });
    expect(JSON.parse(shown.body.body.text)).toEqual(deploy);
    // Someone else cannot see or replay it.
    const other = await enroll(g, 'nosy@example.com', { token: await invite(g, 'nosy@example.com', ['ml-deployer']) });
    expect((await other.browser.get(`/.keygate/api/step-up/pending/${id}`)).status).toBe(404);

    // Replaying before the tap: authorization still asks for the step-up, and nothing is sent.
    const early = await browser.post(`/.keygate/api/step-up/pending/${id}/replay`);
    expect(early.status).toBe(401);
    expect(early.body).toMatchObject({ error_code: 'STEP_UP_REQUIRED' });
    expect(sim.requests).toEqual([]);
  });

  it('after the tap the held request reaches the workspace exactly once', async () => {
    const { browser, authenticator } = await enroll(g, 'submit2@example.com', {
      token: await invite(g, 'submit2@example.com', ['ml-deployer']),
    });
    clock.advance(6 * 60_000);
    const held = await browser.call('PUT', '/api/2.0/serving-endpoints/iris/config', deploy, {
      'sec-fetch-mode': 'navigate',
    });
    const id = new URL(held.headers.location as string, 'http://x').searchParams.get('pending') as string;
    const options = await browser.post<Parameters<typeof authenticator.get>[0]>(
      '/.keygate/api/webauthn/step-up/options',
      {},
    );
    expect(
      (await browser.post('/.keygate/api/webauthn/step-up/verify', { response: authenticator.get(options.body) }))
        .status,
    ).toBe(200);
    sim.reset();
    const sent = await browser.post<{ name: string }>(`/.keygate/api/step-up/pending/${id}/replay`);
    expect(sent.status).toBe(200);
    expect(sent.body.name).toBe('iris');
    expect(sim.requests.map((r) => `${r.method} ${r.path}`)).toEqual(['PUT /api/2.0/serving-endpoints/iris/config']);
    const again = await browser.post(`/.keygate/api/step-up/pending/${id}/replay`);
    expect(again.status).toBe(404);
    expect(sim.requests).toHaveLength(1);
  });
});
