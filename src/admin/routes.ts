/**
 * The admin API (docs/guides/admin-api.md): users, their keys and sessions, invitations and
 * recovery links, service principals, the audit log.
 * Every call passes one authorizing layer: a live session, and Cedar's decision on `admin:read`
 * or `admin:manage` (sensitive: a recent login) for the area (`Keygate::<area>`).
 */
import { randomUUID } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { JWK } from 'jose';
import { z } from 'zod';
import { isAuditKind } from '../audit/catalogue.js';
import { actorOf } from '../audit/entries.js';
import type { AuditLog } from '../audit/log.js';
import { type AuditPage, BadCursorError } from '../audit/query.js';
import type { AuditChange } from '../audit/record.js';
import { readCookie } from '../authenticate/cookies.js';
import { isEmail } from '../authenticate/enrollment.js';
import type { Authentication } from '../authenticate/index.js';
import type { Identifier, Identity } from '../authenticate/identity.js';
import { authenticatorKind, authenticatorName } from '../authenticate/webauthn/authenticators.js';
import { ACTION_NAMES } from '../authorize/actions.js';
import { DescribeError, type Evaluation, evaluateDescribed, RESOURCE_REF } from '../authorize/describe.js';
import type { Authorizer } from '../authorize/engine.js';
import { SHIPPED_ROLES } from '../authorize/roles.js';
import { type Config, federationTrust } from '../config/schema.js';
import { KeygateError } from '../errors/index.js';
import { globMatch } from '../lib/glob.js';
import { parseInput } from '../lib/parse.js';
import { parseTime } from '../lib/time.js';
import { assertUsableKeys, publicJwks, type ServicePrincipals } from '../oauth/service-principals.js';
import type {
  CredentialRecord,
  OAuthGrantSummary,
  RoleBindingRecord,
  ServicePrincipalRecord,
  SessionRecord,
  Store,
  UserRecord,
} from '../store/types.js';
import { newScimToken, SCIM_PREFIX } from '../scim/server.js';
import { type AdminArea, AdminRoutes } from './openapi.js';
import type { People } from './people.js';

const inviteBody = z.strictObject({
  email: z.string().trim().refine(isEmail, 'must be an email address'),
  displayName: z.string().trim().min(1).max(128).optional(),
  roles: z
    .array(z.string().regex(/^[a-z][a-z0-9-]{0,62}$/, 'must be a role name'))
    .max(16)
    .default([]),
});
const recoverBody = z.strictObject({ email: z.string().trim().refine(isEmail, 'must be an email address') });
const roleList = z
  .array(z.string().regex(/^[a-z][a-z0-9-]{0,62}$/, 'must be a role name'))
  .max(16)
  .default([]);
const spBody = z.strictObject({
  name: z.string().trim().min(1).max(63),
  description: z.string().max(512).optional(),
  roles: roleList,
  /** false: no secret (workload federation only). */
  secret: z.boolean().default(true),
  /** Public keys for private_key_jwt instead of a secret. */
  jwks: z.strictObject({ keys: z.array(z.record(z.string(), z.unknown())).min(1).max(8) }).optional(),
});
const spParams = z.object({ id: z.string().min(1).max(200) });
const userParams = z.object({ id: z.string().min(1).max(200) });
const credentialParams = z.object({ id: z.string().min(1).max(200), credentialId: z.string().min(1).max(1024) });
const sessionParams = z.object({
  id: z.string().regex(/^[0-9a-f]{64}$/, 'must be a session id from the sessions list'),
});
const userList = z.strictObject({
  q: z.string().max(200).optional(),
  cursor: z.string().max(400).optional(),
  limit: z.coerce.number().int().min(1).max(500).default(50),
});
const policyTestBody = z
  .strictObject({
    principal: z
      .string()
      .max(320)
      .regex(/^(user|sp|agent):.+$/, 'must be user:EMAIL, sp:ID or agent:ID'),
    groups: z.array(z.string().min(1).max(256)).max(100).optional(),
    roles: z
      .array(z.string().regex(/^[a-z][a-z0-9-]{0,62}$/, 'must be a role name'))
      .max(32)
      .optional(),
    action: z.enum(ACTION_NAMES).optional(),
    resource: z
      .string()
      .max(512)
      .regex(RESOURCE_REF, 'must be Type::name (Workspace, Endpoint, Model, Job, Api, Keygate)')
      .optional(),
    method: z.enum(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']).optional(),
    path: z.string().max(4096).startsWith('/').optional(),
    body: z.string().max(65_536).optional(),
    authAgeSeconds: z.number().int().min(0).max(315_360_000).default(0),
    uv: z.boolean().default(true),
  })
  .refine(
    (b) => b.action !== undefined || b.path !== undefined,
    'give an action (and resource), or a path (and method)',
  );
const bindingBody = z.union([
  z.strictObject({
    group: z.string().trim().min(1).max(256),
    role: z.string().regex(/^[a-z][a-z0-9-]{0,62}$/, 'must be a role name'),
  }),
  z.strictObject({
    user: z.string().trim().refine(isEmail, 'must be an email address'),
    role: z.string().regex(/^[a-z][a-z0-9-]{0,62}$/, 'must be a role name'),
  }),
]);
const bindingParams = z.object({ id: z.string().min(1).max(64) });
const statsQuery = z.strictObject({ window: z.enum(['1h', '24h']).default('1h') });
const familyParams = z.object({ id: z.string().min(1).max(200) });
const familyList = z.strictObject({
  user: z.string().min(1).max(200).optional(),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
});
const sessionList = z.strictObject({
  user: z.string().min(1).max(200).optional(),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
});
/** ISO 8601 or epoch milliseconds. */
const time = z
  .string()
  .max(40)
  .transform((v, ctx) => {
    const n = parseTime(v);
    if (n === undefined) {
      ctx.addIssue({ code: 'custom', message: 'must be an ISO 8601 time or epoch milliseconds' });
      return z.NEVER;
    }
    return n;
  });
const auditQuery = z.strictObject({
  actor: z.string().min(1).max(200).optional(),
  kind: z.string().refine(isAuditKind, 'must be an event code from docs/audit-events.md').optional(),
  action: z.string().min(1).max(128).optional(),
  decision: z.enum(['allow', 'deny', 'step_up', 'error']).optional(),
  since: time.optional(),
  until: time.optional(),
  cursor: z.string().min(1).max(64).optional(),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
});
const spKeys = z.strictObject({
  keys: z.array(z.record(z.string(), z.unknown())).min(1).max(8),
});
const groupName = z
  .string()
  .trim()
  .min(1)
  .max(256)
  .regex(/^[^\p{Cc}]+$/u, 'must not contain control characters');
const groupBody = z.strictObject({ name: groupName, description: z.string().max(512).default('') });
const groupParams = z.object({ id: z.string().min(1).max(256) });
const memberParams = z.object({ id: z.string().min(1).max(256), userId: z.string().min(1).max(200) });
const trustBody = federationTrust
  .extend({
    name: z
      .string()
      .trim()
      .min(1)
      .max(63)
      .regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, 'must be a name such as github-ml'),
  })
  .refine((t) => (t.jwksUrl === undefined) !== (t.jwks === undefined), 'set exactly one of jwksUrl and jwks');
const trustParams = z.object({ name: z.string().min(1).max(63) });
type FederationTrust = Config['tokens']['federation'][number];
const secretParams = z.object({ id: z.string().min(1).max(200), secretId: z.string().min(1).max(64) });

/** Who made an admin call: a person (session or token) or a service principal (token). */
export interface AdminCaller {
  /** The user's or service principal's id. */
  id: string;
  identity: Identity;
}

export interface AdminDeps {
  auth: Authentication;
  publicOrigin: () => string;
  clientIp: (req: FastifyRequest['raw']) => string;
  sps: ServicePrincipals;
  /** Keygate access tokens (Bearer or DPoP), for callers without a browser session. */
  tokens: Identifier;
  /** The audience a token must carry to be accepted here: Keygate's own issuer URL. */
  adminAudience: () => string;
  audit: AuditLog;
  store: Store;
  authorizer: Pick<Authorizer, 'decide' | 'stepUpMaxAgeS'> & Partial<Pick<Authorizer, 'rolesOf'>>;
  config: Config;
  /** Re-read the stored role bindings into the authorizer (after a change). */
  reloadBindings: () => Promise<void>;
  /** Re-read the stored federation trusts into the token endpoint (after a change). */
  reloadTrusts: () => Promise<void>;
  /** Trusts in force: keygate.yaml's, then the stored ones. */
  trusts: () => readonly FederationTrust[];
  /** Disabling and deleting people (shared with SCIM). */
  people: People;
  /** A person's groups changed: their next request, on any replica, re-reads them. */
  groupsChanged: (userId: string) => void;
  /** Refuse every token of a subject issued so far (a disabled service principal). */
  revokeSubject: (subject: string) => Promise<void>;
  /** End a token family: its refresh tokens are deleted and its access tokens refused at once. */
  revokeGrant: (grantId: string) => Promise<void>;
  now: () => number;
}

/** The request's path without its query string (which may carry secrets). */
function pathOf(req: FastifyRequest): string {
  const url = req.raw.url ?? '';
  const q = url.indexOf('?');
  return q === -1 ? url : url.slice(0, q);
}

export function registerAdminRoutes(app: FastifyInstance, deps: AdminDeps): void {
  const { auth, publicOrigin, clientIp, sps, audit } = deps;
  /**
   * Who is calling: an admin's browser session, or — for `keygate admin … --gateway` and
   * automation — a Keygate access token whose audience is Keygate itself (never a token made
   * for an upstream: RFC 8707 audiences keep the two apart). A token that is presented and
   * invalid is refused; it does not fall back to the cookie.
   */
  const callerOf = async (req: FastifyRequest): Promise<AdminCaller> => {
    if (req.headers.authorization !== undefined) {
      const identity = await deps.tokens.identify(req.raw);
      if (identity === null)
        throw new KeygateError('UNAUTHENTICATED', { message: 'Use a Bearer or DPoP access token.' });
      const audience = deps.adminAudience();
      if (!(identity.auth.audiences ?? []).includes(audience)) {
        throw new KeygateError('UNAUTHENTICATED', {
          message: `This token is not for the admin API: its audience must be ${audience}.`,
          detail: `token audience ${(identity.auth.audiences ?? []).join(',')}`,
        });
      }
      return { id: identity.principal.id, identity };
    }
    const s = await auth.sessions.resolve(readCookie(req.headers.cookie, auth.sessions.cookieName));
    if (!s) throw new KeygateError('UNAUTHENTICATED', { message: 'Sign in first.' });
    return { id: s.user.id, identity: s.identity };
  };
  /**
   * The one authorizing layer for admin calls: Cedar decides `admin:read` or `admin:manage` on
   * `Keygate::<area>` for the caller like for any request — roles, group bindings and custom
   * policies apply, and the decision's reasons are policy ids. `admin:manage` is a sensitive
   * action: the step-up guard rail asks a person for a login within `stepUpMaxAge`.
   */
  const authorize = async (
    req: FastifyRequest,
    action: 'admin:read' | 'admin:manage',
    area: AdminArea,
  ): Promise<AdminCaller> => {
    const caller = await callerOf(req);
    // A token narrowed by scope reaches only the admin actions it names (`admin:read` or
    // `admin:read/<area glob>`), as on the proxy.
    const scopes = caller.identity.auth.scopes;
    if (
      scopes !== undefined &&
      !scopes.some((s) => s === action || (s.startsWith(`${action}/`) && globMatch(s.slice(action.length + 1), area)))
    ) {
      throw new KeygateError('PERMISSION_DENIED', {
        message: `This token's scope does not include ${action} on Keygate::${area}.`,
        detail: `token scope ${scopes.join(' ')}`,
      });
    }
    const d = deps.authorizer.decide({
      identity: caller.identity,
      action,
      resource: { type: 'Keygate', id: area },
      ip: clientIp(req.raw),
      method: req.method,
      path: pathOf(req),
      now: deps.now(),
    });
    if (d.effect === 'allow') return caller;
    if (d.effect === 'step_up') {
      throw new KeygateError('FRESH_LOGIN_REQUIRED', {
        message:
          caller.identity.auth.method === 'webauthn'
            ? 'Changes need a login within the last few minutes: tap your security key again, then retry.'
            : 'Changes need a login within the last few minutes: run `keygate login` again (tap your key), then retry.',
      });
    }
    throw new KeygateError('PERMISSION_DENIED', {
      message: `This needs ${action} on Keygate::${area} (denied by ${d.reasons.join(', ')}).`,
    });
  };
  const r = new AdminRoutes(app, '/.keygate/api/admin/v1', authorize);
  const ctx = (req: FastifyRequest) => ({ ip: clientIp(req.raw), userAgent: String(req.headers['user-agent'] ?? '') });
  /** An admin.change record: the admin (and the login behind the session), the call, the change. */
  const changed = (req: FastifyRequest, admin: AdminCaller, change: AuditChange): void => {
    const ua = req.headers['user-agent'];
    audit.record({
      kind: 'admin.change',
      at: deps.now(),
      actor: actorOf(admin.identity),
      request: {
        method: req.method,
        path: pathOf(req),
        ip: clientIp(req.raw),
        ...(ua === undefined ? {} : { userAgent: ua.slice(0, 256) }),
        requestId: req.id,
      },
      change,
      outcome: 'success',
    });
  };

  r.add(
    'POST',
    '/invitations',
    {
      summary: 'Invite a person: a one-time enrollment link',
      action: 'admin:manage',
      area: 'invitations',
      body: inviteBody,
      ok: { status: 201, description: 'The link (shown once) and the user.' },
    },
    async (req, reply, admin) => {
      const b = parseInput(inviteBody, req.body);
      const link = await auth.enrollment.invite(publicOrigin(), {
        email: b.email,
        roles: b.roles,
        createdBy: admin.id,
        ...(b.displayName === undefined ? {} : { displayName: b.displayName }),
      });
      await auth.events.record('auth.enrollment_issued', ctx(req), { outcome: 'success', userId: link.user.id });
      changed(req, admin, {
        op: 'invitation.create',
        target: `user:${link.user.id}`,
        after: { email: link.user.email, roles: b.roles, expiresAt: link.expiresAt },
      });
      reply.code(201).header('cache-control', 'no-store');
      return { url: link.url, expiresAt: link.expiresAt, user: { id: link.user.id, email: link.user.email } };
    },
  );

  r.add(
    'POST',
    '/recovery-links',
    {
      summary: 'A one-time recovery link for a person who lost their keys',
      action: 'admin:manage',
      area: 'users',
      body: recoverBody,
      ok: { status: 201, description: 'The link (shown once) and the user.' },
    },
    async (req, reply, admin) => {
      const b = parseInput(recoverBody, req.body);
      let link: Awaited<ReturnType<typeof auth.enrollment.recover>>;
      try {
        link = await auth.enrollment.recover(publicOrigin(), b.email, admin.id);
      } catch {
        throw new KeygateError('NOT_FOUND', { message: 'No user with that email.' });
      }
      await auth.events.record('auth.recovery_issued', ctx(req), { outcome: 'success', userId: link.user.id });
      changed(req, admin, {
        op: 'recovery_link.create',
        target: `user:${link.user.id}`,
        after: { email: link.user.email, expiresAt: link.expiresAt },
      });
      reply.code(201).header('cache-control', 'no-store');
      return { url: link.url, expiresAt: link.expiresAt, user: { id: link.user.id, email: link.user.email } };
    },
  );

  // ---- service principals ------------------------------------------------------------------
  const spView = async (sp: ServicePrincipalRecord) => ({
    id: sp.id,
    name: sp.name,
    description: sp.description,
    roles: sp.roles,
    auth:
      sp.jwks !== null
        ? 'private_key_jwt'
        : (await sps.liveSecrets(sp.id)).length > 0
          ? 'client_secret_basic'
          : 'federation',
    secrets: (await sps.liveSecrets(sp.id)).map((x) => ({ id: x.id, createdAt: x.createdAt, expiresAt: x.expiresAt })),
    createdAt: sp.createdAt,
    disabled: sp.disabledAt !== null,
  });

  r.add(
    'GET',
    '/service-principals',
    {
      summary: 'Service principals, their auth method and live secret ids',
      action: 'admin:read',
      area: 'service-principals',
      ok: { status: 200, description: '{ servicePrincipals }' },
    },
    async (_req, reply, _admin) => {
      reply.header('cache-control', 'no-store');
      const all = await Promise.all((await sps.list()).map(spView));
      return { servicePrincipals: all };
    },
  );

  r.add(
    'POST',
    '/service-principals',
    {
      summary: 'Create a service principal (its secret is in this response only)',
      action: 'admin:manage',
      area: 'service-principals',
      body: spBody,
      ok: { status: 201, description: 'The principal, and clientSecret once.' },
    },
    async (req, reply, admin) => {
      const b = parseInput(spBody, req.body);
      const { sp, secret } = await sps.create({
        name: b.name,
        roles: b.roles,
        createdBy: admin.id,
        withSecret: b.secret,
        ...(b.description === undefined ? {} : { description: b.description }),
        ...(b.jwks === undefined ? {} : { jwks: b.jwks as never }),
      });
      const view = await spView(sp);
      changed(req, admin, {
        op: 'service_principal.create',
        target: `service_principal:${sp.id}`,
        after: {
          name: sp.name,
          roles: sp.roles,
          auth: view.auth,
          // The secret's id, never the secret.
          secretIds: secret === null ? [] : [secret.record.id],
        },
      });
      reply.code(201).header('cache-control', 'no-store');
      return {
        ...view,
        // Shown once: only its hash is kept.
        ...(secret === null
          ? {}
          : { clientSecret: secret.secret, secretId: secret.record.id, secretExpiresAt: secret.record.expiresAt }),
      };
    },
  );

  r.add(
    'POST',
    '/service-principals/:id/secrets',
    {
      summary: 'A new secret (two live at most; older ones revoked)',
      action: 'admin:manage',
      area: 'service-principals',
      params: spParams,
      ok: { status: 201, description: 'clientSecret once, its id and expiry.' },
    },
    async (req, reply, admin) => {
      const { id } = parseInput(spParams, req.params);
      const before = (await sps.liveSecrets(id)).map((x) => x.id).sort();
      const r = await sps.rotate(id);
      changed(req, admin, {
        op: 'service_principal.secret_create',
        target: `service_principal:${r.sp.id}`,
        before: { secretIds: before },
        after: { secretIds: (await sps.liveSecrets(id)).map((x) => x.id).sort() },
      });
      reply.code(201).header('cache-control', 'no-store');
      return {
        clientId: r.sp.id,
        clientSecret: r.secret.secret,
        secretId: r.secret.record.id,
        secretExpiresAt: r.secret.record.expiresAt,
        revokedSecretIds: r.revoked,
      };
    },
  );

  r.add(
    'DELETE',
    '/service-principals/:id/secrets/:secretId',
    {
      summary: 'Revoke a secret',
      action: 'admin:manage',
      area: 'service-principals',
      params: secretParams,
      ok: { status: 204, description: 'Revoked.' },
    },
    async (req, reply, admin) => {
      const { id, secretId } = parseInput(secretParams, req.params);
      if (!(await sps.revokeSecret(id, secretId)))
        throw new KeygateError('NOT_FOUND', { message: 'No such live secret.' });
      changed(req, admin, {
        op: 'service_principal.secret_revoke',
        target: `service_principal:${id}`,
        before: { secretId },
      });
      reply.code(204);
    },
  );

  r.add(
    'PUT',
    '/service-principals/:id/keys',
    {
      summary: 'Register (replace) the public keys it signs private_key_jwt assertions with',
      action: 'admin:manage',
      area: 'service-principals',
      params: spParams,
      body: spKeys,
      ok: { status: 200, description: 'The principal.' },
    },
    async (req, _reply, admin) => {
      const { id } = parseInput(spParams, req.params);
      const b = parseInput(spKeys, req.body);
      const before = await sps.find(id);
      let sp: ServicePrincipalRecord;
      try {
        sp = await sps.setKeys(id, b as never);
      } catch (e) {
        // Name the field, like every validation error.
        if (e instanceof KeygateError && e.status === 400) {
          throw new KeygateError('BAD_REQUEST', { message: `keys: ${e.message}` });
        }
        throw e;
      }
      const kids = (j: string | null) =>
        j === null ? [] : (JSON.parse(j) as { keys: { kid?: string }[] }).keys.map((k) => k.kid ?? '?');
      changed(req, admin, {
        op: 'service_principal.keys_update',
        target: `service_principal:${sp.id}`,
        before: { keyIds: kids(before?.jwks ?? null) },
        after: { keyIds: kids(sp.jwks) },
      });
      return spView(sp);
    },
  );

  r.add(
    'POST',
    '/service-principals/:id/disable',
    {
      summary: 'Disable: no new tokens, and its tokens already issued are refused at once',
      action: 'admin:manage',
      area: 'service-principals',
      params: spParams,
      ok: { status: 200, description: 'The principal.' },
    },
    async (req, _reply, admin) => {
      const { id } = parseInput(spParams, req.params);
      const sp = await sps.disable(id);
      await deps.revokeSubject(sp.id);
      changed(req, admin, {
        op: 'service_principal.disable',
        target: `service_principal:${sp.id}`,
        before: { disabled: false },
        after: { disabled: true },
      });
      return spView({ ...sp, disabledAt: deps.now() });
    },
  );

  // ---- users, their keys and sessions ------------------------------------------------------
  const userView = (u: UserRecord) => ({
    id: u.id,
    email: u.email,
    displayName: u.displayName,
    roles: u.roles,
    groups: u.groups,
    createdAt: u.createdAt,
    disabled: u.disabledAt !== null,
    disabledAt: u.disabledAt,
  });
  const credentialView = (c: CredentialRecord) => ({
    id: c.id,
    name: c.name,
    aaguid: c.aaguid,
    // The model's name and icon from the FIDO metadata BLOB where configured, else Keygate's short list.
    authenticator: auth.metadata?.description(c.aaguid) ?? authenticatorName(c.aaguid),
    kind: authenticatorKind(c.aaguid),
    icon: auth.metadata?.icon(c.aaguid) ?? null,
    // A passkey that may be copied to the person's other devices (backup eligible), and whether it is.
    synced: c.backedUp,
    backupEligible: c.backupEligible,
    attested: c.attested,
    transports: c.transports,
    createdAt: c.createdAt,
    lastUsedAt: c.lastUsedAt,
    revokedAt: c.revokedAt,
  });
  const sessionView = (x: SessionRecord) => ({
    // The session's id is the hash of its cookie: it names the session, it cannot be used as one.
    id: x.idHash,
    userId: x.userId,
    credentialId: x.credentialId,
    authEventId: x.authEventId,
    authTime: x.authTime,
    createdAt: x.createdAt,
    lastSeenAt: x.lastSeenAt,
    expiresAt: x.expiresAt,
    ip: x.ip,
    userAgent: x.userAgent,
  });
  const userOr404 = async (id: string): Promise<UserRecord> => {
    const u = await deps.store.getUser(id);
    if (!u) throw new KeygateError('NOT_FOUND', { message: 'No such user.' });
    return u;
  };

  r.add(
    'GET',
    '/users',
    {
      summary: 'Users whose email or name contains q, in email order',
      action: 'admin:read',
      area: 'users',
      query: userList,
      ok: { status: 200, description: '{ users, next }' },
    },
    async (req, reply, _admin) => {
      const q = parseInput(userList, req.query);
      const after = q.cursor === undefined ? undefined : Buffer.from(q.cursor, 'base64url').toString();
      const users = await deps.store.listUsers({
        ...(q.q === undefined ? {} : { query: q.q }),
        ...(after === undefined ? {} : { after }),
        limit: q.limit + 1,
      });
      const page = users.slice(0, q.limit);
      reply.header('cache-control', 'no-store');
      return {
        users: page.map(userView),
        next: users.length > q.limit ? Buffer.from((page.at(-1) as UserRecord).email).toString('base64url') : null,
      };
    },
  );

  r.add(
    'GET',
    '/users/:id',
    {
      summary: 'A user with their keys and live sessions',
      action: 'admin:read',
      area: 'users',
      params: userParams,
      ok: { status: 200, description: 'The user, credentials and sessions.' },
    },
    async (req, reply, _admin) => {
      const u = await userOr404(parseInput(userParams, req.params).id);
      reply.header('cache-control', 'no-store');
      return {
        ...userView(u),
        credentials: (await deps.store.listCredentials(u.id)).map(credentialView),
        sessions: (await deps.store.listSessions({ userId: u.id, liveAt: deps.now(), limit: 1000 })).map(sessionView),
      };
    },
  );

  // Disabling ends the person's sessions at once; their tokens stop at the next refresh (the
  // authorization server refuses a disabled account) and their access tokens within 10 minutes.
  for (const [verb, disabled] of [
    ['disable', true],
    ['enable', false],
  ] as const) {
    r.add(
      'POST',
      `/users/:id/${verb}`,
      {
        summary: disabled
          ? 'Disable a user: their sessions end, logins and refreshes are refused'
          : 'Enable a disabled user',
        action: 'admin:manage',
        area: 'users',
        params: userParams,
        ok: { status: 200, description: 'The user.' },
      },
      async (req, _reply, admin) => {
        const u = await userOr404(parseInput(userParams, req.params).id);
        if (disabled && u.id === admin.id) {
          throw new KeygateError('BAD_REQUEST', { message: 'You cannot disable yourself.' });
        }
        await deps.people.setDisabled(u, disabled);
        changed(req, admin, {
          op: `user.${verb}`,
          target: `user:${u.id}`,
          before: { disabled: u.disabledAt !== null },
          after: { disabled },
        });
        return userView((await deps.store.getUser(u.id)) as UserRecord);
      },
    );
  }

  r.add(
    'DELETE',
    '/users/:id',
    {
      summary: 'Delete a user: sessions, token families and keys end at once; their audit records stay',
      action: 'admin:manage',
      area: 'users',
      params: userParams,
      ok: { status: 204, description: 'Deleted.' },
    },
    async (req, reply, admin) => {
      const u = await userOr404(parseInput(userParams, req.params).id);
      if (u.id === admin.id) throw new KeygateError('BAD_REQUEST', { message: 'You cannot delete yourself.' });
      const keys = await deps.store.listCredentials(u.id);
      // Everything that lets the person in ends first: sessions, refresh-token families, and
      // every access token already issued to them (refused at once, on every replica).
      await deps.people.delete(u);
      changed(req, admin, {
        op: 'user.delete',
        target: `user:${u.id}`,
        before: {
          email: u.email,
          displayName: u.displayName,
          roles: u.roles,
          groups: u.groups,
          credentials: keys.filter((k) => k.revokedAt === null).length,
          disabled: u.disabledAt !== null,
        },
      });
      reply.code(204);
    },
  );

  r.add(
    'DELETE',
    '/users/:id/credentials/:credentialId',
    {
      summary: 'Revoke a key; the sessions made with it end',
      action: 'admin:manage',
      area: 'credentials',
      params: credentialParams,
      ok: { status: 204, description: 'Revoked.' },
    },
    async (req, reply, admin) => {
      const { id, credentialId } = parseInput(credentialParams, req.params);
      const u = await userOr404(id);
      const c = (await deps.store.listCredentials(u.id)).find((x) => x.id === credentialId && x.revokedAt === null);
      if (!c) throw new KeygateError('NOT_FOUND', { message: 'No such live credential for this user.' });
      await deps.store.revokeCredential(u.id, c.id, deps.now());
      // Sessions made with that key end with it.
      await auth.sessions.revokeForCredential(c.id);
      changed(req, admin, {
        op: 'credential.revoke',
        target: `credential:${c.id}`,
        before: { user: u.id, name: c.name, authenticator: authenticatorName(c.aaguid), revoked: false },
        after: { revoked: true },
      });
      reply.code(204);
    },
  );

  r.add(
    'GET',
    '/sessions',
    {
      summary: 'Live sessions, most recently seen first',
      action: 'admin:read',
      area: 'sessions',
      query: sessionList,
      ok: { status: 200, description: '{ sessions }' },
    },
    async (req, reply, _admin) => {
      const q = parseInput(sessionList, req.query);
      reply.header('cache-control', 'no-store');
      const list = await deps.store.listSessions({
        ...(q.user === undefined ? {} : { userId: q.user }),
        liveAt: deps.now(),
        limit: q.limit,
      });
      return { sessions: list.map(sessionView) };
    },
  );

  r.add(
    'DELETE',
    '/sessions/:id',
    {
      summary: 'End one session',
      action: 'admin:manage',
      area: 'sessions',
      params: sessionParams,
      ok: { status: 204, description: 'Ended.' },
    },
    async (req, reply, admin) => {
      const { id } = parseInput(sessionParams, req.params);
      const x = await deps.store.getSession(id);
      if (!x || x.revokedAt !== null) throw new KeygateError('NOT_FOUND', { message: 'No such live session.' });
      await auth.sessions.revokeByHash(id);
      changed(req, admin, { op: 'session.revoke', target: `session:${id}`, before: { user: x.userId } });
      reply.code(204);
    },
  );

  r.add(
    'DELETE',
    '/users/:id/sessions',
    {
      summary: "End all of a user's sessions",
      action: 'admin:manage',
      area: 'sessions',
      params: userParams,
      ok: { status: 204, description: 'Ended.' },
    },
    async (req, reply, admin) => {
      const u = await userOr404(parseInput(userParams, req.params).id);
      const live = await deps.store.listSessions({ userId: u.id, liveAt: deps.now(), limit: 100_000 });
      await auth.sessions.revokeForUser(u.id);
      changed(req, admin, { op: 'session.revoke_all', target: `user:${u.id}`, before: { sessions: live.length } });
      reply.code(204);
    },
  );

  // ---- SCIM bearer tokens (what an identity provider provisions with) ------------------------
  const scimTokenBody = z.strictObject({ name: z.string().trim().min(1).max(63) });
  const scimTokenParams = z.object({ id: z.string().min(1).max(64) });
  r.add(
    'GET',
    '/scim-tokens',
    {
      summary: 'SCIM bearer tokens: name, when made and last used, revoked or not (never the token)',
      action: 'admin:read',
      area: 'users',
      ok: { status: 200, description: '{ tokens }' },
    },
    async (_req, reply, _admin) => {
      reply.header('cache-control', 'no-store');
      return {
        tokens: (await deps.store.listScimTokens()).map((t) => ({
          id: t.id,
          name: t.name,
          createdAt: t.createdAt,
          createdBy: t.createdBy,
          lastUsedAt: t.lastUsedAt,
          revokedAt: t.revokedAt,
        })),
      };
    },
  );
  r.add(
    'POST',
    '/scim-tokens',
    {
      summary: 'A SCIM bearer token for an identity provider (in this response only)',
      action: 'admin:manage',
      area: 'users',
      body: scimTokenBody,
      ok: { status: 201, description: 'The token (shown once), its id and the SCIM base URL.' },
    },
    async (req, reply, admin) => {
      const b = parseInput(scimTokenBody, req.body);
      const t = newScimToken(b.name, admin.id, deps.now());
      await deps.store.insertScimToken(t.record);
      changed(req, admin, { op: 'scim_token.create', target: `scim_token:${t.record.id}`, after: { name: b.name } });
      reply.code(201).header('cache-control', 'no-store');
      return { id: t.record.id, name: b.name, token: t.value, scimBaseUrl: `${publicOrigin()}${SCIM_PREFIX}` };
    },
  );
  r.add(
    'DELETE',
    '/scim-tokens/:id',
    {
      summary: 'Revoke a SCIM bearer token',
      action: 'admin:manage',
      area: 'users',
      params: scimTokenParams,
      ok: { status: 204, description: 'Revoked.' },
    },
    async (req, reply, admin) => {
      const { id } = parseInput(scimTokenParams, req.params);
      if (!(await deps.store.revokeScimToken(id, deps.now()))) {
        throw new KeygateError('NOT_FOUND', { message: 'No such live SCIM token.' });
      }
      changed(req, admin, { op: 'scim_token.revoke', target: `scim_token:${id}`, after: { revoked: true } });
      reply.code(204);
    },
  );

  // ---- groups and their members -------------------------------------------------------------
  // A person's groups are read with the person: a change applies to their next request (their
  // cached sessions are dropped here; other replicas re-read within 5 s). Access tokens carry
  // the groups they were issued with until they expire.
  const groupOr404 = async (idOrName: string) => {
    const g = await deps.store.getGroup(idOrName);
    if (!g) throw new KeygateError('NOT_FOUND', { message: 'No such group.' });
    return g;
  };
  /** The roles bound to each group (keygate.yaml's bindings and the stored ones), read once per call. */
  const rolesByGroup = async (): Promise<(name: string) => string[]> => {
    const map = new Map<string, Set<string>>();
    const add = (group: string, role: string) => map.set(group, (map.get(group) ?? new Set()).add(role));
    for (const b of deps.config.authorization.bindings) if ('group' in b) for (const x of b.roles) add(b.group, x);
    for (const b of await deps.store.listRoleBindings()) if (b.subjectType === 'group') add(b.subject, b.role);
    return (name) => [...(map.get(name) ?? [])].sort();
  };
  r.add(
    'GET',
    '/groups',
    {
      summary: 'Groups, their member counts and the roles bound to them',
      action: 'admin:read',
      area: 'groups',
      ok: { status: 200, description: '{ groups }' },
    },
    async (_req, reply, _admin) => {
      reply.header('cache-control', 'no-store');
      const [groups, rolesOf] = await Promise.all([deps.store.listGroups(), rolesByGroup()]);
      return {
        groups: groups.map((g) => ({
          id: g.id,
          name: g.name,
          description: g.description,
          members: g.members,
          roles: rolesOf(g.name),
          createdAt: g.createdAt,
        })),
      };
    },
  );
  r.add(
    'POST',
    '/groups',
    {
      summary: 'Create a group (bind it to roles with POST /bindings)',
      action: 'admin:manage',
      area: 'groups',
      body: groupBody,
      ok: { status: 201, description: 'The group.' },
    },
    async (req, reply, admin) => {
      const b = parseInput(groupBody, req.body);
      const g = {
        id: randomUUID(),
        name: b.name,
        description: b.description,
        createdAt: deps.now(),
        createdBy: admin.id,
        externalId: null,
      };
      if (!(await deps.store.insertGroup(g))) {
        throw new KeygateError('CONFLICT', { message: `name: a group named ${b.name} exists already.` });
      }
      changed(req, admin, {
        op: 'group.create',
        target: `group:${g.id}`,
        after: { name: g.name, description: g.description },
      });
      reply.code(201);
      return {
        id: g.id,
        name: g.name,
        description: g.description,
        members: 0,
        roles: (await rolesByGroup())(g.name),
        createdAt: g.createdAt,
      };
    },
  );
  r.add(
    'GET',
    '/groups/:id',
    {
      summary: 'A group (by id or name) with its members',
      action: 'admin:read',
      area: 'groups',
      params: groupParams,
      ok: { status: 200, description: 'The group and its members.' },
    },
    async (req, reply, _admin) => {
      const g = await groupOr404(parseInput(groupParams, req.params).id);
      const members = await deps.store.listGroupMembers(g.id);
      reply.header('cache-control', 'no-store');
      return {
        id: g.id,
        name: g.name,
        description: g.description,
        roles: (await rolesByGroup())(g.name),
        createdAt: g.createdAt,
        members: members.map((u) => ({
          id: u.id,
          email: u.email,
          displayName: u.displayName,
          disabled: u.disabledAt !== null,
        })),
      };
    },
  );
  r.add(
    'DELETE',
    '/groups/:id',
    {
      summary: 'Delete a group; its members lose it (and the roles bound to it) at their next request',
      action: 'admin:manage',
      area: 'groups',
      params: groupParams,
      ok: { status: 204, description: 'Deleted.' },
    },
    async (req, reply, admin) => {
      const g = await groupOr404(parseInput(groupParams, req.params).id);
      const members = await deps.store.listGroupMembers(g.id);
      await deps.store.deleteGroup(g.id);
      for (const u of members) deps.groupsChanged(u.id);
      changed(req, admin, {
        op: 'group.delete',
        target: `group:${g.id}`,
        before: { name: g.name, members: members.map((u) => u.id) },
      });
      reply.code(204);
    },
  );
  for (const [method, add] of [
    ['PUT', true],
    ['DELETE', false],
  ] as const) {
    r.add(
      method,
      '/groups/:id/members/:userId',
      {
        summary: add ? 'Add a person to a group' : 'Remove a person from a group',
        action: 'admin:manage',
        area: 'groups',
        params: memberParams,
        ok: { status: 204, description: add ? 'A member (also when they were already).' : 'Removed.' },
      },
      async (req, reply, admin) => {
        const p = parseInput(memberParams, req.params);
        const g = await groupOr404(p.id);
        const u = await userOr404(p.userId);
        const did = add
          ? await deps.store.addGroupMember(g.id, u.id, deps.now())
          : await deps.store.removeGroupMember(g.id, u.id);
        if (!add && !did) throw new KeygateError('NOT_FOUND', { message: 'That person is not a member.' });
        deps.groupsChanged(u.id);
        if (did) {
          changed(req, admin, {
            op: add ? 'group.member_add' : 'group.member_remove',
            target: `group:${g.id}`,
            before: { member: !add, user: u.id },
            after: { member: add, user: u.id },
          });
        }
        reply.code(204);
      },
    );
  }

  // ---- token families (OAuth grants: a person's CLI or SDK logins) -------------------------
  const familyView = (f: OAuthGrantSummary) => ({
    id: f.id,
    userId: f.accountId,
    client: f.clientId,
    createdAt: f.createdAt,
    expiresAt: f.expiresAt,
  });
  r.add(
    'GET',
    '/token-families',
    {
      summary: 'Live token families (a person authorizing a client such as the CLI), newest first',
      action: 'admin:read',
      area: 'sessions',
      query: familyList,
      ok: { status: 200, description: '{ tokenFamilies }' },
    },
    async (req, reply, _admin) => {
      const q = parseInput(familyList, req.query);
      reply.header('cache-control', 'no-store');
      const list = await deps.store.listOAuthGrants({
        ...(q.user === undefined ? {} : { accountId: q.user }),
        now: deps.now(),
        limit: q.limit,
      });
      return { tokenFamilies: list.map(familyView) };
    },
  );
  r.add(
    'DELETE',
    '/users/:id/token-families',
    {
      summary: "End all of a user's token families: their refresh tokens stop, their access tokens are refused at once",
      action: 'admin:manage',
      area: 'sessions',
      params: userParams,
      ok: { status: 204, description: 'Ended.' },
    },
    async (req, reply, admin) => {
      const u = await userOr404(parseInput(userParams, req.params).id);
      const families = await deps.store.listOAuthGrants({ accountId: u.id, now: deps.now(), limit: 10_000 });
      for (const f of families) await deps.revokeGrant(f.id);
      changed(req, admin, {
        op: 'token_family.revoke_all',
        target: `user:${u.id}`,
        before: { tokenFamilies: families.map((f) => f.id) },
      });
      reply.code(204);
    },
  );
  r.add(
    'DELETE',
    '/token-families/:id',
    {
      summary: 'End a token family: its refresh tokens stop, its access tokens are refused at once',
      action: 'admin:manage',
      area: 'sessions',
      params: familyParams,
      ok: { status: 204, description: 'Ended.' },
    },
    async (req, reply, admin) => {
      const { id } = parseInput(familyParams, req.params);
      const f = (await deps.store.listOAuthGrants({ now: deps.now(), limit: 100_000 })).find((x) => x.id === id);
      if (!f) throw new KeygateError('NOT_FOUND', { message: 'No such live token family.' });
      await deps.revokeGrant(id);
      changed(req, admin, {
        op: 'token_family.revoke',
        target: `token_family:${id}`,
        before: { user: f.accountId, client: f.clientId },
      });
      reply.code(204);
    },
  );

  // ---- roles, bindings, federation trusts -------------------------
  r.add(
    'GET',
    '/roles',
    {
      summary: 'Roles (shipped and configured) with their grants, and the group and user bindings',
      action: 'admin:read',
      area: 'policy',
      ok: { status: 200, description: '{ roles, bindings, stepUpMaxAgeSeconds }' },
    },
    async (_req, reply, _admin) => {
      const a = deps.config.authorization;
      const configured = a.roles as Record<string, { description: string; grants: unknown[] }>;
      const all = { ...SHIPPED_ROLES, ...configured };
      reply.header('cache-control', 'no-store');
      return {
        roles: Object.entries(all).map(([name, role]) => ({
          name,
          description: role.description,
          shipped: Object.hasOwn(SHIPPED_ROLES, name) && !Object.hasOwn(configured, name),
          grants: role.grants,
        })),
        bindings: [
          ...a.bindings.map((b) => ({ ...b, source: 'config' })),
          ...(await deps.store.listRoleBindings()).map((b) => ({
            id: b.id,
            ...(b.subjectType === 'group' ? { group: b.subject } : { user: b.subject }),
            roles: [b.role],
            source: 'store',
            createdAt: b.createdAt,
            createdBy: b.createdBy,
          })),
        ],
        stepUpMaxAgeSeconds: Math.floor(a.stepUpMaxAge / 1000),
      };
    },
  );
  r.add(
    'POST',
    '/bindings',
    {
      summary: 'Bind a group or a person (by email) to a role; it applies to the next request',
      action: 'admin:manage',
      area: 'policy',
      body: bindingBody,
      ok: { status: 201, description: 'The binding.' },
    },
    async (req, reply, admin) => {
      const b = parseInput(bindingBody, req.body);
      const roles = new Set([...Object.keys(SHIPPED_ROLES), ...Object.keys(deps.config.authorization.roles)]);
      if (!roles.has(b.role)) throw new KeygateError('BAD_REQUEST', { message: `role: no role named ${b.role}.` });
      const record: RoleBindingRecord = {
        id: randomUUID(),
        subjectType: 'group' in b ? 'group' : 'user',
        subject: 'group' in b ? b.group : b.user.toLowerCase(),
        role: b.role,
        createdAt: deps.now(),
        createdBy: admin.id,
      };
      if (!(await deps.store.insertRoleBinding(record))) {
        throw new KeygateError('CONFLICT', { message: 'That binding exists already.' });
      }
      await deps.reloadBindings();
      changed(req, admin, {
        op: 'binding.create',
        target: `binding:${record.id}`,
        after: { [record.subjectType]: record.subject, role: record.role },
      });
      reply.code(201);
      return { id: record.id, [record.subjectType]: record.subject, roles: [record.role], source: 'store' };
    },
  );
  r.add(
    'DELETE',
    '/bindings/:id',
    {
      summary: 'Remove a binding made through this API (bindings in keygate.yaml are changed there)',
      action: 'admin:manage',
      area: 'policy',
      params: bindingParams,
      ok: { status: 204, description: 'Removed.' },
    },
    async (req, reply, admin) => {
      const { id } = parseInput(bindingParams, req.params);
      const gone = await deps.store.deleteRoleBinding(id);
      if (gone === null) throw new KeygateError('NOT_FOUND', { message: 'No such stored binding.' });
      await deps.reloadBindings();
      changed(req, admin, {
        op: 'binding.delete',
        target: `binding:${id}`,
        before: { [gone.subjectType]: gone.subject, role: gone.role },
      });
      reply.code(204);
    },
  );
  const stored = async () => new Map((await deps.store.listFederationTrusts()).map((t) => [t.name, t]));
  r.add(
    'GET',
    '/federation-trusts',
    {
      summary: "Workload federation trusts: which platform tokens become which service principal's",
      action: 'admin:read',
      area: 'service-principals',
      ok: { status: 200, description: '{ trusts } — each with its source, config or store' },
    },
    async (_req, reply, _admin) => {
      reply.header('cache-control', 'no-store');
      const mine = await stored();
      const configured = new Set(deps.config.tokens.federation);
      return {
        trusts: deps.trusts().map((t) => ({
          name: t.name,
          issuer: t.issuer,
          audience: t.audience,
          subject: t.subject,
          servicePrincipal: t.servicePrincipal,
          keys: t.jwksUrl ?? 'inline',
          source: configured.has(t) ? 'config' : 'store',
          ...(configured.has(t)
            ? {}
            : { createdAt: mine.get(t.name)?.createdAt, createdBy: mine.get(t.name)?.createdBy }),
        })),
      };
    },
  );
  r.add(
    'POST',
    '/federation-trusts',
    {
      summary: "Trust a platform's tokens (issuer, keys, audience, subject pattern) for a service principal",
      action: 'admin:manage',
      area: 'service-principals',
      body: trustBody,
      ok: { status: 201, description: 'The trust; it applies on every replica within 5 s (at once on this one).' },
    },
    async (req, reply, admin) => {
      const t = parseInput(trustBody, req.body);
      // Public keys only, each usable now (the same checks as a service principal's keys).
      let jwks: { keys: JWK[] } | undefined;
      try {
        jwks = t.jwks === undefined ? undefined : publicJwks(t.jwks as { keys: JWK[] });
        if (jwks !== undefined) await assertUsableKeys(jwks.keys);
      } catch (e) {
        if (e instanceof KeygateError) throw new KeygateError('BAD_REQUEST', { message: `jwks: ${e.message}` });
        throw e;
      }
      const sp = await sps.find(t.servicePrincipal);
      if (!sp)
        throw new KeygateError('BAD_REQUEST', {
          message: `servicePrincipal: no service principal named ${t.servicePrincipal}.`,
        });
      if (deps.trusts().some((x) => x.name === t.name)) {
        throw new KeygateError('CONFLICT', { message: `name: a trust named ${t.name} exists already.` });
      }
      const spec: FederationTrust = { ...t, ...(jwks === undefined ? {} : { jwks }), servicePrincipal: sp.id };
      const ok = await deps.store.insertFederationTrust({
        name: t.name,
        spec: JSON.stringify(spec),
        createdAt: deps.now(),
        createdBy: admin.id,
      });
      if (!ok) throw new KeygateError('CONFLICT', { message: `name: a trust named ${t.name} exists already.` });
      await deps.reloadTrusts();
      changed(req, admin, {
        op: 'federation_trust.create',
        target: `federation_trust:${t.name}`,
        after: {
          issuer: t.issuer,
          audience: t.audience,
          subject: t.subject,
          servicePrincipal: sp.id,
          keys: t.jwksUrl ?? 'inline',
        },
      });
      reply.code(201);
      return {
        name: t.name,
        issuer: t.issuer,
        audience: t.audience,
        subject: t.subject,
        servicePrincipal: sp.id,
        keys: t.jwksUrl ?? 'inline',
        source: 'store',
      };
    },
  );
  r.add(
    'DELETE',
    '/federation-trusts/:name',
    {
      summary:
        'Remove a trust made through this API (those in keygate.yaml are changed there); tokens issued under it run out',
      action: 'admin:manage',
      area: 'service-principals',
      params: trustParams,
      ok: { status: 204, description: 'Removed.' },
    },
    async (req, reply, admin) => {
      const { name } = parseInput(trustParams, req.params);
      const gone = await deps.store.deleteFederationTrust(name);
      if (gone === null) {
        throw new KeygateError('NOT_FOUND', {
          message: deps.config.tokens.federation.some((t) => t.name === name)
            ? 'That trust is in keygate.yaml: change it there.'
            : 'No such stored trust.',
        });
      }
      await deps.reloadTrusts();
      const spec = JSON.parse(gone.spec) as FederationTrust;
      changed(req, admin, {
        op: 'federation_trust.delete',
        target: `federation_trust:${name}`,
        before: {
          issuer: spec.issuer,
          audience: spec.audience,
          subject: spec.subject,
          servicePrincipal: spec.servicePrincipal,
        },
      });
      reply.code(204);
    },
  );

  // ---- policy tester --------------------------------------------------------------------------
  // "May alice deploy fraud-model now?": the live policies on a described request. A person
  // named by email who exists is evaluated with their own roles unless roles are given.
  r.add(
    'POST',
    '/policy/test',
    {
      summary: 'Evaluate a described request against the live policies',
      action: 'admin:read',
      area: 'policy',
      body: policyTestBody,
      ok: { status: 200, description: '{ decision, reasons, action, resource, roles, stepUp }' },
    },
    async (req, reply, _admin) => {
      const b = parseInput(policyTestBody, req.body);
      const [kind, ...rest] = b.principal.split(':');
      const who = rest.join(':');
      const type = kind === 'user' ? 'user' : kind === 'sp' ? 'service_principal' : 'agent';
      const known = type === 'user' ? await deps.store.getUserByEmail(who) : null;
      let result: Evaluation;
      try {
        result = await evaluateDescribed(
          deps.authorizer,
          {
            principal: {
              type,
              id: known?.id ?? who,
              ...(type === 'user' ? { email: who } : {}),
              groups: b.groups ?? [],
              roles: b.roles ?? known?.roles ?? [],
            },
            ...(b.action === undefined ? {} : { action: b.action }),
            ...(b.resource === undefined ? {} : { resource: b.resource }),
            ...(b.method === undefined ? {} : { method: b.method }),
            ...(b.path === undefined ? {} : { path: b.path }),
            ...(b.body === undefined ? {} : { body: b.body }),
            authAgeS: b.authAgeSeconds,
            uv: b.uv,
            ip: clientIp(req.raw),
          },
          deps.now(),
        );
      } catch (e) {
        if (e instanceof DescribeError) throw new KeygateError('BAD_REQUEST', { message: `${e.message}.` });
        throw e;
      }
      reply.header('cache-control', 'no-store');
      if ('refused' in result) {
        return {
          decision: 'deny',
          refusedBeforePolicy: { error_code: result.refused.code, message: result.refused.publicMessage },
        };
      }
      const { classification: c, decision: d } = result;
      return {
        decision: d.effect,
        reasons: d.reasons,
        action: c.action,
        resource: `${c.resource.type}::${c.resource.id}`,
        roles: result.roles,
        stepUp: { required: d.effect === 'step_up', maxAgeSeconds: result.stepUpMaxAgeS },
      };
    },
  );

  // ---- audit --------------------------------------------------------------------------------
  // Records in chain order, filtered, a page at a time: `next` is the cursor for the next page
  // (null at the end). A page may hold fewer than `limit` records (even none) when the filter
  // matches rarely: each page examines a bounded number of records; follow `next` until null.
  r.add(
    'GET',
    '/audit',
    {
      summary: 'Audit records in chain order, filtered, a page at a time',
      action: 'admin:read',
      area: 'audit',
      query: auditQuery,
      ok: { status: 200, description: '{ records, next } — each record with seq, prevHash and hash' },
    },
    async (req, reply, _admin) => {
      const q = parseInput(auditQuery, req.query);
      let page: AuditPage;
      try {
        page = await audit.query(
          {
            ...(q.actor === undefined ? {} : { actor: q.actor }),
            ...(q.kind === undefined ? {} : { kind: q.kind }),
            ...(q.action === undefined ? {} : { action: q.action }),
            ...(q.decision === undefined ? {} : { decision: q.decision }),
            ...(q.since === undefined ? {} : { since: q.since }),
            ...(q.until === undefined ? {} : { until: q.until }),
          },
          { limit: q.limit, ...(q.cursor === undefined ? {} : { cursor: q.cursor }) },
        );
      } catch (e) {
        if (e instanceof BadCursorError) throw new KeygateError('BAD_REQUEST', { message: `cursor: ${e.message}.` });
        throw e;
      }
      // The records are stored as JSON already: written out as they are.
      reply.header('cache-control', 'no-store').type('application/json');
      return `{"records":[${page.lines.join(',')}],"next":${JSON.stringify(page.next)}}`;
    },
  );

  r.add(
    'GET',
    '/stats',
    {
      summary:
        'Dashboard figures: requests by decision over time, top principals and endpoints, denials, step-ups, auth failures',
      action: 'admin:read',
      area: 'audit',
      query: statsQuery,
      ok: {
        status: 200,
        description:
          '{ window, bucketMs, buckets, topPrincipals, topEndpoints, requests, denials, stepUps, authFailures, partial }',
      },
    },
    async (req, reply, _admin) => {
      const q = parseInput(statsQuery, req.query);
      reply.header('cache-control', 'no-store');
      return audit.stats(q.window, deps.now());
    },
  );
  r.add(
    'POST',
    '/audit/verify',
    {
      summary: 'Walk the hash chain and its signed checkpoints (on a thread of its own), as keygate audit verify does',
      action: 'admin:read',
      area: 'audit',
      ok: { status: 200, description: '{ ok, records, checkpoints, firstSeq, lastSeq, problem? }' },
    },
    async (_req, reply, _admin) => {
      const keys = (await deps.store.listSigningKeys('audit')).map((k) => JSON.parse(k.publicJwk) as JWK);
      reply.header('cache-control', 'no-store');
      return audit.verify(keys);
    },
  );

  // The API's description, generated from the schemas above (public: it holds no data).
  const openapi = JSON.stringify(r.document());
  app.get('/.keygate/api/admin/v1/openapi.json', async (_req, reply) => {
    reply.type('application/json');
    return openapi;
  });
}
