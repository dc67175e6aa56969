/**
 * Operations surface: liveness, readiness, Prometheus metrics, trusted proxies, and the
 * static credential file picked up again when it changes.
 */
import { mkdtempSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { asUser, type RunningUpstream, startGateway, startUpstream } from '../../helpers/index.js';

let up: RunningUpstream;
const seen: { auth: string | undefined; xff: string | undefined }[] = [];

beforeAll(async () => {
  up = await startUpstream((req, res) => {
    seen.push({ auth: req.headers.authorization, xff: req.headers['x-forwarded-for'] as string | undefined });
    res.end('ok');
  });
});

afterAll(async () => {
  await up?.close();
});

describe('health, readiness and metrics', () => {
  it('healthz is 200; readyz checks the store and each upstream credential', async () => {
    process.env.OPS_TOKEN = 't';
    const g = await startGateway({
      upstreams: { ws: { url: up.url, credential: { type: 'static', tokenEnv: 'OPS_TOKEN' } } },
    });
    try {
      const h = await request(`${g.url}/.keygate/healthz`);
      expect(h.statusCode).toBe(200);
      expect(await h.body.json()).toEqual({ status: 'ok' });
      const r = await request(`${g.url}/.keygate/readyz`);
      expect(r.statusCode).toBe(200);
      expect(await r.body.json()).toEqual({ status: 'ready', checks: { store: 'ok', audit: 'ok', 'upstream.ws.credential': 'ok' } });
    } finally {
      await g.close();
    }
  });

  it('readyz is 503 TEMPORARILY_UNAVAILABLE when the upstream credential cannot be had, naming the check but not the reason', async () => {
    process.env.OPS_SECRET = 'sp-secret-value';
    const logs: string[] = [];
    const g = await startGateway(
      {
        upstreams: {
          ws: {
            url: up.url,
            credential: {
              type: 'databricks-m2m',
              clientId: 'sp',
              clientSecretEnv: 'OPS_SECRET',
              tokenUrl: 'http://127.0.0.1:9/oidc/v1/token',
            },
          },
        },
      },
      { logLines: logs },
    );
    try {
      const r = await request(`${g.url}/.keygate/readyz`);
      const body = (await r.body.json()) as { error_code: string; checks: Record<string, string> };
      expect(r.statusCode).toBe(503);
      expect(body.error_code).toBe('TEMPORARILY_UNAVAILABLE');
      expect(body.checks).toEqual({ store: 'ok', audit: 'ok', 'upstream.ws.credential': 'failed' });
      expect(JSON.stringify(body)).not.toContain('ECONNREFUSED');
      expect(logs.join('')).toContain('readiness: upstream credential check failed');
      expect(logs.join('')).not.toContain('sp-secret-value');
    } finally {
      await g.close();
    }
  });

  it('metrics expose requests by class and status, upstream latency and credential refreshes', async () => {
    process.env.OPS_TOKEN = 't';
    const g = await startGateway({
      upstreams: { ws: { url: up.url, credential: { type: 'static', tokenEnv: 'OPS_TOKEN' } } },
    });
    try {
      await (await request(`${g.url}/a`, { headers: asUser() })).body.text();
      await (await request(`${g.url}/a`)).body.text();
      const m = await request(`${g.url}/.keygate/metrics`);
      const text = await m.body.text();
      expect(m.headers['content-type']).toContain('text/plain');
      expect(text).toContain('keygate_http_requests_total{class="proxy",status="200"} 1');
      expect(text).toContain('keygate_http_requests_total{class="proxy",status="401"} 1');
      expect(text).toMatch(/keygate_upstream_response_seconds_count\{upstream="ws"\} 1/);
      expect(text).toContain('# TYPE keygate_upstream_credential_refreshes_total counter');
      expect(text).toContain('keygate_process_cpu_seconds_total');
    } finally {
      await g.close();
    }
  });
});

describe('trusted proxies', () => {
  it('X-Forwarded-For is believed only from a configured proxy', async () => {
    process.env.OPS_TOKEN = 't';
    const trusted = await startGateway({
      trustedProxies: ['127.0.0.1'],
      upstreams: { ws: { url: up.url, credential: { type: 'static', tokenEnv: 'OPS_TOKEN' } } },
    });
    const untrusted = await startGateway({
      trustedProxies: ['10.0.0.0/8'],
      upstreams: { ws: { url: up.url, credential: { type: 'static', tokenEnv: 'OPS_TOKEN' } } },
    });
    try {
      seen.length = 0;
      const xff = { 'x-forwarded-for': '198.51.100.1, 203.0.113.7' };
      await (await request(`${trusted.url}/a`, { headers: asUser('alice', xff) })).body.text();
      await (await request(`${untrusted.url}/a`, { headers: asUser('alice', xff) })).body.text();
      expect(seen.map((s) => s.xff)).toEqual(['203.0.113.7', '127.0.0.1']);
    } finally {
      await trusted.close();
      await untrusted.close();
    }
  });
});

describe('static credential from a file', () => {
  it('is picked up again when the file changes, including an atomic replace', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kg-tok-'));
    const file = join(dir, 'token');
    writeFileSync(file, 'token-one\n');
    const g = await startGateway(
      { upstreams: { ws: { url: up.url, credential: { type: 'static', tokenFile: file } } } },
      { filePollMs: 20 },
    );
    try {
      seen.length = 0;
      await (await request(`${g.url}/a`, { headers: asUser() })).body.text();
      // Rotate the way Kubernetes does: write a new file, rename over the old one.
      writeFileSync(join(dir, 'token.new'), 'token-two\n');
      renameSync(join(dir, 'token.new'), file);
      let last: string | undefined;
      for (let i = 0; i < 100 && last !== 'Bearer token-two'; i++) {
        await new Promise((r) => setTimeout(r, 20));
        await (await request(`${g.url}/a`, { headers: asUser() })).body.text();
        last = seen.at(-1)?.auth;
      }
      expect(seen[0]?.auth).toBe('Bearer token-one');
      expect(last).toBe('Bearer token-two');
    } finally {
      await g.close();
    }
  });
});
