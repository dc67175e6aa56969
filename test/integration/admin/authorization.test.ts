/**
 * The admin API is authorized by policy: `admin:read` / `admin:manage` on `Keygate::<area>`,
 * decided by Cedar like any request — custom roles and bindings apply, a denial names the
 * policy, and changes (a sensitive action) need a recent login while reads do not.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../../src/lib/clock.js';
import type { BrowserClient } from '../../helpers/browser-client.js';
import { startGateway, type TestGateway } from '../../helpers/index.js';
import { enroll, invite } from '../../helpers/people.js';

const clock = new ManualClock(Date.UTC(2026, 10, 1));
let g: TestGateway;

beforeAll(async () => {
  g = await startGateway(
    {
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
