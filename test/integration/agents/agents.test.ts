/**
 * An agent acting for a person, through the HTTP API as an agent script would: the person
 * delegates, the agent trades the grant for a token (sub = the person, act = the agent),
 * invocations pass, a config change waits for the person's tap on that exact request, the
 * identical retry goes through once, and every way around it is refused with nothing reaching
 * the workspace. The audit trail ties request → approval (with the key) → forwarded request.
 */
import { createHmac } from 'node:crypto';
import { decodeJwt } from 'jose';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { demoSimOptions, type Simulator, startSimulator } from '../../../sim/index.js';
import { APPROVAL_HEADER, approvalChallenge } from '../../../src/agents/approvals.js';
import type { ChainedRecord } from '../../../src/audit/record.js';

import { ManualClock } from '../../../src/lib/clock.js';
import { exchangeGrant } from '../../helpers/agents.js';
import type { BrowserClient } from '../../helpers/browser-client.js';
import { simUpstream, startGateway, startUpstream, type TestGateway, trueWithin } from '../../helpers/index.js';
import { enroll, invite } from '../../helpers/people.js';
import type { SoftAuthenticator } from '../../helpers/soft-authenticator.js';

let g: TestGateway;
let sim: Simulator;
const clock = new ManualClock(Date.now());
let alice: { browser: BrowserClient; authenticator: SoftAuthenticator };
let bob: { browser: BrowserClient; authenticator: SoftAuthenticator };
let agent: { id: string; secret: string };

beforeAll(async () => {
  sim = await startSimulator({ ...demoSimOptions(), deployPolls: 0 });
  g = await startGateway({ upstreams: simUpstream(sim.url) }, { clock, identifiers: [] });
  alice = await enroll(g, 'alice@example.com', { token: await invite(g, 'alice@example.com', ['ml-deployer']) });
  bob = await enroll(g, 'bob@example.com', { token: await invite(g, 'bob@example.com', ['ml-deployer']) });
  const made = await g.gw.oauth.sps.create({ name: 'copilot', roles: [], createdBy: 'test', withSecret: true });
  agent = { id: made.sp.id, secret: (made.secret as { secret: string }).secret };
});

afterAll(async () => {
  await g?.close();
  await sim?.close();
});

/** The agent script: trade a grant for a token at the token endpoint, as the agent. */
const exchange = (grantId: string, scope?: string) => exchangeGrant(g.url, agent, grantId, scope);

async function call(
  token: string,
  method: string,
  path: string,
  body?: unknown,
  approval?: string,
): Promise<{ status: number; body: Record<string, unknown> }> {
  const r = await request(`${g.url}${path}`, {
    method: method as 'GET',
    headers: {
      authorization: `Bearer ${token}`,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      ...(approval === undefined ? {} : { [APPROVAL_HEADER]: approval }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await r.body.text();
  return { status: r.statusCode, body: text === '' ? {} : (JSON.parse(text) as Record<string, unknown>) };
}

async function grant(who: { browser: BrowserClient }, actions: string[], ttl = '8h') {
  const r = await who.browser.post<{ id: string }>('/.keygate/api/agents/grants', { agent: 'copilot', actions, ttl });
  expect(r.status, JSON.stringify(r.body)).toBe(201);
  return r.body.id;
}

const newConfig = (version: string) => ({
  served_entities: [
    {
      name: `iris-${version}`,
      entity_name: 'main.ml.iris',
      entity_version: version,
      workload_size: 'Small',
      scale_to_zero_enabled: true,
    },
  ],
});

async function auditRecords(): Promise<ChainedRecord[]> {
  await g.gw.audit.flushed();
  return (await g.gw.audit.query({}, { limit: 5000 })).lines.map((l) => JSON.parse(l) as ChainedRecord);
}

describe('delegation', () => {
  it("the agent's token names the person as sub and the agent as act, scoped to the grant", async () => {
    const id = await grant(alice, ['serving:invoke', 'serving:read']);
    const t = await exchange(id);
    expect(t.status, JSON.stringify(t.body)).toBe(200);
    const claims = decodeJwt(t.body.access_token as string);
    const aliceId = (await g.gw.store.getUserByEmail('alice@example.com'))?.id;
    expect(claims).toMatchObject({ sub: aliceId, act: { sub: agent.id, name: 'copilot' }, kg_pt: 'agent' });
    expect(String(claims.scope).split(' ').sort()).toEqual(['serving:invoke', 'serving:read']);
    // Narrowed further on request; a scope outside the grant gives nothing.
    expect((await exchange(id, 'serving:read')).body.scope).toBe('serving:read');
    expect(await exchange(id, 'jobs:run')).toMatchObject({ status: 400, body: { error: 'invalid_scope' } });

    // Reads and invocations pass; an action outside the grant is refused before the workspace.
    sim.reset();
    const token = t.body.access_token as string;
    expect((await call(token, 'GET', '/api/2.0/serving-endpoints')).status).toBe(200);
    expect(
      (
        await call(token, 'POST', '/serving-endpoints/iris/invocations', {
          dataframe_records: [{ sepal_length: 5.1, sepal_width: 3.5, petal_length: 1.4, petal_width: 0.2 }],
        })
      ).status,
    ).toBe(200);
    const jobs = await call(token, 'POST', '/api/2.1/jobs/run-now', { job_id: 1 });
    expect(jobs).toMatchObject({ status: 403, body: { error_code: 'PERMISSION_DENIED' } });
    expect(sim.requests.map((r) => r.path)).toEqual([
      '/api/2.0/serving-endpoints',
      '/serving-endpoints/iris/invocations',
    ]);
  });

  it('the grant is what the person may do: a reader’s agent cannot deploy even with serving:manage granted', async () => {
    const reader = await enroll(g, 'reader@example.com', {
      token: await invite(g, 'reader@example.com', ['ml-reader']),
    });
    const id = await grant(reader, ['serving:read', 'serving:manage']);
    const token = (await exchange(id)).body.access_token as string;
    sim.reset();
    const r = await call(token, 'PUT', '/api/2.0/serving-endpoints/iris/config', newConfig('9'));
    expect(r).toMatchObject({ status: 403, body: { error_code: 'PERMISSION_DENIED' } });
    expect(sim.requests).toEqual([]);
  });

  it('another agent cannot use the grant; admin actions cannot be delegated; a revoked grant ends its tokens', async () => {
    const id = await grant(alice, ['serving:read']);
    const other = await g.gw.oauth.sps.create({ name: 'other-agent', roles: [], createdBy: 'test', withSecret: true });
    const stolen = await exchangeGrant(
      g.url,
      { id: other.sp.id, secret: (other.secret as { secret: string }).secret },
      id,
    );
    expect(stolen).toMatchObject({ status: 400, body: { error: 'invalid_grant' } });

    const admin = await alice.browser.post('/.keygate/api/agents/grants', {
      agent: 'copilot',
      actions: ['admin:manage'],
      ttl: '1h',
    });
    expect(admin).toMatchObject({ status: 400, body: { error_code: 'BAD_REQUEST' } });

    const token = (await exchange(id)).body.access_token as string;
    expect((await call(token, 'GET', '/api/2.0/serving-endpoints')).status).toBe(200);
    expect((await alice.browser.call('DELETE', `/.keygate/api/agents/grants/${id}`)).status).toBe(204);
    expect(
      await trueWithin(1_000, async () => (await call(token, 'GET', '/api/2.0/serving-endpoints')).status === 401),
    ).toBe(true);
    expect(await exchange(id)).toMatchObject({ status: 400, body: { error: 'invalid_grant' } });
    // Bob cannot end (or see) alice's grants.
    expect((await bob.browser.call('DELETE', `/.keygate/api/agents/grants/${id}`)).status).toBe(404);
  });
});

describe('approval of one exact request', () => {
  let token: string;
  beforeAll(async () => {
    const id = await grant(alice, ['serving:invoke', 'serving:read', 'serving:manage']);
    token = (await exchange(id)).body.access_token as string;
  });

  /** The person approves in their browser: options carry the derived challenge, the key signs it. */
  async function approve(who: { browser: BrowserClient; authenticator: SoftAuthenticator }, id: string) {
    const options = await who.browser.post<Parameters<SoftAuthenticator['get']>[0]>(
      `/.keygate/api/approvals/${id}/options`,
      {},
    );
    if (options.status !== 200) return options;
    return who.browser.post(`/.keygate/api/approvals/${id}/approve`, { response: who.authenticator.get(options.body) });
  }

  it('a config change waits for the tap; the identical retry goes through once; anything else is refused', async () => {
    sim.reset();
    const asked = await call(token, 'PUT', '/api/2.0/serving-endpoints/iris/config', newConfig('3'));
    expect(asked.status).toBe(401);
    expect(asked.body).toMatchObject({ error_code: 'APPROVAL_REQUIRED' });
    const id = asked.body.approval_id as string;
    expect(asked.body.approval_url).toBe(`${g.gw.publicOrigin}/.keygate/approve/${id}`);
    expect(sim.requests).toEqual([]);

    // What the person sees: the exact request and what it changes against the live config.
    const view = await alice.browser.get<{ method: string; path: string; changes: { path: string }[] }>(
      `/.keygate/api/approvals/${id}`,
    );
    expect(view.status).toBe(200);
    expect(view.body).toMatchObject({
      method: 'PUT',
      path: '/api/2.0/serving-endpoints/iris/config',
      status: 'pending',
    });
    expect(view.body.changes.map((c) => c.path)).toContain('served_entities[0].entity_version');
    // Only what the request changes: not the fields the workspace fills in itself.
    for (const p of view.body.changes.map((c) => c.path))
      expect(p).not.toMatch(/config_version|creator|creation_timestamp|state/);

    // Not approved yet: refused, nothing forwarded.
    expect(await call(token, 'PUT', '/api/2.0/serving-endpoints/iris/config', newConfig('3'), id)).toMatchObject({
      status: 403,
      body: { error_code: 'APPROVAL_INVALID' },
    });

    // Someone else: bob does not see it and cannot approve it; bob's key in alice's browser does not verify.
    expect((await bob.browser.get(`/.keygate/api/approvals/${id}`)).status).toBe(404);
    expect((await approve(bob, id)).status).toBe(404);
    const aliceDigest = (await g.gw.store.getApproval(id))?.digest as string;
    const forged = bob.authenticator.get({
      challenge: approvalChallenge(id, aliceDigest),
      rpId: new URL(g.gw.publicOrigin).hostname,
      allowCredentials: [],
      userVerification: 'required',
    } as Parameters<SoftAuthenticator['get']>[0]);
    const bobsKey = await alice.browser.post(`/.keygate/api/approvals/${id}/approve`, { response: forged });
    expect(bobsKey.status).toBe(401);
    expect(bobsKey.body).toMatchObject({ error_code: 'LOGIN_FAILED' });
    expect((await g.gw.store.getApproval(id))?.status).toBe('pending');

    // Alice approves with her key.
    const ok = await approve(alice, id);
    expect(ok.status, JSON.stringify(ok.body)).toBe(200);
    const approved = await g.gw.store.getApproval(id);
    expect(approved).toMatchObject({ status: 'approved' });

    // A different body: refused, and the approval stays usable for the exact one. (The page's
    // read of the live config is the only request the workspace saw so far.)
    expect(await call(token, 'PUT', '/api/2.0/serving-endpoints/iris/config', newConfig('4'), id)).toMatchObject({
      status: 403,
      body: { error_code: 'APPROVAL_INVALID' },
    });
    expect(sim.requests.map((r) => `${r.method} ${r.path}`)).toEqual(['GET /api/2.0/serving-endpoints/iris']);

    // The identical retry: forwarded once; the workspace's config changed.
    const sent = await call(token, 'PUT', '/api/2.0/serving-endpoints/iris/config', newConfig('3'), id);
    expect(sent.status, JSON.stringify(sent.body)).toBe(200);
    expect(sim.requests.filter((r) => r.method === 'PUT')).toHaveLength(1);
    const now = await call(token, 'GET', '/api/2.0/serving-endpoints/iris');
    expect(JSON.stringify(now.body)).toContain('"entity_version":"3"');

    // Replayed: refused.
    sim.reset();
    expect(await call(token, 'PUT', '/api/2.0/serving-endpoints/iris/config', newConfig('3'), id)).toMatchObject({
      status: 403,
      body: { error_code: 'APPROVAL_INVALID', message: 'This approval was already used.' },
    });
    expect(sim.requests).toEqual([]);

    // The trail: asked (refused, naming the approval) → approved with alice's key → forwarded.
    const trail = (await auditRecords()).filter((r) => JSON.stringify(r).includes(id));
    const aliceId = (await g.gw.store.getUserByEmail('alice@example.com'))?.id;
    const first = trail.find((r) => r.kind === 'http.request');
    expect(first).toMatchObject({
      status: 401,
      actor: { type: 'agent', id: agent.id, onBehalfOf: aliceId },
    });
    const tap = trail.find((r) => r.kind === 'auth.approval' && r.outcome === 'success');
    expect(tap?.actor).toMatchObject({ id: aliceId, credentialId: approved?.credentialId });
    const forwarded = trail.find((r) => r.kind === 'http.request' && r.status === 200);
    expect(forwarded?.decision?.reasons).toContain(`approval:${id}`);
    expect(forwarded?.actor).toMatchObject({ type: 'agent', onBehalfOf: aliceId });
    expect(trail.indexOf(first as ChainedRecord)).toBeLessThan(trail.indexOf(tap as ChainedRecord));
    expect(trail.indexOf(tap as ChainedRecord)).toBeLessThan(trail.indexOf(forwarded as ChainedRecord));
  });

  it('an expired approval cannot be approved or used; a denied one is audited and refused', async () => {
    sim.reset();
    const late = await call(token, 'PUT', '/api/2.0/serving-endpoints/iris/config', newConfig('5'));
    const lateId = late.body.approval_id as string;
    clock.advance(11 * 60_000);
    expect(await approve(alice, lateId)).toMatchObject({ status: 403, body: { error_code: 'APPROVAL_INVALID' } });
    const denied = await call(token, 'PUT', '/api/2.0/serving-endpoints/iris/config', newConfig('5'), lateId);
    expect(denied).toMatchObject({ status: 403, body: { error_code: 'APPROVAL_INVALID' } });

    const asked = await call(token, 'PUT', '/api/2.0/serving-endpoints/iris/config', newConfig('6'));
    const id = asked.body.approval_id as string;
    expect((await alice.browser.post(`/.keygate/api/approvals/${id}/deny`, {})).status).toBe(200);
    expect(await call(token, 'PUT', '/api/2.0/serving-endpoints/iris/config', newConfig('6'), id)).toMatchObject({
      status: 403,
      body: { error_code: 'APPROVAL_INVALID', message: 'This request was denied.' },
    });
    expect(sim.requests.filter((r) => r.method === 'PUT')).toEqual([]);
    const deniedRecord = (await auditRecords()).find((r) => r.kind === 'approval.denied' && r.detail?.approval === id);
    expect(deniedRecord?.actor).toMatchObject({ type: 'user', email: 'alice@example.com' });
  });
});

describe('the approval webhook', () => {
  it('announces each held request with a signature over its body that the receiver can check', async () => {
    const got: { headers: Record<string, string | string[] | undefined>; body: string }[] = [];
    const hook = await startUpstream((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => {
        body += c.toString();
      });
      req.on('end', () => {
        got.push({ headers: req.headers, body });
        res.writeHead(204);
        res.end();
      });
    });
    process.env.KG_TEST_APPROVAL_HOOK = 'hook-secret-for-tests';
    const g2 = await startGateway(
      {
        upstreams: simUpstream(sim.url),
        agents: { webhook: { url: `${hook.url}/hook`, secretEnv: 'KG_TEST_APPROVAL_HOOK' } },
      },
      { identifiers: [] },
    );
    try {
      const person = await enroll(g2, 'carol@example.com', {
        token: await invite(g2, 'carol@example.com', ['ml-deployer']),
      });
      const made = await g2.gw.oauth.sps.create({ name: 'hook-bot', roles: [], createdBy: 'test', withSecret: true });
      const grantId = (
        await person.browser.post<{ id: string }>('/.keygate/api/agents/grants', {
          agent: 'hook-bot',
          actions: ['serving:manage'],
          ttl: '1h',
        })
      ).body.id;
      const t = await exchangeGrant(
        g2.url,
        { id: made.sp.id, secret: (made.secret as { secret: string }).secret },
        grantId,
      );
      const token = t.body.access_token as string;
      const asked = await request(`${g2.url}/api/2.0/serving-endpoints/iris/config`, {
        method: 'PUT',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify(newConfig('8')),
      });
      const id = ((await asked.body.json()) as { approval_id: string }).approval_id;
      expect(await trueWithin(2_000, async () => got.length === 1)).toBe(true);
      const [call] = got as [(typeof got)[number]];
      const m = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(String(call.headers['x-keygate-signature']));
      expect(m).not.toBeNull();
      const expected = createHmac('sha256', 'hook-secret-for-tests').update(`${m?.[1]}.${call.body}`).digest('hex');
      expect(m?.[2]).toBe(expected);
      expect(JSON.parse(call.body)).toMatchObject({
        type: 'approval.requested',
        id,
        url: `${g2.gw.publicOrigin}/.keygate/approve/${id}`,
        user: 'carol@example.com',
        agent: 'hook-bot',
        method: 'PUT',
        path: '/api/2.0/serving-endpoints/iris/config',
        action: 'serving:manage',
      });
      // Never the body or a token in the announcement.
      expect(call.body).not.toContain('entity_version');
      expect(call.body).not.toContain(token);
    } finally {
      await g2.close();
      await hook.close();
    }
  });
});
