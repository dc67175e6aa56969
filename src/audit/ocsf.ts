/**
 * Audit records as OCSF events (`keygate audit export --format ocsf`, one JSON object a line),
 * and back. Pure: no clock, no I/O.
 *
 * Target: OCSF 1.4.0. It is the first release in which every field we fill exists on the class
 * we put it in: Account Change gained `src_endpoint` and `http_request` in 1.2.0 (all IAM
 * classes), API Activity gained `http_response` in 1.4.0, and the Session object carries
 * `is_mfa`. The activities we use are all in 1.4.0 (MFA Factor Enable/Disable and Service
 * Ticket Renew since 1.1.0). Facts checked against the ocsf-schema CHANGELOG and class files.
 *
 * Every event carries the whole record, hash-chain members included, in `unmapped.keygate`:
 * `fromOcsf` returns it unchanged, so the chain can be re-checked from an OCSF export alone. The
 * mapped fields are a view for SIEMs; they hold nothing the record does not (records hold no
 * secrets), plus OCSF's own vocabulary.
 */
import { z } from 'zod';
import { AUDIT_KINDS, type AuditKind } from './catalogue.js';
import type { AuditActor, ChainedRecord } from './record.js';

export const OCSF_VERSION = '1.4.0';

const PRODUCT = Object.freeze({ name: 'Keygate', vendor_name: 'Keygate' } as const);
const LOG_NAME = 'keygate-audit';

// ---------------------------------------------------------------------------------------------
// The subset of OCSF we emit.

export interface OcsfUser {
  uid?: string;
  email_addr?: string;
  /** OCSF 1.4 user type: 0 Unknown, 1 User, 3 System, 99 Other (then `type` is Keygate's). */
  type_id: 0 | 1 | 3 | 99;
  type: string;
  credential_uid?: string;
}

export interface OcsfSession {
  uid?: string;
  created_time?: number;
  is_mfa?: boolean;
}

/** Authorization Result: the policy decision and the reasons (Cedar policy ids) behind it. */
export interface OcsfAuthorization {
  decision: string;
  policy?: { uid: string };
}

export interface OcsfActor {
  user?: OcsfUser;
  session?: OcsfSession;
  authorizations?: OcsfAuthorization[];
}

export interface OcsfHttpRequest {
  http_method?: string;
  url?: { path: string };
  user_agent?: string;
  uid?: string;
}

export interface OcsfHttpResponse {
  code: number;
  latency?: number;
  length?: number;
}

export interface OcsfApi {
  operation: string;
  request?: { uid: string };
  response?: { code: number };
  service?: { name: string };
}

export interface OcsfEvent {
  class_uid: 3001 | 3002 | 3004 | 6002 | 6003;
  class_name: string;
  category_uid: 3 | 6;
  category_name: string;
  activity_id: number;
  activity_name: string;
  /** class_uid × 100 + activity_id. */
  type_uid: number;
  type_name: string;
  severity_id: 1 | 2 | 3 | 4;
  severity: string;
  status_id: 0 | 1 | 2;
  status: string;
  status_code?: string;
  status_detail?: string;
  /** Epoch ms: the record's `at`. */
  time: number;
  metadata: {
    version: string;
    product: { name: 'Keygate'; vendor_name: 'Keygate' };
    /** The record id. */
    uid: string;
    log_name: string;
    /** The record's seq. */
    sequence: number;
    /** The Keygate kind, e.g. `auth.login`. */
    event_code: string;
    /** The authentication event behind the action: joins a request to its login. */
    correlation_uid?: string;
  };
  actor: OcsfActor;
  src_endpoint?: { ip: string };
  http_request?: OcsfHttpRequest;
  http_response?: OcsfHttpResponse;
  /** API Activity. */
  api?: OcsfApi;
  resources?: { uid: string; type: string }[];
  /** Authentication and Account Change: the subject, who logged in or whose account changed. */
  user?: OcsfUser;
  /** Authentication: the service authenticated to. */
  service?: { name: string };
  auth_protocol_id?: 6 | 99;
  auth_protocol?: string;
  is_mfa?: boolean;
  /** Application Lifecycle: the application that started. */
  app?: { name: 'Keygate'; vendor_name: 'Keygate' };
  unmapped: { keygate: ChainedRecord };
}

// ---------------------------------------------------------------------------------------------
// Kind → class and activity.

const ACCOUNT_CHANGE = { uid: 3001, name: 'Account Change', category: 3 } as const;
const AUTHENTICATION = { uid: 3002, name: 'Authentication', category: 3 } as const;
const ENTITY_MANAGEMENT = { uid: 3004, name: 'Entity Management', category: 3 } as const;
const APPLICATION_LIFECYCLE = { uid: 6002, name: 'Application Lifecycle', category: 6 } as const;
const API_ACTIVITY = { uid: 6003, name: 'API Activity', category: 6 } as const;
type OcsfClass =
  | typeof ACCOUNT_CHANGE
  | typeof AUTHENTICATION
  | typeof ENTITY_MANAGEMENT
  | typeof APPLICATION_LIFECYCLE
  | typeof API_ACTIVITY;

const CATEGORY_NAMES = { 3: 'Identity & Access Management', 6: 'Application Activity' } as const;

/** 99 Other: OCSF puts the source's own name in activity_name, so that is the Keygate kind. */
const OTHER = 99;

interface Mapping {
  cls: OcsfClass;
  activityId: number;
  activityName: string;
}

const m = (cls: OcsfClass, activityId: number, activityName: string): Mapping => ({ cls, activityId, activityName });

/**
 * http.request → API Activity (6003), not HTTP Activity (4002): Keygate decides on API calls —
 * who (actor, required in 6003), which action on which resource, and the policy decision — which
 * is what API Activity carries (`api.operation`, `resources`, `actor.authorizations`). HTTP
 * Activity is a Network Activity class about connections (endpoints, connection info) that
 * Keygate does not record per request, and its activities only restate the HTTP method.
 * The activity is CRUD from the action (`…:read` is a read whatever the method) or the method.
 */
function apiActivity(method: string, action: string | undefined): Mapping {
  if (action?.endsWith(':read')) return m(API_ACTIVITY, 2, 'Read');
  switch (method.toUpperCase()) {
    case 'POST':
      return m(API_ACTIVITY, 1, 'Create');
    case 'GET':
    case 'HEAD':
    case 'OPTIONS':
      return m(API_ACTIVITY, 2, 'Read');
    case 'PUT':
    case 'PATCH':
      return m(API_ACTIVITY, 3, 'Update');
    case 'DELETE':
      return m(API_ACTIVITY, 4, 'Delete');
    default:
      return m(API_ACTIVITY, OTHER, 'http.request');
  }
}

function entityManagement(op: string): Mapping {
  const verb = op.slice(op.lastIndexOf('.') + 1);
  if (verb === 'create' || verb.endsWith('_create')) return m(ENTITY_MANAGEMENT, 1, 'Create');
  if (verb === 'update' || verb.endsWith('_update')) return m(ENTITY_MANAGEMENT, 3, 'Update');
  if (/(^|_)(delete|revoke)$/.test(verb)) return m(ENTITY_MANAGEMENT, 4, 'Delete');
  return m(ENTITY_MANAGEMENT, OTHER, op || 'admin.change');
}

function classify(r: ChainedRecord): Mapping {
  const kind: string = r.kind;
  switch (kind) {
    case 'http.request':
      return apiActivity(r.request?.method ?? '', r.request?.action);
    // A step-up is a fresh logon by the same person (RFC 9470): counted with logons.
    case 'auth.login':
    case 'auth.idp_login':
    case 'auth.step_up':
    // Approving an agent's request is a fresh, user-verified assertion too.
    case 'auth.approval':
      return m(AUTHENTICATION, 1, 'Logon');
    // A delegation is an entity the person creates and ends; a denial updates an approval.
    case 'agent.granted':
      return m(ENTITY_MANAGEMENT, 1, 'Create');
    case 'agent.grant_revoked':
      return m(ENTITY_MANAGEMENT, 4, 'Delete');
    case 'approval.denied':
      return m(ENTITY_MANAGEMENT, 3, 'Update');
    case 'auth.logout':
      return m(AUTHENTICATION, 2, 'Logoff');
    // A passkey is the account's authentication factor: registering one enables a factor,
    // revoking one disables it.
    case 'auth.register':
      return m(ACCOUNT_CHANGE, 10, 'MFA Factor Enable');
    case 'auth.credential_revoked':
      return m(ACCOUNT_CHANGE, 11, 'MFA Factor Disable');
    // Recovery replaces lost credentials: the passwordless form of a password reset (the link
    // issued is the attempt, its use completes it).
    case 'auth.recovery_issued':
    case 'auth.recovery_used':
      return m(ACCOUNT_CHANGE, 4, 'Password Reset');
    case 'auth.credential_renamed':
    case 'auth.enrollment_issued':
      return m(ACCOUNT_CHANGE, OTHER, kind);
    // Tokens → Authentication's ticket activities, not Authorize Session (3003): 3003 reports
    // privileges or groups assigned to a session at logon, which Keygate does not do; issuing
    // an audience-bound, short-lived token on the strength of an earlier login is what a
    // service ticket is, and a refresh (where reuse is caught) is its renewal. Revoking a
    // token or grant ends that session.
    case 'token.issued':
    case 'token.refused':
      return m(AUTHENTICATION, 4, 'Service Ticket Request');
    case 'token.refreshed':
      return m(AUTHENTICATION, 5, 'Service Ticket Renew');
    case 'token.reuse_detected':
      return m(AUTHENTICATION, 5, 'Service Ticket Renew');
    case 'token.revoked':
      return m(AUTHENTICATION, 2, 'Logoff');
    case 'audit.started':
      return m(APPLICATION_LIFECYCLE, 3, 'Start');
    // Retention ran: the application's own housekeeping.
    case 'audit.pruned':
      return m(APPLICATION_LIFECYCLE, OTHER, kind);
    // An admin managing a principal (service principal, invitation, secret): Entity Management,
    // with its Create / Update / Delete activity read off the operation's verb.
    // An identity provider provisioning people and groups (SCIM) manages entities the same way.
    case 'admin.change':
    case 'scim.change':
      return entityManagement(r.change?.op ?? '');
    // Kinds added later (admin changes, say) are API calls until they get a mapping of their own.
    default:
      return m(API_ACTIVITY, OTHER, kind);
  }
}

// ---------------------------------------------------------------------------------------------
// Record → event.

const SEVERITIES = { 1: 'Informational', 2: 'Low', 3: 'Medium', 4: 'High' } as const;
const STATUSES = { 0: 'Unknown', 1: 'Success', 2: 'Failure' } as const;

function statusOf(r: ChainedRecord): 0 | 1 | 2 {
  if (r.outcome !== undefined) return r.outcome === 'success' ? 1 : 2;
  if (r.decision !== undefined && r.decision.effect !== 'allow') return 2;
  if (r.status !== undefined) return r.status < 400 ? 1 : 2;
  if (r.decision !== undefined) return 1;
  // A process start is a fact, not an attempt.
  return r.kind === 'audit.started' ? 1 : 0;
}

function severityOf(r: ChainedRecord, status: 0 | 1 | 2): 1 | 2 | 3 | 4 {
  // A replayed refresh token means a token was copied: its family is already revoked.
  if (r.kind === 'token.reuse_detected') return 4;
  // Recovery bypasses the person's keys: worth a look even when it succeeds.
  if (r.kind === 'auth.recovery_issued' || r.kind === 'auth.recovery_used') return 3;
  return status === 2 ? 2 : 1;
}

/** Copy only the members that are set: OCSF omits what the source does not know. */
function defined<T extends object>(o: { [K in keyof T]: T[K] | undefined }): T {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined) out[k] = v;
  return out as T;
}

const USER_TYPES: Record<AuditActor['type'], [OcsfUser['type_id'], string]> = {
  user: [1, 'User'],
  system: [3, 'System'],
  service_principal: [OTHER, 'service_principal'],
  agent: [OTHER, 'agent'],
  anonymous: [0, 'Unknown'],
};

function userOf(a: AuditActor): OcsfUser {
  const [typeId, type] = USER_TYPES[a.type] ?? [0, 'Unknown'];
  return defined<OcsfUser>({ uid: a.id, email_addr: a.email, type_id: typeId, type, credential_uid: a.credentialId });
}

function sessionOf(a: AuditActor): OcsfSession | undefined {
  const uid = a.sessionId ?? a.tokenId;
  if (uid === undefined && a.authTime === undefined) return undefined;
  // WebAuthn with user verification is possession plus PIN or biometric: multi-factor.
  return defined<OcsfSession>({ uid, created_time: a.authTime, is_mfa: a.uv });
}

function authorizationsOf(d: ChainedRecord['decision']): OcsfAuthorization[] | undefined {
  if (d === undefined) return undefined;
  if (d.reasons.length === 0) return [{ decision: d.effect }];
  return d.reasons.map((uid) => ({ decision: d.effect, policy: { uid } }));
}

/** `Type::id` as the classifier writes it. */
function resourceOf(resource: string | undefined): { uid: string; type: string }[] | undefined {
  if (resource === undefined) return undefined;
  const i = resource.indexOf('::');
  return i === -1 ? [{ uid: resource, type: 'Unknown' }] : [{ type: resource.slice(0, i), uid: resource.slice(i + 2) }];
}

function nonEmpty(s: string | undefined): string | undefined {
  return s === undefined || s === '' ? undefined : s;
}

/** The record as an OCSF event; the record itself rides along, unchanged, in `unmapped.keygate`. */
export function toOcsf(r: ChainedRecord): OcsfEvent {
  const { cls, activityId, activityName } = classify(r);
  const status = statusOf(r);
  const severity = severityOf(r, status);
  const a = r.actor;
  const q = r.request;
  const upstreamName =
    r.upstream?.name ?? (typeof r.detail?.['upstream'] === 'string' ? r.detail['upstream'] : undefined);
  const reasonText =
    r.reason ?? (r.decision !== undefined && r.decision.effect !== 'allow' ? r.decision.reasons.join(', ') : undefined);

  // Auth events carry the client's address and user agent with an empty method and path.
  const httpRequest =
    q === undefined
      ? undefined
      : defined<OcsfHttpRequest>({
          http_method: nonEmpty(q.method),
          url: nonEmpty(q.path) === undefined ? undefined : { path: q.path },
          user_agent: q.userAgent,
          uid: q.requestId,
        });

  const isApi = cls.uid === API_ACTIVITY.uid;
  const isIam = cls.uid === AUTHENTICATION.uid || cls.uid === ACCOUNT_CHANGE.uid;
  const isAuth = cls.uid === AUTHENTICATION.uid;
  const webauthn = r.kind === 'auth.login' || r.kind === 'auth.step_up';

  return defined<OcsfEvent>({
    class_uid: cls.uid,
    class_name: cls.name,
    category_uid: cls.category,
    category_name: CATEGORY_NAMES[cls.category],
    activity_id: activityId,
    activity_name: activityName,
    type_uid: cls.uid * 100 + activityId,
    type_name: `${cls.name}: ${activityName}`,
    severity_id: severity,
    severity: SEVERITIES[severity],
    status_id: status,
    status: STATUSES[status],
    status_code: r.status === undefined ? undefined : String(r.status),
    status_detail: nonEmpty(reasonText),
    time: r.at,
    metadata: defined<OcsfEvent['metadata']>({
      version: OCSF_VERSION,
      product: { ...PRODUCT },
      uid: r.id,
      log_name: LOG_NAME,
      sequence: r.seq,
      event_code: r.kind,
      correlation_uid: a.authEventId,
    }),
    actor: defined<OcsfActor>({ user: userOf(a), session: sessionOf(a), authorizations: authorizationsOf(r.decision) }),
    src_endpoint: q === undefined || q.ip === '' ? undefined : { ip: q.ip },
    http_request: httpRequest === undefined || Object.keys(httpRequest).length === 0 ? undefined : httpRequest,
    http_response:
      r.status === undefined
        ? undefined
        : defined<OcsfHttpResponse>({
            code: r.status,
            latency: r.upstream === undefined ? undefined : Math.round(r.upstream.latencyMs),
            length: r.upstream?.bytes,
          }),
    api: isApi
      ? defined<OcsfApi>({
          operation: q?.action ?? nonEmpty(q?.method?.toUpperCase()) ?? r.kind,
          request: q?.requestId === undefined ? undefined : { uid: q.requestId },
          response: r.status === undefined ? undefined : { code: r.status },
          service: upstreamName === undefined ? undefined : { name: upstreamName },
        })
      : undefined,
    resources: isApi ? resourceOf(q?.resource) : undefined,
    user: isIam ? userOf(a) : undefined,
    service: isAuth ? { name: PRODUCT.name } : undefined,
    // OCSF auth_protocol_id: 6 OAUTH 2.0; 99 Other (WebAuthn has no id of its own).
    auth_protocol_id: isAuth ? (r.kind.startsWith('token.') ? 6 : webauthn ? OTHER : undefined) : undefined,
    auth_protocol: isAuth ? (r.kind.startsWith('token.') ? 'OAUTH 2.0' : webauthn ? 'WebAuthn' : undefined) : undefined,
    is_mfa: isAuth && webauthn ? a.uv : undefined,
    app: cls.uid === APPLICATION_LIFECYCLE.uid ? { ...PRODUCT } : undefined,
    unmapped: { keygate: structuredClone(r) },
  });
}

// ---------------------------------------------------------------------------------------------
// Event → record.

const str = z.string();
const opt = <T extends z.ZodType>(t: T) => t.exactOptional();
const epochMs = z.number().int().nonnegative();
const sha256Hex = z.string().regex(/^[0-9a-f]{64}$/, 'expected 64 lowercase hex digits');
const kinds = Object.keys(AUDIT_KINDS) as [AuditKind, ...AuditKind[]];

/** ChainedRecord, exactly: unknown members are refused (they would not be in the hash's type). */
const chainedRecord = z.strictObject({
  id: str.min(1),
  seq: z.number().int().positive(),
  prevHash: sha256Hex,
  hash: sha256Hex,
  kind: z.enum(kinds, { error: 'not a catalogued audit kind' }),
  at: epochMs,
  actor: z.strictObject({
    type: z.enum(['user', 'service_principal', 'agent', 'anonymous', 'system']),
    id: opt(str),
    email: opt(str),
    authEventId: opt(str),
    method: opt(str),
    credentialId: opt(str),
    aaguid: opt(str),
    authenticator: opt(str),
    uv: opt(z.boolean()),
    authTime: opt(epochMs),
    sessionId: opt(str),
    tokenId: opt(str),
    deviceBound: opt(z.boolean()),
    via: opt(str),
  }),
  request: opt(
    z.strictObject({
      method: str,
      path: str,
      action: opt(str),
      resource: opt(str),
      ip: str,
      userAgent: opt(str),
      requestId: opt(str),
    }),
  ),
  decision: opt(z.strictObject({ effect: z.enum(['allow', 'deny', 'step_up', 'error']), reasons: z.array(str) })),
  upstream: opt(
    z.strictObject({
      name: str,
      status: z.number().int(),
      latencyMs: z.number().nonnegative(),
      bytes: z.number().int().nonnegative(),
      identity: opt(
        z.strictObject({
          type: z.enum(['federated', 'service-principal', 'static', 'none']),
          subject: opt(str),
          fallback: opt(str),
        }),
      ),
    }),
  ),
  status: opt(z.number().int()),
  outcome: opt(z.enum(['success', 'failure'])),
  reason: opt(str),
  detail: opt(z.record(str, z.union([str, z.number(), z.boolean(), z.null()]))),
  change: opt(
    z.strictObject({
      op: str,
      target: str,
      before: opt(z.record(str, z.union([str, z.number(), z.boolean(), z.null(), z.array(str)]))),
      after: opt(z.record(str, z.union([str, z.number(), z.boolean(), z.null(), z.array(str)]))),
    }),
  ),
});

/** What we need of the envelope; a SIEM may have added members of its own. */
const keygateEvent = z.looseObject({
  time: z.number(),
  metadata: z.looseObject({
    product: z.looseObject({ name: z.literal(PRODUCT.name) }),
    uid: str,
    sequence: z.number(),
  }),
  unmapped: z.looseObject({ keygate: chainedRecord }),
});

function issuesOf(error: z.ZodError): string {
  return error.issues
    .slice(0, 3)
    .map((i) => `${i.path.length === 0 ? '(event)' : i.path.join('.')}: ${i.message}`)
    .join('; ');
}

/**
 * The record inside a Keygate OCSF event. Throws, naming the first problems, for anything else:
 * not an object, another product's event, no `unmapped.keygate`, a record of the wrong shape,
 * or an event whose id, sequence or time disagree with its record.
 */
export function fromOcsf(e: unknown): ChainedRecord {
  const parsed = keygateEvent.safeParse(e);
  if (!parsed.success) throw new Error(`not a Keygate OCSF event: ${issuesOf(parsed.error)}`);
  const { time, metadata, unmapped } = parsed.data;
  const r: ChainedRecord = unmapped.keygate;
  if (metadata.uid !== r.id || metadata.sequence !== r.seq || time !== r.at) {
    throw new Error(
      `not a Keygate OCSF event: metadata.uid, metadata.sequence and time (${metadata.uid}, ${metadata.sequence}, ${time}) ` +
        `disagree with the record (${r.id}, ${r.seq}, ${r.at})`,
    );
  }
  return r;
}
