/**
 * The databricks-m2m upstream credential against the workspace simulator's token endpoint:
 * cached, refreshed ahead of expiry, exactly one refresh in flight however many requests
 * wait, retried with backoff, and never shown to anyone.
 */
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEMO_SP, DEMO_SP_SECRET, demoSimOptions, type Simulator, startSimulator } from '../../../sim/index.js';
import { ManualClock } from '../../../src/lib/clock.js';
import { asUser, type RunningUpstream, startGateway, startUpstream } from '../../helpers/index.js';

let sim: Simulator;

beforeAll(async () => {
  sim = await startSimulator(demoSimOptions());
});

afterAll(async () => {
  await sim?.close();
});

function m2mUpstream(secretEnv = 'M2M_SECRET', tokenUrl?: string) {
  return {
    ws: {
      url: sim.url,
      credential: {
        type: 'databricks-m2m' as const,
        clientId: DEMO_SP.userName,
        clientSecretEnv: secretEnv,
        ...(tokenUrl ? { tokenUrl } : {}),
      },
    },
  };
}

async function get(url: string, headers = asUser()): Promise<{ status: number; body: string }> {
  const r = await request(url, { headers });
  return { status: r.statusCode, body: await r.body.text() };
}

describe('databricks-m2m credential', () => {
  it('100 concurrent first requests cause exactly one token request; the workspace sees the service principal', async () => {
    process.env.M2M_SECRET = DEMO_SP_SECRET;
    const g = await startGateway({ upstreams: m2mUpstream() });
    try {
      sim.reset();
      const results = await Promise.all(Array.from({ length: 100 }, () => get(`${g.url}/api/2.0/serving-endpoints`)));
      expect(results.map((r) => r.status)).toEqual(Array(100).fill(200));
      expect(sim.tokenRequests).toHaveLength(1);
      expect(sim.tokenRequests[0]).toMatchObject({
        grantType: 'client_credentials',
        clientId: DEMO_SP.userName,
        ok: true,
      });
      expect(sim.requests).toHaveLength(100);
      expect(new Set(sim.requests.map((r) => `${r.identity}/${r.tokenKind}`))).toEqual(
        new Set([`${DEMO_SP.userName}/oauth`]),
      );
      // Cached: later requests fetch nothing.
      await get(`${g.url}/api/2.0/serving-endpoints`);
      expect(sim.tokenRequests).toHaveLength(1);
    } finally {
      await g.close();
    }
  });

  it('refreshes in the background before expiry, once, while requests keep flowing on the valid token', async () => {
    process.env.M2M_SECRET = DEMO_SP_SECRET;
    const clock = new ManualClock(Date.now());
    const g = await startGateway({ upstreams: m2mUpstream() }, { clock });
    try {
      sim.reset();
      expect((await get(`${g.url}/api/2.0/serving-endpoints`)).status).toBe(200);
      expect(sim.tokenRequests).toHaveLength(1);
      // 3600 s token, used until 60 s before expiry, refreshed after 80 % of that.
      clock.advance(0.85 * 3540 * 1000);
      const burst = await Promise.all(Array.from({ length: 50 }, () => get(`${g.url}/api/2.0/serving-endpoints`)));
      expect(burst.every((r) => r.status === 200)).toBe(true);
      await new Promise((r) => setTimeout(r, 100));
      expect(sim.tokenRequests).toHaveLength(2);
      // Past the usable life: the next requests wait for one refresh.
      clock.advance(3600 * 1000);
      const after = await Promise.all(Array.from({ length: 20 }, () => get(`${g.url}/api/2.0/serving-endpoints`)));
      expect(after.every((r) => r.status === 200)).toBe(true);
      expect(sim.tokenRequests).toHaveLength(3);
    } finally {
      await g.close();
    }
  });

  it('a wrong client secret gives 502 UPSTREAM_CREDENTIAL_UNAVAILABLE, is not retried, and leaks nothing', async () => {
    process.env.M2M_BAD_SECRET = 'definitely-not-the-secret-42';
    const logs: string[] = [];
    const g = await startGateway({ upstreams: m2mUpstream('M2M_BAD_SECRET') }, { logLines: logs });
    try {
      sim.reset();
      const r = await get(`${g.url}/api/2.0/serving-endpoints`);
      expect(r.status).toBe(502);
      expect(JSON.parse(r.body)).toMatchObject({ error_code: 'UPSTREAM_CREDENTIAL_UNAVAILABLE' });
      expect(sim.tokenRequests).toHaveLength(1);
      expect(sim.tokenRequests[0]?.ok).toBe(false);
      expect(sim.requests).toEqual([]);
      expect(r.body).not.toContain('definitely-not-the-secret-42');
      expect(logs.join('')).not.toContain('definitely-not-the-secret-42');
      expect(logs.join('')).toContain('invalid_client');
    } finally {
      await g.close();
    }
  });

  it('a failing token endpoint is retried with backoff', async () => {
    let calls = 0;
    const flaky: RunningUpstream = await startUpstream((req, res) => {
      calls++;
      req.resume();
      if (calls <= 2) {
        res.writeHead(503, { 'content-type': 'application/json' }).end('{"error":"temporarily_unavailable"}');
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ access_token: 'flaky-token', token_type: 'Bearer', expires_in: 3600 }));
    });
    process.env.M2M_SECRET = DEMO_SP_SECRET;
    const seen: (string | undefined)[] = [];
    const api = await startUpstream((req, res) => {
      seen.push(req.headers.authorization);
      res.end('ok');
    });
    const g = await startGateway({
      upstreams: {
        ws: {
          url: api.url,
          credential: {
            type: 'databricks-m2m',
            clientId: 'x',
            clientSecretEnv: 'M2M_SECRET',
            tokenUrl: `${flaky.url}/oidc/v1/token`,
          },
        },
      },
    });
    try {
      const t0 = Date.now();
      expect((await get(`${g.url}/x`)).status).toBe(200);
      expect(calls).toBe(3);
      expect(Date.now() - t0).toBeGreaterThanOrEqual(200); // two backoff waits
      expect(seen).toEqual(['Bearer flaky-token']);
    } finally {
      await g.close();
      await flaky.close();
      await api.close();
    }
  });

  it('forged identity headers never reach the workspace', async () => {
    process.env.M2M_SECRET = DEMO_SP_SECRET;
    const g = await startGateway({ upstreams: m2mUpstream() });
    try {
      sim.reset();
      const r = await get(
        `${g.url}/api/2.0/preview/scim/v2/Me`,
        asUser('alice', { 'x-forwarded-user': 'admin@example.com', 'x-forwarded-email': 'admin@example.com' }),
      );
      expect(r.status).toBe(200);
      expect(JSON.parse(r.body)).toMatchObject({ userName: DEMO_SP.userName });
      const h = sim.requests[0]?.headers ?? {};
      expect(h['x-forwarded-user']).toBeUndefined();
      expect(h['x-forwarded-email']).toBeUndefined();
      expect(h['x-keygate-assertion']).toBeDefined();
    } finally {
      await g.close();
    }
  });
});
