/**
 * PostgreSQL goes away for a few seconds: readiness fails while it is unreachable, requests that
 * need the store get 503 TEMPORARILY_UNAVAILABLE (never a 500, never an unaudited success), and
 * the gateway recovers by itself when the database is back.
 */
import type { JWK } from 'jose';
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

async function status(
  path: string,
  browser?: BrowserClient,
  requestId?: string,
): Promise<{ status: number; code?: string }> {
  const r = await request(`${g.url}${path}`, {
    headers: {
      ...(browser ? { cookie: browser.cookieHeader() } : {}),
      ...(requestId === undefined ? {} : { 'x-request-id': requestId }),
    },
  });
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

    const servedDuringOutage: string[] = [];
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
      // Within the session cache (5 s) a request may still be served, and its audit record waits in
      // the queue; once the audit writer fails (the chain is in PostgreSQL too), or the session
      // needs the store again, requests get 503 and nothing reaches the upstream.
      let n = 0;
      await expect
        .poll(
          async () => {
            const id = `outage-${n++}`;
            const r = await status('/api/2.0/serving-endpoints', browser, id);
            if (r.status === 200) servedDuringOutage.push(id);
            return r.status;
          },
          { timeout: 15_000, interval: 500 },
        )
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
    // Everything served while the database was down was audited: the queued records were
    // committed once it came back. (Requests refused because the audit log could not record them
    // are not recorded: they were not served.)
    await g.gw.audit.flushed();
    const ids = new Set(
      (await g.gw.audit.query({ kind: 'http.request' }, { limit: 1000 })).lines.map(
        (l) => (JSON.parse(l) as { request?: { requestId?: string } }).request?.requestId,
      ),
    );
    for (const id of servedDuringOutage) expect(ids.has(id), id).toBe(true);
    const keys = (await g.gw.store.listSigningKeys('audit')).map((k) => JSON.parse(k.publicJwk) as JWK);
    expect(await g.gw.audit.verify(keys)).toMatchObject({ ok: true, firstSeq: 1 });
  }, 90_000);
});
