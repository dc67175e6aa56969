/** The admin API's invitations and recovery links: who may call them, and that the links work. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../../src/lib/clock.js';
import { startGateway, type TestGateway } from '../../helpers/index.js';
import { browserFor, enroll, invite } from '../../helpers/people.js';

let g: TestGateway;
const clock = new ManualClock(Date.UTC(2026, 10, 1));

beforeAll(async () => {
  g = await startGateway({}, { clock });
});

afterAll(async () => {
  await g?.close();
});

describe('admin invitations and recovery links', () => {
  it('an admin invites a colleague; the link enrolls them', async () => {
    const { browser } = await enroll(g, 'root@example.com', { token: await invite(g, 'root@example.com', ['admin']) });
    const r = await browser.post<{ url: string; user: { email: string } }>('/.keygate/api/admin/v1/invitations', {
      email: 'Colleague@Example.com',
      roles: ['ml-engineer'],
    });
    expect(r.status).toBe(201);
    expect(r.body.user.email).toBe('colleague@example.com');
    const token = new URL(r.body.url).searchParams.get('token') as string;
    const { result } = await enroll(g, 'colleague@example.com', { token });
    expect(result.status).toBe(200);
    expect((await g.gw.store.getUserByEmail('colleague@example.com'))?.roles).toEqual(['ml-engineer']);
  });

  it('a recovery link for an existing user; unknown users get 404', async () => {
    const { browser } = await enroll(g, 'root2@example.com', {
      token: await invite(g, 'root2@example.com', ['admin']),
    });
    await enroll(g, 'lost@example.com');
    const r = await browser.post<{ url: string }>('/.keygate/api/admin/v1/recovery-links', {
      email: 'lost@example.com',
    });
    expect(r.status).toBe(201);
    const info = await browserFor(g).get(
      `/.keygate/api/enrollment?token=${new URL(r.body.url).searchParams.get('token')}`,
    );
    expect(info.body).toMatchObject({ email: 'lost@example.com', kind: 'recovery' });
    const unknown = await browser.post('/.keygate/api/admin/v1/recovery-links', { email: 'ghost@example.com' });
    expect(unknown.status).toBe(404);
  });

  it('refuses callers who are not admins, not logged in, or whose login is stale; and bad bodies', async () => {
    const anon = await browserFor(g).post('/.keygate/api/admin/v1/invitations', { email: 'x@example.com' });
    expect(anon.status).toBe(401);
    expect(anon.body).toMatchObject({ error_code: 'UNAUTHENTICATED' });

    const { browser: plain } = await enroll(g, 'plain@example.com');
    const denied = await plain.post('/.keygate/api/admin/v1/invitations', { email: 'x@example.com', roles: ['admin'] });
    expect(denied.status).toBe(403);
    expect(denied.body).toMatchObject({ error_code: 'PERMISSION_DENIED' });
    expect(await g.gw.store.getUserByEmail('x@example.com')).toBeNull();

    const { browser: admin } = await enroll(g, 'root3@example.com', {
      token: await invite(g, 'root3@example.com', ['admin']),
    });
    const bad = await admin.post('/.keygate/api/admin/v1/invitations', { email: 'nope', isAdmin: true });
    expect(bad.status).toBe(400);
    expect(bad.body).toMatchObject({ error_code: 'BAD_REQUEST' });
    clock.advance(6 * 60_000);
    const stale = await admin.post('/.keygate/api/admin/v1/invitations', { email: 'y@example.com' });
    expect(stale.status).toBe(401);
    expect(stale.body).toMatchObject({ error_code: 'FRESH_LOGIN_REQUIRED' });
  });
});
