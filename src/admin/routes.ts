/**
 * The first slice of the admin API (issue 7 builds the rest): invitations and recovery links.
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

const inviteBody = z.strictObject({
  email: z.string().trim().refine(isEmail, 'must be an email address'),
  displayName: z.string().trim().min(1).max(128).optional(),
  roles: z.array(z.string().regex(/^[a-z][a-z0-9-]{0,62}$/, 'must be a role name')).max(16).default([]),
});
const recoverBody = z.strictObject({ email: z.string().trim().refine(isEmail, 'must be an email address') });

export function registerAdminRoutes(
  app: FastifyInstance,
  auth: Authentication,
  publicOrigin: () => string,
  clientIp: (req: FastifyRequest['raw']) => string,
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
}
