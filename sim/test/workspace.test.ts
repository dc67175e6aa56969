// Secrets and PAT minting.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEMO_PAT, demoSimOptions, type Simulator, startSimulator } from '../index.js';
import { call } from './helpers.js';

let sim: Simulator;
const api = (method: string, path: string, body?: unknown, token = DEMO_PAT) => call(sim, method, path, { token, ...(body !== undefined ? { body } : {}) });

beforeAll(async () => {
  sim = await startSimulator(demoSimOptions());
});
afterAll(() => sim.close());

describe('secrets', () => {
  it('creates a scope, puts, lists, gets (base64) and deletes secrets', async () => {
    expect((await api('POST', '/api/2.0/secrets/scopes/create', { scope: 'ml' })).status).toBe(200);
    expect((await api('POST', '/api/2.0/secrets/scopes/create', { scope: 'ml' })).body.error_code).toBe('RESOURCE_ALREADY_EXISTS');
    expect((await api('GET', '/api/2.0/secrets/scopes/list')).body).toEqual({ scopes: [{ name: 'ml', backend_type: 'DATABRICKS' }] });
    await api('POST', '/api/2.0/secrets/put', { scope: 'ml', key: 'hf-token', string_value: 's3cret' });
    await api('POST', '/api/2.0/secrets/put', { scope: 'ml', key: 'bin', bytes_value: Buffer.from([1, 2, 3]).toString('base64') });
    const list = await api('GET', '/api/2.0/secrets/list?scope=ml');
    expect((list.body.secrets as { key: string }[]).map((s) => s.key)).toEqual(['hf-token', 'bin']);
    const got = await api('GET', '/api/2.0/secrets/get?scope=ml&key=hf-token');
    expect(Buffer.from(String(got.body.value), 'base64').toString()).toBe('s3cret');
    expect((await api('POST', '/api/2.0/secrets/put', { scope: 'ml', key: 'both', string_value: 'a', bytes_value: 'YQ==' })).status).toBe(400);
    expect((await api('POST', '/api/2.0/secrets/put', { scope: 'nope', key: 'k', string_value: 'a' })).status).toBe(404);
    expect((await api('POST', '/api/2.0/secrets/delete', { scope: 'ml', key: 'hf-token' })).status).toBe(200);
    expect((await api('GET', '/api/2.0/secrets/get?scope=ml&key=hf-token')).status).toBe(404);
    expect((await api('POST', '/api/2.0/secrets/scopes/delete', { scope: 'ml' })).status).toBe(200);
    expect((await api('GET', '/api/2.0/secrets/list?scope=ml')).body.error_code).toBe('RESOURCE_DOES_NOT_EXIST');
  });
});

describe('token/create', () => {
  it('mints a working PAT for the caller', async () => {
    const r = await api('POST', '/api/2.0/token/create', { lifetime_seconds: 3600, comment: 'ci' });
    expect(r.status).toBe(200);
    const token = String(r.body.token_value);
    expect(token).toMatch(/^dapi[0-9a-f]{32}$/);
    expect(r.body.token_info).toMatchObject({ comment: 'ci', creation_time: expect.any(Number), expiry_time: expect.any(Number) });
    const me = await api('GET', '/api/2.0/preview/scim/v2/Me', undefined, token);
    expect(me.body.userName).toBe('alice@example.com');
    expect(sim.requests.at(-1)).toMatchObject({ identity: 'alice@example.com', tokenKind: 'pat' });
  });
});
