/**
 * "Policy test": a described request — who, and either an action on a resource or a method and
 * path (and body) to classify — evaluated by the live policies, with the decision, its reasons
 * and whether step-up would be asked. Used by `keygate policy test` and the admin API.
 */
import type { IncomingMessage } from 'node:http';
import { Readable } from 'node:stream';
import type { Identity } from '../authenticate/identity.js';
import { KeygateError } from '../errors/index.js';
import { normalizeTarget } from '../proxy/path.js';
import { ACTION_NAMES, type Action } from './actions.js';
import { readBodyField } from './body-field.js';
import { DatabricksClassifier } from './classify/databricks.js';
import type { Classification, ResourceRef } from './classify/types.js';
import type { Authorizer, Decision } from './engine.js';

export const RESOURCE_REF = /^(Workspace|Endpoint|Model|Job|Api|Keygate)::(.+)$/;

export interface DescribedRequest {
  principal: {
    type: 'user' | 'service_principal' | 'agent';
    id: string;
    email?: string;
    groups: string[];
    roles: string[];
  };
  /** An action and resource (`Type::name`), or a method and path to classify. */
  action?: string;
  resource?: string;
  method?: string;
  path?: string;
  body?: string;
  /** Seconds since the login behind the request. */
  authAgeS: number;
  uv: boolean;
  ip: string;
}

/** The description itself is wrong (unknown action, bad resource, nothing to evaluate). */
export class DescribeError extends Error {}

export type Evaluation =
  | { refused: KeygateError }
  | { classification: Classification; decision: Decision; roles: string[]; stepUpMaxAgeS: number };

export async function evaluateDescribed(
  authorizer: Pick<Authorizer, 'decide' | 'stepUpMaxAgeS'> & Partial<Pick<Authorizer, 'rolesOf'>>,
  d: DescribedRequest,
  now: number,
): Promise<Evaluation> {
  let c: Classification;
  if (d.action !== undefined) {
    if (!ACTION_NAMES.includes(d.action as Action)) {
      throw new DescribeError(`unknown action ${d.action} (one of ${ACTION_NAMES.join(', ')})`);
    }
    const m = RESOURCE_REF.exec(d.resource ?? 'Workspace::workspace');
    if (!m) throw new DescribeError('resource must be Type::name (Workspace, Endpoint, Model, Job, Api, Keygate)');
    c = { action: d.action as Action, resource: { type: m[1] as ResourceRef['type'], id: m[2] as string } };
  } else if (d.path !== undefined) {
    try {
      const t = normalizeTarget(d.path);
      const r = new DatabricksClassifier().classify(d.method ?? 'GET', t.path, t.query);
      if ('needsBody' in r) {
        const req = Readable.from([Buffer.from(d.body ?? '')]) as unknown as IncomingMessage;
        req.headers = {};
        const { value } = await readBodyField(req, r.needsBody.field);
        c = r.needsBody.resolve(value);
      } else c = r;
    } catch (e) {
      // Refused before policy, as the proxy would (a path that does not normalize, say).
      if (e instanceof KeygateError) return { refused: e };
      throw e;
    }
  } else {
    throw new DescribeError('give an action (and resource), or a path (and method)');
  }
  const identity: Identity = {
    principal: {
      type: d.principal.type,
      id: d.principal.id,
      ...(d.principal.email === undefined ? {} : { email: d.principal.email }),
      groups: d.principal.groups,
      roles: d.principal.roles,
    },
    auth: {
      method: 'webauthn',
      authEventId: 'policy-test',
      authTime: now - d.authAgeS * 1000,
      uv: d.uv,
      deviceBound: true,
    },
    cacheKey: 'policy-test',
  };
  const decision = authorizer.decide({
    identity,
    action: c.action,
    resource: c.resource,
    ip: d.ip,
    method: d.method ?? 'GET',
    path: d.path ?? '/',
    now,
  });
  return {
    classification: c,
    decision,
    roles: authorizer.rolesOf?.(identity) ?? [...identity.principal.roles],
    stepUpMaxAgeS: authorizer.stepUpMaxAgeS,
  };
}
