/**
 * Roles and bindings from the YAML compile to Cedar policies with stable ids; Keygate's own
 * guard rails are Cedar policies too, so every decision's reasons are policy ids.
 *
 *   role:<name>:<n>                 permit: the n-th grant of a role
 *   keygate:step-up                 forbid: sensitive actions without a fresh, verified login (people and agents)
 *   keygate:device-bound            forbid: a person's plain bearer token for actions that need a DPoP-bound one
 *   keygate:deny-credential-minting forbid: long-lived upstream credentials
 */
import { ACTION_NAMES, type Action, isSensitive } from '../actions.js';
import type { RoleDef } from '../roles.js';

const RESOURCE = /^(\*|(Workspace|Endpoint|Model|Job|Api|Keygate)::(.+))$/;

/** `Endpoint::fraud-*` → a Cedar condition on the resource (or '' for any). */
export function resourceCondition(pattern: string): string {
  const m = RESOURCE.exec(pattern);
  if (!m) throw new Error(`resource "${pattern}" must be "*" or Type::name (Type: Endpoint, Model, Job, Api, Workspace, Keygate)`);
  if (m[1] === '*') return '';
  const type = m[2] as string;
  const name = m[3] as string;
  if (type === 'Workspace') return `resource is Workspace`;
  if (name === '*') return `resource is ${type}`;
  // Cedar `like`: * is the wildcard; escape quotes and backslashes of the literal.
  const lit = name.replaceAll('\\', '\\\\').replaceAll('"', '\\"');
  return `resource is ${type} && resource.name like "${lit}"`;
}

export function compileRoles(roles: Record<string, RoleDef>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, role] of Object.entries(roles)) {
    role.grants.forEach((g, i) => {
      const actions = g.actions.includes('*') ? ACTION_NAMES : (g.actions as Action[]);
      const actionList = actions.map((a) => `Action::${JSON.stringify(a)}`).join(', ');
      const conds = g.resources.map(resourceCondition);
      const when = conds.includes('') ? '' : ` when { ${conds.map((c) => `(${c})`).join(' || ')} }`;
      out[`role:${name}:${i}`] = `permit (principal in Role::${JSON.stringify(name)}, action in [${actionList}], resource)${when};`;
    });
  }
  return out;
}

export function guardRails(o: { allowCredentialMinting: boolean; deviceBoundActions: readonly string[] }): Record<string, string> {
  const sensitive = ACTION_NAMES.filter(isSensitive).map((a) => `Action::${JSON.stringify(a)}`);
  const out: Record<string, string> = {
    // Machines have no key to tap: their roles alone decide (people and agents acting for them step up).
    'keygate:step-up': `forbid (principal, action in [${sensitive.join(', ')}], resource) when { !(principal is ServicePrincipal) } unless { context.auth.fresh && context.auth.uv };`,
  };
  const bound = o.deviceBoundActions.includes('*') ? ACTION_NAMES : o.deviceBoundActions;
  if (bound.length > 0) {
    out['keygate:device-bound'] =
      `forbid (principal is User, action in [${bound.map((a) => `Action::${JSON.stringify(a)}`).join(', ')}], resource) when { context.auth.method == "token" };`;
  }
  if (!o.allowCredentialMinting) {
    out['keygate:deny-credential-minting'] = `forbid (principal, action == Action::"credentials:mint", resource);`;
  }
  return out;
}
