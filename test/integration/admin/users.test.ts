/**
 * The admin API's people: list and search users, a user's keys and live sessions, revoke a key
 * (its sessions end with it), disable and enable a person, end one session or all of a user's —
 * each change an admin.change record with before and after; bad input is 400 and unknown ids 404.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BrowserClient } from '../../helpers/browser-client.js';
import { lastChange as lastChangeOf, startGateway, type TestGateway } from '../../helpers/index.js';
import { browserFor, enroll, invite, login } from '../../helpers/people.js';
import type { SoftAuthenticator } from '../../helpers/soft-authenticator.js';

let g: TestGateway;
let admin: BrowserClient;

interface UserView {
  id: string;
  email: string;
  disabled: boolean;
  credentials?: { id: string; authenticator: string; synced: boolean; revokedAt: number | null }[];
  sessions?: { id: string; userId: string }[];
}

beforeAll(async () => {
  g = await startGateway({});
  ({ browser: admin } = await enroll(g, 'root@example.com', { token: await invite(g, 'root@example.com', ['admin']) }));
});
afterAll(async () => {
  await g?.close();
});

async function person(
  email: string,
): Promise<{ browser: BrowserClient; authenticator: SoftAuthenticator; id: string }> {
  const { browser, authenticator } = await enroll(g, email, { token: await invite(g, email, ['ml-reader']) });
  const id = (await g.gw.store.getUserByEmail(email))?.id as string;
  return { browser, authenticator, id };
}

const sessionStatus = async (b: BrowserClient) => (await b.get('/.keygate/api/session')).status;

const lastChange = (target: string) => lastChangeOf(g, target);

describe('admin API: users', () => {
  it('lists and searches users, a page at a time', async () => {
    for (const e of ['alice@example.com', 'alicia@example.com', 'bob@example.com']) await person(e);
    const search = await admin.get<{ users: UserView[]; next: string | null }>('/.keygate/api/admin/v1/users?q=ALI');
    expect(search.status).toBe(200);
    expect(search.body.users.map((u) => u.email)).toEqual(['alice@example.com', 'alicia@example.com']);
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const p: { status: number; body: { users: UserView[]; next: string | null } } = await admin.get(
        `/.keygate/api/admin/v1/users?limit=2${cursor ? `&cursor=${cursor}` : ''}`,
      );
      seen.push(...p.body.users.map((u) => u.email));
      cursor = p.body.next;
    } while (cursor !== null);
    expect(seen).toEqual([...seen].sort());
    expect(seen).toEqual(expect.arrayContaining(['alice@example.com', 'bob@example.com', 'root@example.com']));
    expect(new Set(seen).size).toBe(seen.length);
  });

  it("shows a user's keys (with the authenticator's name) and live sessions", async () => {
    const { id } = await person('carol@example.com');
    const r = await admin.get<UserView>(`/.keygate/api/admin/v1/users/${id}`);
    expect(r.status).toBe(200);
    expect(r.body.credentials).toHaveLength(1);
    expect(r.body.credentials?.[0]).toMatchObject({ revokedAt: null, synced: false });
    expect(typeof r.body.credentials?.[0]?.authenticator).toBe('string');
    expect(r.body.sessions?.map((s) => s.userId)).toEqual([id]);
    expect((await admin.get('/.keygate/api/admin/v1/users/no-such-user')).status).toBe(404);
  });

  it('revoking a key ends the sessions made with it and the key no longer logs in; audited', async () => {
    const { browser, authenticator, id } = await person('dave@example.com');
    expect(await sessionStatus(browser)).toBe(200);
    const cred = (await admin.get<UserView>(`/.keygate/api/admin/v1/users/${id}`)).body.credentials?.[0]?.id as string;
    const del = await admin.call(
      'DELETE',
      `/.keygate/api/admin/v1/users/${id}/credentials/${encodeURIComponent(cred)}`,
    );
    expect(del.status).toBe(204);
    expect(await sessionStatus(browser)).toBe(401);
    const again = await login(browserFor(g), authenticator);
    expect(again.status).toBe(401);
    expect(await lastChange(`credential:${cred}`)).toMatchObject({
      actor: { email: 'root@example.com' },
      change: { op: 'credential.revoke', before: { user: id, revoked: false }, after: { revoked: true } },
    });
    const twice = await admin.call(
      'DELETE',
      `/.keygate/api/admin/v1/users/${id}/credentials/${encodeURIComponent(cred)}`,
    );
    expect(twice.status).toBe(404);
  });

  it('disabling ends sessions and refuses logins; enabling lets the person back in; nobody disables themselves', async () => {
    const { browser, authenticator, id } = await person('erin@example.com');
    const off = await admin.post<UserView>(`/.keygate/api/admin/v1/users/${id}/disable`);
    expect(off.status).toBe(200);
    expect(off.body.disabled).toBe(true);
    expect(await sessionStatus(browser)).toBe(401);
    expect((await login(browserFor(g), authenticator)).status).toBe(401);
    expect(await lastChange(`user:${id}`)).toMatchObject({
      change: { op: 'user.disable', before: { disabled: false }, after: { disabled: true } },
    });
    const on = await admin.post<UserView>(`/.keygate/api/admin/v1/users/${id}/enable`);
    expect(on.body.disabled).toBe(false);
    expect((await login(browserFor(g), authenticator)).status).toBe(200);

    const rootId = (await g.gw.store.getUserByEmail('root@example.com'))?.id as string;
    const self = await admin.post<{ error_code: string }>(`/.keygate/api/admin/v1/users/${rootId}/disable`);
    expect(self.status).toBe(400);
    expect(self.body.error_code).toBe('BAD_REQUEST');
  });

  it('ends one session, or all of a user’s; the list shows only live ones', async () => {
    const { browser, authenticator, id } = await person('frank@example.com');
    const second = browserFor(g);
    expect((await login(second, authenticator)).status).toBe(200);
    const list = await admin.get<{ sessions: { id: string; userId: string }[] }>(
      `/.keygate/api/admin/v1/sessions?user=${id}`,
    );
    expect(list.body.sessions).toHaveLength(2);
    // End the most recently seen one (the second browser's), then the rest.
    const one = list.body.sessions[0]?.id as string;
    // Both in use (and so in the gateway's session cache) before they are ended.
    expect(await sessionStatus(second)).toBe(200);
    expect(await sessionStatus(browser)).toBe(200);
    expect((await admin.call('DELETE', `/.keygate/api/admin/v1/sessions/${one}`)).status).toBe(204);
    expect(await sessionStatus(second)).toBe(401);
    expect(await sessionStatus(browser)).toBe(200);
    expect((await admin.call('DELETE', `/.keygate/api/admin/v1/users/${id}/sessions`)).status).toBe(204);
    expect(await sessionStatus(browser)).toBe(401);
    expect(
      (await admin.get<{ sessions: unknown[] }>(`/.keygate/api/admin/v1/sessions?user=${id}`)).body.sessions,
    ).toEqual([]);
    expect((await lastChange(`user:${id}`))?.change).toMatchObject({
      op: 'session.revoke_all',
      before: { sessions: 1 },
    });
    expect((await admin.call('DELETE', `/.keygate/api/admin/v1/sessions/${one}`)).status).toBe(404);
    const bad = await admin.call('DELETE', '/.keygate/api/admin/v1/sessions/not-a-session-id');
    expect(bad.status).toBe(400);
  });

  it('refuses people without the right with 403, and bad parameters with 400', async () => {
    const { browser } = await person('mallory@example.com');
    const r = await browser.get<{ error_code: string }>('/.keygate/api/admin/v1/users');
    expect(r.status).toBe(403);
    expect(r.body.error_code).toBe('PERMISSION_DENIED');
    for (const q of ['limit=0', 'limit=abc', 'colour=red']) {
      expect((await admin.get(`/.keygate/api/admin/v1/users?${q}`)).status, q).toBe(400);
    }
  });
});

describe('the OpenAPI document', () => {
  it('describes every operation of the guide, each one served (401 without a session, not 404)', async () => {
    const r = await fetch(`${g.url}/.keygate/api/admin/v1/openapi.json`);
    expect(r.status).toBe(200);
    const doc = (await r.json()) as {
      openapi: string;
      paths: Record<
        string,
        Record<string, { 'x-keygate-policy': { action: string }; parameters?: { name: string }[] }>
      >;
    };
    expect(doc.openapi).toBe('3.1.0');
    const operations = Object.entries(doc.paths).flatMap(([path, ops]) =>
      Object.keys(ops).map((m) => `${m.toUpperCase()} ${path}`),
    );
    // The guide's table, one operation per row.
    const guide = readFileSync(join(import.meta.dirname, '../../../docs/guides/admin-api.md'), 'utf8');
    const documented = [...guide.matchAll(/^\| `(GET|POST|PUT|DELETE) ([^`?\s]+)/gm)].map((m) => `${m[1]} ${m[2]}`);
    expect(new Set(operations)).toEqual(new Set(documented));
    for (const op of operations) {
      const [method, path] = op.split(' ') as [string, string];
      const url = `${g.url}/.keygate/api/admin/v1${path.replace(/\{[^}]+\}/g, 'x')}`;
      const res = await fetch(
        url,
        method === 'POST' || method === 'PUT'
          ? { method, headers: { 'content-type': 'application/json' }, body: '{}' }
          : { method },
      );
      expect(res.status, op).toBe(401);
      await res.body?.cancel();
    }
    // Schemas come from the handlers' own: the audit query names its filters, and `limit` its bounds.
    const audit = doc.paths['/audit']?.get;
    expect(audit?.['x-keygate-policy'].action).toBe('admin:read');
    expect(audit?.parameters?.map((p) => p.name)).toEqual(
      expect.arrayContaining(['actor', 'kind', 'action', 'decision', 'since', 'until', 'cursor', 'limit']),
    );
  });
});

describe('admin API: dashboard, roles, trusts, chain verification', () => {
  it('stats count the proxied requests by decision; roles and bindings come from the config; the chain verifies', async () => {
    await g.gw.audit.flushed();
    const s = await admin.get<{ bucketMs: number; buckets: unknown[]; requests: number; authFailures: number }>(
      '/.keygate/api/admin/v1/stats?window=1h',
    );
    expect(s.status).toBe(200);
    expect(s.body.bucketMs).toBe(60_000);
    expect(s.body.buckets).toHaveLength(60);
    // Logins refused above (a revoked key, a disabled person) are authentication failures.
    expect(s.body.authFailures).toBeGreaterThanOrEqual(2);
    expect((await admin.get('/.keygate/api/admin/v1/stats?window=7d')).status).toBe(400);
    const roles = await admin.get<{ roles: { name: string; shipped: boolean }[]; stepUpMaxAgeSeconds: number }>(
      '/.keygate/api/admin/v1/roles',
    );
    expect(roles.body.roles.map((x) => x.name)).toEqual(expect.arrayContaining(['admin', 'ml-reader', 'ml-deployer']));
    expect(roles.body.roles.every((x) => x.shipped)).toBe(true);
    expect(roles.body.stepUpMaxAgeSeconds).toBe(300);
    expect((await admin.get<{ trusts: unknown[] }>('/.keygate/api/admin/v1/federation-trusts')).body.trusts).toEqual(
      [],
    );
    const v = await admin.post<{ ok: boolean; records: number }>('/.keygate/api/admin/v1/audit/verify');
    expect(v.status).toBe(200);
    expect(v.body.ok).toBe(true);
    expect(v.body.records).toBeGreaterThan(10);
  });
});
