/**
 * The admin API's groups, user deletion and federation trusts kept in the store. Roles come
 * from groups: adding a person to a group bound to a role gives them the role at their next
 * request, removing them (or deleting the group) takes it away. Deleting a person ends their
 * sessions, tokens and keys at once. A stored federation trust works like one in keygate.yaml
 * and stops when removed. Every change is an admin.change record; bad input is 400 naming the
 * field, a duplicate 409, an unknown id 404.
 */
import { randomUUID } from 'node:crypto';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BrowserClient } from '../../helpers/browser-client.js';
import {
  lastChange as lastChangeOf,
  startGateway,
  startRecordingUpstream,
  type TestGateway,
} from '../../helpers/index.js';
import { browserFor, enroll, invite, login } from '../../helpers/people.js';

const API = '/.keygate/api/admin/v1';
let g: TestGateway;
let up: Awaited<ReturnType<typeof startRecordingUpstream>>;
let admin: BrowserClient;

beforeAll(async () => {
  up = await startRecordingUpstream();
  g = await startGateway({
    upstreams: { ws: { url: up.url, preset: 'databricks', credential: { type: 'none' } } },
    tokens: {
      federation: [
        {
          name: 'from-config',
          issuer: 'https://ci.config.example.test',
          jwksUrl: 'http://127.0.0.1:9/jwks',
          audience: 'keygate',
          subject: '*',
          servicePrincipal: 'nobody',
        },
      ],
    },
  });
  ({ browser: admin } = await enroll(g, 'root@example.com', { token: await invite(g, 'root@example.com', ['admin']) }));
});
afterAll(async () => {
  await g?.close();
  await up?.close();
});

async function person(email: string, roles: string[] = ['ml-reader']) {
  const p = await enroll(g, email, { token: await invite(g, email, roles) });
  return { ...p, id: (await g.gw.store.getUserByEmail(email))?.id as string };
}

const lastChange = (target: string) => lastChangeOf(g, target);

/** May this browser read the admin API's users? (A role only a group binding can give here.) */
const canAdmin = async (b: BrowserClient) => (await b.get(`${API}/users`)).status;

describe('groups', () => {
  it('create, list with member counts and bound roles; duplicates 409; bad names 400 naming the field', async () => {
    const made = await admin.post<{ id: string; name: string; members: number }>(`${API}/groups`, {
      name: 'ml-platform',
      description: 'Runs the serving fleet',
    });
    expect(made.status).toBe(201);
    expect(made.body).toMatchObject({ name: 'ml-platform', members: 0 });
    expect(await lastChange(`group:${made.body.id}`)).toMatchObject({
      actor: { email: 'root@example.com' },
      change: { op: 'group.create', after: { name: 'ml-platform' } },
    });
    const dup = await admin.post<{ error_code: string; message: string }>(`${API}/groups`, { name: 'ml-platform' });
    expect(dup.status).toBe(409);
    expect(dup.body.message).toContain('name:');
    const bad = await admin.post<{ error_code: string; message: string }>(`${API}/groups`, { name: 'a\u0000b' });
    expect(bad.status).toBe(400);
    expect(bad.body.error_code).toBe('BAD_REQUEST');
    expect(bad.body.message).toContain('name');
    const unknownField = await admin.post<{ message: string }>(`${API}/groups`, { name: 'x', owner: 'me' });
    expect(unknownField.status).toBe(400);
    expect(unknownField.body.message).toContain('owner');

    expect((await admin.post(`${API}/bindings`, { group: 'ml-platform', role: 'ml-deployer' })).status).toBe(201);
    const list = await admin.get<{ groups: { name: string; members: number; roles: string[] }[] }>(`${API}/groups`);
    expect(list.body.groups.find((x) => x.name === 'ml-platform')).toMatchObject({
      members: 0,
      roles: ['ml-deployer'],
    });
    expect((await admin.get(`${API}/groups/no-such-group`)).status).toBe(404);
  });

  it("a member gets the group's roles at their next request; removed, they lose them at once", async () => {
    const ops = await person('ops@example.com');
    const group = await admin.post<{ id: string }>(`${API}/groups`, { name: 'keygate-admins' });
    expect((await admin.post(`${API}/bindings`, { group: 'keygate-admins', role: 'admin' })).status).toBe(201);
    expect(await canAdmin(ops.browser)).toBe(403);

    const add = await admin.call('PUT', `${API}/groups/${group.body.id}/members/${ops.id}`);
    expect(add.status).toBe(204);
    expect(await canAdmin(ops.browser)).toBe(200);
    const shown = await admin.get<{ groups: string[] }>(`${API}/users/${ops.id}`);
    expect(shown.body.groups).toEqual(['keygate-admins']);
    const members = await admin.get<{ members: { email: string }[] }>(`${API}/groups/keygate-admins`);
    expect(members.body.members.map((m) => m.email)).toEqual(['ops@example.com']);
    expect(await lastChange(`group:${group.body.id}`)).toMatchObject({
      change: { op: 'group.member_add', before: { member: false, user: ops.id }, after: { member: true } },
    });
    // Adding again changes nothing and records nothing new.
    expect((await admin.call('PUT', `${API}/groups/${group.body.id}/members/${ops.id}`)).status).toBe(204);

    const remove = await admin.call('DELETE', `${API}/groups/${group.body.id}/members/${ops.id}`);
    expect(remove.status).toBe(204);
    expect(await canAdmin(ops.browser)).toBe(403);
    expect((await admin.call('DELETE', `${API}/groups/${group.body.id}/members/${ops.id}`)).status).toBe(404);
    expect((await admin.call('PUT', `${API}/groups/${group.body.id}/members/no-such-user`)).status).toBe(404);
  });

  it('deleting a group takes its roles from its members at their next request', async () => {
    const eve = await person('eve@example.com');
    const group = await admin.post<{ id: string }>(`${API}/groups`, { name: 'temporary-admins' });
    await admin.post(`${API}/bindings`, { group: 'temporary-admins', role: 'admin' });
    await admin.call('PUT', `${API}/groups/${group.body.id}/members/${eve.id}`);
    expect(await canAdmin(eve.browser)).toBe(200);
    const del = await admin.call('DELETE', `${API}/groups/${group.body.id}`);
    expect(del.status).toBe(204);
    expect(await canAdmin(eve.browser)).toBe(403);
    expect(await lastChange(`group:${group.body.id}`)).toMatchObject({
      change: { op: 'group.delete', before: { name: 'temporary-admins', members: [eve.id] } },
    });
    expect((await admin.call('DELETE', `${API}/groups/${group.body.id}`)).status).toBe(404);
  });

  it('a non-admin cannot manage groups: 403, nothing changes', async () => {
    const mallory = await person('mallory@example.com');
    const r = await mallory.browser.post<{ error_code: string }>(`${API}/groups`, { name: 'mine' });
    expect(r.status).toBe(403);
    expect(r.body.error_code).toBe('PERMISSION_DENIED');
    expect((await g.gw.store.listGroups()).map((x) => x.name)).not.toContain('mine');
  });
});

describe('deleting a user', () => {
  it('ends their sessions and keys at once, removes them, keeps the audit; nobody deletes themselves', async () => {
    const zed = await person('zed@example.com');
    const group = await admin.post<{ id: string }>(`${API}/groups`, { name: 'zeds-group' });
    await admin.call('PUT', `${API}/groups/${group.body.id}/members/${zed.id}`);
    expect((await zed.browser.get('/.keygate/api/session')).status).toBe(200);

    const del = await admin.call('DELETE', `${API}/users/${zed.id}`);
    expect(del.status).toBe(204);
    expect((await zed.browser.get('/.keygate/api/session')).status).toBe(401);
    expect((await login(browserFor(g), zed.authenticator)).status).toBe(401);
    expect((await admin.get(`${API}/users/${zed.id}`)).status).toBe(404);
    expect((await admin.get<{ members: unknown[] }>(`${API}/groups/${group.body.id}`)).body.members).toEqual([]);
    expect(await lastChange(`user:${zed.id}`)).toMatchObject({
      change: {
        op: 'user.delete',
        before: { email: 'zed@example.com', groups: ['zeds-group'], credentials: 1, disabled: false },
      },
    });
    expect((await admin.call('DELETE', `${API}/users/${zed.id}`)).status).toBe(404);

    const root = (await g.gw.store.getUserByEmail('root@example.com'))?.id as string;
    const self = await admin.call<{ message: string }>('DELETE', `${API}/users/${root}`);
    expect(self.status).toBe(400);
    expect(self.body.message).toContain('yourself');
    expect(await g.gw.store.getUser(root)).not.toBeNull();
  });
});

describe('federation trusts in the store', () => {
  const ISSUER = 'https://ci.stored.example.test';
  let sign: (sub: string) => Promise<string>;
  let jwk: Record<string, unknown>;
  let spId: string;

  beforeAll(async () => {
    const { publicKey, privateKey } = await generateKeyPair('ES256');
    jwk = { ...(await exportJWK(publicKey)), kid: 'ci-1', alg: 'ES256' };
    sign = (sub) =>
      new SignJWT({ jti: randomUUID() })
        .setProtectedHeader({ alg: 'ES256', kid: 'ci-1' })
        .setIssuer(ISSUER)
        .setAudience('keygate-stored')
        .setSubject(sub)
        .setIssuedAt()
        .setExpirationTime('5m')
        .sign(privateKey);
    const sp = await admin.post<{ id: string }>(`${API}/service-principals`, { name: 'stored-ci', secret: false });
    spId = sp.body.id;
  });

  const exchange = async (subject: string) => {
    const r = await request(`${g.url}/.keygate/oauth/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
        subject_token: subject,
        subject_token_type: 'urn:ietf:params:oauth:token-type:jwt',
        client_id: spId,
      }).toString(),
    });
    return { status: r.statusCode, body: (await r.body.json()) as Record<string, string> };
  };

  it('a stored trust exchanges platform tokens like a configured one; removed, it exchanges nothing', async () => {
    const none = await exchange(await sign('repo:acme/ml:ref:refs/heads/main'));
    expect(none.body, JSON.stringify(none)).toMatchObject({ error: 'invalid_grant' });
    const made = await admin.post<{ name: string; servicePrincipal: string; source: string }>(
      `${API}/federation-trusts`,
      {
        name: 'stored-ci',
        issuer: ISSUER,
        jwks: { keys: [jwk] },
        audience: 'keygate-stored',
        subject: 'repo:acme/ml:ref:refs/heads/*',
        servicePrincipal: 'stored-ci',
      },
    );
    expect(made.status).toBe(201);
    expect(made.body).toMatchObject({ name: 'stored-ci', servicePrincipal: spId, source: 'store' });
    const ok = await exchange(await sign('repo:acme/ml:ref:refs/heads/main'));
    expect(ok.status).toBe(200);
    expect(typeof ok.body.access_token).toBe('string');
    // The subject pattern still applies.
    expect((await exchange(await sign('repo:someone-else/ml:ref:refs/heads/main'))).body.error).toBe('invalid_grant');

    const list = await admin.get<{ trusts: { name: string; source: string }[] }>(`${API}/federation-trusts`);
    expect(list.body.trusts.map((t) => [t.name, t.source])).toEqual([
      ['from-config', 'config'],
      ['stored-ci', 'store'],
    ]);
    expect(await lastChange('federation_trust:stored-ci')).toMatchObject({
      change: { op: 'federation_trust.create', after: { issuer: ISSUER, servicePrincipal: spId, keys: 'inline' } },
    });

    expect((await admin.call('DELETE', `${API}/federation-trusts/stored-ci`)).status).toBe(204);
    expect((await exchange(await sign('repo:acme/ml:ref:refs/heads/main'))).body.error).toBe('invalid_grant');
    expect(await lastChange('federation_trust:stored-ci')).toMatchObject({ change: { op: 'federation_trust.delete' } });
  });

  it('refuses bad trusts naming the field: private keys, unknown principals, both or neither key source, taken names', async () => {
    const base = {
      name: 'bad-trust',
      issuer: ISSUER,
      audience: 'keygate-stored',
      subject: '*',
      servicePrincipal: 'stored-ci',
    };
    const priv = await admin.post<{ message: string }>(`${API}/federation-trusts`, {
      ...base,
      jwks: { keys: [{ ...jwk, d: 'c2VjcmV0' }] },
    });
    expect(priv.status).toBe(400);
    expect(priv.body.message).toMatch(/^jwks: /);
    const who = await admin.post<{ message: string }>(`${API}/federation-trusts`, {
      ...base,
      jwks: { keys: [jwk] },
      servicePrincipal: 'nobody-here',
    });
    expect(who.status).toBe(400);
    expect(who.body.message).toMatch(/^servicePrincipal: /);
    const both = await admin.post<{ message: string }>(`${API}/federation-trusts`, {
      ...base,
      jwks: { keys: [jwk] },
      jwksUrl: 'http://127.0.0.1:9/jwks',
    });
    expect(both.status).toBe(400);
    expect(both.body.message).toContain('exactly one of jwksUrl and jwks');
    const badUrl = await admin.post<{ message: string }>(`${API}/federation-trusts`, { ...base, jwksUrl: 'nope' });
    expect(badUrl.status).toBe(400);
    expect(badUrl.body.message).toContain('jwksUrl');
    const taken = await admin.post(`${API}/federation-trusts`, { ...base, name: 'from-config', jwks: { keys: [jwk] } });
    expect(taken.status).toBe(409);
    const fromConfig = await admin.call<{ message: string }>('DELETE', `${API}/federation-trusts/from-config`);
    expect(fromConfig.status).toBe(404);
    expect(fromConfig.body.message).toContain('keygate.yaml');
    expect((await g.gw.store.listFederationTrusts()).map((t) => t.name)).not.toContain('bad-trust');
  });
});
