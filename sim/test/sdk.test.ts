// The official Databricks JS SDK (@databricks/sdk-experimental 0.17.0), unmodified, as a real client.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApiError, WorkspaceClient } from '@databricks/sdk-experimental';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { DEMO_PAT, DEMO_SP, DEMO_SP_SECRET, demoSimOptions, type Simulator, startSimulator } from '../index.js';
import { IRIS_COLUMNS, SETOSA_ROW, VIRGINICA_ROW } from './helpers.js';

let sim: Simulator;
const originalHome = process.env.HOME;

beforeAll(async () => {
  // No stray ~/.databrickscfg may change the SDK's auth chain.
  process.env.HOME = mkdtempSync(join(tmpdir(), 'sim-sdk-home-'));
  sim = await startSimulator(demoSimOptions());
});
afterAll(async () => {
  await sim.close();
  process.env.HOME = originalHome;
});
beforeEach(() => sim.reset());

const patClient = (token: string) => new WorkspaceClient({ host: sim.url, token, authType: 'pat', env: {}, retryTimeoutSeconds: 5 });

describe('WorkspaceClient with a PAT', () => {
  it('reads the current user, lists endpoints and queries the iris model', async () => {
    const w = patClient(DEMO_PAT);
    const me = await w.currentUser.me();
    expect(me.userName).toBe('alice@example.com');

    const names: string[] = [];
    for await (const ep of w.servingEndpoints.list()) names.push(ep.name ?? '');
    expect(names).toEqual(['iris', 'chat-llm']);

    const res = await w.servingEndpoints.query({ name: 'iris', dataframe_split: { columns: IRIS_COLUMNS, data: [SETOSA_ROW, VIRGINICA_ROW] } });
    expect(res.predictions).toEqual(['setosa', 'virginica']);
    expect((res as Record<string, unknown>)['served-model-name']).toBe('iris-1');

    expect(sim.requests.map((r) => [r.method, r.path, r.status, r.identity, r.tokenKind])).toEqual([
      ['GET', '/api/2.0/preview/scim/v2/Me', 200, 'alice@example.com', 'pat'],
      ['GET', '/api/2.0/serving-endpoints', 200, 'alice@example.com', 'pat'],
      ['POST', '/serving-endpoints/iris/invocations', 200, 'alice@example.com', 'pat'],
    ]);
    expect(sim.requests[0]?.headers['user-agent']).toContain('databricks-sdk-js/0.17.0');
  });

  it('runs MLflow and jobs calls', async () => {
    const w = patClient(DEMO_PAT);
    const exp = await w.experiments.getByName({ experiment_name: '/Shared/iris' });
    expect(exp.experiment?.name).toBe('/Shared/iris');
    const jobs: string[] = [];
    for await (const j of w.jobs.list({})) jobs.push(j.settings?.name ?? '');
    expect(jobs).toEqual(['retrain-iris']);
    // runNow returns a waiter; its wait() polls runs/get until the run terminates (runPolls GETs).
    const started = await w.jobs.runNow({ job_id: 11 });
    expect(started.run_id).toBeTypeOf('number');
    const run = await started.wait();
    expect(run).toMatchObject({ job_id: 11, run_id: started.run_id, state: { life_cycle_state: 'TERMINATED', result_state: 'SUCCESS' } });
  });

  it('throws ApiError PERMISSION_DENIED for a bad PAT, without retrying', async () => {
    const err = await patClient('dapi0000000000000000000000000000dead').currentUser.me().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect((err as ApiError).errorCode).toBe('PERMISSION_DENIED');
    expect((err as ApiError).statusCode).toBe(403);
    expect((err as ApiError).message).toBe('Invalid access token.');
    expect(sim.requests).toHaveLength(1);
  });

  it('surfaces workspace error codes, e.g. RESOURCE_DOES_NOT_EXIST', async () => {
    const err = await patClient(DEMO_PAT).servingEndpoints.get({ name: 'ghost' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect((err as ApiError).errorCode).toBe('RESOURCE_DOES_NOT_EXIST');
  });
});

describe('WorkspaceClient with OAuth M2M', () => {
  it('discovers the token endpoint, gets a token once, and calls as the service principal', async () => {
    const w = new WorkspaceClient({ host: sim.url, clientId: DEMO_SP.userName, clientSecret: DEMO_SP_SECRET, authType: 'oauth-m2m', env: {}, retryTimeoutSeconds: 5 });
    const me = await w.currentUser.me();
    expect(me.userName).toBe(DEMO_SP.userName);
    const ep = await w.servingEndpoints.get({ name: 'chat-llm' });
    expect(ep.task).toBe('llm/v1/chat');
    expect(sim.tokenRequests).toEqual([
      { at: expect.any(Number), grantType: 'client_credentials', clientId: DEMO_SP.userName, ok: true, identity: DEMO_SP.userName },
    ]);
    expect(sim.requests.map((r) => [r.path, r.identity, r.tokenKind])).toEqual([
      ['/api/2.0/preview/scim/v2/Me', DEMO_SP.userName, 'oauth'],
      ['/api/2.0/serving-endpoints/chat-llm', DEMO_SP.userName, 'oauth'],
    ]);
  });

  it('fails with the OAuth error for a wrong secret', async () => {
    const w = new WorkspaceClient({ host: sim.url, clientId: DEMO_SP.userName, clientSecret: 'wrong', authType: 'oauth-m2m', env: {}, retryTimeoutSeconds: 5 });
    await expect(w.currentUser.me()).rejects.toThrow(/invalid_client/);
    expect(sim.tokenRequests.map((t) => t.error)).toEqual(['invalid_client']);
    expect(sim.requests).toEqual([]);
  });
});
