import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Identity } from '../authenticate/identity.js';
import { parseConfig } from '../config/load.js';
import type { ConfigInput } from '../config/schema.js';
import { type Action, ACTION_NAMES } from './actions.js';
import type { ResourceRef } from './classify/types.js';
import { Authorizer, type DecisionInput, PolicyError } from './engine.js';

const dir = mkdtempSync(join(tmpdir(), 'keygate-engine-'));
let files = 0;
function policyFile(text: string): string {
  const f = join(dir, `p${files++}.cedar`);
  writeFileSync(f, text);
  return f;
}

function authorizer(authorization: NonNullable<ConfigInput['authorization']> = {}): Authorizer {
  return new Authorizer(parseConfig({ authorization }));
}

const NOW = Date.UTC(2026, 3, 1, 12);

interface Who {
  type?: 'user' | 'service_principal' | 'agent';
  id?: string;
  roles?: string[];
  groups?: string[];
  ageS?: number;
  uv?: boolean;
}

function identity(w: Who = {}): Identity {
  const id = w.id ?? 'alice';
  const type = w.type ?? 'user';
  return {
    principal: {
      type,
      id,
      ...(type === 'user' ? { email: `${id}@example.com` } : { displayName: id }),
      groups: w.groups ?? [],
      roles: w.roles ?? [],
    },
    auth: {
      method: 'webauthn',
      authEventId: 'evt',
      authTime: NOW - (w.ageS ?? 10) * 1000,
      uv: w.uv ?? true,
      deviceBound: true,
    },
    cacheKey: id,
  };
}

function input(who: Who, action: Action, resource: ResourceRef, extra: Partial<DecisionInput> = {}): DecisionInput {
  return { identity: identity(who), action, resource, ip: '10.0.0.1', method: 'POST', path: '/x', now: NOW, ...extra };
}

const WORKSPACE: ResourceRef = { type: 'Workspace', id: 'workspace' };
const endpoint = (id: string): ResourceRef => ({ type: 'Endpoint', id });

/** mulberry32: a small seeded PRNG, so a failure replays exactly. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Random requests: fresh ones, exact repeats of earlier ones, and repeats with one field changed. */
function* randomRequests(seed: number, n: number): Generator<DecisionInput> {
  const rnd = mulberry32(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)] as T;
  const subset = <T>(xs: readonly T[]): T[] => xs.filter(() => rnd() < 0.3);
  const principals = [
    { type: 'user', id: 'alice' },
    { type: 'user', id: 'bob' },
    { type: 'user', id: 'dana' },
    { type: 'service_principal', id: 'etl-bot' },
    { type: 'agent', id: 'helper' },
  ] as const;
  const roles = ['ml-reader', 'ml-inference', 'ml-engineer', 'ml-deployer', 'admin', 'fraud-invoker'];
  const groups = ['data-science', 'fraud-team', 'contractors'];
  const resources: ResourceRef[] = [
    WORKSPACE,
    endpoint('iris'),
    endpoint('fraud-scorer'),
    endpoint('prod-llm'),
    endpoint('Fraud-X'),
    { type: 'Model', id: 'main.ml.iris' },
    { type: 'Model', id: 'dev.ml.x' },
    { type: 'Job', id: '123' },
    { type: 'Job', id: 'adhoc' },
    { type: 'Api', id: 'openai' },
  ];
  const ages = [0, 5, 119, 120, 121, 299, 300, 301, 600, 86_400];
  const ips = ['10.0.0.1', '10.0.0.2', '192.0.2.7'];
  const methods = ['GET', 'POST', 'DELETE', 'PUT'];
  const paths = ['/api/2.0/serving-endpoints', '/api/2.0/workspace/import', '/api/2.0/mlflow/runs/delete', '/x'];

  const fresh = (): DecisionInput => {
    const p = pick(principals);
    const email = p.type === 'user' ? { email: `${p.id}@example.com` } : { displayName: p.id };
    return {
      identity: {
        principal: { ...p, ...email, roles: subset(roles), groups: subset(groups) },
        auth: {
          method: pick(['webauthn', 'token']),
          authEventId: 'evt',
          // Sub-second offsets exercise the flooring of age_s.
          authTime: NOW - pick(ages) * 1000 - Math.floor(rnd() * 1000),
          uv: rnd() < 0.75,
          deviceBound: rnd() < 0.5,
          ...(rnd() < 0.5 ? { aaguid: pick(['aaguid-1', 'aaguid-2']) } : {}),
          ...(rnd() < 0.7 ? { attested: rnd() < 0.5 } : {}),
        },
        cacheKey: p.id,
      },
      action: pick(ACTION_NAMES),
      resource: pick(resources),
      ip: pick(ips),
      method: pick(methods),
      path: pick(paths),
      now: NOW,
    };
  };
  const mutate = (x: DecisionInput): DecisionInput => {
    const y = fresh();
    switch (Math.floor(rnd() * 9)) {
      case 0:
        return { ...x, action: y.action };
      case 1:
        return { ...x, resource: y.resource };
      case 2:
        return { ...x, ip: y.ip };
      case 3:
        return { ...x, method: y.method, path: y.path };
      case 4:
        return { ...x, identity: { ...x.identity, auth: { ...x.identity.auth, authTime: y.identity.auth.authTime } } };
      case 5:
        return { ...x, identity: { ...x.identity, auth: { ...x.identity.auth, uv: !x.identity.auth.uv } } };
      case 8:
        return { ...x, identity: { ...x.identity, auth: { ...x.identity.auth, attested: !x.identity.auth.attested } } };
      case 6:
        return {
          ...x,
          identity: { ...x.identity, principal: { ...x.identity.principal, groups: y.identity.principal.groups } },
        };
      default:
        return {
          ...x,
          identity: { ...x.identity, principal: { ...x.identity.principal, roles: y.identity.principal.roles } },
        };
    }
  };
  const history: DecisionInput[] = [];
  for (let i = 0; i < n; i++) {
    const r = rnd();
    const next = history.length < 50 || r < 0.3 ? fresh() : r < 0.6 ? pick(history) : mutate(pick(history));
    history.push(next);
    yield next;
  }
}

/** decide() (cached) against evaluate() (Cedar, no cache) for every request. */
function compareOnRandomRequests(a: Authorizer, seed: number, n: number) {
  const counts = { allow: 0, deny: 0, step_up: 0 };
  const mismatches: string[] = [];
  for (const req of randomRequests(seed, n)) {
    const ageS = Math.max(0, Math.floor((req.now - req.identity.auth.authTime) / 1000));
    const direct = a.evaluate(req, a.rolesOf(req.identity), ageS, ageS <= a.stepUpMaxAgeS);
    const cached = a.decide(req);
    counts[direct.effect]++;
    if (JSON.stringify(cached) !== JSON.stringify(direct) && mismatches.length < 5) {
      const p = req.identity.principal;
      mismatches.push(
        `${p.type}:${p.id} roles=${p.roles} groups=${p.groups} ${req.action} ${req.resource.type}::${req.resource.id} ` +
          `age=${ageS} uv=${req.identity.auth.uv} ip=${req.ip} ${req.method} ${req.path}: ` +
          `decide=${JSON.stringify(cached)} evaluate=${JSON.stringify(direct)}`,
      );
    }
  }
  return { counts, mismatches };
}

const RAW_POLICIES = `
@id("no-prod")
forbid (principal, action == Action::"serving:invoke", resource)
  when { resource is Endpoint && resource.name like "prod-*" };

@id("office-only-secrets")
forbid (principal, action == Action::"secrets:write", resource)
  unless { context.request.ip == "10.0.0.1" };

@id("recent-deploys")
forbid (principal, action == Action::"serving:manage", resource)
  when { context.auth.age_s > 120 };

@id("agents-read")
permit (principal is Agent, action == Action::"serving:read", resource);

@id("no-contractor-writes")
forbid (principal in Group::"contractors", action == Action::"mlflow:write", resource)
  when { context.request.method == "DELETE" };

@id("no-workspace-import")
forbid (principal, action == Action::"workspace:other", resource)
  when { context.request.path like "/api/2.0/workspace/*" };

@id("jobs-need-a-key")
forbid (principal, action == Action::"jobs:run", resource)
  unless { context.auth.method == "webauthn" || context.auth.device_bound };

@id("attested-keys-for-secrets")
forbid (principal, action == Action::"secrets:read", resource)
  unless { context.auth.attested };

@id("known-authenticator")
forbid (principal, action == Action::"mlflow:promote", resource)
  when { context.auth.aaguid == "aaguid-2" };
`;

const BASE_CONFIG = {
  bindings: [
    { group: 'data-science', roles: ['ml-engineer'] },
    { group: 'fraud-team', roles: ['fraud-invoker'] },
    { user: 'dana@example.com', roles: ['ml-deployer'] },
  ],
  roles: {
    'fraud-invoker': { grants: [{ actions: ['serving:invoke' as const], resources: ['Endpoint::fraud-*'] }] },
  },
};

describe('decide() (cached) agrees with evaluate() (Cedar)', () => {
  it('on 2,000 random requests: shipped roles, bindings, a glob role, and raw policies reading age, ip, method, path, aaguid, attestation, groups', () => {
    const a = authorizer({ ...BASE_CONFIG, policyFiles: [policyFile(RAW_POLICIES)] });
    const { counts, mismatches } = compareOnRandomRequests(a, 42, 2_000);
    expect(mismatches).toEqual([]);
    // Not vacuous: every outcome occurs often.
    expect(counts.allow).toBeGreaterThan(100);
    expect(counts.deny).toBeGreaterThan(100);
    expect(counts.step_up).toBeGreaterThan(50);
  });

  it('repeated keys: the same request decided twice, and a second authorizer, agree', () => {
    const a = authorizer({ ...BASE_CONFIG, policyFiles: [policyFile(RAW_POLICIES)] });
    const b = authorizer({ ...BASE_CONFIG, policyFiles: [policyFile(RAW_POLICIES)] });
    for (const req of randomRequests(7, 200)) {
      const first = a.decide(req);
      expect(a.decide(req)).toEqual(first);
      expect(b.decide(req)).toEqual(first);
      // Shared between requests: no caller can change a cached decision for the others.
      expect(Object.isFrozen(first) && Object.isFrozen(first.reasons)).toBe(true);
      expect(() => first.reasons.push('x')).toThrow(TypeError);
    }
  });

  // Cedar lets a policy read a record attribute with brackets as well as a dot. Both forms must
  // put the value into the cache key, or one caller's decision is served to another.
  it('with policies that read context attributes with bracket syntax', () => {
    const a = authorizer({
      ...BASE_CONFIG,
      policyFiles: [
        policyFile(`
@id("office-only-secrets")
forbid (principal, action == Action::"secrets:write", resource)
  unless { context.request["ip"] == "10.0.0.1" };

@id("no-delete")
forbid (principal, action == Action::"mlflow:write", resource)
  when { context["request"]["method"] == "DELETE" };

@id("no-workspace-import")
forbid (principal, action == Action::"workspace:other", resource)
  when { context.request["path"] like "/api/2.0/workspace/*" };
`),
      ],
    });
    const { mismatches } = compareOnRandomRequests(a, 99, 600);
    expect(mismatches).toEqual([]);
  });

  // Group names come from identity providers, and LDAP-style names contain commas.
  it('group names that contain the key separator do not collide', () => {
    const a = authorizer({
      policyFiles: [
        policyFile('@id("group-a") permit (principal in Group::"a", action == Action::"serving:read", resource);'),
      ],
    });
    const inGroupA = input({ groups: ['a', 'b'] }, 'serving:read', WORKSPACE);
    const inGroupAB = input({ groups: ['a,b'] }, 'serving:read', WORKSPACE);
    expect(a.decide(inGroupA)).toEqual({ effect: 'allow', reasons: ['group-a'] });
    expect(a.evaluate(inGroupAB, [], 10, true)).toEqual({ effect: 'deny', reasons: ['default-deny'] });
    expect(a.decide(inGroupAB)).toEqual({ effect: 'deny', reasons: ['default-deny'] });
  });
});

describe('decisions and their reasons', () => {
  const a = authorizer();

  it('a permit names the granting role; nothing permitted is default-deny', () => {
    expect(a.decide(input({ roles: ['ml-reader'] }, 'serving:read', WORKSPACE))).toEqual({
      effect: 'allow',
      reasons: ['role:ml-reader:0'],
    });
    expect(a.decide(input({ roles: ['ml-reader'] }, 'serving:invoke', endpoint('iris')))).toEqual({
      effect: 'deny',
      reasons: ['default-deny'],
    });
    expect(a.decide(input({}, 'serving:read', WORKSPACE))).toEqual({ effect: 'deny', reasons: ['default-deny'] });
  });

  it('credential minting is denied even for an admin, by the guard rail', () => {
    expect(a.decide(input({ roles: ['admin'] }, 'credentials:mint', WORKSPACE))).toEqual({
      effect: 'deny',
      reasons: ['keygate:deny-credential-minting'],
    });
  });

  it('step-up: stale or unverified logins of a permitted sensitive action get step_up; fresh and verified pass', () => {
    const deployer = { roles: ['ml-deployer'] };
    const manage = (w: Who) => a.decide(input({ ...deployer, ...w }, 'serving:manage', endpoint('iris')));
    expect(manage({ ageS: 10, uv: true })).toEqual({ effect: 'allow', reasons: ['role:ml-deployer:0'] });
    expect(manage({ ageS: 300, uv: true })).toEqual({ effect: 'allow', reasons: ['role:ml-deployer:0'] });
    expect(manage({ ageS: 301, uv: true })).toEqual({ effect: 'step_up', reasons: ['keygate:step-up'] });
    expect(manage({ ageS: 600, uv: true })).toEqual({ effect: 'step_up', reasons: ['keygate:step-up'] });
    expect(manage({ ageS: 10, uv: false })).toEqual({ effect: 'step_up', reasons: ['keygate:step-up'] });
    // Not sensitive: age and uv do not matter.
    expect(a.decide(input({ ...deployer, ageS: 86_400, uv: false }, 'serving:invoke', endpoint('iris')))).toEqual({
      effect: 'allow',
      reasons: ['role:ml-deployer:0'],
    });
  });

  it('a step-up is offered only when a fresh login would be allowed; otherwise the real reason is given', () => {
    expect(a.decide(input({ roles: ['ml-engineer'], ageS: 600 }, 'serving:manage', endpoint('iris')))).toEqual({
      effect: 'deny',
      reasons: ['default-deny'],
    });
    expect(a.decide(input({ roles: ['admin'], ageS: 600 }, 'credentials:mint', WORKSPACE))).toEqual({
      effect: 'deny',
      reasons: ['keygate:deny-credential-minting', 'keygate:step-up'],
    });
  });

  it('stepUpMaxAge from config is the window', () => {
    const b = authorizer({ stepUpMaxAge: '1m' });
    expect(b.stepUpMaxAgeS).toBe(60);
    expect(b.decide(input({ roles: ['admin'], ageS: 61 }, 'secrets:read', WORKSPACE)).effect).toBe('step_up');
    expect(b.decide(input({ roles: ['admin'], ageS: 60 }, 'secrets:read', WORKSPACE)).effect).toBe('allow');
  });

  it('bindings: a group and a user email (any case) bring their roles', () => {
    const b = authorizer({
      bindings: [
        { group: 'data-science', roles: ['ml-engineer'] },
        { user: 'Dana@Example.com', roles: ['ml-deployer'] },
      ],
    });
    expect(b.rolesOf(identity({ groups: ['data-science'], roles: ['ml-reader'] }))).toEqual([
      'ml-engineer',
      'ml-reader',
    ]);
    expect(b.rolesOf(identity({ id: 'dana' }))).toEqual(['ml-deployer']);
    expect(b.decide(input({ groups: ['data-science'] }, 'jobs:run', { type: 'Job', id: '1' }))).toEqual({
      effect: 'allow',
      reasons: ['role:ml-engineer:0'],
    });
  });

  it('a custom role with a resource glob matches by name, case-sensitively', () => {
    const b = authorizer({
      roles: { fraud: { grants: [{ actions: ['serving:invoke'], resources: ['Endpoint::fraud-*'] }] } },
    });
    const who = { roles: ['fraud'] };
    expect(b.decide(input(who, 'serving:invoke', endpoint('fraud-scorer')))).toEqual({
      effect: 'allow',
      reasons: ['role:fraud:0'],
    });
    expect(b.decide(input(who, 'serving:invoke', endpoint('Fraud-Scorer'))).effect).toBe('deny');
    expect(b.decide(input(who, 'serving:invoke', endpoint('iris'))).effect).toBe('deny');
    expect(b.decide(input(who, 'serving:invoke', { type: 'Model', id: 'fraud-model' })).effect).toBe('deny');
  });
});

describe('raw Cedar policies', () => {
  it('a forbid beats an admin permit and is named in the reasons', () => {
    const a = authorizer({
      policyFiles: [
        policyFile(
          '@id("no-prod") forbid (principal, action == Action::"serving:invoke", resource) when { resource is Endpoint && resource.name like "prod-*" };\n',
        ),
      ],
    });
    expect(a.decide(input({ roles: ['admin'] }, 'serving:invoke', endpoint('prod-llm')))).toEqual({
      effect: 'deny',
      reasons: ['no-prod'],
    });
    expect(a.decide(input({ roles: ['admin'] }, 'serving:invoke', endpoint('iris')))).toEqual({
      effect: 'allow',
      reasons: ['role:admin:0'],
    });
  });

  it('a raw permit is named in the reasons; a policy without @id gets file#n', () => {
    const f = policyFile(
      'permit (principal == User::"alice", action == Action::"workspace:other", resource);\n' +
        '@id("bob-reads") permit (principal == User::"bob", action == Action::"workspace:read", resource);\n',
    );
    const a = authorizer({ policyFiles: [f] });
    expect(a.decide(input({}, 'workspace:other', WORKSPACE))).toEqual({ effect: 'allow', reasons: [`${f}#0`] });
    expect(a.decide(input({ id: 'bob' }, 'workspace:read', WORKSPACE))).toEqual({
      effect: 'allow',
      reasons: ['bob-reads'],
    });
  });

  it('an agent acting for a person holds their roles and bindings; policies can single out agents and name the person', () => {
    const f = policyFile(
      '@id("agents-no-secrets") forbid (principal is Agent, action == Action::"secrets:read", resource);\n' +
        '@id("not-for-bob") forbid (principal is Agent, action == Action::"serving:invoke", resource) when { principal has user && principal.user == User::"bob" };\n',
    );
    const a = authorizer({ policyFiles: [f], bindings: [{ user: 'alice@example.com', roles: ['ml-engineer'] }] });
    const agentFor = (person: string, roles: string[] = []): DecisionInput => ({
      ...input({ type: 'agent', id: 'copilot', roles }, 'serving:invoke', endpoint('iris')),
      identity: {
        ...identity({ type: 'agent', id: 'copilot', roles }),
        principal: {
          type: 'agent',
          id: 'copilot',
          displayName: 'copilot',
          groups: [],
          roles,
          onBehalfOf: { id: person, email: `${person}@example.com`, grantId: 'dlg_1' },
        },
      },
    });
    // Alice's binding (by email) reaches her agent; Bob's agent is stopped by the policy naming him.
    expect(a.decide(agentFor('alice'))).toEqual({ effect: 'allow', reasons: ['role:ml-engineer:0'] });
    expect(a.decide(agentFor('bob', ['ml-engineer']))).toEqual({ effect: 'deny', reasons: ['not-for-bob'] });
    // The same agent for two people is two decisions, not one cached for both.
    expect(a.decide(agentFor('alice'))).toEqual({ effect: 'allow', reasons: ['role:ml-engineer:0'] });
    // Agents never read secrets, whatever the person may do.
    const secrets = { ...agentFor('alice', ['admin']), action: 'secrets:read' as Action };
    expect(a.decide(secrets)).toEqual({ effect: 'deny', reasons: ['agents-no-secrets'] });
    expect(a.evaluate(agentFor('bob', ['ml-engineer']), ['ml-engineer'], 10, true)).toEqual({
      effect: 'deny',
      reasons: ['not-for-bob'],
    });
  });

  it('a raw policy can still not allow credential minting', () => {
    const a = authorizer({
      policyFiles: [policyFile('@id("mint") permit (principal, action == Action::"credentials:mint", resource);')],
    });
    expect(a.decide(input({}, 'credentials:mint', WORKSPACE))).toEqual({
      effect: 'deny',
      reasons: ['keygate:deny-credential-minting'],
    });
  });
});

describe('policy errors at start', () => {
  function startError(authorization: NonNullable<ConfigInput['authorization']>): PolicyError {
    try {
      authorizer(authorization);
    } catch (e) {
      expect(e).toBeInstanceOf(PolicyError);
      return e as PolicyError;
    }
    return expect.fail('the authorizer started');
  }

  it('an attribute typo names the file and the line', () => {
    const f = policyFile(
      [
        '// Verified users only.',
        '@id("fine")',
        'permit (principal, action == Action::"serving:read", resource);',
        '',
        '@id("uv-only")',
        'forbid (principal, action, resource)',
        '  unless { context.auth.uvv };',
        '',
      ].join('\n'),
    );
    const e = startError({ policyFiles: [f] });
    expect(e.message).toContain(`${f}:7:`);
    expect(e.message).toContain('uvv');
    expect(e.issues.length).toBeGreaterThan(0);
    for (const issue of e.issues) expect(issue.startsWith(`${f}:7:`)).toBe(true);
  });

  it('a typo in an entity attribute names the file and the line', () => {
    const f = policyFile(
      '@id("a")\npermit (principal, action, resource)\n  when {\n    resource is Endpoint &&\n    resource.nmae == "x"\n  };\n',
    );
    const e = startError({ policyFiles: [f] });
    expect(e.issues.some((i) => i.startsWith(`${f}:5:`))).toBe(true);
  });

  it('a syntax error names the file and the line', () => {
    const f = policyFile(
      '@id("a")\npermit (principal, action, resource);\n\n@id("b")\npermit (principal, action == , resource);\n',
    );
    const e = startError({ policyFiles: [f] });
    expect(e.message).toContain('invalid Cedar policy file');
    expect(e.issues.some((i) => i.startsWith(`${f}:5:`))).toBe(true);
  });

  it('an unknown entity type or action is refused', () => {
    const f = policyFile('@id("x")\npermit (principal, action == Action::"serving:delete", resource);\n');
    const e = startError({ policyFiles: [f] });
    expect(e.message).toContain(f);
  });

  it('a duplicate policy id, in one file, across files, or against a generated id, names where', () => {
    const one = policyFile(
      '@id("x")\npermit (principal, action == Action::"serving:read", resource);\n@id("x")\npermit (principal, action == Action::"jobs:read", resource);\n',
    );
    expect(startError({ policyFiles: [one] }).issues).toEqual([`${one}:3: "x" is already defined`]);

    const a = policyFile('@id("y") permit (principal, action == Action::"serving:read", resource);\n');
    const b = policyFile('\n\n@id("y") permit (principal, action == Action::"jobs:read", resource);\n');
    expect(startError({ policyFiles: [a, b] }).issues).toEqual([`${b}:3: "y" is already defined`]);

    const c = policyFile('@id("role:admin:0") permit (principal, action == Action::"serving:read", resource);\n');
    expect(startError({ policyFiles: [c] }).issues).toEqual([`${c}:1: "role:admin:0" is already defined`]);
    const d = policyFile('@id("keygate:step-up") permit (principal, action == Action::"serving:read", resource);\n');
    expect(startError({ policyFiles: [d] }).message).toContain('keygate:step-up');
  });

  it('a missing policy file is a start-up error naming it', () => {
    const e = startError({ policyFiles: [join(dir, 'missing.cedar')] });
    expect(e.message).toContain('missing.cedar');
  });
});
