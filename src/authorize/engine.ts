/**
 * The authorization decision: Cedar (@cedar-policy/cedar-wasm) evaluates principal, action,
 * resource and context against the compiled roles, the guard rails and any raw policy files.
 * Forbid beats permit; no permit is a deny; an evaluation error is a deny. Every decision
 * carries the ids of the policies that determined it.
 *
 * Cedar through wasm costs ~170 µs a call, so decisions are cached, keyed on everything a
 * decision can depend on: the principal, its roles and groups, the action, the resource, and
 * the context reduced to what the loaded policies can test. The cache is exact, not a TTL: a
 * raw policy that reads `age_s`, `request.ip`, `request.method` or `request.path` puts that
 * value into the key.
 */
import { readFileSync } from 'node:fs';
import { setFlagsFromString } from 'node:v8';
import * as cedar from '@cedar-policy/cedar-wasm/nodejs';
import type { Identity } from '../authenticate/identity.js';
import type { Config } from '../config/schema.js';
import { ACTIONS, type Action, isSensitive } from './actions.js';
import { compileRoles, guardRails } from './cedar/compile.js';
import { CEDAR_SCHEMA } from './cedar/schema.js';
import type { ResourceRef } from './classify/types.js';
import { type RoleDef, SHIPPED_ROLES } from './roles.js';

// Node 20's V8 (11.3) aborts the process ("unreachable code" in
// Deoptimizer::DoComputeBuiltinContinuation) when it lazily deoptimizes optimized JavaScript
// that inlined a JS→Wasm call while the Wasm — Cedar, which calls back into JS to read its
// arguments — is still running. Not inlining JS→Wasm calls avoids that path; the cost is a few
// nanoseconds per Cedar call, which the decision cache makes rare. (bench/policy reproduces the
// abort without this line.)
setFlagsFromString('--no-turbo-inline-js-wasm-calls');

export type Effect = 'allow' | 'deny' | 'step_up';

export interface Decision {
  effect: Effect;
  /** Policy ids that determined the decision ('default-deny' when nothing permitted). */
  reasons: string[];
}

export interface DecisionInput {
  identity: Identity;
  action: Action;
  resource: ResourceRef;
  /** Client address. */
  ip: string;
  method: string;
  path: string;
  /** Milliseconds since the epoch, for auth.age_s. */
  now: number;
}

export class PolicyError extends Error {
  constructor(
    message: string,
    readonly issues: string[],
  ) {
    super(`${message}:\n  ${issues.join('\n  ')}`);
    this.name = 'PolicyError';
  }
}

let instances = 0;
const CACHE_MAX = 100_000;

interface RawPolicy {
  id: string;
  text: string;
  file: string;
  /** 1-based line of the policy's first character in its file. */
  line: number;
  offset: number;
  source: string;
}

function lineOf(text: string, offset: number): number {
  return text.slice(0, offset).split('\n').length;
}

/** Split a policy file into policies with stable ids (@id annotation, else file#n) and positions. */
function loadPolicyFile(file: string): RawPolicy[] {
  let source: string;
  try {
    source = readFileSync(file, 'utf8');
  } catch (e) {
    throw new PolicyError('cannot read policy file', [`${file}: ${(e as NodeJS.ErrnoException).code}`]);
  }
  const parts = cedar.policySetTextToParts(source);
  if (parts.type === 'failure') {
    throw new PolicyError(
      'invalid Cedar policy file',
      parts.errors.map((e) => {
        const at = e.sourceLocations?.[0]?.start;
        return `${file}${at === undefined ? '' : `:${lineOf(source, at)}`}: ${e.message}`;
      }),
    );
  }
  let searchFrom = 0;
  return parts.policies.map((text, i) => {
    const offset = Math.max(0, source.indexOf(text.trim().slice(0, 40), searchFrom));
    searchFrom = offset + 1;
    const id = /@id\(\s*"([^"]+)"\s*\)/.exec(text)?.[1] ?? `${file}#${i}`;
    return { id, text, file, line: lineOf(source, offset), offset, source };
  });
}

/** A group or a user (by email) bound to roles. */
export type RoleBinding = ({ group: string } | { user: string }) & { roles: string[] };

export class Authorizer {
  private readonly setId: string;
  private readonly schemaId: string;
  private readonly cache = new Map<string, Decision>();
  private readonly bindingsByGroup = new Map<string, string[]>();
  private readonly bindingsByUser = new Map<string, string[]>();
  private readonly configBindings: readonly RoleBinding[];
  private readonly keyUses: { ageS: boolean; ip: boolean; method: boolean; path: boolean };
  readonly stepUpMaxAgeS: number;
  readonly policies: Readonly<Record<string, string>>;

  constructor(config: Config) {
    const a = config.authorization;
    this.stepUpMaxAgeS = Math.floor(a.stepUpMaxAge / 1000);
    const roles: Record<string, RoleDef> = { ...SHIPPED_ROLES };
    for (const [name, r] of Object.entries(a.roles))
      roles[name] = { description: r.description, grants: r.grants as RoleDef['grants'] };
    this.configBindings = a.bindings;
    this.addBindings(a.bindings);

    const raw = a.policyFiles.flatMap(loadPolicyFile);
    const policies: Record<string, string> = {
      ...compileRoles(roles),
      ...guardRails({
        allowCredentialMinting: a.dangerouslyAllowCredentialMinting,
        deviceBoundActions: a.deviceBoundActions,
      }),
    };
    for (const p of raw) {
      if (p.id in policies)
        throw new PolicyError('duplicate policy id', [`${p.file}:${p.line}: "${p.id}" is already defined`]);
      policies[p.id] = p.text;
    }
    this.policies = Object.freeze(policies);

    // Validate everything against the schema: a typo in an attribute is a start-up error.
    const v = cedar.validate({
      schema: CEDAR_SCHEMA,
      policies: { staticPolicies: policies },
      validationSettings: { mode: 'strict' },
    });
    if (v.type === 'failure')
      throw new PolicyError(
        'invalid Cedar schema or policies',
        v.errors.map((e) => e.message),
      );
    if (v.validationErrors.length > 0) {
      throw new PolicyError(
        'Cedar policies do not match the schema',
        v.validationErrors.map((e) => {
          const p = raw.find((r) => r.id === e.policyId);
          const at = e.error.sourceLocations?.[0]?.start;
          const where = p ? `${p.file}:${at === undefined ? p.line : lineOf(p.source, p.offset + at)}` : e.policyId;
          return `${where}: ${e.error.message}${e.error.help ? ` (${e.error.help})` : ''}`;
        }),
      );
    }

    instances++;
    this.setId = `keygate-policies-${instances}`;
    this.schemaId = `keygate-schema-${instances}`;
    const ps = cedar.preparsePolicySet(this.setId, { staticPolicies: policies });
    if (ps.type === 'failure')
      throw new PolicyError(
        'cannot load policies',
        ps.errors.map((e) => e.message),
      );
    const ss = cedar.preparseSchema(this.schemaId, CEDAR_SCHEMA);
    if (ss.type === 'failure')
      throw new PolicyError(
        'cannot load schema',
        ss.errors.map((e) => e.message),
      );

    // Only what some policy can read goes into the cache key. Cedar reads an attribute as
    // `.ip` or `["ip"]`, so look for the bare word: a false positive only costs cache hits.
    const all = Object.values(policies).join('\n');
    this.keyUses = {
      ageS: /\bage_s\b/.test(all),
      ip: /\bip\b/.test(all),
      method: /\bmethod\b/.test(all.replace(/\bauth\s*\.\s*method\b/g, '')),
      path: /\bpath\b/.test(all),
    };
  }

  private addBindings(bindings: readonly RoleBinding[]): void {
    for (const b of bindings) {
      const map = 'group' in b ? this.bindingsByGroup : this.bindingsByUser;
      const key = 'group' in b ? b.group : b.user.toLowerCase();
      map.set(key, [...(map.get(key) ?? []), ...b.roles]);
    }
  }

  /**
   * Bindings kept in the store (made through the admin API), in addition to the configured ones.
   * They apply to the next decision: the decision cache and the per-identity role cache are
   * dropped.
   */
  setStoredBindings(bindings: readonly RoleBinding[]): void {
    this.bindingsByGroup.clear();
    this.bindingsByUser.clear();
    this.addBindings(this.configBindings);
    this.addBindings(bindings);
    this.cache.clear();
    this.principalKeys = new WeakMap();
  }

  /** The roles a principal holds: its own (store) plus those bound to its groups and email. */
  rolesOf(identity: Identity): string[] {
    const p = identity.principal;
    const roles = new Set(p.roles);
    for (const g of p.groups) for (const r of this.bindingsByGroup.get(g) ?? []) roles.add(r);
    // An agent holds the roles of the person it acts for (bound to their email too).
    const email = p.email ?? p.onBehalfOf?.email;
    if (email !== undefined) for (const r of this.bindingsByUser.get(email.toLowerCase()) ?? []) roles.add(r);
    return [...roles].sort();
  }

  /** Per identity object: its roles and the part of the cache key that names it (computed once). */
  private principalKeys = new WeakMap<Identity, { roles: string[]; key: string }>();

  private principalKey(id: Identity): { roles: string[]; key: string } {
    let k = this.principalKeys.get(id);
    if (k === undefined) {
      const roles = this.rolesOf(id);
      const groups = [...id.principal.groups].sort();
      const a = id.auth;
      k = {
        roles,
        // JSON, not a separator join: group names from an identity provider may contain ','.
        key: JSON.stringify([
          id.principal.type,
          id.principal.id,
          id.principal.email ?? '',
          id.principal.onBehalfOf?.id ?? '',
          roles,
          groups,
          a.method,
          a.uv,
          a.aaguid ?? '',
          a.attested === true,
          a.deviceBound,
        ]),
      };
      this.principalKeys.set(id, k);
    }
    return k;
  }

  decide(input: DecisionInput): Decision {
    const { identity: id } = input;
    const ageS = Math.max(0, Math.floor((input.now - id.auth.authTime) / 1000));
    const fresh = ageS <= this.stepUpMaxAgeS;
    const p = this.principalKey(id);
    let key = `${p.key}\u0000${input.action}\u0000${JSON.stringify([input.resource.type, input.resource.id])}\u0000${fresh ? 1 : 0}`;
    if (this.keyUses.ageS) key += `\u0000${ageS}`;
    if (this.keyUses.ip) key += `\u0000${input.ip}`;
    if (this.keyUses.method) key += `\u0000${input.method}`;
    if (this.keyUses.path) key += `\u0000${input.path}`;
    const hit = this.cache.get(key);
    if (hit !== undefined) return hit;
    const decision = this.evaluate(input, p.roles, ageS, fresh);
    // Shared by every request with this key: frozen, so no caller can change it for the others
    // (and the audit encoder may serialise it once).
    Object.freeze(decision.reasons);
    Object.freeze(decision);
    if (this.cache.size >= CACHE_MAX) this.cache.clear();
    this.cache.set(key, decision);
    return decision;
  }

  /** Cedar itself, no cache (the property test compares the two). */
  evaluate(input: DecisionInput, roles: string[], ageS: number, fresh: boolean): Decision {
    const first = this.cedarDecision(input, roles, ageS, fresh, input.identity.auth.uv);
    if (first.effect === 'allow') return first;
    // Denied only by the step-up guard rail: would a fresh, verified login be allowed?
    if (isSensitive(input.action) && first.reasons.length === 1 && first.reasons[0] === 'keygate:step-up') {
      const freshDecision = this.cedarDecision(input, roles, 0, true, true);
      if (freshDecision.effect === 'allow') return { effect: 'step_up', reasons: ['keygate:step-up'] };
      // Not allowed even with a fresh login: the real reason is the fresh decision's.
      return freshDecision;
    }
    return first;
  }

  private cedarDecision(input: DecisionInput, roles: string[], ageS: number, fresh: boolean, uv: boolean): Decision {
    const { principal: p, auth } = input.identity;
    const principalType = p.type === 'user' ? 'User' : p.type === 'service_principal' ? 'ServicePrincipal' : 'Agent';
    const principal = { type: principalType, id: p.id };
    const parents = [
      ...p.groups.map((g) => ({ type: 'Group', id: g })),
      ...roles.map((r) => ({ type: 'Role', id: r })),
    ];
    // An agent acting for a person: `principal.user` is that person (policies may name them).
    const person = principalType === 'Agent' ? p.onBehalfOf : undefined;
    const entities: cedar.EntityJson[] = [
      {
        uid: principal,
        attrs:
          principalType === 'User'
            ? { email: p.email ?? '' }
            : {
                name: p.displayName ?? p.id,
                ...(person === undefined ? {} : { user: { __entity: { type: 'User', id: person.id } } }),
              },
        parents,
      },
      ...(person === undefined
        ? []
        : [{ uid: { type: 'User', id: person.id }, attrs: { email: person.email ?? '' }, parents: [] }]),
      { uid: { type: 'Workspace', id: 'workspace' }, attrs: {}, parents: [] },
      ...parents.map((uid) => ({ uid, attrs: {}, parents: [] })),
    ];
    if (input.resource.type !== 'Workspace') {
      entities.push({
        uid: { type: input.resource.type, id: input.resource.id },
        attrs: { name: input.resource.id },
        // Keygate's own admin areas are not in the workspace.
        parents: input.resource.type === 'Keygate' ? [] : [{ type: 'Workspace', id: 'workspace' }],
      });
    }
    let answer: cedar.AuthorizationAnswer;
    try {
      answer = cedar.statefulIsAuthorized({
        principal,
        action: { type: 'Action', id: input.action },
        resource: { type: input.resource.type, id: input.resource.id },
        context: {
          auth: {
            method: auth.method,
            uv,
            age_s: ageS,
            fresh,
            aaguid: auth.aaguid ?? '',
            attested: auth.attested ?? false,
            device_bound: auth.deviceBound,
          },
          request: { ip: input.ip, method: input.method, path: input.path },
        },
        entities,
        preparsedPolicySetId: this.setId,
        preparsedSchemaName: this.schemaId,
        validateRequest: true,
      });
    } catch {
      return { effect: 'deny', reasons: ['policy-error'] };
    }
    // Default deny: a failure to evaluate, or any policy error, denies.
    if (answer.type === 'failure') return { effect: 'deny', reasons: ['policy-error'] };
    const { decision, diagnostics } = answer.response;
    if (diagnostics.errors.length > 0 && decision === 'deny' && diagnostics.reason.length === 0) {
      return { effect: 'deny', reasons: ['policy-error', ...diagnostics.errors.map((e) => e.policyId)] };
    }
    if (decision === 'allow') return { effect: 'allow', reasons: [...diagnostics.reason].sort() };
    return {
      effect: 'deny',
      reasons: diagnostics.reason.length > 0 ? [...diagnostics.reason].sort() : ['default-deny'],
    };
  }
}

/** A sentence a person can act on: which action on which resource was refused. */
export function denialMessage(action: Action, resource: ResourceRef): string {
  const where = resource.type === 'Workspace' ? 'this workspace' : `${resource.type} "${resource.id}"`;
  return `You are not allowed to ${ACTIONS[action].what} (${action}) on ${where}.`;
}
