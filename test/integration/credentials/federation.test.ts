/**
 * The databricks-federation upstream credential end to end: Keygate signs a JWT per caller,
 * the workspace simulator fetches Keygate's JWKS from its public URL, enforces its federation
 * policy and issues a token for the matching workspace user, and Keygate forwards with it.
 * Covers distinct people, service principals, unknown and unmapped callers, policy mismatches
 * (never a silent fallback), the explicit fallback, caching, expiry, single flight, the LRU
 * bound, key rotation, and forged subject tokens at the workspace.
 */
import { createRemoteJWKSet, generateKeyPair, jwtVerify, SignJWT } from 'jose';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEMO_ALICE, DEMO_BOB, DEMO_SP, DEMO_SP_SECRET } from '../../../sim/index.js';
import { ManualClock } from '../../../src/lib/clock.js';
import {
  DAVE,
  eventually,
  type FederationSetup,
  KEYGATE_SP,
  requestRecords,
  startFederation,
  WORKLOAD_SP,
} from '../../helpers/federation.js';
import { asUser, freePort, startGateway, startUpstream } from '../../helpers/index.js';
import { policyHeaders } from '../../helpers/policy-identity.js';

const EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const JWT_TYPE = 'urn:ietf:params:oauth:token-type:jwt';
const IRIS = {
  dataframe_split: {
    columns: ['sepal_length', 'sepal_width', 'petal_length', 'petal_width'],
    data: [[5.1, 3.5, 1.4, 0.2]],
  },
};

interface Answer {
  status: number;
  body: Record<string, unknown>;
}

async function invoke(s: FederationSetup, headers: Record<string, string>): Promise<Answer> {
  const r = await request(`${s.g.url}/serving-endpoints/iris/invocations`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(IRIS),
  });
  const text = await r.body.text();
  return { status: r.statusCode, body: text === '' ? {} : (JSON.parse(text) as Record<string, unknown>) };
}

const exchanges = (s: FederationSetup) => s.sim.tokenRequests.filter((t) => t.grantType === EXCHANGE);
const clientCredentials = (s: FederationSetup) =>
  s.sim.tokenRequests.filter((t) => t.grantType === 'client_credentials');

describe('databricks-federation: people', () => {
  let s: FederationSetup;
  beforeAll(async () => {
    s = await startFederation({ credential: { probeUser: DEMO_ALICE.userName } });
  });
  afterAll(() => s.close());

  it('two people call the same serving endpoint: the workspace sees each of them, and the audit record names whom', async () => {
    s.sim.reset();
    const a = await invoke(s, asUser('alice', { 'x-request-id': 'fed-alice-1' }));
    const b = await invoke(s, asUser('bob', { 'x-request-id': 'fed-bob-1' }));
    expect([a.status, b.status]).toEqual([200, 200]);
    expect(a.body).toEqual({ predictions: ['setosa'] });
    // The simulator saw two distinct users, each with a token it issued by federation.
    expect(s.sim.requests.map((r) => [r.path, r.identity, r.tokenKind])).toEqual([
      ['/serving-endpoints/iris/invocations', DEMO_ALICE.userName, 'oauth'],
      ['/serving-endpoints/iris/invocations', DEMO_BOB.userName, 'oauth'],
    ]);
    const kid = s.g.gw.oauth.signingKey().kid;
    expect(exchanges(s)).toEqual([
      expect.objectContaining({
        ok: true,
        clientId: null,
        subject: DEMO_ALICE.userName,
        identity: DEMO_ALICE.userName,
        keyId: kid,
      }),
      expect.objectContaining({
        ok: true,
        clientId: null,
        subject: DEMO_BOB.userName,
        identity: DEMO_BOB.userName,
        keyId: kid,
      }),
    ]);
    // Never the shared service principal.
    expect(clientCredentials(s)).toEqual([]);
    const records = await requestRecords(s.g);
    const of = (id: string) => records.find((r) => r.request?.requestId === id);
    expect(of('fed-alice-1')?.upstream).toMatchObject({
      name: 'workspace',
      status: 200,
      identity: { type: 'federated', subject: DEMO_ALICE.userName },
    });
    expect(of('fed-bob-1')?.upstream?.identity).toEqual({ type: 'federated', subject: DEMO_BOB.userName });
    // No token or JWT in any record.
    expect(JSON.stringify(records)).not.toMatch(/eyJ[\w-]+\.[\w-]+\./);
  });

  it('a cached token serves later requests without another exchange', async () => {
    s.sim.reset();
    for (let i = 0; i < 5; i++) expect((await invoke(s, asUser('alice'))).status).toBe(200);
    expect(exchanges(s)).toEqual([]);
    expect(new Set(s.sim.requests.map((r) => r.identity))).toEqual(new Set([DEMO_ALICE.userName]));
  });

  it('a person unknown to the workspace gets 403 UPSTREAM_IDENTITY_REJECTED; nothing reaches the workspace, no fallback', async () => {
    s.sim.reset();
    const r = await invoke(s, asUser('carol', { 'x-request-id': 'fed-carol-1' }));
    expect(r.status).toBe(403);
    expect(r.body).toMatchObject({ error_code: 'UPSTREAM_IDENTITY_REJECTED', request_id: 'fed-carol-1' });
    expect(String(r.body.message)).toContain('carol@example.com');
    expect(s.sim.requests).toEqual([]);
    expect(clientCredentials(s)).toEqual([]);
    expect(exchanges(s)).toEqual([
      expect.objectContaining({ ok: false, subject: 'carol@example.com', error: 'invalid_grant' }),
    ]);
    // Refused again at once, without asking the workspace again.
    expect((await invoke(s, asUser('carol'))).body.error_code).toBe('UPSTREAM_IDENTITY_REJECTED');
    expect(exchanges(s)).toHaveLength(1);
    const record = (await requestRecords(s.g)).find((x) => x.request?.requestId === 'fed-carol-1');
    expect(record).toMatchObject({
      status: 403,
      decision: { effect: 'deny', reasons: ['UPSTREAM_IDENTITY_REJECTED'] },
      request: { action: 'serving:invoke', resource: 'Endpoint::iris' },
      detail: { upstream: 'workspace' },
    });
    expect(record?.upstream).toBeUndefined();
  });

  it('100 concurrent requests of one person cause exactly one exchange', async () => {
    s.sim.reset();
    const all = await Promise.all(Array.from({ length: 100 }, () => invoke(s, asUser('dave'))));
    expect(all.map((r) => r.status)).toEqual(Array(100).fill(200));
    expect(exchanges(s)).toEqual([expect.objectContaining({ ok: true, identity: DAVE.userName })]);
    expect(s.sim.requests).toHaveLength(100);
    expect(new Set(s.sim.requests.map((r) => r.identity))).toEqual(new Set([DAVE.userName]));
  });

  it('100 concurrent requests of an unknown person cause one exchange, and all are refused', async () => {
    s.sim.reset();
    const all = await Promise.all(Array.from({ length: 100 }, () => invoke(s, asUser('mallory'))));
    expect(new Set(all.map((r) => `${r.status} ${r.body.error_code}`))).toEqual(
      new Set(['403 UPSTREAM_IDENTITY_REJECTED']),
    );
    expect(exchanges(s).filter((t) => t.subject === 'mallory@example.com')).toHaveLength(1);
    expect(s.sim.requests).toEqual([]);
  });

  it('an agent has no workspace identity: 403 UPSTREAM_IDENTITY_UNMAPPED, nothing exchanged', async () => {
    s.sim.reset();
    const r = await invoke(s, policyHeaders({ principal: 'agent:helper', roles: ['admin'] }));
    expect([r.status, r.body.error_code]).toEqual([403, 'UPSTREAM_IDENTITY_UNMAPPED']);
    expect(s.sim.tokenRequests).toEqual([]);
    expect(s.sim.requests).toEqual([]);
  });
});

describe('databricks-federation: service principals', () => {
  let s: FederationSetup;
  beforeAll(async () => {
    s = await startFederation();
  });
  afterAll(() => s.close());

  it('a mapped Keygate service principal reaches the workspace as its workspace service principal', async () => {
    s.sim.reset();
    const r = await invoke(s, {
      ...policyHeaders({ principal: `sp:${KEYGATE_SP}`, roles: ['admin'] }),
      'x-request-id': 'fed-sp-1',
    });
    expect(r.status).toBe(200);
    expect(s.sim.requests.map((x) => x.identity)).toEqual([WORKLOAD_SP.userName]);
    expect(exchanges(s)).toEqual([
      expect.objectContaining({
        ok: true,
        clientId: WORKLOAD_SP.userName,
        subject: KEYGATE_SP,
        identity: WORKLOAD_SP.userName,
      }),
    ]);
    const record = (await requestRecords(s.g)).find((x) => x.request?.requestId === 'fed-sp-1');
    expect(record?.actor).toMatchObject({ type: 'service_principal', id: KEYGATE_SP });
    expect(record?.upstream?.identity).toEqual({ type: 'federated', subject: WORKLOAD_SP.userName });
  });

  it('an unmapped service principal gets 403 UPSTREAM_IDENTITY_UNMAPPED and nothing is exchanged', async () => {
    s.sim.reset();
    const r = await invoke(s, policyHeaders({ principal: 'sp:nightly', roles: ['admin'] }));
    expect([r.status, r.body.error_code]).toEqual([403, 'UPSTREAM_IDENTITY_UNMAPPED']);
    expect(String(r.body.message)).toContain('nightly');
    expect(s.sim.tokenRequests).toEqual([]);
    expect(s.sim.requests).toEqual([]);
  });
});

describe('databricks-federation: refusals that are the policy, not the person', () => {
  it('a policy with another audience: 502 UPSTREAM_FEDERATION_REJECTED for everyone, never the shared service principal', async () => {
    const logs: string[] = [];
    const s = await startFederation({
      policies: (issuer) => [{ issuer, audiences: ['https://some-other-audience.example'] }],
      credential: { probeUser: DEMO_ALICE.userName },
      logLines: logs,
    });
    try {
      for (const who of ['alice', 'bob']) {
        const r = await invoke(s, asUser(who));
        expect([r.status, r.body.error_code]).toEqual([502, 'UPSTREAM_FEDERATION_REJECTED']);
      }
      expect(s.sim.requests).toEqual([]);
      expect(clientCredentials(s)).toEqual([]);
      // The workspace's reason is in the log (not on the wire), and no JWT is.
      const log = logs.join('');
      expect(log).toContain("claim 'aud'");
      expect(log).not.toMatch(/eyJ[\w-]+\.[\w-]+\./);
    } finally {
      await s.close();
    }
  });

  it('without probeUser, a refusal before any exchange succeeded is a 502; once the policy has worked, it is a 403', async () => {
    const s = await startFederation();
    try {
      const first = await invoke(s, asUser('carol'));
      expect([first.status, first.body.error_code]).toEqual([502, 'UPSTREAM_FEDERATION_REJECTED']);
      expect((await invoke(s, asUser('alice'))).status).toBe(200);
      const after = await invoke(s, asUser('erin'));
      expect([after.status, after.body.error_code]).toEqual([403, 'UPSTREAM_IDENTITY_REJECTED']);
      expect(s.sim.requests.map((r) => r.identity)).toEqual([DEMO_ALICE.userName]);
    } finally {
      await s.close();
    }
  });
});

describe('databricks-federation: explicit fallback', () => {
  it('dangerouslyFallBackToServicePrincipal sends an unknown person as the shared service principal, and the audit record says so', async () => {
    process.env.FED_FALLBACK_SECRET = DEMO_SP_SECRET;
    const logs: string[] = [];
    const s = await startFederation({
      credential: {
        probeUser: DEMO_ALICE.userName,
        dangerouslyFallBackToServicePrincipal: { clientId: DEMO_SP.userName, clientSecretEnv: 'FED_FALLBACK_SECRET' },
      },
      logLines: logs,
    });
    try {
      expect(logs.join('')).toContain('FEDERATION FALLBACK');
      const carol = await invoke(s, asUser('carol', { 'x-request-id': 'fb-carol' }));
      const alice = await invoke(s, asUser('alice', { 'x-request-id': 'fb-alice' }));
      expect([carol.status, alice.status]).toEqual([200, 200]);
      expect(s.sim.requests.map((r) => r.identity)).toEqual([DEMO_SP.userName, DEMO_ALICE.userName]);
      const records = await requestRecords(s.g);
      expect(records.find((r) => r.request?.requestId === 'fb-carol')?.upstream?.identity).toEqual({
        type: 'service-principal',
        subject: DEMO_SP.userName,
        fallback: 'UPSTREAM_IDENTITY_REJECTED',
      });
      expect(records.find((r) => r.request?.requestId === 'fb-alice')?.upstream?.identity).toEqual({
        type: 'federated',
        subject: DEMO_ALICE.userName,
      });
      expect(logs.join('')).toContain('sent as the shared service principal');
      expect(logs.join('')).not.toContain(DEMO_SP_SECRET);
    } finally {
      await s.close();
    }
  });
});

describe('databricks-federation: time', () => {
  it('expiry: the token is used until shortly before it expires, exchanged again in the background, then in front of the request', async () => {
    const clock = new ManualClock(Date.now());
    const s = await startFederation({ clock, credential: { jwtLifetime: '5m' } });
    try {
      expect((await invoke(s, asUser('alice'))).status).toBe(200);
      expect(exchanges(s)).toHaveLength(1);
      // The workspace token lives as long as the 5-minute JWT; it is used until 60 s before expiry
      // (240 s) and exchanged again behind the requests once 80 % of that (192 s) has passed.
      clock.advance(100_000);
      expect((await invoke(s, asUser('alice'))).status).toBe(200);
      expect(exchanges(s)).toHaveLength(1);
      clock.advance(100_000);
      expect((await invoke(s, asUser('alice'))).status).toBe(200);
      expect(await eventually(() => exchanges(s).length === 2)).toBe(true);
      // Past the new token's usable life (it was issued at 200 s): the next request waits for an exchange.
      clock.advance(250_000);
      const again = await Promise.all(Array.from({ length: 10 }, () => invoke(s, asUser('alice'))));
      expect(again.every((r) => r.status === 200)).toBe(true);
      expect(exchanges(s)).toHaveLength(3);
      expect(exchanges(s).every((t) => t.ok)).toBe(true);
      // The workspace never saw an expired token (it would have answered 403).
      expect(s.sim.requests.every((r) => r.status === 200)).toBe(true);
    } finally {
      await s.close();
    }
  });

  it('key rotation at Keygate: cached upstream tokens stay in use; new exchanges are signed with the new key, which the workspace fetches', async () => {
    const clock = new ManualClock(Date.now());
    const s = await startFederation({ clock });
    try {
      expect((await invoke(s, asUser('alice'))).status).toBe(200);
      const oldKid = s.g.gw.oauth.signingKey().kid;
      expect(exchanges(s)[0]?.keyId).toBe(oldKid);

      const newKid = await s.g.gw.oauth.rotateKeys();
      expect(newKid).not.toBe(oldKid);
      const jwks = (await (await request(`${s.publicUrl}/.keygate/oauth/jwks`)).body.json()) as {
        keys: { kid: string }[];
      };
      expect(jwks.keys.map((k) => k.kid)).toEqual(expect.arrayContaining([oldKid, newKid]));

      // Alice's workspace token does not depend on Keygate's key: still used, no exchange.
      expect((await invoke(s, asUser('alice'))).status).toBe(200);
      expect(exchanges(s)).toHaveLength(1);

      // The simulator fetched Keygate's keys moments ago and fetches again for an unknown kid only
      // after 30 s: until then it refuses the new key, which Keygate reports as a key or policy
      // problem (502), never as an unknown person.
      const early = await invoke(s, asUser('bob'));
      expect([early.status, early.body.error_code]).toEqual([502, 'UPSTREAM_FEDERATION_REJECTED']);
      clock.advance(31_000);
      expect((await invoke(s, asUser('bob'))).status).toBe(200);
      expect(exchanges(s).at(-1)).toMatchObject({ ok: true, keyId: newKid, identity: DEMO_BOB.userName });
      expect((await invoke(s, asUser('alice'))).status).toBe(200);
      expect(s.sim.requests.map((r) => r.identity)).toEqual([
        DEMO_ALICE.userName,
        DEMO_ALICE.userName,
        DEMO_BOB.userName,
        DEMO_ALICE.userName,
      ]);
    } finally {
      await s.close();
    }
  });
});

describe('databricks-federation: the cache is bounded', () => {
  it('with cacheSize 2 the least recently used person is dropped and exchanged again', async () => {
    const s = await startFederation({ credential: { cacheSize: 2 } });
    try {
      const order = ['alice', 'bob', 'alice', 'dave', 'alice', 'bob'];
      for (const who of order) expect((await invoke(s, asUser(who))).status).toBe(200);
      // alice, bob → [alice, bob]; alice hit → [bob, alice]; dave evicts bob → [alice, dave];
      // alice hit; bob again → exchanged again.
      expect(exchanges(s).map((t) => t.subject)).toEqual([
        DEMO_ALICE.userName,
        DEMO_BOB.userName,
        DAVE.userName,
        DEMO_BOB.userName,
      ]);
    } finally {
      await s.close();
    }
  });
});

describe('the workspace refuses subject tokens Keygate did not make for it', () => {
  let s: FederationSetup;
  beforeAll(async () => {
    s = await startFederation();
    // One real call, so that the workspace has Keygate's identity assertion in hand.
    expect((await invoke(s, asUser('alice'))).status).toBe(200);
  });
  afterAll(() => s.close());

  const exchangeAt = async (subjectToken: string) => {
    const r = await request(`${s.sim.url}/oidc/v1/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        grant_type: EXCHANGE,
        subject_token: subjectToken,
        subject_token_type: JWT_TYPE,
        scope: 'all-apis',
      }).toString(),
    });
    return { status: r.statusCode, body: (await r.body.json()) as { error?: string; error_description?: string } };
  };

  it('a JWT from another issuer', async () => {
    const { privateKey } = await generateKeyPair('ES256');
    const jwt = await new SignJWT({})
      .setProtectedHeader({ alg: 'ES256', kid: 'evil-1' })
      .setIssuer('https://evil.example')
      .setSubject(DEMO_ALICE.userName)
      .setAudience(s.audience)
      .setExpirationTime('5m')
      .sign(privateKey);
    const r = await exchangeAt(jwt);
    expect([r.status, r.body.error]).toEqual([400, 'invalid_grant']);
    expect(r.body.error_description).toMatch(/No federation policy trusts issuer/);
  });

  it("a JWT claiming Keygate as issuer and Keygate's key id, signed with another key", async () => {
    const { privateKey } = await generateKeyPair('ES256');
    const jwt = await new SignJWT({})
      .setProtectedHeader({ alg: 'ES256', kid: s.g.gw.oauth.signingKey().kid })
      .setIssuer(s.publicUrl)
      .setSubject(DEMO_ALICE.userName)
      .setAudience(s.audience)
      .setExpirationTime('5m')
      .sign(privateKey);
    const r = await exchangeAt(jwt);
    expect([r.status, r.body.error]).toEqual([400, 'invalid_grant']);
    expect(r.body.error_description).toMatch(/signature verification failed/);
  });

  it("Keygate's identity assertion, replayed by whoever received it, is refused (its audience is the upstream URL)", async () => {
    const assertion = s.sim.requests.at(-1)?.headers['x-keygate-assertion'];
    expect(assertion).toMatch(/^eyJ/);
    const r = await exchangeAt(assertion as string);
    expect([r.status, r.body.error]).toEqual([400, 'invalid_grant']);
    expect(r.body.error_description).toMatch(/claim 'aud'/);
  });
});

describe('databricks-federation: the exchange on the wire', () => {
  it('RFC 8693 form without client_id, a subject token verifiable with JWKS; 5xx retried, then 502 UPSTREAM_CREDENTIAL_UNAVAILABLE', async () => {
    const forms: URLSearchParams[] = [];
    let failFirst = 2;
    const tokenEndpoint = await startUpstream((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        forms.push(new URLSearchParams(Buffer.concat(chunks).toString()));
        if (failFirst-- > 0) {
          res.writeHead(503, { 'content-type': 'application/json' }).end('{"error":"temporarily_unavailable"}');
          return;
        }
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ access_token: `ws-token-${forms.length}`, token_type: 'Bearer', expires_in: 3600 }));
      });
    });
    const api = await startRecordingUpstreamWithAuth();
    const port = await freePort();
    const publicUrl = `http://127.0.0.1:${port}`;
    const g = await startGateway({
      listen: { host: '127.0.0.1', port },
      publicUrl,
      upstreams: {
        ws: {
          url: api.url,
          credential: { type: 'databricks-federation', tokenUrl: `${tokenEndpoint.url}/oidc/v1/token` },
        },
      },
    });
    try {
      const ok = await request(`${g.url}/api/2.0/clusters/list`, { headers: asUser('alice') });
      await ok.body.dump();
      expect(ok.statusCode).toBe(200);
      expect(api.authorizations).toEqual(['Bearer ws-token-3']);
      expect(forms).toHaveLength(3);
      const form = forms[2] as URLSearchParams;
      expect([...form.keys()].sort()).toEqual(['grant_type', 'scope', 'subject_token', 'subject_token_type']);
      expect(form.get('grant_type')).toBe(EXCHANGE);
      expect(form.get('subject_token_type')).toBe(JWT_TYPE);
      expect(form.get('scope')).toBe('all-apis');
      // One subject token serves the retries.
      expect(new Set(forms.map((f) => f.get('subject_token'))).size).toBe(1);
      const jwks = createRemoteJWKSet(new URL(`${publicUrl}/.keygate/oauth/jwks`));
      const { payload, protectedHeader } = await jwtVerify(form.get('subject_token') as string, jwks, {
        issuer: publicUrl,
        audience: `${api.url}/oidc/v1/token`,
      });
      expect(protectedHeader).toMatchObject({ alg: 'ES256', typ: 'JWT', kid: g.gw.oauth.signingKey().kid });
      expect(payload.sub).toBe('alice@example.com');
      expect((payload.exp as number) - (payload.iat as number)).toBe(300);

      // A token endpoint that keeps failing: three attempts, then 502; nothing reaches the upstream.
      failFirst = 100;
      forms.length = 0;
      const down = await request(`${g.url}/api/2.0/clusters/list`, { headers: asUser('bob') });
      expect(down.statusCode).toBe(502);
      expect(await down.body.json()).toMatchObject({ error_code: 'UPSTREAM_CREDENTIAL_UNAVAILABLE' });
      expect(forms).toHaveLength(3);
      expect(api.authorizations).toHaveLength(1);
    } finally {
      await g.close();
      await tokenEndpoint.close();
      await api.close();
    }
  });
});

/** An upstream that answers 200 and keeps the Authorization header of each request. */
async function startRecordingUpstreamWithAuth() {
  const authorizations: (string | undefined)[] = [];
  const up = await startUpstream((req, res) => {
    authorizations.push(req.headers.authorization);
    req.resume();
    res.writeHead(200, { 'content-type': 'application/json' }).end('{"clusters":[]}');
  });
  return Object.assign(up, { authorizations });
}
