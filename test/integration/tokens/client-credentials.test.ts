/**
 * Service principals through the real openid-client library: discovery, client_credentials
 * with client_secret_basic, the token on the proxy, and the specific refusals.
 */
import * as oidc from 'openid-client';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type RunningUpstream,
  type SeenRequest,
  startGateway,
  startRecordingUpstream,
  type TestGateway,
} from '../../helpers/index.js';

let up: RunningUpstream & { seen: SeenRequest[] };
let g: TestGateway;

beforeAll(async () => {
  up = await startRecordingUpstream();
  g = await startGateway(
    {
      upstreams: { api: { url: up.url, preset: 'generic', credential: { type: 'none' }, rules: [] } },
    },
    { identifiers: [] },
  );
});
afterAll(async () => {
  await g?.close();
  await up?.close();
});

async function discover(id: string, secret: string) {
  return oidc.discovery(new URL(g.gw.publicOrigin), id, undefined, oidc.ClientSecretBasic(secret), {
    execute: [oidc.allowInsecureRequests],
  });
}

describe('client credentials', () => {
  it('issues a JWT access token that the proxy accepts', async () => {
    const { sp, secret } = await g.gw.oauth.sps.create({ name: 'ci-bot', roles: ['ml-reader'], createdBy: 'test' });
    const config = await discover(sp.id, secret?.secret as string);
    const tokens = await oidc.clientCredentialsGrant(config, {});
    expect(tokens.token_type.toLowerCase()).toBe('bearer');
    const before = up.seen.length;
    const res = await request(`${g.url}/anything`, { headers: { authorization: `Bearer ${tokens.access_token}` } });
    expect(res.statusCode).toBe(200);
    await res.body.text();
    expect(up.seen.length).toBe(before + 1);
  });
});
