/**
 * The store turning read-only under a running gateway (a remount, a full volume, a failover to
 * a standby): requests that must write get 503 TEMPORARILY_UNAVAILABLE — never a 500, never a
 * half-made change — reads keep working, and once the store is writable again everything
 * works without a restart. (SQLite's `query_only` makes the gateway's own connection refuse
 * writes with SQLITE_READONLY, as a read-only file would; running as root, a chmod would not.)
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SqliteStore } from '../../../src/store/sqlite/index.js';
import type { BrowserClient } from '../../helpers/browser-client.js';
import { startGateway, startRecordingUpstream, type TestGateway } from '../../helpers/index.js';
import { enroll, invite } from '../../helpers/people.js';

let g: TestGateway;
let store: SqliteStore;
let up: Awaited<ReturnType<typeof startRecordingUpstream>>;
let admin: BrowserClient;

beforeAll(async () => {
  up = await startRecordingUpstream();
  store = new SqliteStore({ path: join(mkdtempSync(join(tmpdir(), 'kg-store-faults-')), 'keygate.db') });
  g = await startGateway(
    { upstreams: { ws: { url: up.url, preset: 'databricks', credential: { type: 'none' } } } },
    { identifiers: [], store },
  );
  admin = (await enroll(g, 'root@example.com', { token: await invite(g, 'root@example.com', ['admin']) })).browser;
});

afterAll(async () => {
  await g?.close();
  await up?.close();
});

describe('the store read-only', () => {
  it('writes get 503 and change nothing; reads go on; writable again, it all works without a restart', async () => {
    expect((await admin.get('/api/2.0/serving-endpoints')).status).toBe(200);
    store.db.pragma('query_only = ON');
    try {
      const refused = await admin.post('/.keygate/api/admin/v1/invitations', {
        email: 'new@example.com',
        roles: ['ml-reader'],
      });
      expect(refused.status).toBe(503);
      expect(refused.body).toMatchObject({ error_code: 'TEMPORARILY_UNAVAILABLE' });
      expect(JSON.stringify(refused.body)).not.toMatch(/SQLITE|readonly|at \S+\.(ts|js)/i);
      // Reads: the signed-in admin's proxied requests and the user list.
      expect((await admin.get('/api/2.0/serving-endpoints')).status).toBe(200);
      expect((await admin.get('/.keygate/api/admin/v1/users')).status).toBe(200);
    } finally {
      store.db.pragma('query_only = OFF');
    }
    expect(await store.getUserByEmail('new@example.com')).toBeNull();
    const made = await admin.post('/.keygate/api/admin/v1/invitations', {
      email: 'new@example.com',
      roles: ['ml-reader'],
    });
    expect(made.status).toBe(201);
    expect(await store.getUserByEmail('new@example.com')).not.toBeNull();
  });
});
