/**
 * Property-based tests (fast-check, fixed seed, bounded runs) over every JSON endpoint Keygate
 * owns — WebAuthn, OAuth, admin, SCIM, agents — with arbitrary and mutated bodies, content
 * types, headers and query strings, sent as an anonymous caller and as a signed-in admin. For
 * every request: never a 5xx, always the contract's JSON error shape on a refusal, the process
 * keeps answering, and a refused request changes no stored state (people, keys, groups,
 * bindings, service principals, trusts, SCIM tokens, delegations).
 */
import fc from 'fast-check';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BrowserClient } from '../../helpers/browser-client.js';
import { startGateway, startRecordingUpstream, type TestGateway } from '../../helpers/index.js';
import { enroll, invite } from '../../helpers/people.js';

let g: TestGateway;
let up: Awaited<ReturnType<typeof startRecordingUpstream>>;
let admin: BrowserClient;
let scimToken: string;
let userId: string;

beforeAll(async () => {
  up = await startRecordingUpstream();
  g = await startGateway(
    {
      upstreams: { ws: { url: up.url, preset: 'databricks', credential: { type: 'none' } } },
      rateLimits: { perIpPerMinute: 1_000_000, perAccountPerMinute: 1_000_000, apiPerIpPerMinute: 1_000_000 },
    },
    { identifiers: [] },
  );
  admin = (await enroll(g, 'root@example.com', { token: await invite(g, 'root@example.com', ['admin']) })).browser;
  userId = (await g.gw.store.getUserByEmail('root@example.com'))?.id as string;
  scimToken = (await admin.post<{ token: string }>('/.keygate/api/admin/v1/scim-tokens', { name: 'fuzz' })).body.token;
  await g.gw.oauth.sps.create({ name: 'fuzz-agent', roles: [], createdBy: 'test', withSecret: true });
}, 60_000);

afterAll(async () => {
  await g?.close();
  await up?.close();
});

/** Everything a refused request must leave alone, as one comparable value. */
async function state(): Promise<string> {
  const s = g.gw.store;
  const users = await s.listUsers({ limit: 1000 });
  return JSON.stringify({
    users,
    credentials: await Promise.all(users.map((u) => s.listCredentials(u.id))),
    groups: await s.listGroups(),
    bindings: await s.listRoleBindings(),
    sps: await s.listServicePrincipals(),
    trusts: await s.listFederationTrusts(),
    scim: (await s.listScimTokens()).map((t) => ({ ...t, lastUsedAt: null })),
    grants: await s.listAgentGrants(userId),
    approvals: await s.listApprovals(userId, 1000),
  });
}

type Endpoint = {
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  path: string;
  valid: unknown;
  as: 'anon' | 'admin' | 'scim';
};

const ENDPOINTS: Endpoint[] = [
  { method: 'POST', path: '/.keygate/api/webauthn/registration/options', valid: { enrollmentToken: 'x' }, as: 'anon' },
  {
    method: 'POST',
    path: '/.keygate/api/webauthn/registration/verify',
    valid: { response: {}, enrollmentToken: 'x' },
    as: 'anon',
  },
  {
    method: 'POST',
    path: '/.keygate/api/webauthn/authentication/options',
    valid: { email: 'root@example.com' },
    as: 'anon',
  },
  {
    method: 'POST',
    path: '/.keygate/api/webauthn/authentication/verify',
    valid: {
      response: {
        id: 'a',
        rawId: 'a',
        type: 'public-key',
        response: { clientDataJSON: 'e30', authenticatorData: 'AA', signature: 'AA' },
        clientExtensionResults: {},
      },
    },
    as: 'anon',
  },
  { method: 'POST', path: '/.keygate/api/webauthn/step-up/verify', valid: { response: {} }, as: 'admin' },
  { method: 'POST', path: '/.keygate/api/webauthn/registration/options', valid: {}, as: 'admin' },
  { method: 'POST', path: '/.keygate/oauth/token', valid: 'grant_type=client_credentials', as: 'anon' },
  { method: 'POST', path: '/.keygate/oauth/revoke', valid: 'token=x', as: 'anon' },
  { method: 'POST', path: '/.keygate/oauth/introspect', valid: 'token=x', as: 'anon' },
  { method: 'POST', path: '/.keygate/oauth/device_authorization', valid: 'client_id=keygate-cli', as: 'anon' },
  { method: 'POST', path: '/.keygate/api/admin/v1/groups', valid: { name: 'g1', description: 'd' }, as: 'admin' },
  { method: 'POST', path: '/.keygate/api/admin/v1/bindings', valid: { group: 'g1', role: 'ml-reader' }, as: 'admin' },
  {
    method: 'POST',
    path: '/.keygate/api/admin/v1/invitations',
    valid: { email: 'a@example.com', roles: ['ml-reader'] },
    as: 'admin',
  },
  {
    method: 'POST',
    path: '/.keygate/api/admin/v1/service-principals',
    valid: { name: 'sp1', roles: ['ml-reader'] },
    as: 'admin',
  },
  {
    method: 'POST',
    path: '/.keygate/api/admin/v1/federation-trusts',
    valid: { name: 't', issuer: 'https://i' },
    as: 'admin',
  },
  {
    method: 'POST',
    path: '/.keygate/api/admin/v1/policy/test',
    valid: { principal: 'root@example.com', action: 'serving:read' },
    as: 'admin',
  },
  { method: 'GET', path: '/.keygate/api/admin/v1/audit', valid: undefined, as: 'admin' },
  { method: 'GET', path: '/.keygate/api/admin/v1/users', valid: undefined, as: 'admin' },
  {
    method: 'POST',
    path: '/.keygate/scim/v2/Users',
    valid: { schemas: ['urn:ietf:params:scim:schemas:core:2.0:User'], userName: 'u@example.com' },
    as: 'scim',
  },
  {
    method: 'PATCH',
    path: '/.keygate/scim/v2/Users/nope',
    valid: { schemas: ['urn:ietf:params:scim:api:messages:2.0:PatchOp'], Operations: [] },
    as: 'scim',
  },
  {
    method: 'POST',
    path: '/.keygate/scim/v2/Groups',
    valid: { schemas: ['urn:ietf:params:scim:schemas:core:2.0:Group'], displayName: 'g' },
    as: 'scim',
  },
  { method: 'GET', path: '/.keygate/scim/v2/Users', valid: undefined, as: 'scim' },
  {
    method: 'POST',
    path: '/.keygate/api/agents/grants',
    valid: { agent: 'fuzz-agent', actions: ['serving:read'], ttl: '1h' },
    as: 'admin',
  },
  { method: 'POST', path: '/.keygate/api/approvals/apr_x/approve', valid: { response: {} }, as: 'admin' },
  { method: 'POST', path: '/.keygate/api/session/logout', valid: {}, as: 'anon' },
];

/** A JSON value with a random part of a valid body replaced, removed or retyped. */
const mutated = (valid: unknown) =>
  fc.oneof(
    fc.jsonValue({ maxDepth: 3 }),
    valid !== null && typeof valid === 'object' && !Array.isArray(valid)
      ? fc
          .record({
            key: fc.constantFrom(...Object.keys(valid), '__proto__', 'constructor'),
            value: fc.jsonValue({ maxDepth: 2 }),
          })
          .map(({ key, value }) => JSON.parse(JSON.stringify({ ...(valid as object), [key]: value })) as unknown)
      : fc.jsonValue({ maxDepth: 2 }),
  );

const body = (e: Endpoint) =>
  fc.oneof(
    mutated(e.valid).map((v) => ({ type: 'application/json', text: JSON.stringify(v) })),
    fc.string({ maxLength: 300 }).map((t) => ({ type: 'application/json', text: t })),
    fc.string({ maxLength: 300 }).map((t) => ({ type: 'application/x-www-form-urlencoded', text: t })),
    fc
      .dictionary(
        fc.constantFrom('grant_type', 'client_id', 'token', 'scope', 'subject_token', 'resource', 'x'),
        fc.string({ maxLength: 40 }),
      )
      .map((d) => ({ type: 'application/x-www-form-urlencoded', text: new URLSearchParams(d).toString() })),
    fc.constantFrom(
      { type: 'text/plain', text: 'hello' },
      { type: 'application/scim+json', text: '{"schemas":' },
      { type: 'application/json', text: '{"a":'.repeat(200) },
      { type: 'application/json', text: '[]' },
      { type: '', text: '' },
    ),
  );

/** Each header absent most of the time (so that the caller's session or SCIM token is what counts), or garbage. */
const maybe = (a: fc.Arbitrary<string>): fc.Arbitrary<string | undefined> =>
  fc.oneof({ arbitrary: fc.constant(undefined), weight: 4 }, { arbitrary: a, weight: 1 });
const headers = fc
  .record({
    'x-request-id': maybe(fc.string({ maxLength: 80 })),
    authorization: maybe(
      fc.oneof(
        fc.string({ maxLength: 60 }).map((s) => `Bearer ${s}`),
        fc.string({ maxLength: 60 }).map((s) => `DPoP ${s}`),
        fc.string({ maxLength: 60 }).map((s) => `Basic ${Buffer.from(s).toString('base64')}`),
      ),
    ),
    dpop: maybe(fc.string({ maxLength: 60 })),
    accept: maybe(fc.constantFrom('application/json', 'text/html', '*/*', 'application/scim+json')),
  })
  .map((h) => Object.fromEntries(Object.entries(h).filter(([, v]) => v !== undefined)) as Record<string, string>);

const query = fc.dictionary(
  fc.constantFrom('cursor', 'limit', 'kind', 'actor', 'since', 'until', 'filter', 'startIndex', 'count', 'q', 'x'),
  fc.oneof(fc.string({ maxLength: 40 }), fc.integer().map(String)),
  { maxKeys: 3 },
);

/** Header values a client library cannot send (control characters) are left to the raw-socket suite. */
const sendable = (h: Record<string, string>) =>
  Object.fromEntries(Object.entries(h).filter(([, v]) => /^[\t\x20-\x7e]*$/.test(v)));

describe('fuzzing every JSON endpoint', () => {
  it('no 5xx, the JSON error shape on refusals, and a refused request changes nothing stored', async () => {
    const seen = new Map<string, number>();
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...ENDPOINTS).chain((e) => fc.tuple(fc.constant(e), body(e), headers, query)),
        async ([e, b, h, q]) => {
          const before = await state();
          const qs = new URLSearchParams(q).toString();
          const auth: Record<string, string> =
            e.as === 'admin'
              ? { cookie: admin.cookieHeader(), origin: g.gw.publicOrigin }
              : e.as === 'scim' && h.authorization === undefined
                ? { authorization: `Bearer ${scimToken}` }
                : {};
          const r = await request(`${g.url}${e.path}${qs === '' ? '' : `?${qs}`}`, {
            method: e.method,
            headers: {
              ...sendable(h),
              ...auth,
              ...(e.method === 'GET' || b.type === '' ? {} : { 'content-type': b.type }),
            },
            ...(e.method === 'GET' ? {} : { body: b.text }),
          });
          const text = await r.body.text();
          seen.set(
            `${e.method} ${e.path} ${r.statusCode}`,
            (seen.get(`${e.method} ${e.path} ${r.statusCode}`) ?? 0) + 1,
          );
          expect(r.statusCode, `${e.method} ${e.path} → ${r.statusCode} ${text.slice(0, 300)}`).toBeLessThan(500);
          if (r.statusCode >= 400) {
            // Refused: no stored state changed.
            expect(await state(), `${e.method} ${e.path} ${r.statusCode} changed state`).toBe(before);
            const ct = String(r.headers['content-type'] ?? '');
            if (
              ct.includes('json') &&
              !e.path.startsWith('/.keygate/oauth/') &&
              !e.path.startsWith('/.keygate/scim/')
            ) {
              // Keygate's own APIs answer in the contract's shape (OAuth and SCIM in theirs).
              expect(JSON.parse(text)).toHaveProperty('error_code');
            }
          }
        },
      ),
      { seed: 20261204, numRuns: 600, endOnFailure: true },
    );
    // Valid requests got through too (the session and the SCIM token were in play, not only refusals).
    const ok = [...seen.keys()].filter((k) => / 2\d\d$/.test(k)).map((k) => k.split(' ')[1]);
    expect(ok).toEqual(expect.arrayContaining(['/.keygate/api/admin/v1/users', '/.keygate/scim/v2/Users']));
    // The process still answers, and every endpoint was exercised.
    const health = await request(`${g.url}/.keygate/healthz`);
    await health.body.text();
    expect(health.statusCode).toBe(200);
    const endpoints = new Set([...seen.keys()].map((k) => k.split(' ').slice(0, 2).join(' ')));
    expect(endpoints.size).toBe(new Set(ENDPOINTS.map((e) => `${e.method} ${e.path}`)).size);
  }, 180_000);
});
