/**
 * SCIM 2.0 provisioning as Okta and Entra ID send it, against two gateways (replicas) on one
 * store: create a person, add them to a group bound to a role, deactivate them — and the effect
 * on the person's live session on the *other* replica: the role arrives at the next request, and
 * after deactivation the next proxied request is refused within a second without reaching the
 * upstream. Also: discovery endpoints, filters and paging, errors in SCIM's shape, the bearer
 * token (missing, wrong, revoked), mass assignment ignored, DELETE, and the scim.change records.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ChainedRecord } from '../../../src/audit/record.js';
import { SqliteStore } from '../../../src/store/sqlite/index.js';
import { BrowserClient } from '../../helpers/browser-client.js';
import { startGateway, startRecordingUpstream, type TestGateway, trueWithin } from '../../helpers/index.js';
import { enroll, invite } from '../../helpers/people.js';

const SCIM = '/.keygate/scim/v2';
const CORE_USER = 'urn:ietf:params:scim:schemas:core:2.0:User';
const CORE_GROUP = 'urn:ietf:params:scim:schemas:core:2.0:Group';
const ENTERPRISE = 'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User';
const PATCH_OP = 'urn:ietf:params:scim:api:messages:2.0:PatchOp';

let a: TestGateway;
let b: TestGateway;
let up: Awaited<ReturnType<typeof startRecordingUpstream>>;
let token: string;

beforeAll(async () => {
  up = await startRecordingUpstream();
  const file = join(mkdtempSync(join(tmpdir(), 'kg-scim-')), 'keygate.db');
  const config = {
    upstreams: { ws: { url: up.url, preset: 'databricks' as const, credential: { type: 'none' as const } } },
    authorization: { bindings: [{ group: 'ml-admins', roles: ['admin'] }] },
  };
  // Two replicas on one store.
  a = await startGateway(config, { identifiers: [], store: new SqliteStore({ path: file }) });
  b = await startGateway(config, { identifiers: [], store: new SqliteStore({ path: file }) });
  const { browser: admin } = await enroll(a, 'root@example.com', {
    token: await invite(a, 'root@example.com', ['admin']),
  });
  const made = await admin.post<{ token: string; scimBaseUrl: string }>('/.keygate/api/admin/v1/scim-tokens', {
    name: 'okta',
  });
  expect(made.status).toBe(201);
  expect(made.body.scimBaseUrl).toBe(`${a.gw.publicOrigin}${SCIM}`);
  token = made.body.token;
});
afterAll(async () => {
  await a?.close();
  await b?.close();
  await up?.close();
});

async function scim<T = Record<string, unknown>>(
  g: TestGateway,
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE',
  path: string,
  body?: unknown,
  bearer: string | null = token,
): Promise<{ status: number; body: T; type: string | undefined }> {
  const r = await request(`${g.url}${SCIM}${path}`, {
    method,
    headers: {
      ...(bearer === null ? {} : { authorization: `Bearer ${bearer}` }),
      ...(body === undefined ? {} : { 'content-type': 'application/scim+json' }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await r.body.text();
  return {
    status: r.statusCode,
    body: (text === '' ? undefined : JSON.parse(text)) as T,
    type: r.headers['content-type'] as string | undefined,
  };
}

/** The person's browser on each replica (one session cookie, valid on both). */
async function person(email: string): Promise<{ onA: BrowserClient; onB: BrowserClient }> {
  const { browser: onA } = await enroll(a, email, { token: await invite(a, email) });
  const onB = new BrowserClient(b.url, b.gw.publicOrigin);
  for (const [k, v] of onA.cookies) onB.cookies.set(k, v);
  return { onA, onB };
}

async function scimChanges(): Promise<ChainedRecord[]> {
  await a.gw.audit.flushed();
  return (await a.gw.audit.query({ kind: 'scim.change' }, { limit: 1000 })).lines.map((l) => JSON.parse(l) as ChainedRecord);
}

describe('discovery and the bearer token', () => {
  it('serves ServiceProviderConfig, ResourceTypes and Schemas', async () => {
    const spc = await scim<{ patch: { supported: boolean }; filter: { supported: boolean } }>(
      a,
      'GET',
      '/ServiceProviderConfig',
    );
    expect(spc.status).toBe(200);
    expect(spc.type).toContain('application/scim+json');
    expect(spc.body).toMatchObject({ patch: { supported: true }, filter: { supported: true } });
    const types = await scim<{ Resources: { name: string }[] }>(a, 'GET', '/ResourceTypes');
    expect(types.body.Resources.map((r) => r.name).sort()).toEqual(['Group', 'User']);
    const schemas = await scim<{ Resources: { id: string }[] }>(a, 'GET', '/Schemas');
    expect(schemas.body.Resources.map((r) => r.id)).toEqual(
      expect.arrayContaining([CORE_USER, CORE_GROUP, ENTERPRISE]),
    );
  });

  it('refuses a missing, wrong or revoked token with 401 in SCIM error shape, changing nothing', async () => {
    const body = { schemas: [CORE_USER], userName: 'sneaky@example.com' };
    const { browser } = await enroll(a, 'admin2@example.com', {
      token: await invite(a, 'admin2@example.com', ['admin']),
    });
    const before = (await a.gw.store.listUsers({ limit: 1000 })).length;
    for (const bearer of [null, 'kgscim_not-a-real-token-at-all-000000']) {
      const r = await scim<{ schemas: string[]; status: string }>(a, 'POST', '/Users', body, bearer);
      expect(r.status).toBe(401);
      expect(r.body).toMatchObject({ schemas: ['urn:ietf:params:scim:api:messages:2.0:Error'], status: '401' });
    }
    // An admin session is not a SCIM credential either.
    const viaCookie = await browser.call('POST', `${SCIM}/Users`, body);
    expect(viaCookie.status).toBe(401);
    // A revoked token stops at once.
    const made = await browser.post<{ id: string; token: string }>('/.keygate/api/admin/v1/scim-tokens', {
      name: 'old',
    });
    expect((await scim(a, 'GET', '/Users', undefined, made.body.token)).status).toBe(200);
    expect((await browser.call('DELETE', `/.keygate/api/admin/v1/scim-tokens/${made.body.id}`)).status).toBe(204);
    expect((await scim(a, 'GET', '/Users', undefined, made.body.token)).status).toBe(401);
    expect((await a.gw.store.listUsers({ limit: 1000 })).length).toBe(before);
    expect(await a.gw.store.getUserByEmail('sneaky@example.com')).toBeNull();
  });
});

describe('an Okta provisioning conversation', () => {
  it('create, add to a group, deactivate: the live session on the other replica follows at its next request', async () => {
    // Okta looks the person up first, then creates them.
    const look = await scim<{ totalResults: number }>(
      a,
      'GET',
      `/Users?filter=${encodeURIComponent('userName eq "dana@acme.example"')}&startIndex=1&count=100`,
    );
    expect(look.body.totalResults).toBe(0);
    const created = await scim<{ id: string; userName: string; active: boolean; externalId: string }>(
      a,
      'POST',
      '/Users',
      {
        schemas: [CORE_USER],
        userName: 'dana@acme.example',
        name: { givenName: 'Dana', familyName: 'Scully' },
        emails: [{ primary: true, value: 'dana@acme.example', type: 'work' }],
        displayName: 'Dana Scully',
        locale: 'en-US',
        externalId: '00u1okta',
        groups: [],
        active: true,
      },
    );
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ userName: 'dana@acme.example', active: true, externalId: '00u1okta' });
    const danaId = created.body.id;
    // Looked up again (case-insensitively, as userName is in SCIM), she is found once.
    const found = await scim<{ totalResults: number; Resources: { id: string }[] }>(
      a,
      'GET',
      `/Users?filter=${encodeURIComponent('userName eq "DANA@acme.example"')}`,
    );
    expect(found.body.totalResults).toBe(1);
    expect(found.body.Resources[0]?.id).toBe(danaId);
    expect((await a.gw.store.getUser(danaId))?.displayName).toBe('Dana Scully');
    // Creating again is a uniqueness conflict (Okta then links to the existing one).
    const again = await scim<{ scimType: string }>(a, 'POST', '/Users', {
      schemas: [CORE_USER],
      userName: 'dana@acme.example',
    });
    expect(again.status).toBe(409);
    expect(again.body.scimType).toBe('uniqueness');

    // Dana enrolls a key and works on replica B.
    const dana = await person('dana@acme.example');
    expect((await dana.onB.get('/.keygate/api/admin/v1/users')).status).toBe(403);

    // Okta pushes the group and adds her.
    const group = await scim<{ id: string }>(a, 'POST', '/Groups', {
      schemas: [CORE_GROUP],
      displayName: 'ml-admins',
      members: [],
    });
    expect(group.status).toBe(201);
    const add = await scim(a, 'PATCH', `/Groups/${group.body.id}`, {
      schemas: [PATCH_OP],
      Operations: [{ op: 'add', path: 'members', value: [{ value: danaId, display: 'dana@acme.example' }] }],
    });
    expect([200, 204]).toContain(add.status);
    // The role arrives at her next request on the other replica (its cache is told within a second).
    await expect
      .poll(async () => (await dana.onB.get('/.keygate/api/admin/v1/users')).status, { timeout: 2_000, interval: 100 })
      .toBe(200);

    // Okta deactivates her (through replica A).
    const off = await scim<{ active: boolean }>(a, 'PATCH', `/Users/${danaId}`, {
      schemas: [PATCH_OP],
      Operations: [{ op: 'replace', value: { active: false } }],
    });
    expect(off.status).toBe(200);
    expect(off.body.active).toBe(false);
    // On A, her very next request is refused, before the upstream.
    const seen = up.seen.length;
    expect((await dana.onA.get('/api/2.0/serving-endpoints')).status).toBe(401);
    expect(up.seen.length).toBe(seen);
    // On B, within a second (the revocations every replica polls); from then on nothing reaches the upstream.
    expect(
      await trueWithin(1_000, async () => (await dana.onB.get('/api/2.0/serving-endpoints')).status === 401),
      'refused on the other replica within a second',
    ).toBe(true);
    const after = up.seen.length;
    expect((await dana.onB.get('/api/2.0/serving-endpoints')).status).toBe(401);
    expect((await dana.onB.get('/.keygate/api/session')).status).toBe(401);
    expect(up.seen.length).toBe(after);
    expect((await a.gw.store.getUser(danaId))?.disabledAt).not.toBeNull();

    const ops = (await scimChanges()).map((r) => [r.change?.op, r.actor.via]);
    expect(ops).toEqual(
      expect.arrayContaining([
        ['user.create', 'scim:okta'],
        ['group.create', 'scim:okta'],
        ['group.update', 'scim:okta'],
        ['user.update', 'scim:okta'],
      ]),
    );
    const deactivation = (await scimChanges()).find(
      (r) => r.change?.target === `user:${danaId}` && r.change.op === 'user.update',
    );
    expect(deactivation?.change).toMatchObject({ before: { active: true }, after: { active: false } });
  });
});

describe('an Entra ID provisioning conversation', () => {
  it('enterprise extension accepted, "False" strings and capitalized ops, member add and remove by value', async () => {
    const created = await scim<{ id: string }>(a, 'POST', '/Users', {
      schemas: [CORE_USER, ENTERPRISE],
      externalId: 'e1a2b3',
      userName: 'erin@contoso.example',
      active: true,
      displayName: 'Erin Contoso',
      emails: [{ primary: true, type: 'work', value: 'erin@contoso.example' }],
      meta: { resourceType: 'User' },
      name: { formatted: 'Erin Contoso', familyName: 'Contoso', givenName: 'Erin' },
      [ENTERPRISE]: { department: 'ML Platform', employeeNumber: '42' },
    });
    expect(created.status).toBe(201);
    const erinId = created.body.id;
    const erin = await person('erin@contoso.example');

    const group = await scim<{ id: string }>(a, 'POST', '/Groups', {
      schemas: [CORE_GROUP],
      externalId: 'g-9',
      displayName: 'contoso-admins',
      members: [],
    });
    // Bind through the admin API of replica B: roles come from the group.
    const { browser: admin } = await enroll(b, 'root-b@example.com', {
      token: await invite(b, 'root-b@example.com', ['admin']),
    });
    expect(
      (await admin.post('/.keygate/api/admin/v1/bindings', { group: 'contoso-admins', role: 'admin' })).status,
    ).toBe(201);

    const add = await scim(a, 'PATCH', `/Groups/${group.body.id}`, {
      schemas: [PATCH_OP],
      Operations: [{ op: 'Add', path: 'members', value: [{ value: erinId }] }],
    });
    expect([200, 204]).toContain(add.status);
    await expect
      .poll(async () => (await erin.onB.get('/.keygate/api/admin/v1/users')).status, { timeout: 2_000, interval: 100 })
      .toBe(200);
    const members = await scim<{ members: { value: string }[]; externalId: string }>(
      a,
      'GET',
      `/Groups/${group.body.id}`,
    );
    expect(members.body.members.map((m) => m.value)).toEqual([erinId]);
    expect(members.body.externalId).toBe('g-9');

    const remove = await scim(a, 'PATCH', `/Groups/${group.body.id}`, {
      schemas: [PATCH_OP],
      Operations: [{ op: 'Remove', path: `members[value eq "${erinId}"]` }],
    });
    expect([200, 204]).toContain(remove.status);
    await expect
      .poll(async () => (await erin.onB.get('/.keygate/api/admin/v1/users')).status, { timeout: 2_000, interval: 100 })
      .toBe(403);

    const off = await scim<{ active: boolean }>(a, 'PATCH', `/Users/${erinId}`, {
      schemas: [PATCH_OP],
      Operations: [{ op: 'Replace', path: 'active', value: 'False' }],
    });
    expect(off.status).toBe(200);
    expect(off.body.active).toBe(false);
    await expect
      .poll(async () => (await erin.onB.get('/.keygate/api/session')).status, { timeout: 1_000, interval: 50 })
      .toBe(401);
  });
});

describe('resources and errors', () => {
  it('lists with filters and paging; unknown ids 404; a bad filter 400 invalidFilter', async () => {
    for (const n of [1, 2, 3]) {
      const r = await scim(a, 'POST', '/Users', { schemas: [CORE_USER], userName: `page${n}@example.com` });
      expect(r.status).toBe(201);
    }
    const page = await scim<{
      totalResults: number;
      itemsPerPage: number;
      startIndex: number;
      Resources: { userName: string }[];
    }>(a, 'GET', `/Users?filter=${encodeURIComponent('userName sw "page"')}&startIndex=2&count=1`);
    expect(page.status).toBe(200);
    expect(page.body).toMatchObject({ totalResults: 3, itemsPerPage: 1, startIndex: 2 });
    expect(page.body.Resources.map((u) => u.userName)).toEqual(['page2@example.com']);
    const missing = await scim<{ status: string }>(a, 'GET', '/Users/no-such-id');
    expect(missing.status).toBe(404);
    expect(missing.body.status).toBe('404');
    expect((await scim(a, 'GET', '/Users?count=lots')).status).toBe(400);
    for (const f of ['userName xx "a"', '(userName eq "a"', 'bogus']) {
      const bad = await scim<{ scimType: string }>(a, 'GET', `/Users?filter=${encodeURIComponent(f)}`);
      expect(bad.status, f).toBe(400);
      expect(bad.body.scimType).toBe('invalidFilter');
    }
    for (const body of [
      [],
      'x',
      { schemas: [PATCH_OP], Operations: [null] },
      { schemas: [PATCH_OP], Operations: 'x' },
    ]) {
      const r = await scim(
        a,
        'PATCH',
        `/Users/${page.body.Resources[0] ? (await a.gw.store.getUserByEmail('page1@example.com'))?.id : ''}`,
        body,
      );
      expect(r.status, JSON.stringify(body)).toBe(400);
    }
    const noName = await scim<{ scimType: string }>(a, 'POST', '/Users', { schemas: [CORE_USER], displayName: 'x' });
    expect(noName.status).toBe(400);
    const notEmail = await scim<{ detail: string }>(a, 'POST', '/Users', {
      schemas: [CORE_USER],
      userName: 'not-an-email',
    });
    expect(notEmail.status).toBe(400);
    expect(notEmail.body.detail).toContain('email');
    expect((await scim(a, 'GET', '/Widgets')).status).toBe(404);
  });

  it('mass assignment is ignored: roles and groups on a user create nothing', async () => {
    const admins = await a.gw.store.getGroup('ml-admins');
    const r = await scim<{ id: string }>(a, 'POST', '/Users', {
      schemas: [CORE_USER],
      userName: 'mallory@example.com',
      roles: [{ value: 'admin' }],
      groups: [{ value: admins?.id }],
      active: true,
    });
    expect(r.status).toBe(201);
    const u = await a.gw.store.getUser(r.body.id);
    expect(u?.roles).toEqual([]);
    expect(u?.groups).toEqual([]);
  });

  it('PUT replaces; DELETE removes the person after ending their session everywhere', async () => {
    const created = await scim<{ id: string }>(a, 'POST', '/Users', {
      schemas: [CORE_USER],
      userName: 'zoe@example.com',
    });
    const zoe = await person('zoe@example.com');
    const put = await scim<{ displayName: string }>(a, 'PUT', `/Users/${created.body.id}`, {
      schemas: [CORE_USER],
      userName: 'zoe@example.com',
      displayName: 'Zoe Renamed',
      active: true,
    });
    expect(put.status).toBe(200);
    expect(put.body.displayName).toBe('Zoe Renamed');
    expect((await zoe.onB.get('/.keygate/api/session')).status).toBe(200);
    const del = await scim(a, 'DELETE', `/Users/${created.body.id}`);
    expect(del.status).toBe(204);
    await expect
      .poll(async () => (await zoe.onB.get('/.keygate/api/session')).status, { timeout: 1_000, interval: 50 })
      .toBe(401);
    expect(await a.gw.store.getUser(created.body.id)).toBeNull();
    expect((await scim(a, 'GET', `/Users/${created.body.id}`)).status).toBe(404);
    const rec = (await scimChanges()).find((x) => x.change?.op === 'user.delete');
    expect(rec?.change?.before).toMatchObject({ email: 'zoe@example.com' });
  });
});
