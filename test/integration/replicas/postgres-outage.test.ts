/**
 * PostgreSQL goes away for a few seconds: readiness fails while it is unreachable, requests that
 * need the store get 503 TEMPORARILY_UNAVAILABLE (never a 500, never an unaudited success), and
 * the gateway recovers by itself when the database is back.
 */
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BrowserClient } from '../../helpers/browser-client.js';
import { startGateway, startRecordingUpstream, type TestGateway } from '../../helpers/index.js';
import { enroll, invite } from '../../helpers/people.js';
import { postgresAvailable, startPostgres, type TestPostgres } from '../../helpers/postgres.js';

const hasPostgres = postgresAvailable();
let pg: TestPostgres;
let g: TestGateway;
let up: Awaited<ReturnType<typeof startRecordingUpstream>>;

beforeAll(async () => {
  if (!hasPostgres) return;
  pg = await startPostgres();
  up = await startRecordingUpstream();
  g = await startGateway(
    {
      store: { driver: 'postgres', url: pg.url },
      upstreams: { ws: { url: up.url, preset: 'databricks', credential: { type: 'none' } } },
    },
    { identifiers: [] },
  );
}, 60_000);
afterAll(async () => {
  await g?.close();
  await up?.close();
  await pg?.stop();
});

async function status(path: string, browser?: BrowserClient): Promise<{ status: number; code?: string }> {
  const r = await request(`${g.url}${path}`, { headers: browser ? { cookie: browser.cookieHeader() } : {} });
  const text = await r.body.text();
  let code: string | undefined;
  try {
    code = (JSON.parse(text) as { error_code?: string }).error_code;
  } catch {
    code = undefined;
  }
  return { status: r.statusCode, ...(code === undefined ? {} : { code }) };
}

describe.skipIf(!hasPostgres)('PostgreSQL outage', () => {
  it('readiness fails and requests get 503 while the database is down; both recover when it is back', async () => {
    const { browser } = await enroll(g, 'ops@example.com', {
      token: await invite(g, 'ops@example.com', ['ml-reader']),
    });
    expect((await status('/.keygate/readyz')).status).toBe(200);
    expect((await status('/api/2.0/serving-endpoints', browser)).status).toBe(200);

    await pg.pause();
    try {
      await expect
        .poll(async () => (await status('/.keygate/readyz')).status, { timeout: 10_000, interval: 200 })
        .toBe(503);
      // A fresh browser's login options need the store: 503, not 500.
      const options = await new BrowserClient(g.url, g.gw.publicOrigin).post<{ error_code: string }>(
        '/.keygate/api/webauthn/authentication/options',
        {},
      );
      expect(options.status).toBe(503);
      expect(options.body.error_code).toBe('TEMPORARILY_UNAVAILABLE');
      // Within the session cache (5 s) requests are still served (and audited: the audit log is local);
      // once the session needs the store again, the proxied request is 503 and nothing reaches the upstream.
      await expect
        .poll(async () => (await status('/api/2.0/serving-endpoints', browser)).status, {
          timeout: 15_000,
          interval: 500,
        })
        .toBe(503);
      const seen = up.seen.length;
      expect(await status('/api/2.0/serving-endpoints', browser)).toEqual({
        status: 503,
        code: 'TEMPORARILY_UNAVAILABLE',
      });
      expect(up.seen.length).toBe(seen);
    } finally {
      await pg.resume();
    }
    await expect
      .poll(async () => (await status('/.keygate/readyz')).status, { timeout: 15_000, interval: 200 })
      .toBe(200);
    await expect
      .poll(async () => (await status('/api/2.0/serving-endpoints', browser)).status, {
        timeout: 15_000,
        interval: 200,
      })
      .toBe(200);
    // The requests refused while the database was down are in the audit log, with why.
    await g.gw.audit.flushed();
    const refused = g.gw.audit
      .query({ kind: 'http.request', decision: 'deny' }, { limit: 1000 })
      .lines.map((l) => JSON.parse(l) as { decision?: { reasons?: string[] }; response?: { status?: number } });
    expect(refused.some((r) => r.decision?.reasons?.includes('error:TEMPORARILY_UNAVAILABLE'))).toBe(true);
  }, 90_000);
});
