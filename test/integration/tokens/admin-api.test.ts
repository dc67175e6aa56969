/**
 * The admin API's service principals (who may call it, the secret shown once, rotation,
 * revocation, bad input) and its audit log: admin.change records, filters, cursor pagination.
 */
import { exportJWK, generateKeyPair } from 'jose';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ChainedRecord } from '../../../src/audit/record.js';
import type { BrowserClient } from '../../helpers/browser-client.js';
import { startGateway, startRecordingUpstream, type TestGateway } from '../../helpers/index.js';
import { clientCredentials } from '../../helpers/oauth.js';
import { enroll, invite } from '../../helpers/people.js';

let g: TestGateway;
let up: Awaited<ReturnType<typeof startRecordingUpstream>>;
let admin: BrowserClient;

beforeAll(async () => {
  up = await startRecordingUpstream();
  g = await startGateway(
    { upstreams: { api: { url: up.url, preset: 'generic', credential: { type: 'none' } } } },
    { identifiers: [] },
  );
  ({ browser: admin } = await enroll(g, 'root@example.com', { token: await invite(g, 'root@example.com', ['admin']) }));
});
afterAll(async () => {
  await g?.close();
  await up?.close();
});

async function tokenStatus(clientId: string, secret: string): Promise<number> {
  return (await clientCredentials(g.url, clientId, secret)).status;
}

interface Created {
  id: string;
  name: string;
  roles: string[];
  auth: string;
  clientSecret?: string;
  secretId?: string;
  secrets: { id: string }[];
}

describe('admin API: service principals', () => {
  it('creates one with a secret shown once; the list never shows it', async () => {
    const r = await admin.post<Created>('/.keygate/api/admin/v1/service-principals', {
      name: 'airflow',
      roles: ['ml-reader'],
    });
    expect(r.status).toBe(201);
    expect(r.headers['cache-control']).toBe('no-store');
    expect(r.body).toMatchObject({ name: 'airflow', roles: ['ml-reader'], auth: 'client_secret_basic' });
    const secret = r.body.clientSecret as string;
    expect(await tokenStatus(r.body.id, secret)).toBe(200);
    const list = await admin.get<{ servicePrincipals: Created[] }>('/.keygate/api/admin/v1/service-principals');
    expect(list.status).toBe(200);
    expect(JSON.stringify(list.body)).not.toContain(secret);
    expect(list.body.servicePrincipals.find((s) => s.id === r.body.id)?.secrets).toHaveLength(1);
  });

  it('rotates (both secrets live), then revokes the old one', async () => {
    const c = await admin.post<Created>('/.keygate/api/admin/v1/service-principals', { name: 'rotating', roles: [] });
    const rot = await admin.post<{ clientSecret: string; secretId: string }>(
      `/.keygate/api/admin/v1/service-principals/${c.body.id}/secrets`,
    );
    expect(rot.status).toBe(201);
    expect(await tokenStatus(c.body.id, c.body.clientSecret as string)).toBe(200);
    expect(await tokenStatus(c.body.id, rot.body.clientSecret)).toBe(200);
    const del = await admin.call(
      'DELETE',
      `/.keygate/api/admin/v1/service-principals/${c.body.id}/secrets/${c.body.secretId}`,
    );
    expect(del.status).toBe(204);
    expect(await tokenStatus(c.body.id, c.body.clientSecret as string)).toBe(401);
    expect(await tokenStatus(c.body.id, rot.body.clientSecret)).toBe(200);
    const again = await admin.call(
      'DELETE',
      `/.keygate/api/admin/v1/service-principals/${c.body.id}/secrets/${c.body.secretId}`,
    );
    expect(again.status).toBe(404);
  });

  it('a federation-only principal has no secret', async () => {
    const r = await admin.post<Created>('/.keygate/api/admin/v1/service-principals', { name: 'gha-ml', secret: false });
    expect(r.status).toBe(201);
    expect(r.body.auth).toBe('federation');
    expect(r.body.clientSecret).toBeUndefined();
  });

  it('refuses non-admins and anonymous callers, and bad bodies with the JSON error shape', async () => {
    const { browser: user } = await enroll(g, 'dev@example.com', {
      token: await invite(g, 'dev@example.com', ['ml-engineer']),
    });
    const denied = await user.post<{ error_code: string }>('/.keygate/api/admin/v1/service-principals', {
      name: 'sneaky',
    });
    expect(denied.status).toBe(403);
    expect(denied.body.error_code).toBe('PERMISSION_DENIED');
    const anon = await request(`${g.url}/.keygate/api/admin/v1/service-principals`);
    expect(anon.statusCode).toBe(401);
    await anon.body.text();
    for (const body of [
      { name: 'has spaces' },
      { name: 'x', roles: ['Not A Role'] },
      { name: 'x', unknown: 1 },
      { name: 'x', jwks: { keys: [{ kty: 'EC', crv: 'P-256', x: 'a', y: 'b', d: 'secret' }] } },
      { name: 'x', jwks: { keys: [{ kty: 'EC', x: 5 }] } },
    ]) {
      const r = await admin.post<{ error_code: string }>('/.keygate/api/admin/v1/service-principals', body);
      expect(r.status, JSON.stringify(body)).toBe(400);
      expect(r.body.error_code).toBe('BAD_REQUEST');
    }
    const dup = await admin.post<{ error_code: string }>('/.keygate/api/admin/v1/service-principals', {
      name: 'airflow',
    });
    expect(dup.status).toBe(409);
    expect(dup.body.error_code).toBe('CONFLICT');
    expect((await g.gw.oauth.sps.list()).map((s) => s.name)).not.toContain('sneaky');
  });
});

interface AuditPage {
  records: (ChainedRecord & { change?: { op: string; target: string; after?: Record<string, unknown> } })[];
  next: string | null;
}

describe('admin API: audit', () => {
  it('each change is an admin.change record naming the admin, the session and the change, never the secret', async () => {
    const r = await admin.post<Created>('/.keygate/api/admin/v1/service-principals', {
      name: 'audited',
      roles: ['ml-reader'],
    });
    expect(r.status).toBe(201);
    await g.gw.audit.flushed();
    const page = await admin.get<AuditPage>('/.keygate/api/admin/v1/audit?kind=admin.change&limit=1000');
    expect(page.status).toBe(200);
    expect(page.headers['cache-control']).toBe('no-store');
    const rec = page.body.records.find((x) => x.change?.target === `service_principal:${r.body.id}`);
    expect(rec).toMatchObject({
      kind: 'admin.change',
      actor: { type: 'user', email: 'root@example.com' },
      request: { method: 'POST', path: '/.keygate/api/admin/v1/service-principals' },
      change: {
        op: 'service_principal.create',
        after: { name: 'audited', roles: ['ml-reader'], secretIds: [r.body.secretId] },
      },
      outcome: 'success',
    });
    expect(rec?.actor.sessionId).toBeTruthy();
    expect(rec?.actor.authEventId).toBeTruthy();
    expect(JSON.stringify(page.body)).not.toContain(r.body.clientSecret as string);
    // Rotation and revocation too, with the secret ids before and after.
    const rot = await admin.post<{ secretId: string }>(
      `/.keygate/api/admin/v1/service-principals/${r.body.id}/secrets`,
    );
    await admin.call('DELETE', `/.keygate/api/admin/v1/service-principals/${r.body.id}/secrets/${r.body.secretId}`);
    await g.gw.audit.flushed();
    const later = await admin.get<AuditPage>(
      `/.keygate/api/admin/v1/audit?kind=admin.change&actor=${rec?.actor.id}&since=${rec?.at}`,
    );
    expect(
      later.body.records.filter((x) => x.change?.target === `service_principal:${r.body.id}`).map((x) => x.change),
    ).toEqual([
      expect.objectContaining({ op: 'service_principal.create' }),
      {
        op: 'service_principal.secret_create',
        target: `service_principal:${r.body.id}`,
        before: { secretIds: [r.body.secretId] },
        after: { secretIds: [r.body.secretId as string, rot.body.secretId].sort() },
      },
      {
        op: 'service_principal.secret_revoke',
        target: `service_principal:${r.body.id}`,
        before: { secretId: r.body.secretId },
      },
    ]);
  });

  it('filters by actor and pages with a cursor: every request exactly once, in chain order', async () => {
    const sp = await admin.post<Created>('/.keygate/api/admin/v1/service-principals', {
      name: 'pager',
      roles: ['admin'],
    });
    const token = (await clientCredentials(g.url, sp.body.id, sp.body.clientSecret as string)).body
      .access_token as string;
    const ids: string[] = [];
    for (let i = 0; i < 7; i++) {
      const id = `pager-${i}`;
      ids.push(id);
      const res = await request(`${g.url}/api/anything`, {
        headers: { authorization: `Bearer ${token}`, 'x-request-id': id },
      });
      await res.body.text();
    }
    await g.gw.audit.flushed();
    const seen: ChainedRecord[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const q: string = `/.keygate/api/admin/v1/audit?actor=${sp.body.id}&kind=http.request&limit=3${cursor ? `&cursor=${cursor}` : ''}`;
      const p = await admin.get<AuditPage>(q);
      expect(p.status).toBe(200);
      seen.push(...p.body.records);
      cursor = p.body.next;
      pages++;
    } while (cursor !== null && pages < 10);
    expect(seen.map((x) => x.request?.requestId)).toEqual(ids);
    expect(pages).toBe(3);
    expect(seen.every((x) => x.actor.id === sp.body.id && x.actor.type === 'service_principal')).toBe(true);
    // Chain order, each record with its chain members.
    const seqs = seen.map((x) => x.seq);
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
    expect(seen.every((x) => /^[0-9a-f]{64}$/.test(x.hash) && /^[0-9a-f]{64}$/.test(x.prevHash))).toBe(true);
    // A time window that ends before the first request holds none of them.
    const none = await admin.get<AuditPage>(
      `/.keygate/api/admin/v1/audit?actor=${sp.body.id}&kind=http.request&until=${seen[0]?.at}`,
    );
    expect(none.body).toEqual({ records: [], next: null });
  });

  it('refuses non-admins, anonymous callers and bad parameters with the JSON error shape', async () => {
    const { browser: user } = await enroll(g, 'reader@example.com', {
      token: await invite(g, 'reader@example.com', ['ml-engineer']),
    });
    const denied = await user.get<{ error_code: string }>('/.keygate/api/admin/v1/audit');
    expect(denied.status).toBe(403);
    expect(denied.body.error_code).toBe('PERMISSION_DENIED');
    const anon = await request(`${g.url}/.keygate/api/admin/v1/audit`);
    expect(anon.statusCode).toBe(401);
    await anon.body.text();
    for (const q of [
      'cursor=not-a-cursor',
      'kind=no.such.kind',
      'limit=0',
      'limit=5000',
      'since=yesterday',
      'decision=maybe',
      'colour=blue',
    ]) {
      const r = await admin.get<{ error_code: string; message: string }>(`/.keygate/api/admin/v1/audit?${q}`);
      expect(r.status, q).toBe(400);
      expect(r.body.error_code, q).toBe('BAD_REQUEST');
    }
  });
});

describe('admin API: a service principal disabled, and its keys registered', () => {
  it('disabling refuses new tokens and the tokens it already has, at once; nothing reaches the upstream', async () => {
    const c = await admin.post<Created>('/.keygate/api/admin/v1/service-principals', {
      name: 'retiring',
      roles: ['admin'],
    });
    const issued = await clientCredentials(g.url, c.body.id, c.body.clientSecret as string);
    const at = issued.body.access_token as string;
    const call = async () => {
      const r = await request(`${g.url}/api/anything`, { headers: { authorization: `Bearer ${at}` } });
      await r.body.text();
      return r.statusCode;
    };
    expect(await call()).toBe(200);
    const off = await admin.post<{ disabled: boolean }>(
      `/.keygate/api/admin/v1/service-principals/${c.body.id}/disable`,
    );
    expect(off.status).toBe(200);
    expect(off.body.disabled).toBe(true);
    const before = up.seen.length;
    expect(await call()).toBe(401);
    expect(up.seen.length).toBe(before);
    expect(await tokenStatus(c.body.id, c.body.clientSecret as string)).toBe(401);
    expect((await admin.post(`/.keygate/api/admin/v1/service-principals/${c.body.id}/disable`)).status).toBe(404);
  });

  it('registers public keys for private_key_jwt; a private key is refused', async () => {
    const c = await admin.post<Created>('/.keygate/api/admin/v1/service-principals', { name: 'keyed', secret: false });
    const { publicKey, privateKey } = await generateKeyPair('ES256', { extractable: true });
    const pub = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256' };
    const put = await admin.call<Created>('PUT', `/.keygate/api/admin/v1/service-principals/${c.body.id}/keys`, {
      keys: [pub],
    });
    expect(put.status).toBe(200);
    expect(put.body.auth).toBe('private_key_jwt');
    const priv = await admin.call<{ error_code: string }>(
      'PUT',
      `/.keygate/api/admin/v1/service-principals/${c.body.id}/keys`,
      {
        keys: [{ ...(await exportJWK(privateKey)), kid: 'k2' }],
      },
    );
    expect(priv.status).toBe(400);
    expect(priv.body.error_code).toBe('BAD_REQUEST');
    const stored = await g.gw.store.getServicePrincipal(c.body.id);
    expect(JSON.parse(stored?.jwks as string).keys.map((k: { kid: string }) => k.kid)).toEqual(['k1']);
  });
});
