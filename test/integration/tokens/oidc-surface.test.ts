/**
 * In the Databricks preset the workspace's authentication surface is Keygate's: however a path
 * to /oidc or /.well-known is spelled, it is never proxied with Keygate's upstream credential.
 * Raw node:http, because undici would normalize the paths before sending them.
 */
import { request as httpRequest } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { asUser, startGateway, startRecordingUpstream, type TestGateway } from '../../helpers/index.js';

let up: Awaited<ReturnType<typeof startRecordingUpstream>>;
let g: TestGateway;

beforeAll(async () => {
  up = await startRecordingUpstream();
  g = await startGateway({ upstreams: { ws: { url: up.url, preset: 'databricks', credential: { type: 'none' } } } });
});
afterAll(async () => {
  await g?.close();
  await up?.close();
});

function raw(method: string, path: string): Promise<{ status: number; body: string }> {
  const u = new URL(g.url);
  return new Promise((resolve, reject) => {
    const r = httpRequest(
      {
        host: u.hostname,
        port: u.port,
        method,
        path,
        headers: { ...asUser('root'), 'content-type': 'application/x-www-form-urlencoded' },
      },
      (res) => {
        let body = '';
        res.on('data', (d) => {
          body += d;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    r.on('error', reject);
    r.end(method === 'POST' ? 'grant_type=client_credentials' : undefined);
  });
}

describe('the /oidc surface is never proxied', () => {
  it.each([
    ['POST', '//oidc/v1/token'],
    ['POST', '/%6fidc/v1/token'],
    ['POST', '/OIDC/v1/token'],
    ['POST', '/oidc;x/v1/token'],
    ['GET', '/%2E/oidc/.well-known/oauth-authorization-server'],
    ['GET', '/.WELL-KNOWN/databricks-config'],
  ])('%s %s: 404 from Keygate, nothing reaches the workspace', async (method, path) => {
    const before = up.seen.length;
    const r = await raw(method, path);
    expect(r.status).toBe(404);
    expect(JSON.parse(r.body).error_code).toBe('NOT_FOUND');
    expect(up.seen.length).toBe(before);
  });

  it('an ordinary workspace path is still proxied (control)', async () => {
    const before = up.seen.length;
    expect((await raw('GET', '/api/2.0/serving-endpoints')).status).toBe(200);
    expect(up.seen.length).toBe(before + 1);
  });
});

describe('bad input to the authorization server is a 4xx, never a 500', () => {
  it.each([
    ['POST', '/.keygate/oauth/device', ''],
    ['POST', '/.keygate/oauth/device', 'xsrf=abc&user_code=WXYZ-WXYZ'],
    ['POST', '/.keygate/oauth/device', 'abort=yes'],
    ['POST', '/.keygate/oauth/token', 'grant_type=nonsense'],
    ['POST', '/.keygate/oauth/token', '%%%'],
    ['GET', '/.keygate/oauth/authorize?client_id=nope', ''],
    ['GET', '/.keygate/oauth/interaction/not-a-uid', ''],
  ])('%s %s %s', async (method, path, body) => {
    const u = new URL(g.url);
    const status = await new Promise<number>((resolve, reject) => {
      const r = httpRequest(
        {
          host: u.hostname,
          port: u.port,
          method,
          path,
          headers: { 'content-type': 'application/x-www-form-urlencoded', origin: g.gw.publicOrigin },
        },
        (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
        },
      );
      r.on('error', reject);
      r.end(body === '' ? undefined : body);
    });
    expect(status).toBeGreaterThanOrEqual(400);
    expect(status).toBeLessThan(500);
  });
});
