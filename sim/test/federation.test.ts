// Federation policies as databricks-api.md §1.6 describes them: validated before listening, the
// account id as the default audience, inline keys, keys fetched again when the issuer rotates, and
// a record of whom each token was issued for.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEMO_BOB, DEMO_SP, demoSimOptions, type SimFederationPolicy, startSimulator } from '../index.js';
import { form, startIssuer, type TestIssuer } from './helpers.js';

const EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const JWT_TYPE = 'urn:ietf:params:oauth:token-type:jwt';
const ACCOUNT = '11111111-2222-4333-8444-555555555555';

let issuer: TestIssuer;
beforeAll(async () => {
  issuer = await startIssuer();
});
afterAll(() => issuer.close());

const exchangeFields = (jwt: string, extra: Record<string, string> = {}) => ({
  grant_type: EXCHANGE,
  subject_token: jwt,
  subject_token_type: JWT_TYPE,
  scope: 'all-apis',
  ...extra,
});

describe('policy validation (before listening)', () => {
  it.each<[string, SimFederationPolicy, RegExp]>([
    [
      'an SP policy without subject',
      { issuer: 'https://i', audiences: ['a'], servicePrincipalClientId: DEMO_SP.userName },
      /subject is required/,
    ],
    [
      'an account-wide policy with subject',
      { issuer: 'https://i', audiences: ['a'], subject: 'x' },
      /subject is not allowed/,
    ],
    ['no issuer', { issuer: '', audiences: ['a'] }, /issuer is required/],
    ['empty audiences', { issuer: 'https://i', audiences: [] }, /audiences must not be empty/],
    ['two key sources', { issuer: 'https://i', jwksUri: 'https://i/jwks', jwksJson: { keys: [] } }, /not both/],
  ])('refuses %s', async (_name, policy, message) => {
    await expect(startSimulator(demoSimOptions({ federationPolicies: [policy] }))).rejects.toThrow(message);
  });
});

describe('token exchange', () => {
  it('audiences default to the account id', async () => {
    const sim = await startSimulator(
      demoSimOptions({ accountId: ACCOUNT, federationPolicies: [{ issuer: issuer.url }] }),
    );
    try {
      const ok = await form(sim, exchangeFields(await issuer.sign({ sub: DEMO_BOB.userName, aud: ACCOUNT })));
      expect(ok.status).toBe(200);
      const wrong = await form(
        sim,
        exchangeFields(await issuer.sign({ sub: DEMO_BOB.userName, aud: `${sim.url}/oidc/v1/token` })),
      );
      expect([wrong.status, wrong.body.error]).toEqual([400, 'invalid_grant']);
      expect(String(wrong.body.error_description)).toMatch(/claim 'aud'/);
    } finally {
      await sim.close();
    }
  });

  it('inline jwksJson needs no fetch; records the identity, subject and key id', async () => {
    const before = issuer.jwksFetches;
    const sim = await startSimulator(
      demoSimOptions({
        federationPolicies: [
          { issuer: issuer.url, audiences: ['ws'], jwksJson: issuer.jwks() as { keys: Record<string, unknown>[] } },
        ],
      }),
    );
    try {
      const r = await form(sim, exchangeFields(await issuer.sign({ sub: 'BOB@example.com', aud: 'ws' })));
      expect(r.status).toBe(200);
      expect(issuer.jwksFetches).toBe(before);
      expect(sim.tokenRequests).toEqual([
        {
          at: expect.any(Number),
          grantType: EXCHANGE,
          clientId: null,
          ok: true,
          subject: 'BOB@example.com',
          keyId: 'test-key-1',
          identity: DEMO_BOB.userName,
        },
      ]);
    } finally {
      await sim.close();
    }
  });

  it("a rotated issuer key is fetched when first seen, at most once per cooldown on the simulator's clock", async () => {
    const rotating = await startIssuer();
    let now = Date.now();
    const sim = await startSimulator(
      demoSimOptions({
        now: () => now,
        jwksCooldownSeconds: 30,
        federationPolicies: [{ issuer: rotating.url, audiences: ['ws'] }],
      }),
    );
    try {
      const sign = () =>
        rotating.sign({ sub: DEMO_BOB.userName, aud: 'ws' }, { expiresIn: Math.floor(now / 1000) + 300 });
      expect((await form(sim, exchangeFields(await sign()))).status).toBe(200);
      expect(rotating.jwksFetches).toBe(1);
      // Cached: the same key needs no fetch.
      expect((await form(sim, exchangeFields(await sign()))).status).toBe(200);
      expect(rotating.jwksFetches).toBe(1);

      await rotating.rotate();
      // Within the cooldown of the last fetch, an unknown kid is refused without a fetch.
      now += 10_000;
      const early = await form(sim, exchangeFields(await sign()));
      expect([early.status, early.body.error]).toEqual([400, 'invalid_grant']);
      expect(String(early.body.error_description)).toMatch(/No key in the issuer's JWKS/);
      expect(rotating.jwksFetches).toBe(1);
      // After it, the new key is fetched once and accepted.
      now += 21_000;
      const later = await form(sim, exchangeFields(await sign()));
      expect(later.status).toBe(200);
      expect(rotating.jwksFetches).toBe(2);
      expect(sim.tokenRequests.at(-1)).toMatchObject({ ok: true, keyId: 'test-key-2', identity: DEMO_BOB.userName });
      // A made-up kid right after is refused without fetching again.
      const madeUp = await form(
        sim,
        exchangeFields(await rotating.sign({ sub: DEMO_BOB.userName, aud: 'ws' }, { kid: 'nope' })),
      );
      expect(madeUp.body.error).toBe('invalid_grant');
      expect(rotating.jwksFetches).toBe(2);
    } finally {
      await sim.close();
      await rotating.close();
    }
  });
});
