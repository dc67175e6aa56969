/**
 * The first slice of the admin API (issue 7 builds the rest): invitations, recovery links and
 * service principals.
 * Every call passes one authorizing layer: a live session whose user holds the `admin` role,
 * with a login fresh enough for a sensitive change.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { isEmail } from '../authenticate/enrollment.js';
import type { Authentication } from '../authenticate/index.js';
import { readCookie } from '../authenticate/cookies.js';
import type { ResolvedSession } from '../authenticate/sessions.js';
import { KeygateError } from '../errors/index.js';
import { parseInput } from '../lib/parse.js';
import type { ServicePrincipals } from '../oauth/service-principals.js';
import type { ServicePrincipalRecord } from '../store/types.js';

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
const secretParams = z.object({ id: z.string().min(1).max(200), secretId: z.string().min(1).max(64) });

export function registerAdminRoutes(
  app: FastifyInstance,
  auth: Authentication,
  publicOrigin: () => string,
  clientIp: (req: FastifyRequest['raw']) => string,
  sps: ServicePrincipals,
): void {
  /** The one authorizing layer for admin calls. */
  const requireAdmin = async (req: FastifyRequest): Promise<ResolvedSession> => {
    const s = await auth.sessions.resolve(readCookie(req.headers.cookie, auth.sessions.cookieName));
    if (!s) throw new KeygateError('UNAUTHENTICATED', { message: 'Sign in first.' });
    if (!s.user.roles.includes('admin')) {
      throw new KeygateError('PERMISSION_DENIED', { message: 'This needs the admin role.' });
    }
    if (!auth.sessions.isFresh(s)) throw new KeygateError('FRESH_LOGIN_REQUIRED');
    return s;
  };
  const ctx = (req: FastifyRequest) => ({ ip: clientIp(req.raw), userAgent: String(req.headers['user-agent'] ?? '') });

  app.post('/.keygate/api/admin/v1/invitations', async (req, reply) => {
    const admin = await requireAdmin(req);
    const b = parseInput(inviteBody, req.body);
    const link = await auth.enrollment.invite(publicOrigin(), {
      email: b.email,
      roles: b.roles,
      createdBy: admin.user.id,
      ...(b.displayName === undefined ? {} : { displayName: b.displayName }),
    });
    await auth.events.record('auth.enrollment_issued', ctx(req), { outcome: 'success', userId: link.user.id });
    reply.code(201).header('cache-control', 'no-store');
    return { url: link.url, expiresAt: link.expiresAt, user: { id: link.user.id, email: link.user.email } };
  });

  app.post('/.keygate/api/admin/v1/recovery-links', async (req, reply) => {
    const admin = await requireAdmin(req);
    const b = parseInput(recoverBody, req.body);
    let link: Awaited<ReturnType<typeof auth.enrollment.recover>>;
    try {
      link = await auth.enrollment.recover(publicOrigin(), b.email, admin.user.id);
    } catch {
      throw new KeygateError('NOT_FOUND', { message: 'No user with that email.' });
    }
    await auth.events.record('auth.recovery_issued', ctx(req), { outcome: 'success', userId: link.user.id });
    reply.code(201).header('cache-control', 'no-store');
    return { url: link.url, expiresAt: link.expiresAt, user: { id: link.user.id, email: link.user.email } };
  });

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

  app.get('/.keygate/api/admin/v1/service-principals', async (req, reply) => {
    await requireAdmin(req);
    reply.header('cache-control', 'no-store');
    const all = await Promise.all((await sps.list()).map(spView));
    return { servicePrincipals: all };
  });

  app.post('/.keygate/api/admin/v1/service-principals', async (req, reply) => {
    const admin = await requireAdmin(req);
    const b = parseInput(spBody, req.body);
    const { sp, secret } = await sps.create({
      name: b.name,
      roles: b.roles,
      createdBy: admin.user.id,
      withSecret: b.secret,
      ...(b.description === undefined ? {} : { description: b.description }),
      ...(b.jwks === undefined ? {} : { jwks: b.jwks as never }),
    });
    reply.code(201).header('cache-control', 'no-store');
    return {
      ...(await spView(sp)),
      // Shown once: only its hash is kept.
      ...(secret === null
        ? {}
        : { clientSecret: secret.secret, secretId: secret.record.id, secretExpiresAt: secret.record.expiresAt }),
    };
  });

  app.post('/.keygate/api/admin/v1/service-principals/:id/secrets', async (req, reply) => {
    await requireAdmin(req);
    const { id } = parseInput(spParams, req.params);
    const r = await sps.rotate(id);
    reply.code(201).header('cache-control', 'no-store');
    return {
      clientId: r.sp.id,
      clientSecret: r.secret.secret,
      secretId: r.secret.record.id,
      secretExpiresAt: r.secret.record.expiresAt,
      revokedSecretIds: r.revoked,
    };
  });

  app.delete('/.keygate/api/admin/v1/service-principals/:id/secrets/:secretId', async (req, reply) => {
    await requireAdmin(req);
    const { id, secretId } = parseInput(secretParams, req.params);
    if (!(await sps.revokeSecret(id, secretId)))
      throw new KeygateError('NOT_FOUND', { message: 'No such live secret.' });
    reply.code(204);
  });
}
