/**
 * An unreachable, slow or resetting upstream gives 502/504 in the contract's JSON shape —
 * never a stack trace, never a credential.
 */
import { createServer, type Server } from 'node:net';
import type { AddressInfo } from 'node:net';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { asUser, type RunningUpstream, startGateway, startUpstream, type TestGateway } from '../../helpers/index.js';

const SECRET = 'fault-upstream-secret-xyz';
let up: RunningUpstream;
let gw: TestGateway;
let deadGw: TestGateway;
let resetServer: Server;
let resetGw: TestGateway;
let garbageServer: Server;
let garbageGw: TestGateway;
const logs: string[] = [];

beforeAll(async () => {
  process.env.FAULT_TOKEN = SECRET;
  up = await startUpstream((req, res) => {
    if (req.url === '/slow-headers') {
      setTimeout(() => res.end('late'), 2_000);
      return;
    }
    if (req.url === '/stall-body') {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('first part;');
      return; // never finishes
    }
    if (req.url === '/cut-body') {
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '1000' });
      res.write('only some bytes');
      setTimeout(() => res.socket?.destroy(), 50);
      return;
    }
    if (req.url === '/echo-credential') {
      res.writeHead(500, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error_code: 'INTERNAL_ERROR', message: 'upstream failed' }));
      return;
    }
    res.end('ok');
  });
  const creds = { type: 'static', tokenEnv: 'FAULT_TOKEN' } as const;
  gw = await startGateway(
    { upstreams: { ws: { url: up.url, credential: creds, timeouts: { headers: '300ms', body: '300ms' } } } },
    { logLines: logs },
  );

  // A port with nothing listening: take a free one and close it.
  const probe = createServer();
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', () => r()));
  const deadPort = (probe.address() as AddressInfo).port;
  await new Promise<void>((r) => probe.close(() => r()));
  deadGw = await startGateway({ upstreams: { ws: { url: `http://127.0.0.1:${deadPort}`, credential: creds } } });

  // An upstream that accepts and immediately resets every connection.
  resetServer = createServer((sock) => sock.resetAndDestroy());
  await new Promise<void>((r) => resetServer.listen(0, '127.0.0.1', () => r()));
  const resetPort = (resetServer.address() as AddressInfo).port;
  resetGw = await startGateway({ upstreams: { ws: { url: `http://127.0.0.1:${resetPort}`, credential: creds } } });

  // An upstream that answers every request with bytes that are not HTTP.
  garbageServer = createServer((sock) => {
    sock.once('data', () => sock.end('\u0000\u00ffSSH-2.0-not-http\r\n\r\n{"oops"'));
  });
  await new Promise<void>((r) => garbageServer.listen(0, '127.0.0.1', () => r()));
  const garbagePort = (garbageServer.address() as AddressInfo).port;
  garbageGw = await startGateway({ upstreams: { ws: { url: `http://127.0.0.1:${garbagePort}`, credential: creds } } });
});

afterAll(async () => {
  await gw?.close();
  await deadGw?.close();
  await resetGw?.close();
  await garbageGw?.close();
  await up?.close();
  await new Promise<void>((r) => resetServer.close(() => r()));
  await new Promise<void>((r) => garbageServer.close(() => r()));
});

async function expectError(url: string, status: number, code: string): Promise<void> {
  const r = await request(url, { headers: asUser() });
  const text = await r.body.text();
  expect(r.statusCode).toBe(status);
  expect(r.headers['content-type']).toBe('application/json');
  const body = JSON.parse(text) as Record<string, string>;
  expect(body.error_code).toBe(code);
  expect(body.request_id).toBe(r.headers['x-request-id']);
  expect(text).not.toContain(SECRET);
  expect(text).not.toMatch(/at .*\.(ts|js):\d+/); // no stack trace
  expect(text).not.toContain('127.0.0.1'); // no upstream address
}

describe('upstream faults', () => {
  it('an answer that is not HTTP → 502 UPSTREAM_UNAVAILABLE', async () => {
    await expectError(`${garbageGw.url}/x`, 502, 'UPSTREAM_UNAVAILABLE');
  });

  it('nothing listening → 502 UPSTREAM_UNAVAILABLE', async () => {
    await expectError(`${deadGw.url}/api/2.0/x`, 502, 'UPSTREAM_UNAVAILABLE');
  });

  it('connection reset → 502 UPSTREAM_UNAVAILABLE', async () => {
    await expectError(`${resetGw.url}/api/2.0/x`, 502, 'UPSTREAM_UNAVAILABLE');
  });

  it('no response headers within the timeout → 504 UPSTREAM_TIMEOUT', async () => {
    const t0 = Date.now();
    await expectError(`${gw.url}/slow-headers`, 504, 'UPSTREAM_TIMEOUT');
    expect(Date.now() - t0).toBeLessThan(1_500);
  });

  it('a body that stalls after the headers is cut off (the client sees a truncated response, not a clean end)', async () => {
    const r = await request(`${gw.url}/stall-body`, { headers: asUser() });
    expect(r.statusCode).toBe(200);
    await expect(r.body.text()).rejects.toThrow();
  });

  it('a connection reset mid-body is passed on as a reset, not as a complete response', async () => {
    const r = await request(`${gw.url}/cut-body`, { headers: asUser() });
    expect(r.statusCode).toBe(200);
    await expect(r.body.text()).rejects.toThrow();
  });

  it("the upstream's own errors pass through unchanged", async () => {
    const r = await request(`${gw.url}/echo-credential`, { headers: asUser() });
    expect(r.statusCode).toBe(500);
    expect(await r.body.json()).toEqual({ error_code: 'INTERNAL_ERROR', message: 'upstream failed' });
  });

  it('the gateway keeps serving after all of the above', async () => {
    const r = await request(`${gw.url}/fine`, { headers: asUser() });
    expect(r.statusCode).toBe(200);
    expect(await r.body.text()).toBe('ok');
  });

  it('the upstream credential never appears in the logs', () => {
    expect(logs.length).toBeGreaterThan(0);
    expect(logs.join('\n')).not.toContain(SECRET);
  });
});
