/**
 * The approval side of a step-up for a browser submission: the step-up page shows what the
 * person is approving, and after a fresh tap replays it — once, as them.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { readCookie } from '../authenticate/cookies.js';
import type { Identity } from '../authenticate/identity.js';
import type { Authentication } from '../authenticate/index.js';
import type { ResolvedSession } from '../authenticate/sessions.js';
import { bodyPreview, type PendingRequest, type PendingSteps } from '../authorize/pending.js';
import { KeygateError } from '../errors/index.js';

export interface PendingDeps {
  auth: Authentication;
  pending: PendingSteps;
  replay(p: PendingRequest, identity: Identity, via: IncomingMessage, res: ServerResponse): void;
}

export function registerPendingRoutes(app: FastifyInstance, d: PendingDeps): void {
  const session = async (req: FastifyRequest): Promise<ResolvedSession> => {
    const s = await d.auth.sessions.resolve(readCookie(req.headers.cookie, d.auth.sessions.cookieName));
    if (!s) throw new KeygateError('UNAUTHENTICATED', { message: 'Sign in first.' });
    return s;
  };
  const idOf = (req: FastifyRequest) => String((req.params as { id?: unknown }).id ?? '');

  app.get('/.keygate/api/step-up/pending/:id', async (req, reply) => {
    const s = await session(req);
    const p = d.pending.get(idOf(req), s.user.id);
    if (!p) throw new KeygateError('NOT_FOUND', { message: 'Nothing is waiting for approval (it may have expired).' });
    reply.header('cache-control', 'no-store');
    return {
      method: p.method,
      target: p.target,
      contentType: p.contentType ?? null,
      body: bodyPreview(p),
      expiresAt: p.expiresAt,
    };
  });

  app.post('/.keygate/api/step-up/pending/:id/replay', async (req, reply) => {
    const s = await session(req);
    const p = d.pending.take(idOf(req), s.user.id);
    if (!p) throw new KeygateError('NOT_FOUND', { message: 'Nothing is waiting for approval (it may have expired).' });
    // The replay answers on this connection; authorization runs again with the (stepped-up) session.
    reply.hijack();
    d.replay(p, s.identity, req.raw, reply.raw);
  });
}
