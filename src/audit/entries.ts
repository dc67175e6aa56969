/** Audit entries built from what the gateway knows: an identity, a refused or proxied request, an auth event. */
import type { Identity } from '../authenticate/identity.js';
import { authenticatorName } from '../authenticate/webauthn/authenticators.js';
import type { AuthEventRecord } from '../store/types.js';
import { type AuditKind, isAuditKind } from './catalogue.js';
import type { AuditActor, AuditEntry } from './record.js';

/** Copy only the members that are set (records carry no undefined members). */
function defined<T extends object>(o: { [K in keyof T]: T[K] | undefined }): T {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined) out[k] = v;
  return out as T;
}

const ANONYMOUS: AuditActor = Object.freeze({ type: 'anonymous' });
/** Identities are cached objects (per session, per token): build each one's actor once. */
const actors = new WeakMap<Identity, AuditActor>();

export function actorOf(identity: Identity | null | undefined): AuditActor {
  if (!identity) return ANONYMOUS;
  let a = actors.get(identity);
  if (a === undefined) {
    a = Object.freeze(buildActor(identity));
    actors.set(identity, a);
  }
  return a;
}

function buildActor(identity: Identity): AuditActor {
  const p = identity.principal;
  const a = identity.auth;
  return defined<AuditActor>({
    type: p.type,
    id: p.id,
    email: p.email,
    authEventId: a.authEventId,
    method: a.method,
    credentialId: a.credentialId,
    aaguid: a.aaguid,
    authenticator: a.aaguid === undefined ? undefined : authenticatorName(a.aaguid),
    uv: a.uv,
    authTime: a.authTime,
    sessionId: a.sessionId,
    tokenId: a.tokenId,
    deviceBound: a.deviceBound,
    via:
      p.onBehalfOf !== undefined ? `grant:${p.onBehalfOf.grantId}` : a.idp === undefined ? undefined : `idp:${a.idp}`,
    onBehalfOf: p.onBehalfOf?.id,
  });
}

/** An authentication event as an audit entry: the event id is the actor's auth event. */
export function fromAuthEvent(
  e: AuthEventRecord & { principalType?: 'user' | 'service_principal' },
): AuditEntry | null {
  const kind: string = e.kind;
  if (!isAuditKind(kind)) return null;
  const actor = defined<AuditActor>({
    type: e.userId === null ? 'anonymous' : (e.principalType ?? 'user'),
    id: e.userId ?? undefined,
    authEventId: e.id,
    credentialId: e.credentialId ?? undefined,
    aaguid: e.aaguid ?? undefined,
    authenticator: e.authenticator ?? undefined,
    uv: e.uv ?? undefined,
    authTime: e.at,
    method: undefined,
    email: undefined,
    sessionId: undefined,
    tokenId: undefined,
    deviceBound: undefined,
    via: e.via ?? undefined,
    onBehalfOf: undefined,
  });
  return {
    kind: kind as AuditKind,
    at: e.at,
    actor,
    request: { method: '', path: '', ip: e.ip, userAgent: e.userAgent.slice(0, 256) },
    outcome: e.outcome,
    ...(e.reason === null ? {} : { reason: e.reason }),
  };
}
