/**
 * Identities for authorization tests: a principal described by a few fields becomes the same
 * `Identity` whether a unit test builds it directly or a gateway reads it from test headers
 * (`x-test-principal`, `x-test-roles`, `x-test-groups`, `x-test-auth-age`, `x-test-uv`).
 * Injected programmatically only; nothing in configuration can enable it.
 */
import type { IncomingMessage } from 'node:http';
import type { Identifier, Identity } from '../../src/authenticate/identity.js';
import type { Clock } from '../../src/lib/clock.js';

export interface PrincipalSpec {
  /** `alice` is the user alice@example.com; `sp:name` a service principal; `agent:name` an agent. */
  principal: string;
  roles?: string[] | undefined;
  groups?: string[] | undefined;
  /** Seconds since the authentication (default 10). */
  authAgeS?: number | undefined;
  /** User verification at that authentication (default true). */
  uv?: boolean | undefined;
  /** How the caller authenticated: 'test' (default), 'webauthn', 'token' (plain bearer) or 'dpop'. */
  authMethod?: string | undefined;
}

export function identityFor(spec: PrincipalSpec, now: number): Identity {
  const [kind, name] = spec.principal.includes(':') ? spec.principal.split(':', 2) : ['user', spec.principal];
  const id = name as string;
  const type = kind === 'sp' ? 'service_principal' : kind === 'agent' ? 'agent' : 'user';
  const ageS = spec.authAgeS ?? 10;
  return {
    principal: {
      type,
      id,
      ...(type === 'user' ? { email: `${id}@example.com` } : { displayName: id }),
      groups: spec.groups ?? [],
      roles: spec.roles ?? [],
    },
    auth: {
      method: spec.authMethod ?? 'test',
      authEventId: `evt-${id}`,
      authTime: now - ageS * 1000,
      uv: spec.uv ?? true,
      deviceBound: spec.authMethod === 'dpop',
    },
    cacheKey: `policy-test:${spec.principal}:${(spec.roles ?? []).join(',')}:${(spec.groups ?? []).join(',')}:${ageS}:${spec.uv ?? true}:${spec.authMethod ?? 'test'}`,
  };
}

export function policyHeaders(spec: PrincipalSpec): Record<string, string> {
  return {
    'x-test-principal': spec.principal,
    'x-test-roles': (spec.roles ?? []).join(','),
    'x-test-groups': (spec.groups ?? []).join(','),
    'x-test-auth-age': String(spec.authAgeS ?? 10),
    'x-test-uv': spec.uv === false ? '0' : '1',
    'x-test-auth-method': spec.authMethod ?? 'test',
  };
}

const list = (v: string | string[] | undefined): string[] =>
  typeof v === 'string' && v !== '' ? v.split(',').map((s) => s.trim()) : [];

/** Reads the headers written by `policyHeaders`; auth time is relative to `clock`. */
export function policyIdentifier(clock: Clock): Identifier {
  return {
    name: 'policy-test',
    identify(req: IncomingMessage): Identity | null {
      const principal = req.headers['x-test-principal'];
      if (typeof principal !== 'string' || principal === '') return null;
      const age = req.headers['x-test-auth-age'];
      return identityFor(
        {
          principal,
          roles: list(req.headers['x-test-roles']),
          groups: list(req.headers['x-test-groups']),
          authAgeS: typeof age === 'string' ? Number(age) : undefined,
          uv: req.headers['x-test-uv'] !== '0',
          authMethod: typeof req.headers['x-test-auth-method'] === 'string' ? req.headers['x-test-auth-method'] : undefined,
        },
        clock.now(),
      );
    },
  };
}
