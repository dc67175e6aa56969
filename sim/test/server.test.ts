// Cross-cutting behaviour: anonymous discovery, Bearer authentication and its error shapes, request
// recording, unknown routes, malformed bodies, body limits and prompt shutdown.
import { request } from 'node:http';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { DEMO_ALICE, DEMO_PAT, DEMO_SP, DEMO_SP_SECRET, demoSimOptions, type Simulator, startSimulator } from '../index.js';
import { errorReply } from '../server.js';
import { basic, call, form } from './helpers.js';

let sim: Simulator;
let clock = Date.now();
const logLines: Record<string, unknown>[] = [];

beforeAll(async () => {
  sim = await startSimulator(demoSimOptions({ now: () => clock, tokenTtlSeconds: 600, log: (l) => logLines.push(l) }));
});
afterAll(() => sim.close());
beforeEach(() => sim.reset());

describe('anonymous endpoints', () => {
  it('serves host metadata pointing at its own OIDC root', async () => {
    const r = await call(sim, 'GET', '/.well-known/databricks-config');
    expect(r.status).toBe(200);
    expect(r.body).toEqual({
      oidc_endpoint: `${sim.url}/oidc`,
      workspace_id: '1234567890123456',
      cloud: 'AWS',
      host_type: 'WORKSPACE_HOST',
      token_federation_default_oidc_audiences: [`${sim.url}/oidc/v1/token`],
    });
  });

  it.each(['oauth-authorization-server', 'openid-configuration'])('serves /oidc/.well-known/%s', async (doc) => {
    const r = await call(sim, 'GET', `/oidc/.well-known/${doc}`);
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({
      issuer: `${sim.url}/oidc`,
      authorization_endpoint: `${sim.url}/oidc/v1/authorize`,
      token_endpoint: `${sim.url}/oidc/v1/token`,
      jwks_uri: `${sim.url}/oidc/jwks.json`,
    });
  });

  it('is not recorded in requests', async () => {
    await call(sim, 'GET', '/.well-known/databricks-config');
    await form(sim, { grant_type: 'client_credentials' }, { authorization: basic(DEMO_SP.userName, DEMO_SP_SECRET) });
    expect(sim.requests).toEqual([]);
    expect(sim.tokenRequests).toHaveLength(1);
  });
});

describe('authentication', () => {
  it('401 UNAUTHENTICATED without a credential', async () => {
    const r = await call(sim, 'GET', '/api/2.0/preview/scim/v2/Me');
    expect(r.status).toBe(401);
    expect(r.body).toEqual({ error_code: 'UNAUTHENTICATED', message: 'Credential was not sent or was of an unsupported type for this API.' });
  });

  it('401 for Basic credentials, which the API does not accept', async () => {
    const r = await call(sim, 'GET', '/api/2.0/preview/scim/v2/Me', { headers: { authorization: basic('alice', 'pw') } });
    expect(r.status).toBe(401);
    expect(r.body.error_code).toBe('UNAUTHENTICATED');
  });

  it('403 PERMISSION_DENIED with the reason header for an unknown token', async () => {
    const r = await call(sim, 'GET', '/api/2.0/preview/scim/v2/Me', { token: 'dapi00000000000000000000000000000000' });
    expect(r.status).toBe(403);
    expect(r.body).toEqual({ error_code: 'PERMISSION_DENIED', message: 'Invalid access token.' });
    expect(r.headers.get('x-databricks-reason-phrase')).toBe('Invalid access token.');
  });

  it('accepts an issued OAuth token until it expires, then answers 403', async () => {
    const t = await form(sim, { grant_type: 'client_credentials', scope: 'all-apis' }, { authorization: basic(DEMO_SP.userName, DEMO_SP_SECRET) });
    const token = String(t.body.access_token);
    expect((await call(sim, 'GET', '/api/2.0/preview/scim/v2/Me', { token })).status).toBe(200);
    clock += 599_000;
    expect((await call(sim, 'GET', '/api/2.0/preview/scim/v2/Me', { token })).status).toBe(200);
    clock += 1_000;
    const expired = await call(sim, 'GET', '/api/2.0/preview/scim/v2/Me', { token });
    expect(expired.status).toBe(403);
    expect(expired.body.message).toBe('Invalid access token.');
  });

  it('/Me returns the SCIM user of the token with X-Databricks-Org-Id', async () => {
    const r = await call(sim, 'GET', '/api/2.0/preview/scim/v2/Me', { token: DEMO_PAT });
    expect(r.status).toBe(200);
    expect(r.headers.get('x-databricks-org-id')).toBe('1234567890123456');
    expect(r.body).toMatchObject({
      id: DEMO_ALICE.id,
      userName: 'alice@example.com',
      displayName: 'Alice Analyst',
      active: true,
      emails: [{ value: 'alice@example.com', primary: true }],
      schemas: expect.arrayContaining(['urn:ietf:params:scim:schemas:core:2.0:User']),
    });
    expect(r.body.groups).toEqual([expect.objectContaining({ display: 'ml-engineers', $ref: expect.stringMatching(/^Groups\/\d+$/) })]);
  });
});

describe('request recording', () => {
  it('records method, path, status, identity, token kind and redacted headers', async () => {
    await call(sim, 'GET', '/api/2.0/serving-endpoints?x=1', { token: DEMO_PAT, headers: { 'x-forwarded-user': 'mallory', 'user-agent': 'sim-test' } });
    await call(sim, 'GET', '/api/2.0/serving-endpoints', { token: 'nope' });
    await call(sim, 'GET', '/api/2.0/serving-endpoints');
    expect(sim.requests.map(({ method, path, status, identity, tokenKind }) => ({ method, path, status, identity, tokenKind }))).toEqual([
      { method: 'GET', path: '/api/2.0/serving-endpoints', status: 200, identity: 'alice@example.com', tokenKind: 'pat' },
      { method: 'GET', path: '/api/2.0/serving-endpoints', status: 403, identity: null, tokenKind: null },
      { method: 'GET', path: '/api/2.0/serving-endpoints', status: 401, identity: null, tokenKind: null },
    ]);
    const first = sim.requests[0];
    expect(first?.headers.authorization).toBe('[redacted]');
    expect(first?.headers['x-forwarded-user']).toBe('mallory');
    expect(first?.headers['user-agent']).toBe('sim-test');
    expect(first?.at).toBeTypeOf('number');
    expect(sim.requests[2]?.headers.authorization).toBeUndefined();
  });

  it('records oauth as the token kind for issued tokens', async () => {
    const t = await form(sim, { grant_type: 'client_credentials', client_id: DEMO_SP.userName, client_secret: DEMO_SP_SECRET });
    await call(sim, 'GET', '/api/2.0/preview/scim/v2/Me', { token: String(t.body.access_token) });
    expect(sim.requests.at(-1)).toMatchObject({ identity: DEMO_SP.userName, tokenKind: 'oauth', status: 200 });
  });

  it('never writes tokens or secrets to the log sink', async () => {
    const t = await form(sim, { grant_type: 'client_credentials', client_id: DEMO_SP.userName, client_secret: DEMO_SP_SECRET });
    await call(sim, 'GET', '/api/2.0/preview/scim/v2/Me', { token: String(t.body.access_token) });
    await call(sim, 'GET', '/api/2.0/preview/scim/v2/Me', { token: DEMO_PAT });
    const text = JSON.stringify(logLines);
    expect(logLines.length).toBeGreaterThan(0);
    for (const secret of [DEMO_PAT, DEMO_SP_SECRET, String(t.body.access_token)]) expect(text).not.toContain(secret);
  });
});

describe('errors', () => {
  it('404 ENDPOINT_NOT_FOUND for an unknown route, after authentication', async () => {
    const r = await call(sim, 'DELETE', '/api/2.0/no/such/thing', { token: DEMO_PAT });
    expect(r.status).toBe(404);
    expect(r.body).toEqual({ error_code: 'ENDPOINT_NOT_FOUND', message: "No API found for 'DELETE /api/2.0/no/such/thing'" });
    expect((await call(sim, 'GET', '/api/2.0/no/such/thing')).status).toBe(401);
  });

  it('400 MALFORMED_REQUEST for broken or non-object JSON', async () => {
    for (const body of ['{"name":', '[1,2]', 'null']) {
      const r = await call(sim, 'POST', '/api/2.0/mlflow/experiments/create', { token: DEMO_PAT, body });
      expect(r.status).toBe(400);
      expect(r.body.error_code).toBe('MALFORMED_REQUEST');
    }
  });

  it('400 INVALID_PARAMETER_VALUE for a field of the wrong type', async () => {
    const r = await call(sim, 'POST', '/api/2.0/mlflow/experiments/create', { token: DEMO_PAT, body: { name: { nested: true } } });
    expect(r.status).toBe(400);
    expect(r.body).toEqual({ error_code: 'INVALID_PARAMETER_VALUE', message: "Field 'name' must be a string." });
  });

  it('413 for a body over the limit, and the server keeps serving', async () => {
    const r = await call(sim, 'POST', '/api/2.0/mlflow/experiments/create', { token: DEMO_PAT, body: 'x'.repeat(5 * 1024 * 1024) });
    expect(r.status).toBe(413);
    expect(r.body.error_code).toBe('BAD_REQUEST');
    expect((await call(sim, 'GET', '/api/2.0/preview/scim/v2/Me', { token: DEMO_PAT })).status).toBe(200);
  });
});

describe('robustness', () => {
  it('a malformed percent-encoding in a path parameter is a 404, not a crash', async () => {
    const r = await call(sim, 'GET', '/api/2.0/serving-endpoints/%E0%A4%A', { token: DEMO_PAT });
    expect([r.status, r.body.error_code]).toEqual([404, 'ENDPOINT_NOT_FOUND']);
  });

  it('unexpected exceptions become a generic 500 INTERNAL_ERROR without details', () => {
    const reply = errorReply(new TypeError('secret internal detail at /work/x.ts:1'));
    expect(reply).toEqual({ status: 500, body: { error_code: 'INTERNAL_ERROR', message: 'The simulator failed to handle this request.' } });
    expect(JSON.stringify(reply)).not.toContain('secret internal detail');
  });

  it('a throwing log sink does not break request handling', async () => {
    const noisy = await startSimulator(demoSimOptions({ log: () => { throw new Error('sink down'); } }));
    try {
      expect((await call(noisy, 'GET', '/api/2.0/preview/scim/v2/Me', { token: DEMO_PAT })).status).toBe(200);
    } finally {
      await noisy.close();
    }
  });
});

describe('lifecycle', () => {
  it('close() returns promptly even with an idle keep-alive socket and an open stream', async () => {
    const other = await startSimulator(demoSimOptions({ streamChunkDelayMs: 10_000 }));
    await call(other, 'GET', '/api/2.0/preview/scim/v2/Me', { token: DEMO_PAT }); // leaves a keep-alive socket
    const streaming = new Promise<void>((resolve) => {
      const req = request(`${other.url}/serving-endpoints/chat-llm/invocations`, {
        method: 'POST',
        headers: { authorization: `Bearer ${DEMO_PAT}`, 'content-type': 'application/json' },
      });
      req.on('response', (res) => {
        res.once('data', () => resolve());
        res.on('error', () => {});
      });
      req.on('error', () => {});
      req.end(JSON.stringify({ messages: [{ role: 'user', content: 'hi there' }], stream: true }));
    });
    await streaming;
    const started = Date.now();
    await other.close();
    expect(Date.now() - started).toBeLessThan(1000);
  });

  it('rejects invalid numeric options at start', async () => {
    await expect(startSimulator({ deployPolls: -1 })).rejects.toThrow(/deployPolls/);
  });
});
