/**
 * `keygate policy test`: evaluate a described request against the configured policies, offline,
 * and print the decision, its reasons, and whether step-up would be asked.
 *
 *   keygate policy test --principal user:alice@example.com --groups ml-team \
 *     --action serving:manage --resource Endpoint::fraud --auth-age 600
 *   keygate policy test --principal user:bob@example.com --roles ml-engineer \
 *     --method POST --path /serving-endpoints/chat/completions --body '{"model":"chat-llm"}'
 */
import { Readable } from 'node:stream';
import type { IncomingMessage } from 'node:http';
import type { Identity } from '../../authenticate/identity.js';
import { type Action, ACTION_NAMES } from '../../authorize/actions.js';
import { readBodyField } from '../../authorize/body-field.js';
import { DatabricksClassifier } from '../../authorize/classify/databricks.js';
import type { Classification, ResourceRef } from '../../authorize/classify/types.js';
import { Authorizer, PolicyError } from '../../authorize/engine.js';
import { KeygateError } from '../../errors/index.js';
import { normalizeTarget } from '../../proxy/path.js';
import { EXIT, type Output } from '../output.js';
import { loadOrReport } from './serve.js';

export interface PolicyTestOptions {
  config?: string;
  principal: string;
  groups?: string;
  roles?: string;
  action?: string;
  resource?: string;
  method?: string;
  path?: string;
  body?: string;
  authAge: number;
  uv: boolean;
  ip: string;
  expect?: string;
}

const RESOURCE = /^(Workspace|Endpoint|Model|Job|Api)::(.+)$/;
const list = (s: string | undefined) => (s ?? '').split(',').map((x) => x.trim()).filter((x) => x !== '');

export async function policyTest(o: PolicyTestOptions, out: Output, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const loaded = loadOrReport(o.config, out, env);
  if (!loaded) return EXIT.FAILED;
  let authorizer: Authorizer;
  try {
    authorizer = new Authorizer(loaded.config);
  } catch (e) {
    if (e instanceof PolicyError) {
      out.err(e.message);
      return EXIT.FAILED;
    }
    throw e;
  }

  const [kind, ...idParts] = o.principal.split(':');
  const who = idParts.join(':');
  const type = kind === 'user' ? 'user' : kind === 'sp' || kind === 'service_principal' ? 'service_principal' : kind === 'agent' ? 'agent' : undefined;
  if (type === undefined || who === '') {
    out.err('keygate: --principal must be user:EMAIL, sp:ID or agent:ID');
    return EXIT.USAGE;
  }

  let c: Classification;
  if (o.action !== undefined) {
    if (!ACTION_NAMES.includes(o.action as Action)) {
      out.err(`keygate: unknown action ${o.action} (one of ${ACTION_NAMES.join(', ')})`);
      return EXIT.USAGE;
    }
    const m = RESOURCE.exec(o.resource ?? 'Workspace::workspace');
    if (!m) {
      out.err('keygate: --resource must be Type::name (Workspace, Endpoint, Model, Job, Api)');
      return EXIT.USAGE;
    }
    c = { action: o.action as Action, resource: { type: m[1] as ResourceRef['type'], id: m[2] as string } };
  } else if (o.path !== undefined) {
    try {
      const t = normalizeTarget(o.path);
      const r = new DatabricksClassifier().classify(o.method ?? 'GET', t.path, t.query);
      if ('needsBody' in r) {
        const req = Readable.from([Buffer.from(o.body ?? '')]) as unknown as IncomingMessage;
        req.headers = {};
        const { value } = await readBodyField(req, r.needsBody.field);
        c = r.needsBody.resolve(value);
      } else c = r;
      out.out(`request:  ${(o.method ?? 'GET').toUpperCase()} ${t.path}${t.query}`);
    } catch (e) {
      if (e instanceof KeygateError) {
        out.out(`decision: refused before policy (400 ${e.code}): ${e.publicMessage}${e.detail ? ` [${e.detail}]` : ''}`);
        return o.expect === undefined || o.expect === 'deny' ? EXIT.OK : EXIT.FAILED;
      }
      throw e;
    }
  } else {
    out.err('keygate: give --action (and --resource), or --path (and --method)');
    return EXIT.USAGE;
  }

  const now = Date.now();
  const identity: Identity = {
    principal: {
      type,
      id: who,
      ...(type === 'user' ? { email: who } : {}),
      groups: list(o.groups),
      roles: list(o.roles),
    },
    auth: { method: 'webauthn', authEventId: 'policy-test', authTime: now - o.authAge * 1000, uv: o.uv, deviceBound: true },
    cacheKey: 'policy-test',
  };
  const d = authorizer.decide({ identity, action: c.action, resource: c.resource, ip: o.ip, method: o.method ?? 'GET', path: o.path ?? '/', now });
  const explain =
    d.effect === 'step_up'
      ? ` (a user-verified login at most ${authorizer.stepUpMaxAgeS} s old is required; this one is ${o.authAge} s old)`
      : '';
  out.out(`principal: ${o.principal} (roles: ${authorizer.rolesOf(identity).join(', ') || 'none'})`);
  out.out(`action:   ${c.action}`);
  out.out(`resource: ${c.resource.type}::${c.resource.id}`);
  out.out(`decision: ${d.effect}${explain}`);
  out.out(`reasons:  ${d.reasons.join(', ')}`);
  if (o.expect !== undefined && o.expect !== d.effect) {
    out.err(`expected ${o.expect}, got ${d.effect}`);
    return EXIT.FAILED;
  }
  return EXIT.OK;
}
