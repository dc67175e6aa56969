/**
 * The admin API is authorized by policy: `admin:read` / `admin:manage` on `Keygate::<area>`,
 * decided by Cedar like any request — custom roles and bindings apply, a denial names the
 * policy, and changes (a sensitive action) need a recent login while reads do not.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../../src/lib/clock.js';
import type { BrowserClient } from '../../helpers/browser-client.js';
import { startGateway, startRecordingUpstream, type TestGateway } from '../../helpers/index.js';
import { enroll, invite } from '../../helpers/people.js';

const clock = new ManualClock(Date.UTC(2026, 10, 1));
let g: TestGateway;
let up: Awaited<ReturnType<typeof startRecordingUpstream>>;

beforeAll(async () => {
  up = await startRecordingUpstream();
  g = await startGateway(
    {
      upstreams: { ws: { url: up.url, preset: 'databricks', credential: { type: 'none' } } },
      authorization: {
        stepUpMaxAge: '5m',
        bindings: [
          { user: 'auditor@example.com', roles: ['auditor'] },
          { user: 'ops@example.com', roles: ['admin'] },
        ],
        roles: {
          auditor: {
            description: 'Reads the audit log, nothing else of Keygate.',
            grants: [{ actions: ['admin:read'], resources: ['Keygate::audit'] }],
          },
        },
      },
    },
    { clock },
  );
});
afterAll(async () => {
  await g?.close();
  await up?.close();
});

async function person(email: string, roles: string[] = []): Promise<BrowserClient> {
  return (await enroll(g, email, { token: await invite(g, email, roles) })).browser;
}

describe('admin API authorization by policy', () => {
  it('a custom role may read the audit log and nothing else; the denial names the policy', async () => {
    const auditor = await person('auditor@example.com');
    const read = await auditor.get<{ records: unknown[] }>('/.keygate/api/admin/v1/audit?limit=5');
    expect(read.status).toBe(200);
    const sps = await auditor.get<{ error_code: string; message: string }>('/.keygate/api/admin/v1/service-principals');
    expect(sps.status).toBe(403);
    expect(sps.body.error_code).toBe('PERMISSION_DENIED');
    expect(sps.body.message).toContain('admin:read on Keygate::service-principals');
    expect(sps.body.message).toContain('default-deny');
    const create = await auditor.post<{ error_code: string }>('/.keygate/api/admin/v1/service-principals', {
      name: 'not-yours',
    });
    expect(create.status).toBe(403);
    expect((await g.gw.oauth.sps.list()).map((s) => s.name)).not.toContain('not-yours');
  });

  it('a binding in the config makes an admin of someone invited without roles', async () => {
    const ops = await person('ops@example.com');
    const r = await ops.post<{ name: string }>('/.keygate/api/admin/v1/service-principals', { name: 'from-binding' });
    expect(r.status).toBe(201);
    expect(r.body.name).toBe('from-binding');
  });

  it('changes need a login within stepUpMaxAge; reads do not', async () => {
    const admin = await person('root@example.com', ['admin']);
    clock.advance(6 * 60_000);
    const read = await admin.get('/.keygate/api/admin/v1/service-principals');
    expect(read.status).toBe(200);
    const stale = await admin.post<{ error_code: string }>('/.keygate/api/admin/v1/service-principals', {
      name: 'too-late',
    });
    expect(stale.status).toBe(401);
    expect(stale.body.error_code).toBe('FRESH_LOGIN_REQUIRED');
    expect((await g.gw.oauth.sps.list()).map((s) => s.name)).not.toContain('too-late');
  });

  it('without a session: 401, and nothing changes', async () => {
    const anon = await fetch(`${g.url}/.keygate/api/admin/v1/service-principals`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'anon' }),
    });
    expect(anon.status).toBe(401);
    expect(((await anon.json()) as { error_code: string }).error_code).toBe('UNAUTHENTICATED');
  });
});

describe('the policy tester', () => {
  it('answers "may this person do that now?" by the live policies, with reasons and step-up', async () => {
    const admin = await person('tester@example.com', ['admin']);
    await person('dana@example.com', ['ml-engineer']);
    const ask = (body: Record<string, unknown>) =>
      admin.post<{
        decision: string;
        reasons: string[];
        action: string;
        resource: string;
        roles: string[];
        stepUp: { required: boolean };
      }>('/.keygate/api/admin/v1/policy/test', body);
    // Dana's own roles (ml-engineer) may query but not deploy the fraud model's endpoint.
    const deploy = await ask({
      principal: 'user:dana@example.com',
      method: 'PUT',
      path: '/api/2.0/serving-endpoints/fraud-model/config',
    });
    expect(deploy.status).toBe(200);
    expect(deploy.body).toMatchObject({
      decision: 'deny',
      action: 'serving:manage',
      resource: 'Endpoint::fraud-model',
      roles: ['ml-engineer'],
    });
    // As a deployer: allowed with a fresh login, step-up with a 10-minute-old one.
    const fresh = await ask({
      principal: 'user:dana@example.com',
      roles: ['ml-deployer'],
      action: 'serving:manage',
      resource: 'Endpoint::fraud-model',
    });
    expect(fresh.body).toMatchObject({ decision: 'allow', stepUp: { required: false } });
    expect(fresh.body.reasons).toEqual(['role:ml-deployer:0']);
    const stale = await ask({
      principal: 'user:dana@example.com',
      roles: ['ml-deployer'],
      action: 'serving:manage',
      resource: 'Endpoint::fraud-model',
      authAgeSeconds: 600,
    });
    expect(stale.body).toMatchObject({ decision: 'step_up', stepUp: { required: true } });
    // The admin API's own actions too: the auditor may read the audit log, not manage users.
    const audit = await ask({
      principal: 'user:auditor@example.com',
      action: 'admin:read',
      resource: 'Keygate::audit',
    });
    expect(audit.body.decision).toBe('allow');
    const users = await ask({
      principal: 'user:auditor@example.com',
      action: 'admin:manage',
      resource: 'Keygate::users',
    });
    expect(users.body.decision).toBe('deny');
    // Bad descriptions are 400 naming the problem.
    for (const body of [
      { principal: 'dana' },
      { principal: 'user:dana@example.com' },
      { principal: 'user:dana@example.com', action: 'serving:fly' },
      { principal: 'user:dana@example.com', action: 'serving:read', resource: 'Galaxy::far' },
      { principal: 'user:dana@example.com', path: 'no-slash' },
    ]) {
      const r = await admin.post<{ error_code: string }>('/.keygate/api/admin/v1/policy/test', body);
      expect(r.status, JSON.stringify(body)).toBe(400);
      expect(r.body.error_code).toBe('BAD_REQUEST');
    }
    // And it is an admin:read on Keygate::policy: the auditor role does not include it.
    const auditor = await person('auditor2@example.com');
    expect(
      (
        await auditor.post('/.keygate/api/admin/v1/policy/test', {
          principal: 'user:x@example.com',
          action: 'serving:read',
        })
      ).status,
    ).toBe(403);
  });
});

describe('role bindings made through the API', () => {
  it('apply to the next request, show in the roles view, and stop applying when removed; audited', async () => {
    const admin = await person('binder@example.com', ['admin']);
    const newcomer = await person('newcomer@example.com');
    const list = () => newcomer.get('/api/2.0/serving-endpoints');
    const before = up.seen.length;
    expect((await list()).status).toBe(403);
    expect(up.seen.length).toBe(before);

    const made = await admin.post<{ id: string }>('/.keygate/api/admin/v1/bindings', {
      user: 'Newcomer@example.com',
      role: 'ml-reader',
    });
    expect(made.status).toBe(201);
    expect((await list()).status).toBe(200);
    const roles = await admin.get<{ bindings: { id?: string; user?: string; roles: string[]; source: string }[] }>(
      '/.keygate/api/admin/v1/roles',
    );
    expect(roles.body.bindings).toContainEqual(
      expect.objectContaining({
        id: made.body.id,
        user: 'newcomer@example.com',
        roles: ['ml-reader'],
        source: 'store',
      }),
    );
    expect(roles.body.bindings).toContainEqual(expect.objectContaining({ user: 'ops@example.com', source: 'config' }));

    const dup = await admin.post<{ error_code: string }>('/.keygate/api/admin/v1/bindings', {
      user: 'newcomer@example.com',
      role: 'ml-reader',
    });
    expect(dup.status).toBe(409);
    for (const body of [
      { user: 'x@example.com', role: 'no-such-role' },
      { user: 'not-an-email', role: 'ml-reader' },
      { group: 'g' },
    ]) {
      expect((await admin.post('/.keygate/api/admin/v1/bindings', body)).status, JSON.stringify(body)).toBe(400);
    }

    expect((await admin.call('DELETE', `/.keygate/api/admin/v1/bindings/${made.body.id}`)).status).toBe(204);
    expect((await list()).status).toBe(403);
    expect((await admin.call('DELETE', `/.keygate/api/admin/v1/bindings/${made.body.id}`)).status).toBe(404);

    await g.gw.audit.flushed();
    const ops = (await g.gw.audit.query({ kind: 'admin.change' }, { limit: 1000 }))
      .lines.map((l) => JSON.parse(l) as { change?: { op: string; target: string } })
      .filter((r) => r.change?.target === `binding:${made.body.id}`)
      .map((r) => r.change?.op);
    expect(ops).toEqual(['binding.create', 'binding.delete']);
  });
});
