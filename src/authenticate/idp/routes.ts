/**
 * The browser side of an identity provider login:
 *
 *   GET /.keygate/idp/<name>/start?return_to=…   → the provider's authorization endpoint
 *   GET /.keygate/idp/<name>/callback?code&state → back here; then, by the provider's mode,
 *     trust-idp-mfa:      its MFA is checked and the session starts;
 *     require-local-key:  the person taps a key registered to them (the login page, bound to
 *                         this provider login for 5 minutes) — or, with no key yet, enrolls one
 *                         (when enrollment is open or the person is pre-approved).
 *
 * Every outcome is an `auth.idp_login` event. Failures show a page that says what to do, never
 * the provider's tokens or the library's internals.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { randomId, sha256Hex } from '../../crypto/random.js';
import type { Clock } from '../../lib/clock.js';
import type { SessionIdp, Store, UserRecord } from '../../store/types.js';
import type { AuthEvents } from '../auth-events.js';
import { readCookie } from '../cookies.js';
import type { Enrollment } from '../enrollment.js';
import { safeReturnTo } from '../return-to.js';
import type { Sessions } from '../sessions.js';
import { type IdentityProviders, type IdpConfig, IdpFailure, type IdpLogin } from './providers.js';

const PENDING_MODEL = 'IdpPending';
const PENDING_TTL_MS = 5 * 60_000;

/** A provider login waiting for the person's key (require-local-key), bound to this browser. */
export interface PendingIdp {
  userId: string;
  email: string;
  provider: string;
  idp: SessionIdp;
  returnTo: string;
}

export interface IdpRouteDeps {
  idps: IdentityProviders;
  store: Store;
  clock: Clock;
  events: AuthEvents;
  sessions: Sessions;
  enrollment: Enrollment;
  publicOrigin: () => string;
  clientIp: (req: IncomingMessage) => string;
  secure: boolean;
}

/** The cookies of a provider login: its state binding (start → callback) and the pending login (callback → key). */
export class IdpCookies {
  readonly state: string;
  readonly pending: string;

  constructor(private readonly d: { store: Store; clock: Clock; secure: boolean }) {
    // Lax: the provider's redirect back is a cross-site top-level navigation.
    this.state = d.secure ? '__Host-keygate_idp_state' : 'keygate_idp_state';
    this.pending = d.secure ? '__Host-keygate_idp' : 'keygate_idp';
  }

  cookie(name: string, value: string, maxAgeS: number): string {
    const attrs = [`${name}=${value}`, 'Path=/', 'HttpOnly', 'SameSite=Lax', `Max-Age=${maxAgeS}`];
    if (this.d.secure) attrs.push('Secure');
    return attrs.join('; ');
  }

  async putPending(reply: FastifyReply, p: PendingIdp): Promise<void> {
    const value = randomId(32);
    await this.d.store.upsertOAuthArtifact({
      model: PENDING_MODEL,
      id: sha256Hex(value),
      payload: JSON.stringify(p),
      grantId: null,
      userCode: null,
      uid: null,
      expiresAt: this.d.clock.now() + PENDING_TTL_MS,
      consumedAt: null,
    });
    reply.header('set-cookie', this.cookie(this.pending, value, PENDING_TTL_MS / 1000));
  }

  /** The pending provider login of this browser, if any (unexpired). */
  async pendingOf(req: FastifyRequest): Promise<PendingIdp | null> {
    const value = readCookie(req.headers.cookie, this.pending);
    if (value === undefined || !/^[A-Za-z0-9_-]{43}$/.test(value)) return null;
    const r = await this.d.store.findOAuthArtifact(PENDING_MODEL, 'id', sha256Hex(value), this.d.clock.now());
    return r === null ? null : (JSON.parse(r.payload) as PendingIdp);
  }

  /** Spend it (once the session that records it has started). */
  async endPending(req: FastifyRequest, reply: FastifyReply): Promise<void> {
    const value = readCookie(req.headers.cookie, this.pending);
    if (value !== undefined) await this.d.store.destroyOAuthArtifact(PENDING_MODEL, sha256Hex(value));
    reply.header('set-cookie', this.cookie(this.pending, '', 0));
  }
}

const PAGE_CSP = "default-src 'none'; style-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** A page that says what went wrong and offers to start again. */
function failurePage(reply: FastifyReply, status: number, p: IdpConfig | undefined, message: string): FastifyReply {
  const label = p === undefined ? 'your identity provider' : escapeHtml(p.displayName ?? p.name);
  const again = p === undefined ? '/.keygate/login' : `/.keygate/idp/${p.name}/start`;
  return reply
    .code(status)
    .header('content-type', 'text/html; charset=utf-8')
    .header('content-security-policy', PAGE_CSP)
    .header('cache-control', 'no-store')
    .send(
      `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Sign-in did not complete · Keygate</title>` +
        `<link rel="stylesheet" href="/.keygate/assets/style.css"></head><body><main class="card">` +
        `<h1>Sign-in through ${label} did not complete</h1><p id="idp-error">${escapeHtml(message)}</p>` +
        `<p><a href="${again}">Try again</a> · <a href="/.keygate/login">Other ways to sign in</a></p></main></body></html>`,
    );
}

export function registerIdpRoutes(app: FastifyInstance, d: IdpRouteDeps, cookies: IdpCookies): void {
  const ctxOf = (req: FastifyRequest) => ({
    ip: d.clientIp(req.raw),
    userAgent: String(req.headers['user-agent'] ?? ''),
  });

  app.get('/.keygate/idp/:name/start', async (req, reply) => {
    const p = d.idps.find((req.params as { name: string }).name);
    if (p === undefined) return failurePage(reply, 404, undefined, 'No identity provider of that name is configured.');
    const q = req.query as { return_to?: unknown; fresh?: unknown };
    const binding = randomId(32);
    let url: URL;
    try {
      url = await d.idps.begin(p, { returnTo: safeReturnTo(q.return_to), binding, fresh: q.fresh === '1' });
    } catch {
      return failurePage(reply, 502, p, 'Keygate could not reach the identity provider. Try again in a moment.');
    }
    reply.header('set-cookie', cookies.cookie(cookies.state, binding, 600));
    return reply.header('cache-control', 'no-store').redirect(url.href, 302);
  });

  app.get('/.keygate/idp/:name/callback', async (req, reply) => {
    const p = d.idps.find((req.params as { name: string }).name);
    if (p === undefined) return failurePage(reply, 404, undefined, 'No identity provider of that name is configured.');
    const ctx = ctxOf(req);
    let login: IdpLogin;
    try {
      login = await d.idps.complete(
        p,
        new URL(req.raw.url ?? '/', d.publicOrigin()),
        readCookie(req.headers.cookie, cookies.state),
      );
    } catch (e) {
      if (!(e instanceof IdpFailure)) throw e;
      await d.events.record('auth.idp_login', ctx, { outcome: 'failure', reason: e.reason, via: `idp:${p.name}` });
      return failurePage(
        reply,
        400,
        p,
        e.userHint ?? 'The sign-in could not be verified. Start it again from the login page.',
      );
    }
    reply.header('set-cookie', cookies.cookie(cookies.state, '', 0));
    const fail = async (reason: IdpFailure['reason'], userId: string | null, message: string) => {
      await d.events.record('auth.idp_login', ctx, { outcome: 'failure', reason, userId, via: `idp:${p.name}` });
      return failurePage(reply, 403, p, message);
    };
    if (p.mode === 'trust-idp-mfa') {
      try {
        d.idps.checkMfa(login);
      } catch (e) {
        return fail('idp_mfa', null, (e as IdpFailure).userHint ?? 'Phishing-resistant MFA is required.');
      }
    }

    // Who this is: the account linked to (provider, subject), else the person with that email.
    const now = d.clock.now();
    const linkedId = await d.store.findUserIdentity(p.name, login.subject);
    let user = linkedId === null ? await d.store.getUserByEmail(login.email) : await d.store.getUser(linkedId);
    const known = user !== null;
    const keys =
      user === null
        ? []
        : (await d.store.listCredentials(user.id)).filter((c) => c.revokedAt === null && c.clonedAt === null);
    if (p.mode === 'require-local-key' && keys.length === 0 && !known && p.enrollment === 'pre-approved') {
      const approved = login.groups.some((g) => p.enrollGroups.includes(g));
      if (!approved) {
        return fail(
          'idp_not_approved',
          null,
          'Your account is not approved for Keygate yet: ask an administrator to invite you.',
        );
      }
    }
    if (user === null) {
      user = await d.store.upsertUser(
        {
          id: randomUUID(),
          email: login.email,
          displayName: login.displayName,
          webauthnId: randomId(32),
          createdAt: now,
        },
        [],
      );
    }
    if (user.disabledAt !== null) return fail('user_disabled', user.id, 'Your Keygate account is disabled.');
    await d.store.linkUserIdentity(p.name, login.subject, user.id, now);
    const event = await d.events.record('auth.idp_login', ctx, {
      outcome: 'success',
      userId: user.id,
      via: `idp:${p.name}`,
      uv: p.mode === 'trust-idp-mfa' ? true : null,
    });
    const idp: SessionIdp = {
      provider: p.name,
      eventId: event.id,
      groups: login.groups,
      groupsAt: now,
      refresh: login.sealedRefresh,
    };

    if (p.mode === 'trust-idp-mfa') {
      const old = readCookie(req.headers.cookie, d.sessions.cookieName);
      if (old !== undefined) await d.sessions.revoke(old);
      // The provider's phishing-resistant MFA stands in for the key: user-verified, not device-bound here.
      const s = await d.sessions.create(user, null, event.id, true, { ...ctx, idp });
      reply.header('set-cookie', d.sessions.cookie(s.value));
      return reply.redirect(login.returnTo, 302);
    }

    // require-local-key: the person must now tap a key registered to this same account.
    await cookies.putPending(reply, {
      userId: user.id,
      email: user.email,
      provider: p.name,
      idp,
      returnTo: login.returnTo,
    });
    if (keys.length > 0) {
      const q = new URLSearchParams({ idp: p.name, return_to: login.returnTo });
      return reply.redirect(`/.keygate/login?${q}`, 302);
    }
    // No key yet: this provider login lets them enroll their first one (one-time link, 5 minutes' use).
    return reply.redirect(await firstKeyLink(d, user, p), 302);
  });
}

async function firstKeyLink(d: IdpRouteDeps, user: UserRecord, p: IdpConfig): Promise<string> {
  const link = await d.enrollment.firstKey(d.publicOrigin(), user, `idp:${p.name}`, PENDING_TTL_MS);
  const u = new URL(link.url);
  return u.pathname + u.search;
}
