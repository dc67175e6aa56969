/**
 * The people-facing API for agents:
 *
 *   GET    /.keygate/api/agents/grants              my delegations
 *   POST   /.keygate/api/agents/grants              delegate { agent, actions, ttl } (a recent login)
 *   DELETE /.keygate/api/agents/grants/{id}         end one
 *   GET    /.keygate/api/approvals                  my approvals (the console's queue)
 *   GET    /.keygate/api/approvals/{id}             what exactly is asked (with the config diff)
 *   POST   /.keygate/api/approvals/{id}/options     WebAuthn options whose challenge is the approval's
 *   POST   /.keygate/api/approvals/{id}/approve     the assertion: approved
 *   POST   /.keygate/api/approvals/{id}/deny        one click: denied
 *
 * Grants take a browser session or a Keygate-audience token (`keygate agent grant`); approvals
 * a browser session only: the person taps their key there. Everything is about the caller's
 * own grants and approvals; someone else's is 404 or 403.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { AuditEntry } from '../audit/record.js';
import { readCookie } from '../authenticate/cookies.js';
import type { Identifier, Identity } from '../authenticate/identity.js';
import type { Authentication } from '../authenticate/index.js';
import { authenticationVerifyBody } from '../authenticate/webauthn/wire.js';
import { KeygateError } from '../errors/index.js';
import { parseInput } from '../lib/parse.js';
import { parseDuration } from '../config/units.js';
import type { ApprovalRecord, Store, UserRecord } from '../store/types.js';
import { approvalChallenge, jsonChanges } from './approvals.js';
import type { AgentGrants } from './grants.js';

export interface AgentRouteDeps {
  auth: Authentication;
  grants: AgentGrants;
  store: Store;
  tokens: Identifier;
  /** Keygate's own audience (its issuer). */
  keygateAudience: () => string;
  clientIp: (req: FastifyRequest['raw']) => string;
  /** A login at most this old may delegate (the step-up window). */
  freshMs: number;
  /** The upstream's current JSON at a path, as the person would see it; null when not available. */
  upstreamJson: (upstream: string, path: string, userId: string) => Promise<unknown | null>;
  audit: (e: AuditEntry) => void;
  now: () => number;
}

const grantBody = z.strictObject({
  agent: z.string().min(1).max(200),
  actions: z.array(z.string().min(1).max(64)).min(1).max(32),
  /** `8h`, `30m` … or seconds. */
  ttl: z.union([z.string().min(1).max(16), z.number().int().positive()]),
});

const SERVING_CONFIG = /^\/api\/2\.0\/serving-endpoints\/([^/]+)\/config$/;
/** How much of a body the page shows. */
const SHOWN = 16 * 1024;

export function registerAgentRoutes(app: FastifyInstance, d: AgentRouteDeps): void {
  const ctxOf = (req: FastifyRequest) => ({
    ip: d.clientIp(req.raw),
    userAgent: String(req.headers['user-agent'] ?? ''),
  });

  /** A person: their browser session, or (grants only) a token whose audience is Keygate itself. */
  const personOf = async (
    req: FastifyRequest,
    o: { tokens: boolean },
  ): Promise<{ user: UserRecord; identity: Identity }> => {
    if (o.tokens && req.headers.authorization !== undefined) {
      const identity = await d.tokens.identify(req.raw);
      if (identity === null)
        throw new KeygateError('UNAUTHENTICATED', { message: 'Use a Bearer or DPoP access token.' });
      if (!(identity.auth.audiences ?? []).includes(d.keygateAudience()))
        throw new KeygateError('UNAUTHENTICATED', {
          message: `This token is not for Keygate's API: its audience must be ${d.keygateAudience()}.`,
        });
      if (identity.principal.type !== 'user')
        throw new KeygateError('PERMISSION_DENIED', { message: 'Only a person can delegate to an agent.' });
      const user = await d.store.getUser(identity.principal.id);
      if (!user || user.disabledAt !== null) throw new KeygateError('UNAUTHENTICATED');
      return { user, identity };
    }
    const s = await d.auth.sessions.resolve(readCookie(req.headers.cookie, d.auth.sessions.cookieName));
    if (!s) throw new KeygateError('UNAUTHENTICATED', { message: 'Sign in first.' });
    return { user: s.user, identity: s.identity };
  };

  /** The caller's own approval (someone else's is not found: its existence is not revealed). */
  const ownApproval = async (req: FastifyRequest): Promise<{ user: UserRecord; a: ApprovalRecord }> => {
    const { user } = await personOf(req, { tokens: false });
    const { id } = req.params as { id: string };
    const a = id.length <= 64 ? await d.store.getApproval(id) : null;
    if (a === null || a.userId !== user.id)
      throw new KeygateError('NOT_FOUND', { message: 'No such approval of yours.' });
    return { user, a };
  };

  // ---- grants ----------------------------------------------------------------------------------
  app.get('/.keygate/api/agents/grants', async (req, reply) => {
    const { user } = await personOf(req, { tokens: true });
    reply.header('cache-control', 'no-store');
    return { grants: await d.grants.list(user.id) };
  });

  app.post('/.keygate/api/agents/grants', async (req, reply) => {
    const { user, identity } = await personOf(req, { tokens: true });
    const body = parseInput(grantBody, req.body);
    // Delegating is a change to what can act in the person's name: a recent login, as for admin changes.
    if (d.now() - identity.auth.authTime > d.freshMs)
      throw new KeygateError('FRESH_LOGIN_REQUIRED', {
        message:
          identity.auth.method === 'webauthn'
            ? 'Delegating needs a login within the last few minutes: tap your security key again, then retry.'
            : 'Delegating needs a login within the last few minutes: run `keygate login` again, then retry.',
      });
    const ttlMs = typeof body.ttl === 'number' ? body.ttl * 1000 : parseDuration(body.ttl);
    if (ttlMs === undefined)
      throw new KeygateError('BAD_REQUEST', { message: `ttl: "${String(body.ttl)}" is not a duration (8h, 30m).` });
    const g = await d.grants.create(user, { agent: body.agent, actions: body.actions, ttlMs }, ctxOf(req));
    reply.code(201).header('cache-control', 'no-store');
    return g;
  });

  app.delete('/.keygate/api/agents/grants/:id', async (req, reply) => {
    const { user } = await personOf(req, { tokens: true });
    const { id } = req.params as { id: string };
    await d.grants.revoke(user.id, id, ctxOf(req));
    reply.code(204);
  });

  // ---- approvals -------------------------------------------------------------------------------
  app.get('/.keygate/api/approvals', async (req, reply) => {
    const { user } = await personOf(req, { tokens: false });
    reply.header('cache-control', 'no-store');
    const list = await d.store.listApprovals(user.id, 100);
    return { approvals: await Promise.all(list.map((a) => summary(a, d))) };
  });

  app.get('/.keygate/api/approvals/:id', async (req, reply) => {
    const { a } = await ownApproval(req);
    reply.header('cache-control', 'no-store');
    const text = Buffer.from(a.body).toString('utf8');
    // For a serving endpoint's new configuration: what changes, against the config it has now.
    let changes: ReturnType<typeof jsonChanges> | null = null;
    let changesNote: string | null = null;
    const m = SERVING_CONFIG.exec(a.path);
    if (m !== null && a.method === 'PUT') {
      try {
        const current = (await d.upstreamJson(a.upstream, `/api/2.0/serving-endpoints/${m[1]}`, a.userId)) as {
          config?: unknown;
          pending_config?: unknown;
        } | null;
        if (current === null) changesNote = 'The current configuration could not be read from the workspace.';
        else changes = jsonChanges(comparable(current.config, JSON.parse(text)), JSON.parse(text) as unknown);
      } catch {
        changesNote = 'The requested configuration is not JSON, or the current one could not be read.';
      }
    }
    return {
      ...(await summary(a, d)),
      query: a.query,
      contentType: a.contentType,
      bodySha256: a.bodySha256,
      digest: a.digest,
      body: { bytes: a.body.length, text: text.slice(0, SHOWN), truncated: text.length > SHOWN },
      changes,
      changesNote,
    };
  });

  app.post('/.keygate/api/approvals/:id/options', async (req, reply) => {
    const { user, a } = await ownApproval(req);
    live(a, d.now());
    reply.header('cache-control', 'no-store');
    return d.auth.webauthn.approvalOptions(user, approvalChallenge(a.id, a.digest));
  });

  app.post('/.keygate/api/approvals/:id/approve', async (req, reply) => {
    const { user, a } = await ownApproval(req);
    live(a, d.now());
    const body = parseInput(authenticationVerifyBody, req.body);
    const out = await d.auth.webauthn.verifyApproval(
      body,
      { approvalId: a.id, userId: user.id, challenge: approvalChallenge(a.id, a.digest) },
      ctxOf(req),
    );
    reply.header('cache-control', 'no-store');
    return { id: a.id, status: 'approved', credentialId: out.credentialId };
  });

  app.post('/.keygate/api/approvals/:id/deny', async (req, reply) => {
    const { user, a } = await ownApproval(req);
    if (!(await d.store.denyApproval(a.id, user.id, d.now())))
      throw new KeygateError('APPROVAL_INVALID', { message: 'This approval is no longer pending.' });
    d.audit({
      kind: 'approval.denied',
      at: d.now(),
      actor: { type: 'user', id: user.id, email: user.email },
      detail: { approval: a.id, agent: a.agentId, method: a.method, path: a.path, action: a.action },
      outcome: 'success',
    });
    reply.header('cache-control', 'no-store');
    return { id: a.id, status: 'denied' };
  });
}

/** A pending, unexpired approval, or APPROVAL_INVALID saying why not. */
function live(a: ApprovalRecord, now: number): void {
  if (a.status !== 'pending')
    throw new KeygateError('APPROVAL_INVALID', { message: `This approval is already ${a.status}.` });
  if (a.expiresAt <= now) throw new KeygateError('APPROVAL_INVALID', { message: 'This approval has expired.' });
}

async function summary(a: ApprovalRecord, d: Pick<AgentRouteDeps, 'store' | 'now'>) {
  const agent = await d.store.getServicePrincipal(a.agentId);
  return {
    id: a.id,
    status: a.status === 'pending' && a.expiresAt <= d.now() ? 'expired' : a.status,
    agent: { id: a.agentId, name: agent?.name ?? a.agentId },
    upstream: a.upstream,
    method: a.method,
    path: a.path,
    action: a.action,
    resource: a.resource,
    createdAt: new Date(a.createdAt).toISOString(),
    expiresAt: new Date(a.expiresAt).toISOString(),
    decidedAt: a.decidedAt === null ? null : new Date(a.decidedAt).toISOString(),
    credentialId: a.credentialId,
    usedAt: a.usedAt === null ? null : new Date(a.usedAt).toISOString(),
  };
}

/** Fields the workspace fills in itself (databricks-api.md): never part of a requested config. */
const OUTPUT_ONLY = new Set(['config_version', 'creator', 'creation_timestamp', 'state']);

/**
 * The live config as the request would state it: only the top-level settings the request names
 * (a config PUT replaces those), without the fields the workspace fills in, so the page shows
 * what the person's approval changes and nothing the workspace adds on its own.
 */
function comparable(live: unknown, requested: unknown): unknown {
  const strip = (v: unknown): unknown =>
    Array.isArray(v)
      ? v.map(strip)
      : v !== null && typeof v === 'object'
        ? Object.fromEntries(
            Object.entries(v)
              .filter(([k]) => !OUTPUT_ONLY.has(k))
              .map(([k, x]) => [k, strip(x)]),
          )
        : v;
  if (live === null || typeof live !== 'object' || requested === null || typeof requested !== 'object')
    return strip(live ?? {});
  const named = new Set(Object.keys(requested));
  return strip(Object.fromEntries(Object.entries(live).filter(([k]) => named.has(k))));
}
