/**
 * Bypass attempts: spellings of a path, and bodies or queries that name a resource, that an
 * upstream might read differently from Keygate. Each must either be refused with 400 and never
 * forwarded, or get exactly the decision of its canonical form, and reach the upstream on the
 * very path that was classified.
 */
import { request as httpRequest } from 'node:http';
import { Readable } from 'node:stream';
import { request } from 'undici';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { DEMO_PAT, demoSimOptions, type Simulator, startSimulator } from '../../../sim/index.js';
import { DatabricksClassifier } from '../../../src/authorize/classify/databricks.js';
import type { Classification } from '../../../src/authorize/classify/types.js';
import { Authorizer } from '../../../src/authorize/engine.js';
import { parseConfig } from '../../../src/config/load.js';
import { KeygateError } from '../../../src/errors/index.js';
import { ManualClock } from '../../../src/lib/clock.js';
import { type NormalizedTarget, normalizeTarget } from '../../../src/proxy/path.js';
import { type SeenRequest, startGateway, startRecordingUpstream, type TestGateway } from '../../helpers/index.js';
import { identityFor, type PrincipalSpec, policyHeaders, policyIdentifier } from '../../helpers/policy-identity.js';

const ADMIN: PrincipalSpec = { principal: 'ada', roles: ['admin'] };
const ENGINEER: PrincipalSpec = { principal: 'erin', roles: ['ml-engineer'] };
const INFERENCE: PrincipalSpec = { principal: 'ivan', roles: ['ml-inference'] };

const TOKEN_CREATE = '/api/2.0/token/create';
const INVOKE = '/serving-endpoints/iris/invocations';
const JOBS_CREATE = '/api/2.1/jobs/create';
const SECRETS_GET = '/api/2.0/secrets/get';

/** [method, attempted request-target, canonical request-target]. */
const ATTEMPTS: [string, string, string][] = [
  ['POST', '/api/2.0/serving-endpoints/../token/create', TOKEN_CREATE],
  ['POST', '/api/2.0/serving-endpoints/%2e%2e/token/create', TOKEN_CREATE],
  ['POST', '/api/2.0/serving-endpoints/%2E%2E/token/create', TOKEN_CREATE],
  ['POST', '/api/2.0/serving-endpoints/.%2e/token/create', TOKEN_CREATE],
  ['POST', '/api%2F2.0/token/create', TOKEN_CREATE],
  ['POST', '/api%2f2.0/token/create', TOKEN_CREATE],
  ['POST', '/api/2.0/serving-endpoints%2F..%2Ftoken/create', TOKEN_CREATE],
  ['POST', '//api/2.0/token/create', TOKEN_CREATE],
  ['POST', '/api//2.0///token/create', TOKEN_CREATE],
  ['POST', '/API/2.0/TOKEN/CREATE', TOKEN_CREATE],
  ['POST', '/api/2.0/Token/Create', TOKEN_CREATE],
  ['POST', '/api/2.0/token/create/', TOKEN_CREATE],
  ['POST', '/api/2.0/token/create/.', TOKEN_CREATE],
  ['POST', '/api/2.0/token/create/x/..', TOKEN_CREATE],
  ['POST', '/api/2.0/token/create;x=1', TOKEN_CREATE],
  ['POST', '/api/2.0/token;x=1/create', TOKEN_CREATE],
  ['POST', '/api;v=2/2.0/token/create', TOKEN_CREATE],
  ['POST', '/api/2.0/./token/create', TOKEN_CREATE],
  ['POST', '/api/2.0/%2e/token/create', TOKEN_CREATE],
  ['POST', '/api/2.0/%74oken/%63reate', TOKEN_CREATE],
  ['POST', '/api/2.0/serving-endpoints/%252e%252e/token/create', TOKEN_CREATE],
  ['POST', '/api/2.0/%252e/token/create', TOKEN_CREATE],
  ['POST', '/api/2.0/serving-endpoints\\..\\token\\create', TOKEN_CREATE],
  ['POST', '/api/2.0/serving-endpoints%5c..%5ctoken%5ccreate', TOKEN_CREATE],
  ['POST', '/api/2.0/token/create%00', TOKEN_CREATE],
  ['POST', '/api/2.0/serving-endpoints/%00/../../token/create', TOKEN_CREATE],
  ['POST', '/api/2.0/serving-endpoints/%c0%ae%c0%ae/token/create', TOKEN_CREATE],
  ['POST', '/api/2.0/serving-endpoints/%C0%AE%C0%AE/token/create', TOKEN_CREATE],
  ['POST', '/api/2.0/serving-endpoints/%e0%80%ae%e0%80%ae/token/create', TOKEN_CREATE],
  ['POST', '/api/2.0/serving-endpoints/%c0%2e%c0%2e/token/create', TOKEN_CREATE],
  ['POST', '/api/2.0/serving-endpoints/%c1%9c../token/create', TOKEN_CREATE],
  ['POST', '/api/2.0/serving-endpoints/%ff/../../token/create', TOKEN_CREATE],
  ['POST', '/api/2.0/serving-endpoints/%ed%a0%80/../../token/create', TOKEN_CREATE],
  // Path parameters on a dot segment: an upstream that drops `;params` (as the classifier itself
  // assumes) reads `..;x` as `..`.
  ['POST', '/api/2.0/serving-endpoints/..;x=1/token/create', TOKEN_CREATE],
  ['POST', '/api/2.0/serving-endpoints/..;/token/create', TOKEN_CREATE],
  ['POST', '/api/2.0/serving-endpoints/%2e%2e;x=1/token/create', TOKEN_CREATE],
  ['POST', '/api/2.0/serving-endpoints/.;/../token/create', TOKEN_CREATE],
  ['GET', '/api/2.0/mlflow/..;/secrets/get', SECRETS_GET],
  ['POST', '/Serving-Endpoints/iris/Invocations', INVOKE],
  ['POST', '/SERVING-ENDPOINTS/iris/INVOCATIONS', INVOKE],
  ['POST', '/serving-endpoints/iris/invocations/', INVOKE],
  ['POST', '/serving-endpoints/iris;x=1/invocations', INVOKE],
  ['POST', '/serving-endpoints/fraud/../iris/invocations', INVOKE],
  ['POST', '/serving-endpoints/%69ris/invocations', INVOKE],
  ['POST', '//serving-endpoints//iris//invocations', INVOKE],
  ['POST', '/api/2.1/JOBS/Create', JOBS_CREATE],
  ['POST', '/api/2.1/jobs/create;x', JOBS_CREATE],
  ['POST', '/api/2.1/jobs/run-now/../create', JOBS_CREATE],
  ['GET', '/api/2.0/mlflow/%2e%2e/secrets/get', SECRETS_GET],
  ['GET', '/API/2.0/SECRETS/GET', SECRETS_GET],
];

const config = parseConfig({});
const clock = new ManualClock(Date.UTC(2026, 3, 1, 12));

function tryNormalize(target: string): NormalizedTarget | KeygateError {
  try {
    return normalizeTarget(target);
  } catch (e) {
    if (e instanceof KeygateError) return e;
    throw e;
  }
}

function classifyPlain(method: string, t: NormalizedTarget): Classification {
  const c = new DatabricksClassifier().classify(method, t.path, t.query);
  if ('needsBody' in c) throw new Error('these attempts name their resource in the path');
  return c;
}

let up: Awaited<ReturnType<typeof startRecordingUpstream>>;
let g: TestGateway;
let seen: SeenRequest[] = [];

beforeAll(async () => {
  up = await startRecordingUpstream();
  seen = up.seen;
  g = await startGateway(
    { upstreams: { ws: { url: up.url, credential: { type: 'none' } } } },
    { clock, identifiers: [policyIdentifier(clock)] },
  );
});

afterAll(async () => {
  await g?.close();
  await up?.close();
});

beforeEach(() => {
  seen.length = 0;
});

/**
 * Send the request-target exactly as written: node:http does not parse it (undici and fetch
 * resolve dot segments and backslashes through the URL parser before anything is sent).
 */
function send(
  who: PrincipalSpec,
  method: string,
  target: string,
  body?: string | Buffer,
): Promise<{ status: number; json: { error_code?: string; message?: string } }> {
  const { hostname, port } = new URL(g.url);
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      {
        host: hostname,
        port,
        method,
        path: target,
        headers: {
          ...policyHeaders(who),
          ...(body !== undefined
            ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }
            : {}),
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString();
          resolve({
            status: res.statusCode ?? 0,
            json: text === '' ? {} : (JSON.parse(text) as { error_code?: string }),
          });
        });
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

describe('path spellings never reach a more permissive decision than their canonical form', () => {
  const authorizer = new Authorizer(config);
  const decide = (who: PrincipalSpec, method: string, c: Classification, path: string) =>
    authorizer.decide({
      identity: identityFor(who, clock.now()),
      action: c.action,
      resource: c.resource,
      ip: '127.0.0.1',
      method,
      path,
      now: clock.now(),
    });

  for (const [method, attempt, canonical] of ATTEMPTS) {
    it(`${method} ${attempt} ≡ ${canonical} or 400 (unit)`, () => {
      const t = tryNormalize(attempt);
      if (t instanceof KeygateError) {
        expect(t.code).toBe('BAD_REQUEST');
        return;
      }
      const c = classifyPlain(method, t);
      const canon = classifyPlain(method, normalizeTarget(canonical));
      expect(c.action).toBe(canon.action);
      expect(c.resource).toEqual(canon.resource);
      for (const who of [ADMIN, ENGINEER]) {
        expect(decide(who, method, c, t.path).effect, who.principal).toBe(decide(who, method, canon, canonical).effect);
      }
    });

    it(`${method} ${attempt} ≡ ${canonical} or 400 (through the gateway)`, async () => {
      const body = method === 'GET' ? undefined : '{}';
      const t = tryNormalize(attempt);
      for (const who of [ADMIN, ENGINEER]) {
        seen.length = 0;
        const canon = await send(who, method, canonical, body);
        const canonReached = seen.length;
        seen.length = 0;
        const r = await send(who, method, attempt, body);
        if (r.status === 400) {
          expect(r.json.error_code).toBe('BAD_REQUEST');
          expect(seen).toEqual([]);
          continue;
        }
        expect(t, 'the gateway forwarded what normalization refuses').not.toBeInstanceOf(KeygateError);
        expect(r.status, `${who.principal}: ${JSON.stringify(r.json)}`).toBe(canon.status);
        expect(seen).toHaveLength(canonReached);
        // Forwarded: on exactly the path that was classified.
        if (seen.length > 0) expect(seen[0]?.url).toBe((t as NormalizedTarget).path + (t as NormalizedTarget).query);
      }
    });
  }
});

describe('OpenAI-style routes: the body names the endpoint exactly once, as a string', () => {
  const CHAT = '/serving-endpoints/chat/completions';
  const refused: [string, string | Buffer][] = [
    ['duplicated model', '{"model":"iris","messages":[],"model":"prod-llm"}'],
    ['duplicated model through an escape', '{"model":"iris","mod\\u0065l":"prod-llm"}'],
    ['a number as model', '{"model":123,"messages":[]}'],
    ['a boolean as model', '{"model":true}'],
    ['null as model', '{"model":null}'],
    ['an array as model', '{"model":["iris"]}'],
    ['an object as model', '{"model":{"name":"iris"}}'],
    ['model "*"', '{"model":"*","messages":[]}'],
    ['a wildcard in model', '{"model":"fraud-*"}'],
    ['an empty model', '{"model":""}'],
    ['no model', '{"messages":[]}'],
    ['model only nested', '{"extra":{"model":"iris"},"messages":[]}'],
    ['a body that is not JSON', '{"model":"iris",'],
    ['a JSON array body', '[{"model":"iris"}]'],
    ['an empty body', ''],
    ['a body over 1 MiB', JSON.stringify({ model: 'iris', pad: 'x'.repeat(1024 * 1024) })],
  ];
  for (const [what, body] of refused) {
    it(`${what} → 400, never forwarded`, async () => {
      const r = await send(INFERENCE, 'POST', CHAT, body);
      expect(r.status).toBe(400);
      expect(r.json.error_code).toBe('BAD_REQUEST');
      expect(seen).toEqual([]);
    });
  }

  it('a body over 1 MiB without Content-Length (chunked) → 400, never forwarded', async () => {
    const chunk = Buffer.from('x'.repeat(64 * 1024));
    async function* gen() {
      yield Buffer.from('{"model":"iris","pad":"');
      for (let i = 0; i < 17; i++) yield chunk;
      yield Buffer.from('"}');
    }
    const res = await request(`${g.url}${CHAT}`, {
      method: 'POST',
      headers: { ...policyHeaders(INFERENCE), 'content-type': 'application/json' },
      body: Readable.from(gen()),
    });
    const json = (await res.body.json()) as { error_code: string };
    expect(res.statusCode).toBe(400);
    expect(json.error_code).toBe('BAD_REQUEST');
    expect(seen).toEqual([]);
  });

  it('a body of exactly 1 MiB is classified and forwarded byte for byte', async () => {
    const head = '{"model":"iris","pad":"';
    const body = Buffer.from(head + 'y'.repeat(1024 * 1024 - head.length - 2) + '"}');
    expect(body.length).toBe(1024 * 1024);
    const r = await send(INFERENCE, 'POST', CHAT, body);
    expect(r.status).toBe(200);
    expect(seen).toHaveLength(1);
    expect(seen[0]?.url).toBe(CHAT);
    expect(seen[0]?.body.equals(body)).toBe(true);
  });

  it('the endpoint named in the body is the one authorized (a fraud-only role cannot reach iris)', async () => {
    const g2 = await startGateway(
      {
        upstreams: { ws: { url: up.url, credential: { type: 'none' } } },
        authorization: {
          roles: { fraud: { grants: [{ actions: ['serving:invoke'], resources: ['Endpoint::fraud-*'] }] } },
        },
      },
      { clock, identifiers: [policyIdentifier(clock)] },
    );
    try {
      const who = { principal: 'fran', roles: ['fraud'] };
      const post = (body: string) =>
        request(`${g2.url}${CHAT}`, {
          method: 'POST',
          headers: { ...policyHeaders(who), 'content-type': 'application/json' },
          body,
        }).then(async (r) => ({ status: r.statusCode, text: await r.body.text() }));
      expect((await post('{"model":"fraud-llm"}')).status).toBe(200);
      expect(seen).toHaveLength(1);
      seen.length = 0;
      const denied = await post('{"model":"iris"}');
      expect(denied.status).toBe(403);
      expect(denied.text).toContain('serving:invoke');
      expect(seen).toEqual([]);
    } finally {
      await g2.close();
    }
  });
});

describe('a model named in the query is the model the workspace acts on', () => {
  let sim: Simulator;
  let gs: TestGateway;
  const promoter: PrincipalSpec = { principal: 'devon', roles: ['dev-promoter'] };
  const MLFLOW = '/api/2.0/mlflow';

  beforeAll(async () => {
    sim = await startSimulator(demoSimOptions());
    process.env.BYPASS_SIM_PAT = DEMO_PAT;
    gs = await startGateway(
      {
        upstreams: { ws: { url: sim.url, credential: { type: 'static', tokenEnv: 'BYPASS_SIM_PAT' } } },
        authorization: {
          roles: { 'dev-promoter': { grants: [{ actions: ['mlflow:promote'], resources: ['Model::dev-*'] }] } },
        },
      },
      { clock, identifiers: [policyIdentifier(clock)] },
    );
  });

  afterAll(async () => {
    await gs?.close();
    await sim?.close();
  });

  /** Straight to the workspace, as its own user: create a model, or see whether it exists. */
  async function direct(method: 'GET' | 'POST', path: string, body?: unknown): Promise<number> {
    const r = await request(`${sim.url}${path}`, {
      method,
      headers: { authorization: `Bearer ${DEMO_PAT}`, 'content-type': 'application/json' },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    await r.body.dump();
    return r.statusCode;
  }
  const create = (name: string) => direct('POST', `${MLFLOW}/registered-models/create`, { name });
  const exists = async (name: string) =>
    (await direct('GET', `${MLFLOW}/registered-models/get?name=${encodeURIComponent(name)}`)) === 200;

  async function viaGateway(method: string, target: string, body?: string) {
    const r = await request(`${gs.url}${target}`, {
      method: method as 'DELETE',
      headers: { ...policyHeaders(promoter), ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { body }),
    });
    return { status: r.statusCode, text: await r.body.text() };
  }

  it('control: the dev-* promoter may delete dev-q0 and not prod-q0', async () => {
    expect(await create('dev-q0')).toBe(200);
    expect(await create('prod-q0')).toBe(200);
    expect((await viaGateway('DELETE', `${MLFLOW}/registered-models/delete?name=dev-q0`)).status).toBe(200);
    expect(await exists('dev-q0')).toBe(false);
    const denied = await viaGateway('DELETE', `${MLFLOW}/registered-models/delete?name=prod-q0`);
    expect(denied.status).toBe(403);
    expect(await exists('prod-q0')).toBe(true);
  });

  it('a repeated name parameter is refused, not read one way by Keygate and another by the workspace', async () => {
    expect(await create('dev-q1')).toBe(200);
    expect(await create('prod-q1')).toBe(200);
    const r = await viaGateway('DELETE', `${MLFLOW}/registered-models/delete?name=dev-q1&name=prod-q1`);
    expect([400, 403]).toContain(r.status);
    expect(await exists('prod-q1')).toBe(true);
  });

  it('a query name that disagrees with the body name is refused (the workspace reads the body)', async () => {
    expect(await create('dev-q2')).toBe(200);
    expect(await create('prod-q2')).toBe(200);
    const r = await viaGateway('DELETE', `${MLFLOW}/registered-models/delete?name=dev-q2`, '{"name":"prod-q2"}');
    expect([400, 403]).toContain(r.status);
    expect(await exists('prod-q2')).toBe(true);
  });
});
