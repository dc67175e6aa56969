/**
 * Realistic audit entries for the benchmark, from a seeded generator (the same seed gives the
 * same actors, routes and decisions; ids are random UUIDs, as in the gateway).
 *
 * - 1,000 actors, each one frozen object reused for all its records, as `actorOf` caches them
 *   per identity: 700 people with a browser session, 150 people with a CLI token, 150 service
 *   principals. Activity is skewed (Zipf, s = 0.8): the busiest actor makes ~200× the records
 *   of the quietest.
 * - 99 % `http.request` (routes of the Databricks preset; 95 % allowed and forwarded, the rest
 *   denied or sent to step-up), 1 % `token.issued` / `auth.login` built per event, as
 *   `fromAuthEvent` does (a fresh actor object each time).
 */
import { randomUUID } from 'node:crypto';
import type { AuditActor, AuditEntry } from '../../src/audit/record.js';

/** mulberry32: a small, fast, seeded PRNG (uniform in [0, 1)). */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const AGENTS = [
  'databricks-sdk-py/0.133.0 python/3.11.9 os/linux auth/pat',
  'databricks-sdk-go/0.98.0 go/1.23.4 os/linux',
  'mlflow-python-client/3.8.1',
  'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36',
  'databricks-cli/0.280.0 go/1.24.2 os/darwin cmd/jobs_run-now',
  'keygate-cli/0.1.0 node/20.20.2',
];

interface Route {
  method: string;
  path: (r: () => number) => string;
  action: string;
  resource: (r: () => number) => string;
  /** Share of requests (weights, summed below). */
  weight: number;
  sensitive?: boolean;
}

const pick = <T>(xs: readonly T[], r: () => number): T => xs[Math.floor(r() * xs.length)] as T;
const ENDPOINTS = ['fraud-scoring', 'churn-v4', 'llm-gateway-prod', 'embeddings-bge', 'ranker-canary'];
const num = (r: () => number, n: number) => String(Math.floor(r() * n));

const ROUTES: Route[] = [
  {
    method: 'POST',
    path: (r) => `/serving-endpoints/${pick(ENDPOINTS, r)}/invocations`,
    action: 'serving:invoke',
    resource: (r) => `Endpoint::${pick(ENDPOINTS, r)}`,
    weight: 45,
  },
  {
    method: 'GET',
    path: () => '/api/2.0/serving-endpoints',
    action: 'serving:read',
    resource: () => 'Workspace::ws',
    weight: 5,
  },
  {
    method: 'GET',
    path: () => '/api/2.0/mlflow/runs/get',
    action: 'mlflow:read',
    resource: (r) => `Experiment::${num(r, 5000)}`,
    weight: 15,
  },
  {
    method: 'POST',
    path: () => '/api/2.0/mlflow/runs/log-batch',
    action: 'mlflow:write',
    resource: (r) => `Experiment::${num(r, 5000)}`,
    weight: 12,
  },
  {
    method: 'GET',
    path: () => '/api/2.1/jobs/runs/list',
    action: 'jobs:read',
    resource: (r) => `Job::${num(r, 900)}`,
    weight: 8,
  },
  {
    method: 'POST',
    path: () => '/api/2.1/jobs/run-now',
    action: 'jobs:run',
    resource: (r) => `Job::${num(r, 900)}`,
    weight: 4,
  },
  {
    method: 'GET',
    path: () => '/api/2.0/clusters/list',
    action: 'workspace:read',
    resource: () => 'Workspace::ws',
    weight: 8,
  },
  {
    method: 'GET',
    path: () => '/api/2.0/secrets/get',
    action: 'secrets:read',
    resource: (r) => `SecretScope::${pick(['ml-prod', 'feature-store', 'ci'], r)}`,
    weight: 2,
    sensitive: true,
  },
  {
    method: 'POST',
    path: () => '/api/2.0/mlflow/registered-models/alias',
    action: 'mlflow:promote',
    resource: (r) => `Model::${pick(['fraud', 'churn', 'ranker'], r)}`,
    weight: 1,
    sensitive: true,
  },
];
const ROUTE_TOTAL = ROUTES.reduce((s, r) => s + r.weight, 0);

export interface Actors {
  list: readonly AuditActor[];
  /** An actor index, drawn with the activity skew. */
  draw(r: () => number): number;
  /** Fixed per actor: the address and user agent its requests come from. */
  ip: readonly string[];
  agent: readonly string[];
}

const hex = (r: () => number, n: number) => {
  let s = '';
  for (let i = 0; i < n; i++) s += Math.floor(r() * 16).toString(16);
  return s;
};
const uuidFrom = (r: () => number) => `${hex(r, 8)}-${hex(r, 4)}-4${hex(r, 3)}-a${hex(r, 3)}-${hex(r, 12)}`;

/** Actor ids: `u0042`-style for people, `sp0042` for service principals. */
export function actorId(i: number): string {
  return i < 850 ? `usr_${String(i).padStart(4, '0')}` : `sp_${String(i).padStart(4, '0')}`;
}

export function makeActors(seed = 1): Actors {
  const r = rng(seed);
  const authTime = 1_790_000_000_000;
  const list: AuditActor[] = [];
  for (let i = 0; i < 1000; i++) {
    const id = actorId(i);
    let a: AuditActor;
    if (i < 700) {
      a = {
        type: 'user',
        id,
        email: `person.${i}@example.com`,
        authEventId: uuidFrom(r),
        method: 'webauthn',
        credentialId: hex(r, 43),
        aaguid: 'ee882879-721c-4913-9775-3dfcce97072a',
        authenticator: 'YubiKey 5 Series',
        uv: true,
        authTime,
        sessionId: hex(r, 43),
      };
    } else if (i < 850) {
      a = {
        type: 'user',
        id,
        email: `person.${i}@example.com`,
        authEventId: uuidFrom(r),
        method: 'dpop',
        uv: true,
        authTime,
        tokenId: uuidFrom(r),
        deviceBound: true,
      };
    } else {
      a = {
        type: 'service_principal',
        id,
        authEventId: uuidFrom(r),
        method: 'client_credentials',
        tokenId: uuidFrom(r),
      };
    }
    list.push(Object.freeze(a));
  }
  // Zipf weights, shuffled so that activity is not tied to the actor's kind.
  const weights = list.map((_, i) => 1 / (i + 1) ** 0.8);
  for (let i = weights.length - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [weights[i], weights[j]] = [weights[j] as number, weights[i] as number];
  }
  const cumulative = new Float64Array(weights.length);
  let sum = 0;
  weights.forEach((w, i) => {
    sum += w;
    cumulative[i] = sum;
  });
  const draw = (rr: () => number): number => {
    const x = rr() * sum;
    let lo = 0;
    let hi = cumulative.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if ((cumulative[mid] as number) < x) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
  return {
    list,
    draw,
    ip: list.map((_, i) => `10.${(i >> 8) & 255}.${i & 255}.${10 + (i % 200)}`),
    agent: list.map((_, i) => AGENTS[i % AGENTS.length] as string),
  };
}

/** One entry, as the gateway builds it, for actor `i` at time `at`. */
export function makeEntry(actors: Actors, r: () => number, at: number): AuditEntry {
  const i = actors.draw(r);
  const actor = actors.list[i] as AuditActor;
  const x = r();
  if (x < 0.01) {
    // An authentication event: its actor is built for this event, not shared.
    const login = x < 0.004;
    return {
      kind: login ? 'auth.login' : 'token.issued',
      at,
      actor: {
        type: actor.type,
        ...(actor.id === undefined ? {} : { id: actor.id }),
        authEventId: randomUUID(),
        ...(login ? { credentialId: hex(r, 43), uv: true } : { via: 'client_secret_basic' }),
        authTime: at,
      },
      request: { method: '', path: '', ip: actors.ip[i] as string, userAgent: actors.agent[i] as string },
      outcome: x < 0.0005 ? 'failure' : 'success',
      ...(x < 0.0005 ? { reason: 'credential_not_found' } : {}),
    };
  }
  let w = r() * ROUTE_TOTAL;
  let route = ROUTES[0] as Route;
  for (const rt of ROUTES) {
    w -= rt.weight;
    if (w < 0) {
      route = rt;
      break;
    }
  }
  const d = r();
  const request = {
    method: route.method,
    path: route.path(r),
    action: route.action,
    resource: route.resource(r),
    ip: actors.ip[i] as string,
    userAgent: actors.agent[i] as string,
    requestId: randomUUID(),
  };
  if (d < 0.03 || (route.sensitive === true && d < 0.3)) {
    return {
      kind: 'http.request',
      at,
      actor,
      request,
      decision: { effect: 'deny', reasons: ['default-deny'] },
      status: 403,
    };
  }
  if (route.sensitive === true && d < 0.5) {
    return {
      kind: 'http.request',
      at,
      actor,
      request,
      decision: { effect: 'step_up', reasons: ['keygate:step-up'] },
      status: 401,
    };
  }
  const u = r();
  const status = u < 0.97 ? 200 : u < 0.985 ? 404 : u < 0.995 ? 429 : 500;
  return {
    kind: 'http.request',
    at,
    actor,
    request,
    decision: { effect: 'allow', reasons: [actor.type === 'user' ? 'role:ml-engineer:0' : 'role:ml-inference:0'] },
    upstream: {
      name: 'workspace',
      status,
      latencyMs: Math.round((5 + 200 * r() ** 3) * 10) / 10,
      bytes: Math.floor(80 + 4000 * r() ** 2),
    },
    status,
  };
}
