/** The admin API's service principals: who may call it, the secret shown once, rotation, revocation, bad input. */
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
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
