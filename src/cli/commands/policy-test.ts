/**
 * `keygate policy test`: evaluate a described request against the configured policies, offline,
 * and print the decision, its reasons, and whether step-up would be asked.
 *
 *   keygate policy test --principal user:alice@example.com --groups ml-team \
 *     --action serving:manage --resource Endpoint::fraud --auth-age 600
 *   keygate policy test --principal user:bob@example.com --roles ml-engineer \
 *     --method POST --path /serving-endpoints/chat/completions --body '{"model":"chat-llm"}'
 */
import { DescribeError, type DescribedRequest, type Evaluation, evaluateDescribed } from '../../authorize/describe.js';
import { Authorizer, PolicyError } from '../../authorize/engine.js';
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

const list = (s: string | undefined) =>
  (s ?? '')
    .split(',')
    .map((x) => x.trim())
    .filter((x) => x !== '');

export async function policyTest(
  o: PolicyTestOptions,
  out: Output,
  env: NodeJS.ProcessEnv = process.env,
): Promise<number> {
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
  const type =
    kind === 'user'
      ? 'user'
      : kind === 'sp' || kind === 'service_principal'
        ? 'service_principal'
        : kind === 'agent'
          ? 'agent'
          : undefined;
  if (type === undefined || who === '') {
    out.err('keygate: --principal must be user:EMAIL, sp:ID or agent:ID');
    return EXIT.USAGE;
  }

  const described: DescribedRequest = {
    principal: {
      type,
      id: who,
      ...(type === 'user' ? { email: who } : {}),
      groups: list(o.groups),
      roles: list(o.roles),
    },
    ...(o.action === undefined ? {} : { action: o.action }),
    ...(o.resource === undefined ? {} : { resource: o.resource }),
    ...(o.method === undefined ? {} : { method: o.method }),
    ...(o.path === undefined ? {} : { path: o.path }),
    ...(o.body === undefined ? {} : { body: o.body }),
    authAgeS: o.authAge,
    uv: o.uv,
    ip: o.ip,
  };
  let r: Evaluation;
  try {
    r = await evaluateDescribed(authorizer, described, Date.now());
  } catch (e) {
    if (e instanceof DescribeError) {
      out.err(`keygate: ${e.message}`);
      return EXIT.USAGE;
    }
    throw e;
  }
  if ('refused' in r) {
    const e = r.refused;
    out.out(`decision: refused before policy (400 ${e.code}): ${e.publicMessage}${e.detail ? ` [${e.detail}]` : ''}`);
    return o.expect === undefined || o.expect === 'deny' ? EXIT.OK : EXIT.FAILED;
  }
  const { classification: c, decision: d } = r;
  if (o.path !== undefined && o.action === undefined) {
    const t = normalizeTarget(o.path);
    out.out(`request:  ${(o.method ?? 'GET').toUpperCase()} ${t.path}${t.query}`);
  }
  const explain =
    d.effect === 'step_up'
      ? ` (a user-verified login at most ${r.stepUpMaxAgeS} s old is required; this one is ${o.authAge} s old)`
      : '';
  out.out(`principal: ${o.principal} (roles: ${r.roles.join(', ') || 'none'})`);
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
