/**
 * bench/policy: authorization decisions per second on one core, for the shipped roles plus 50
 * custom roles and 200 group bindings — through the decision cache (the hot path) and straight
 * through Cedar (what every cache miss costs) — in the same process.
 *
 *   npx tsx bench/policy/run.ts            # ROUNDS=5, 200k cached / 5k direct decisions per round
 */
import { cpus } from 'node:os';
import type { Identity } from '../../src/authenticate/identity.js';
import { type Action, ACTION_NAMES } from '../../src/authorize/actions.js';
import type { ResourceRef } from '../../src/authorize/classify/types.js';
import { Authorizer } from '../../src/authorize/engine.js';
import { parseConfig } from '../../src/config/load.js';

const ROUNDS = Number(process.env.ROUNDS ?? 5);
const CACHED = Number(process.env.CACHED ?? 200_000);
const DIRECT = Number(process.env.DIRECT ?? 5_000);

// A seeded PRNG, so every run measures the same request mix.
let seed = 42;
const rand = () => {
  seed = (seed + 0x6d2b79f5) | 0;
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
};
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)] as T;

const roles: Record<string, { grants: { actions: Action[]; resources: string[] }[] }> = {};
for (let i = 0; i < 50; i++) {
  roles[`team-${i}`] = {
    grants: [
      { actions: ['serving:invoke', 'serving:read'], resources: [`Endpoint::team${i}-*`] },
      { actions: ['mlflow:read', 'mlflow:write'], resources: ['*'] },
    ],
  };
}
const shipped = ['ml-reader', 'ml-inference', 'ml-engineer', 'ml-deployer', 'admin'];
const bindings = Array.from({ length: 200 }, (_, i) => ({
  group: `group-${i}`,
  roles: [i % 5 === 0 ? (shipped[i % shipped.length] as string) : `team-${i % 50}`],
}));
const authorizer = new Authorizer(parseConfig({ authorization: { roles, bindings } }));

// 2,000 principals with 1–3 groups each, hitting endpoints, models and the workspace.
const now = Date.now();
const principals: Identity[] = Array.from({ length: 2_000 }, (_, i) => ({
  principal: {
    type: 'user',
    id: `user-${i}`,
    email: `user-${i}@example.com`,
    groups: Array.from({ length: 1 + Math.floor(rand() * 3) }, () => `group-${Math.floor(rand() * 200)}`),
    roles: [],
  },
  auth: { method: 'webauthn', authEventId: `e${i}`, authTime: now - Math.floor(rand() * 900) * 1000, uv: true, deviceBound: true },
  cacheKey: `u${i}`,
}));
const resources: ResourceRef[] = [
  { type: 'Workspace', id: 'workspace' },
  ...Array.from({ length: 100 }, (_, i) => ({ type: 'Endpoint' as const, id: `team${i % 50}-model-${i}` })),
  { type: 'Model', id: 'main.ml.iris' },
];
const requests = Array.from({ length: 50_000 }, () => ({
  identity: pick(principals),
  action: pick(ACTION_NAMES),
  resource: pick(resources),
}));

function cached(n: number): number {
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    const r = requests[i % requests.length] as (typeof requests)[number];
    authorizer.decide({ ...r, ip: '10.0.0.1', method: 'POST', path: '/x', now });
  }
  return (n / (performance.now() - t0)) * 1000;
}

function direct(n: number): number {
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    const r = requests[i % requests.length] as (typeof requests)[number];
    authorizer.evaluate({ ...r, ip: '10.0.0.1', method: 'POST', path: '/x', now }, authorizer.rolesOf(r.identity), 10, true);
  }
  return (n / (performance.now() - t0)) * 1000;
}

cached(requests.length); // warm the cache with every distinct request once
direct(500);
const c: number[] = [];
const d: number[] = [];
for (let i = 0; i < ROUNDS; i++) {
  c.push(cached(CACHED));
  d.push(direct(DIRECT));
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
console.log(`machine: ${cpus()[0]?.model ?? 'unknown'} (${cpus().length} cores), node ${process.version}`);
console.log(`policies: ${Object.keys(authorizer.policies).length} (5 shipped roles + 50 custom roles, 200 group bindings)`);
console.log(`cached decisions : ${median(c).toFixed(0)}/s (${(1e6 / median(c)).toFixed(2)} µs each; target ≥ 50,000/s) ${median(c) >= 50_000 ? 'MET' : 'NOT MET'}`);
console.log(`direct Cedar     : ${median(d).toFixed(0)}/s (${(1e6 / median(d)).toFixed(0)} µs each)`);
console.log(`cache speed-up   : ${(median(c) / median(d)).toFixed(0)}×`);
