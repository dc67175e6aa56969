/**
 * Graceful shutdown: in-flight requests finish, new connections are refused, and a request
 * that never finishes cannot hold the process past the drain timeout.
 */
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { asUser, type RunningUpstream, startGateway, startUpstream } from '../../helpers/index.js';

let up: RunningUpstream;

beforeAll(async () => {
  process.env.SHUTDOWN_TOKEN = 't';
  up = await startUpstream((req, res) => {
    if (req.url === '/slow') setTimeout(() => res.end('slow done'), 600);
    else if (req.url === '/forever') res.writeHead(200).write('x');
    else res.end('ok');
  });
});

afterAll(async () => {
  await up?.close();
});

const upstreamCfg = () => ({
  ws: { url: up.url, credential: { type: 'static' as const, tokenEnv: 'SHUTDOWN_TOKEN' } },
});

describe('graceful shutdown', () => {
  it('drains in-flight requests, then refuses new connections', async () => {
    const g = await startGateway({ upstreams: upstreamCfg() });
    const inflight = request(`${g.url}/slow`, { headers: asUser() });
    await new Promise((r) => setTimeout(r, 100));
    const t0 = Date.now();
    const closing = g.close();
    await new Promise((r) => setTimeout(r, 50));
    await expect(request(`${g.url}/fast`, { headers: asUser() })).rejects.toMatchObject({ code: 'ECONNREFUSED' });
    const res = await inflight;
    expect(res.statusCode).toBe(200);
    expect(await res.body.text()).toBe('slow done');
    await closing;
    const took = Date.now() - t0;
    expect(took).toBeGreaterThanOrEqual(400);
    expect(took).toBeLessThan(3_000);
  });

  it('a request that never ends is cut at the drain timeout', async () => {
    const g = await startGateway({ upstreams: upstreamCfg(), shutdown: { drainTimeout: '300ms' } });
    const res = await request(`${g.url}/forever`, { headers: asUser() });
    expect(res.statusCode).toBe(200);
    // Handled at once: the body fails while close() runs, before the assertion below.
    const body = res.body.text().then(
      () => 'ended normally',
      (e: unknown) => e,
    );
    const t0 = Date.now();
    await g.close();
    expect(Date.now() - t0).toBeLessThan(2_000);
    expect(await body).toBeInstanceOf(Error);
  });

  it('with nothing in flight, close is immediate', async () => {
    const g = await startGateway({ upstreams: upstreamCfg() });
    await (await request(`${g.url}/x`, { headers: asUser() })).body.text();
    const t0 = Date.now();
    await g.close();
    expect(Date.now() - t0).toBeLessThan(1_000);
  });
});
