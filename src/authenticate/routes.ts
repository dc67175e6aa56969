/**
 * Keygate's own people-facing routes: the WebAuthn ceremonies, enrollment, the session, the
 * devices API and the three pages. Login and enrollment are rate-limited per client address
 * and per account (@fastify/rate-limit, 429 with Retry-After; windows expire, nothing locks).
 */
import { existsSync, readFileSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { fileURLToPath } from 'node:url';
import rateLimit from '@fastify/rate-limit';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { randomId, sha256Hex } from '../crypto/random.js';
import { KeygateError } from '../errors/index.js';
import { parseInput } from '../lib/parse.js';
import type { Clock } from '../lib/clock.js';
import type { CredentialRecord, Store } from '../store/types.js';
import type { AuthEvents } from './auth-events.js';
import { isCrossSite, readCookie } from './cookies.js';
import type { Enrollment } from './enrollment.js';
import type { IdentityProviders } from './idp/providers.js';
import { type IdpCookies, registerIdpRoutes } from './idp/routes.js';
import { safeReturnTo } from './return-to.js';
import type { ResolvedSession, Sessions } from './sessions.js';
import { authenticatorName } from './webauthn/authenticators.js';
import type { WebAuthnService } from './webauthn/service.js';
import {
  authenticationOptionsBody,
  authenticationVerifyBody,
  registrationOptionsBody,
  registrationVerifyBody,
} from './webauthn/wire.js';

export interface AuthRouteDeps {
  store: Store;
  clock: Clock;
  webauthn: WebAuthnService;
  enrollment: Enrollment;
  sessions: Sessions;
  events: AuthEvents;
  clientIp: (req: IncomingMessage) => string;
  origins: () => readonly string[];
  publicOrigin: () => string;
  secure: boolean;
  rateLimits: { perIpPerMinute: number; perAccountPerMinute: number };
  /** Corporate identity providers, when configured. */
  idp?: { providers: IdentityProviders; cookies: IdpCookies };
}

const PAGE_CSP =
  "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
  "frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/** Built pages live in dist/web: next to dist/src when running the build, under dist/ from source. */
function webDir(): string | undefined {
  for (const rel of ['../../web/', '../../dist/web/']) {
    const dir = fileURLToPath(new URL(rel, import.meta.url));
    if (existsSync(`${dir}login.js`)) return dir;
  }
  return undefined;
}

export function registerAuthRoutes(app: FastifyInstance, d: AuthRouteDeps): void {
  const ceremonyCookie = d.secure ? '__Host-keygate_ceremony' : 'keygate_ceremony';
  const ctxOf = (req: FastifyRequest) => ({
    ip: d.clientIp(req.raw),
    userAgent: String(req.headers['user-agent'] ?? ''),
  });
  const limited = (ctx: { after: string }) =>
    new KeygateError('REQUEST_LIMIT_EXCEEDED', { message: `Too many attempts; retry in ${ctx.after}.` });

  /** The ceremony cookie binds challenges to this browser; created on first use. */
  const binding = (req: FastifyRequest, reply: FastifyReply): string => {
    const existing = readCookie(req.headers.cookie, ceremonyCookie);
    if (existing !== undefined && /^[A-Za-z0-9_-]{43}$/.test(existing)) return existing;
    const value = randomId(32);
    const attrs = [`${ceremonyCookie}=${value}`, 'Path=/', 'HttpOnly', 'SameSite=Strict', 'Max-Age=900'];
    if (d.secure) attrs.push('Secure');
    reply.header('set-cookie', attrs.join('; '));
    return value;
  };

  const session = async (req: FastifyRequest): Promise<ResolvedSession | null> =>
    d.sessions.resolve(readCookie(req.headers.cookie, d.sessions.cookieName));

  const requireSession = async (req: FastifyRequest): Promise<ResolvedSession> => {
    const s = await session(req);
    if (!s) throw new KeygateError('UNAUTHENTICATED', { message: 'Sign in first.' });
    return s;
  };

  /** Start a session after a login or an enrollment; an older session cookie is revoked (no fixation). */
  const startSession = async (
    req: FastifyRequest,
    reply: FastifyReply,
    o: { user: Parameters<Sessions['create']>[0]; credential: CredentialRecord; eventId: string; uv: boolean },
  ) => {
    const old = readCookie(req.headers.cookie, d.sessions.cookieName);
    if (old !== undefined) await d.sessions.revoke(old);
    // A first key enrolled right after an identity provider login: the session records both.
    const pending = d.idp === undefined ? null : await d.idp.cookies.pendingOf(req);
    const idp = pending !== null && pending.userId === o.user.id ? pending.idp : undefined;
    const s = await d.sessions.create(o.user, o.credential, o.eventId, o.uv, {
      ...ctxOf(req),
      ...(idp === undefined ? {} : { idp }),
    });
    if (idp !== undefined) await d.idp?.cookies.endPending(req, reply);
    reply.header('set-cookie', d.sessions.cookie(s.value));
    // Where the person was going before the provider login, if that is how they came.
    return idp === undefined ? undefined : pending?.returnTo;
  };

  /** The provider login this browser is finishing with a key; refused when there is none (expired). */
  const pendingIdp = async (req: FastifyRequest) => {
    const p = d.idp === undefined ? null : await d.idp.cookies.pendingOf(req);
    if (p === null) {
      throw new KeygateError('UNAUTHENTICATED', {
        message: 'Your sign-in through your identity provider has expired: start it again.',
      });
    }
    return p;
  };

  // Cross-site state changes are refused for every Keygate API (ASVS 3.5.1-3.5.3).
  app.addHook('onRequest', async (req) => {
    // The matched route, not the raw URL: the router decodes `%61pi` to `api` before matching.
    if ((req.routeOptions.url ?? req.url).startsWith('/.keygate/api/') && isCrossSite(req.raw, d.origins())) {
      throw new KeygateError('CROSS_SITE_REQUEST', { detail: `origin ${String(req.headers.origin)}` });
    }
  });

  // ---- login and enrollment: rate-limited ----------------------------------------------------
  app.register(async (perIp) => {
    await perIp.register(rateLimit, {
      global: true,
      max: d.rateLimits.perIpPerMinute,
      timeWindow: 60_000,
      keyGenerator: (req) => `ip:${d.clientIp(req.raw)}`,
      errorResponseBuilder: (_req, ctx) => limited(ctx),
    });
    await perIp.register(async (perAccount) => {
      // A second limiter, keyed by the account the request is about (after the body is parsed).
      await perAccount.register(rateLimit, {
        global: true,
        max: d.rateLimits.perAccountPerMinute,
        timeWindow: 60_000,
        hook: 'preHandler',
        keyGenerator: (req) => accountKey(req.body),
        allowList: (_req, key) => key === '',
        errorResponseBuilder: (_req, ctx) => limited(ctx),
      });
      registerCeremonies(perAccount);
    });
  });

  function registerCeremonies(r: FastifyInstance): void {
    r.get('/.keygate/api/enrollment', async (req) => {
      const token = (req.query as { token?: unknown }).token;
      const found = await d.enrollment.inspect(token);
      if (!found) throw new KeygateError('ENROLLMENT_TOKEN_INVALID');
      return { email: found.user.email, displayName: found.user.displayName, kind: found.record.kind };
    });

    r.post('/.keygate/api/webauthn/registration/options', async (req, reply) => {
      const body = parseInput(registrationOptionsBody, req.body);
      if (body.enrollmentToken !== undefined) {
        const found = await d.enrollment.inspect(body.enrollmentToken);
        if (!found) throw new KeygateError('ENROLLMENT_TOKEN_INVALID');
        return d.webauthn.registrationOptions(found.user, binding(req, reply), found.record.tokenHash);
      }
      // Adding a key to an account needs a recent login (re-authentication, ASVS 7.5.1).
      const s = await requireSession(req);
      if (!d.sessions.isFresh(s)) throw new KeygateError('FRESH_LOGIN_REQUIRED');
      return d.webauthn.registrationOptions(s.user, binding(req, reply), null);
    });

    r.post('/.keygate/api/webauthn/registration/verify', async (req, reply) => {
      const body = parseInput(registrationVerifyBody, req.body);
      const s = body.enrollmentToken === undefined ? await session(req) : null;
      if (body.enrollmentToken === undefined && s && !d.sessions.isFresh(s)) {
        throw new KeygateError('FRESH_LOGIN_REQUIRED');
      }
      const out = await d.webauthn.verifyRegistration(body, {
        ...ctxOf(req),
        binding: readCookie(req.headers.cookie, ceremonyCookie),
        sessionUserId: s?.user.id ?? null,
        enrollmentHash: body.enrollmentToken === undefined ? null : sha256Hex(body.enrollmentToken),
      });
      if (out.viaEnrollment) {
        if (out.enrollmentKind === 'recovery') {
          await d.events.record('auth.recovery_used', ctxOf(req), {
            outcome: 'success',
            userId: out.user.id,
            credentialId: out.credential.id,
            aaguid: out.credential.aaguid,
          });
        }
        // Enrolling proves presence with the new key: the person is logged in.
        const next = await startSession(req, reply, { ...out, uv: out.credential.uvInitialized });
        if (next !== undefined) return { credential: deviceView(out.credential, null), returnTo: safeReturnTo(next) };
      }
      return { credential: deviceView(out.credential, null), returnTo: '/.keygate/devices' };
    });

    // ---- step-up: a fresh tap for sensitive actions (RFC 9470) -----------------------------------
    r.post('/.keygate/api/webauthn/step-up/options', async (req, reply) => {
      const s = await requireSession(req);
      return d.webauthn.stepUpOptions(s.user, binding(req, reply));
    });

    r.post('/.keygate/api/webauthn/step-up/verify', async (req, reply) => {
      const s = await requireSession(req);
      const body = parseInput(authenticationVerifyBody, req.body);
      const out = await d.webauthn.verifyAuthentication(body, {
        ...ctxOf(req),
        binding: readCookie(req.headers.cookie, ceremonyCookie),
        previousSession: readCookie(req.headers.cookie, d.sessions.cookieName),
        stepUpFor: s.user.id,
      });
      // The step-up is a new authentication: a new session id carries its time and event.
      reply.header('set-cookie', d.sessions.cookie(out.sessionValue));
      return { stepUp: { eventId: out.eventId, at: d.clock.now() }, returnTo: safeReturnTo(body.returnTo) };
    });

    r.post('/.keygate/api/webauthn/authentication/options', async (req, reply) => {
      const body = parseInput(authenticationOptionsBody, req.body);
      // After a provider login, only the keys of the person it named are offered.
      const email = body.idp === true ? (await pendingIdp(req)).email : body.email;
      return d.webauthn.authenticationOptions(email, binding(req, reply));
    });

    r.post('/.keygate/api/webauthn/authentication/verify', async (req, reply) => {
      const body = parseInput(authenticationVerifyBody, req.body);
      const pending = body.idp === true ? await pendingIdp(req) : null;
      const out = await d.webauthn.verifyAuthentication(body, {
        ...ctxOf(req),
        binding: readCookie(req.headers.cookie, ceremonyCookie),
        previousSession: readCookie(req.headers.cookie, d.sessions.cookieName),
        ...(pending === null ? {} : { afterIdp: { userId: pending.userId, idp: pending.idp } }),
      });
      if (pending !== null) await d.idp?.cookies.endPending(req, reply);
      reply.header('set-cookie', d.sessions.cookie(out.sessionValue));
      return {
        user: { id: out.user.id, email: out.user.email, displayName: out.user.displayName },
        returnTo: safeReturnTo(body.returnTo),
      };
    });
  }

  // ---- the session ---------------------------------------------------------------------------
  app.get('/.keygate/api/session', async (req, reply) => {
    const s = await requireSession(req);
    reply.header('cache-control', 'no-store');
    return {
      user: {
        id: s.user.id,
        email: s.user.email,
        displayName: s.user.displayName,
        roles: s.user.roles,
        groups: s.identity.principal.groups,
      },
      session: {
        authTime: s.session.authTime,
        expiresAt: s.session.expiresAt,
        uv: s.session.uv,
        fresh: d.sessions.isFresh(s),
        method: s.identity.auth.method,
        ...(s.session.idp === undefined ? {} : { idp: s.session.idp.provider }),
      },
    };
  });

  // The login page's identity providers ("Continue with …") and the provider login this browser
  // is finishing with a key, if any.
  app.get('/.keygate/api/idp', async (req, reply) => {
    reply.header('cache-control', 'no-store');
    const pending = d.idp === undefined ? null : await d.idp.cookies.pendingOf(req);
    const providers = d.idp?.providers.list ?? [];
    return {
      providers: providers.map((p) => ({ name: p.name, displayName: p.displayName ?? p.name, mode: p.mode })),
      pending:
        pending === null
          ? null
          : {
              email: pending.email,
              provider: providers.find((p) => p.name === pending.provider)?.displayName ?? pending.provider,
            },
    };
  });
  if (d.idp !== undefined) {
    registerIdpRoutes(
      app,
      {
        idps: d.idp.providers,
        store: d.store,
        clock: d.clock,
        events: d.events,
        sessions: d.sessions,
        enrollment: d.enrollment,
        publicOrigin: d.publicOrigin,
        clientIp: d.clientIp,
        secure: d.secure,
      },
      d.idp.cookies,
    );
  }

  app.post('/.keygate/api/session/logout', async (req, reply) => {
    const value = readCookie(req.headers.cookie, d.sessions.cookieName);
    const s = await session(req);
    if (value !== undefined) await d.sessions.revoke(value);
    if (s) await d.events.record('auth.logout', ctxOf(req), { outcome: 'success', userId: s.user.id });
    reply.header('set-cookie', d.sessions.clearCookie()).code(204);
  });

  // ---- devices -----------------------------------------------------------------------------
  app.get('/.keygate/api/devices', async (req, reply) => {
    const s = await requireSession(req);
    const creds = (await d.store.listCredentials(s.user.id)).filter((c) => c.revokedAt === null);
    reply.header('cache-control', 'no-store');
    return {
      credentials: creds.map((c) => deviceView(c, s.credential?.id ?? null)),
      hasRecovery: await d.store.hasUsableRecoveryToken(s.user.id, d.clock.now()),
    };
  });

  const idParam = z.object({ id: z.string().min(1).max(1400) });
  const renameBody = z.strictObject({ name: z.string().trim().min(1).max(64) });

  app.patch('/.keygate/api/devices/:id', async (req) => {
    const s = await requireSession(req);
    const { id } = parseInput(idParam, req.params);
    const { name } = parseInput(renameBody, req.body);
    if (!(await d.store.renameCredential(s.user.id, id, name))) throw new KeygateError('NOT_FOUND');
    await d.events.record('auth.credential_renamed', ctxOf(req), {
      outcome: 'success',
      userId: s.user.id,
      credentialId: id,
    });
    const c = await d.store.getCredential(id);
    return deviceView(c as CredentialRecord, s.credential?.id ?? null);
  });

  app.delete('/.keygate/api/devices/:id', async (req, reply) => {
    const s = await requireSession(req);
    // Removing a way to sign in is as sensitive as adding one (ASVS 7.5.1).
    if (!d.sessions.isFresh(s)) throw new KeygateError('FRESH_LOGIN_REQUIRED');
    const { id } = parseInput(idParam, req.params);
    const live = (await d.store.listCredentials(s.user.id)).filter((c) => c.revokedAt === null);
    if (!live.some((c) => c.id === id)) throw new KeygateError('NOT_FOUND');
    // Never strand a person: the last key goes only when a recovery link is waiting.
    if (live.length === 1 && !(await d.store.hasUsableRecoveryToken(s.user.id, d.clock.now()))) {
      throw new KeygateError('LAST_CREDENTIAL');
    }
    await d.store.revokeCredential(s.user.id, id, d.clock.now());
    await d.sessions.revokeForCredential(id);
    await d.events.record('auth.credential_revoked', ctxOf(req), {
      outcome: 'success',
      userId: s.user.id,
      credentialId: id,
    });
    if (id === s.credential?.id) reply.header('set-cookie', d.sessions.clearCookie());
    reply.code(204);
  });

  // ---- pages -------------------------------------------------------------------------------
  const dir = webDir();
  const page = (name: string) => async (_req: FastifyRequest, reply: FastifyReply) => {
    if (dir === undefined)
      throw new KeygateError('NOT_FOUND', { message: 'The web pages are not built: run npm run build.' });
    reply
      .header('content-type', 'text/html; charset=utf-8')
      .header('content-security-policy', PAGE_CSP)
      .header('x-content-type-options', 'nosniff')
      .header('referrer-policy', 'no-referrer')
      .header('cache-control', 'no-store');
    return readFileSync(`${dir}${name}.html`);
  };
  app.get('/.keygate/login', page('login'));
  app.get('/.keygate/enroll', page('enroll'));
  app.get('/.keygate/devices', page('devices'));
  app.get('/.keygate/step-up', page('step-up'));
  app.get('/.keygate/approve/:id', page('approve'));
  for (const path of ['/.keygate/admin/', '/.keygate/admin']) app.get(path, page('admin'));

  const ASSET = /^[a-z-]+\.(js|css)$/;
  app.get('/.keygate/assets/:file', async (req, reply) => {
    const { file } = req.params as { file: string };
    if (dir === undefined || !ASSET.test(file) || !existsSync(`${dir}${file}`)) throw new KeygateError('NOT_FOUND');
    reply
      .header('content-type', file.endsWith('.js') ? 'text/javascript; charset=utf-8' : 'text/css; charset=utf-8')
      .header('x-content-type-options', 'nosniff')
      .header('cache-control', 'public, max-age=300');
    return readFileSync(`${dir}${file}`);
  });
}

/** The account a login or enrollment request is about, for the per-account limit ('' = none). */
function accountKey(body: unknown): string {
  if (body === null || typeof body !== 'object') return '';
  const b = body as { email?: unknown; enrollmentToken?: unknown; response?: { id?: unknown } };
  if (typeof b.email === 'string' && b.email !== '') return `email:${b.email.toLowerCase()}`;
  if (typeof b.enrollmentToken === 'string') return `enroll:${sha256Hex(b.enrollmentToken)}`;
  if (b.response && typeof b.response.id === 'string') return `cred:${b.response.id}`;
  return '';
}

export function deviceView(c: CredentialRecord, currentId: string | null) {
  return {
    id: c.id,
    name: c.name,
    authenticator: authenticatorName(c.aaguid),
    aaguid: c.aaguid,
    synced: c.backedUp,
    deviceBound: !c.backupEligible,
    createdAt: c.createdAt,
    lastUsedAt: c.lastUsedAt,
    current: c.id === currentId,
  };
}
