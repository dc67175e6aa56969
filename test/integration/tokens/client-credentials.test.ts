/**
 * Service principals through the real openid-client library: discovery, client_credentials
 * with client_secret_basic and with private_key_jwt, the token on the proxy, and the specific
 * refusals (wrong, expired and revoked secrets, a key that is not the registered one).
 */
import { exportJWK, generateKeyPair } from 'jose';
import * as oidc from 'openid-client';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../../src/lib/clock.js';
import type { SqliteStore } from '../../../src/store/sqlite/index.js';
import {
  type RunningUpstream,
  type SeenRequest,
  startGateway,
  startRecordingUpstream,
  type TestGateway,
} from '../../helpers/index.js';
import { assertionGrant, clientAssertion } from '../../helpers/oauth.js';

let up: RunningUpstream & { seen: SeenRequest[] };
let g: TestGateway;
// Real time at the start, moved by hand to expire secrets (tokens are checked by oidc-provider
// with the real clock; only Keygate's own checks read this one).
const clock = new ManualClock(Date.now());

beforeAll(async () => {
  up = await startRecordingUpstream();
  g = await startGateway(
    {
      upstreams: { api: { url: up.url, preset: 'generic', credential: { type: 'none' } } },
      tokens: { secretLifetime: '1h' },
    },
    { identifiers: [], clock },
  );
});
afterAll(async () => {
  await g?.close();
  await up?.close();
});

async function discover(id: string, auth: oidc.ClientAuth) {
  return oidc.discovery(new URL(g.gw.publicOrigin), id, undefined, auth, { execute: [oidc.allowInsecureRequests] });
}

/**
 * A failed client authentication is 401 invalid_client: in the body, and for Basic auth also
 * as a WWW-Authenticate challenge (which openid-client reports instead).
 */
async function expectInvalidClient(p: Promise<unknown>): Promise<void> {
  const e = (await p.then(
    () => undefined,
    (err: unknown) => err,
  )) as { status?: number; error?: string; cause?: { parameters?: { error?: string } }[] } | undefined;
  expect(e?.status).toBe(401);
  expect(e?.error ?? e?.cause?.[0]?.parameters?.error).toBe('invalid_client');
}

async function proxied(token: string): Promise<number> {
  const res = await request(`${g.url}/v1/models`, { headers: { authorization: `Bearer ${token}` } });
  await res.body.text();
  return res.statusCode;
}

describe('client_credentials with client_secret_basic', () => {
  it('discovery lists the grants; the token is a JWT the proxy accepts', async () => {
    const { sp, secret } = await g.gw.oauth.sps.create({ name: 'ci-bot', roles: ['ml-reader'], createdBy: 'test' });
    const config = await discover(sp.id, oidc.ClientSecretBasic(secret?.secret as string));
    const meta = config.serverMetadata();
    expect(meta.issuer).toBe(g.gw.publicOrigin);
    expect(meta.grant_types_supported).toEqual(
      expect.arrayContaining(['client_credentials', 'urn:ietf:params:oauth:grant-type:token-exchange']),
    );
    expect(meta.token_endpoint_auth_methods_supported).toEqual(
      expect.arrayContaining(['client_secret_basic', 'private_key_jwt', 'none']),
    );
    // RFC 8414's path serves the same document.
    const asMeta = (await (await request(`${g.url}/.well-known/oauth-authorization-server`)).body.json()) as {
      issuer: string;
    };
    expect(asMeta.issuer).toBe(g.gw.publicOrigin);

    const tokens = await oidc.clientCredentialsGrant(config, {});
    expect(tokens.token_type.toLowerCase()).toBe('bearer');
    expect(tokens.expires_in).toBe(900);
    const before = up.seen.length;
    expect(await proxied(tokens.access_token)).toBe(200);
    expect(up.seen.length).toBe(before + 1);
  });

  it('only a hash of the secret is stored', async () => {
    const { sp, secret } = await g.gw.oauth.sps.create({ name: 'hash-check', roles: [], createdBy: 'test' });
    const db = (g.gw.store as SqliteStore).db;
    const rows = db.prepare('SELECT hash FROM service_principal_secrets WHERE sp_id = ?').all(sp.id) as {
      hash: string;
    }[];
    expect(rows).toHaveLength(1);
    expect(rows[0]?.hash).toMatch(/^scrypt\$32768\$8\$1\$/);
    expect(rows[0]?.hash).not.toContain(secret?.secret as string);
  });

  it('a wrong secret, an expired secret and a revoked one are invalid_client; nothing reaches the upstream', async () => {
    const { sp, secret } = await g.gw.oauth.sps.create({ name: 'expiring', roles: ['ml-reader'], createdBy: 'test' });
    const good = secret?.secret as string;
    const before = up.seen.length;
    await expectInvalidClient(
      oidc.clientCredentialsGrant(await discover(sp.id, oidc.ClientSecretBasic(`${good}x`)), {}),
    );
    // Rotate: both secrets work during the overlap; revoking the old one ends it.
    const rotated = await g.gw.oauth.sps.rotate(sp.id);
    expect(
      (await oidc.clientCredentialsGrant(await discover(sp.id, oidc.ClientSecretBasic(good)), {})).access_token,
    ).toBeTruthy();
    await g.gw.oauth.sps.revokeSecret(sp.id, secret?.record.id as string);
    await expectInvalidClient(oidc.clientCredentialsGrant(await discover(sp.id, oidc.ClientSecretBasic(good)), {}));
    const fresh = await discover(sp.id, oidc.ClientSecretBasic(rotated.secret.secret));
    expect((await oidc.clientCredentialsGrant(fresh, {})).access_token).toBeTruthy();
    // Past its expiry (1 h here) the secret no longer authenticates, even though it was just accepted.
    clock.advance(3_600_000 + 1);
    try {
      await expectInvalidClient(oidc.clientCredentialsGrant(fresh, {}));
    } finally {
      clock.advance(-(3_600_000 + 1));
    }
    expect(up.seen.length).toBe(before);
  });
});

describe('client_credentials with private_key_jwt', () => {
  it('a registered public key authenticates with no shared secret; another key does not', async () => {
    const { publicKey, privateKey } = await generateKeyPair('ES256', { extractable: true });
    const jwk = { ...(await exportJWK(publicKey)), kid: 'ci-key-1', alg: 'ES256' };
    const { sp, secret } = await g.gw.oauth.sps.create({
      name: 'keyed-bot',
      roles: ['ml-reader'],
      createdBy: 'test',
      jwks: { keys: [jwk] },
    });
    expect(secret).toBeNull();
    const config = await discover(sp.id, oidc.PrivateKeyJwt({ key: privateKey, kid: 'ci-key-1' }));
    const tokens = await oidc.clientCredentialsGrant(config, {});
    expect(await proxied(tokens.access_token)).toBe(200);

    const other = await generateKeyPair('ES256');
    const wrong = await discover(sp.id, oidc.PrivateKeyJwt({ key: other.privateKey, kid: 'ci-key-1' }));
    await expectInvalidClient(oidc.clientCredentialsGrant(wrong, {}));
    // A secret is no way in for a keyed principal.
    const bySecret = await discover(sp.id, oidc.ClientSecretBasic('kgs_guess'));
    await expectInvalidClient(oidc.clientCredentialsGrant(bySecret, {}));
  });

  it('one client assertion sent three times at once (a replayed jti) gets one token', async () => {
    const { publicKey, privateKey } = await generateKeyPair('ES256', { extractable: true });
    const { sp } = await g.gw.oauth.sps.create({
      name: 'raced-bot',
      roles: ['ml-reader'],
      createdBy: 'test',
      jwks: { keys: [{ ...(await exportJWK(publicKey)), kid: 'race-1', alg: 'ES256' }] },
    });
    const assertion = await clientAssertion(privateKey, {
      kid: 'race-1',
      clientId: sp.id,
      audience: g.gw.publicOrigin,
      jti: `race-${Date.now()}`,
    });
    const send = () => assertionGrant(g.url, sp.id, assertion);
    const answers = await Promise.all([send(), send(), send()]);
    expect(answers.filter((a) => a.status === 200)).toHaveLength(1);
    for (const a of answers.filter((x) => x.status !== 200)) expect(a.body.error).toBe('invalid_client');
  });

  it('a private key offered for registration is refused', async () => {
    const { privateKey } = await generateKeyPair('ES256', { extractable: true });
    await expect(
      g.gw.oauth.sps.create({
        name: 'leaky',
        roles: [],
        createdBy: 'test',
        jwks: { keys: [await exportJWK(privateKey)] },
      }),
    ).rejects.toMatchObject({ code: 'BAD_REQUEST' });
  });
});

describe('metrics', () => {
  it('count token answers by grant and outcome', async () => {
    const text = await (await request(`${g.url}/.keygate/metrics`)).body.text();
    const count = (outcome: string) =>
      Number(
        new RegExp(
          `keygate_oauth_token_requests_total\\{grant="client_credentials",outcome="${outcome}"\\} (\\d+)`,
        ).exec(text)?.[1] ?? 0,
      );
    expect(count('issued')).toBeGreaterThanOrEqual(4);
    expect(count('invalid_client')).toBeGreaterThanOrEqual(3);
  });
});
