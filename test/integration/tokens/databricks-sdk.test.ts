/**
 * The official Databricks JS SDK (@databricks/sdk-experimental 0.17.0), unmodified, with
 * DATABRICKS_HOST pointing at Keygate in front of the workspace simulator: `oauth-m2m` with a
 * Keygate service principal's id and secret, and the PAT-style token auth with a Keygate
 * access token. The SDK only ever holds Keygate tokens; the workspace sees Keygate's own
 * upstream credential.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApiError, WorkspaceClient } from '@databricks/sdk-experimental';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { demoSimOptions, type Simulator, startSimulator } from '../../../sim/index.js';
import { simUpstream, startGateway, type TestGateway } from '../../helpers/index.js';

let sim: Simulator;
let g: TestGateway;
const originalHome = process.env.HOME;

beforeAll(async () => {
  // No stray ~/.databrickscfg may change the SDK's auth chain.
  process.env.HOME = mkdtempSync(join(tmpdir(), 'kg-sdk-home-'));
  sim = await startSimulator(demoSimOptions());
  g = await startGateway({ upstreams: simUpstream(sim.url, 'TOKENS_SDK_SP_SECRET') }, { identifiers: [] });
});
afterAll(async () => {
  await g?.close();
  await sim?.close();
  process.env.HOME = originalHome;
});

async function servicePrincipal(name: string, roles: string[]) {
  const { sp, secret } = await g.gw.oauth.sps.create({ name, roles, createdBy: 'test' });
  return { clientId: sp.id, clientSecret: secret?.secret as string };
}

describe('oauth-m2m with a Keygate service principal', () => {
  it('discovers /oidc, gets a Keygate token with Basic client auth, and its calls reach the workspace', async () => {
    const { clientId, clientSecret } = await servicePrincipal('sdk-m2m', ['ml-reader']);
    sim.reset();
    const w = new WorkspaceClient({
      host: g.url,
      clientId,
      clientSecret,
      authType: 'oauth-m2m',
      env: {},
      retryTimeoutSeconds: 5,
    });
    const names: string[] = [];
    for await (const ep of w.servingEndpoints.list()) names.push(ep.name ?? '');
    expect(names).toEqual(['iris', 'chat-llm']);
    // The workspace saw Keygate's own credential (its service principal), never the SDK's token.
    expect(sim.requests.map((r) => [r.method, r.path, r.status])).toEqual([['GET', '/api/2.0/serving-endpoints', 200]]);
    expect(sim.requests[0]?.tokenKind).toBe('oauth');
    // Policy still decides: ml-reader may not query a model.
    await expect(w.servingEndpoints.query({ name: 'iris', inputs: [[1, 2, 3, 4]] })).rejects.toMatchObject({
      errorCode: 'PERMISSION_DENIED',
      statusCode: 403,
    });
    expect(sim.requests).toHaveLength(1);
  });

  it('a wrong secret fails at the token endpoint with the OAuth error the SDK shows', async () => {
    const { clientId } = await servicePrincipal('sdk-wrong', ['ml-reader']);
    const w = new WorkspaceClient({
      host: g.url,
      clientId,
      clientSecret: 'kgs_not-the-secret',
      authType: 'oauth-m2m',
      env: {},
      retryTimeoutSeconds: 5,
    });
    sim.reset();
    await expect(w.currentUser.me()).rejects.toThrow(/invalid_client/);
    expect(sim.requests).toEqual([]);
  });
});

describe('token auth (DATABRICKS_TOKEN) with a Keygate access token', () => {
  it('a Keygate token works as the SDK token; an upstream PAT does not', async () => {
    const { clientId, clientSecret } = await servicePrincipal('sdk-pat', ['ml-inference']);
    const t = await request(`${g.url}/oidc/v1/token`, {
      method: 'POST',
      headers: {
        authorization: `Basic ${Buffer.from(`${clientId}:${clientSecret}`).toString('base64')}`,
        'content-type': 'application/x-www-form-urlencoded',
      },
      body: 'scope=all-apis&grant_type=client_credentials',
    });
    const { access_token: token, expires_in: expiresIn } = (await t.body.json()) as {
      access_token: string;
      expires_in: number;
    };
    expect(expiresIn).toBe(900);
    sim.reset();
    const w = new WorkspaceClient({ host: g.url, token, authType: 'pat', env: {}, retryTimeoutSeconds: 5 });
    const res = await w.servingEndpoints.query({
      name: 'iris',
      dataframe_split: {
        columns: ['sepal_length', 'sepal_width', 'petal_length', 'petal_width'],
        data: [[5.1, 3.5, 1.4, 0.2]],
      },
    });
    expect(res.predictions).toEqual(['setosa']);
    expect(sim.requests.map((r) => [r.path, r.status])).toEqual([['/serving-endpoints/iris/invocations', 200]]);

    // The workspace's own PAT is not a Keygate token: refused before it could reach anything.
    sim.reset();
    const withPat = new WorkspaceClient({
      host: g.url,
      token: 'dapi0123456789abcdef0123456789abcdef',
      authType: 'pat',
      env: {},
      retryTimeoutSeconds: 5,
    });
    const err = await withPat.currentUser.me().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect((err as ApiError).statusCode).toBe(401);
    expect((err as ApiError).errorCode).toBe('UNAUTHENTICATED');
    expect(sim.requests).toEqual([]);
  });
});
