/**
 * Tokens for tools and machines: the authorization server (oidc-provider behind Keygate's
 * store and WebAuthn login), service principals, the access-token identifier used by the
 * proxy, revocations, token signing keys, and the Databricks workspace's own authentication
 * surface answered by Keygate.
 */

import type { IncomingMessage, ServerResponse } from 'node:http';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { calculateJwkThumbprint, decodeJwt, decodeProtectedHeader, type JWK } from 'jose';
import type Provider from 'oidc-provider';
import type { KoaContextWithOIDC } from 'oidc-provider';
import { AgentGrants } from '../agents/grants.js';
import type { AuditEntry } from '../audit/record.js';
import type { AuthEvents } from '../authenticate/auth-events.js';
import { readCookie } from '../authenticate/cookies.js';
import type { Identifier } from '../authenticate/identity.js';
import type { Sessions } from '../authenticate/sessions.js';
import { type Config, federationTrust } from '../config/schema.js';
import { type ActiveKey, SigningKeys } from '../crypto/keys.js';
import { randomId, sha256Hex } from '../crypto/random.js';
import { KeygateError } from '../errors/index.js';
import type { Clock } from '../lib/clock.js';
import { PostgresStore } from '../store/postgres/index.js';
import type { Store } from '../store/types.js';
import { AccessTokens, DpopReplayCache } from './access-tokens.js';
import { loadOidc } from './oidc-module.js';
import {
  CLI_CLIENT_ID,
  createProvider,
  DATABRICKS_CLI_CLIENT_ID,
  errorPage,
  loadGrantContext,
  OAUTH_PREFIX,
  ROUTES,
  saveGrantContext,
} from './provider.js';
import { Revocations } from './revocations.js';
import { ServicePrincipals } from './service-principals.js';

export { CLI_CLIENT_ID, DATABRICKS_CLI_CLIENT_ID, OAUTH_PREFIX };

type FederationTrust = Config['tokens']['federation'][number];

/** The workspace id Keygate reports in the Databricks host metadata. */
const DATABRICKS_WORKSPACE_ID = '900800700600';
const INTERACTION_TTL_S = 600;
/** Metric labels stay bounded: unknown grant types are counted as "other". */
const KNOWN_GRANTS = new Set([
  'authorization_code',
  'refresh_token',
  'client_credentials',
  'urn:ietf:params:oauth:grant-type:device_code',
  'urn:ietf:params:oauth:grant-type:token-exchange',
]);

export interface OAuthDeps {
  config: Config;
  store: Store;
  clock: Clock;
  events: AuthEvents;
  sessions: Sessions;
  clientIp: (req: IncomingMessage) => string;
  log: { warn(o: object, msg: string): void; info(o: object, msg: string): void };
  /** Upstream audiences; the first is the default resource of a token. */
  audiences: readonly string[];
  /** Counts token endpoint answers by grant and outcome. */
  onTokenOutcome?: (grant: string, outcome: string) => void;
  /** Audit records that are not authentication events (a refresh). */
  audit?: (e: AuditEntry) => void;
  /** How often the signing keys are re-read from the store (another replica's rotation); default 30 s. */
  keyReloadMs?: number;
}

export class OAuthServer {
  readonly sps: ServicePrincipals;
  readonly revocations: Revocations;
  readonly replay: DpopReplayCache;
  /** People's delegations to agents, traded here for the agents' tokens. */
  readonly agentGrants: AgentGrants;
  private keys!: SigningKeys;
  private tokens!: AccessTokens;
  private provider: Provider | undefined;
  private callback: ((req: IncomingMessage, res: ServerResponse) => void) | undefined;
  private issuerUrl = '';
  /** The origins DPoP proofs may name: the public URL and the listener's own address. */
  private origins: string[] = [];
  private cookieKeys: string[] = [];
  private rotationTimer: NodeJS.Timeout | undefined;
  /** keygate.yaml's federation trusts, then those made through the admin API. */
  private allTrusts: readonly FederationTrust[];

  private constructor(private readonly d: OAuthDeps) {
    const c = d.config.tokens;
    this.sps = new ServicePrincipals(d.store, d.clock, c.secretLifetime);
    this.revocations = new Revocations(
      d.store,
      d.clock,
      Math.max(c.peopleAccessTokenLifetime, c.machineAccessTokenLifetime),
    );
    this.replay = new DpopReplayCache(d.clock);
    this.allTrusts = d.config.tokens.federation;
    this.agentGrants = new AgentGrants({
      store: d.store,
      clock: d.clock,
      events: d.events,
      revokeFamily: (family) => this.revocations.revokeGrant(family),
      maxTtlMs: d.config.agents.maxGrantLifetime,
    });
  }

  static async create(d: OAuthDeps): Promise<OAuthServer> {
    await loadOidc();
    const s = new OAuthServer(d);
    s.keys = await s.loadKeys();
    s.tokens = new AccessTokens({
      issuer: () => s.issuerUrl,
      jwks: () => s.keys.jwks(),
      reloadKeys: () => s.reloadKeys(),
      revocations: s.revocations,
      replay: s.replay,
      // Several replicas share PostgreSQL: a DPoP proof is single use across all of them.
      ...(d.store instanceof PostgresStore
        ? {
            sharedReplay: (key: string, expiresAt: number) =>
              d.store.insertOAuthArtifactIfAbsent(
                {
                  model: 'DPoPProof',
                  id: sha256Hex(key),
                  payload: '{}',
                  grantId: null,
                  userCode: null,
                  uid: null,
                  expiresAt,
                  consumedAt: null,
                },
                d.clock.now(),
              ),
          }
        : {}),
      clock: d.clock,
      origins: () => s.origins,
    });
    // Cookie signing keys for the provider's interaction cookies, shared by every replica.
    s.cookieKeys = [await d.store.initMeta('oauth.cookie_key', randomId(32))];
    await s.revocations.start();
    await s.reloadTrusts();
    return s;
  }

  /** Workload federation trusts in force: keygate.yaml's, then the stored ones. */
  trusts(): readonly FederationTrust[] {
    return this.allTrusts;
  }

  /**
   * Re-read the trusts made through the admin API: at start, every 5 s (another replica's
   * changes) and at once after a change here. A stored trust that no longer validates (a
   * schema change) is skipped with a warning rather than trusted in part.
   */
  async reloadTrusts(): Promise<void> {
    const stored: FederationTrust[] = [];
    for (const row of await this.d.store.listFederationTrusts()) {
      const parsed = federationTrust.safeParse(JSON.parse(row.spec));
      if (parsed.success) stored.push(parsed.data);
      else this.d.log.warn({ detail: row.name }, 'stored federation trust is not valid; ignored');
    }
    this.allTrusts = [...this.d.config.tokens.federation, ...stored];
  }

  get accessTokens(): AccessTokens {
    return this.tokens;
  }

  get identifier(): Identifier {
    return this.tokens.identifier();
  }

  get issuer(): string {
    return this.issuerUrl;
  }

  /** Build the provider for the public origin (known once the gateway listens). */
  start(issuer: string, listenUrl: string): void {
    this.issuerUrl = issuer;
    this.origins = [...new Set([issuer, new URL(listenUrl).origin])];
    this.build();
    // The keys are re-read every 30 s: a scheduled rotation is made by whichever replica checks
    // first, a manual one (`keygate admin keys rotate`) on any replica, and every replica signs
    // with the new key and publishes it within that time — well before the retired key leaves
    // the JWKS (a token lifetime and a minute after it retired).
    this.rotationTimer = setInterval(() => {
      this.reloadKeys().catch((e: unknown) =>
        this.d.log.warn({ detail: String(e) }, 'token key rotation check failed'),
      );
    }, this.d.keyReloadMs ?? 30_000);
    this.rotationTimer.unref();
  }

  close(): void {
    this.revocations.stop();
    if (this.rotationTimer) clearInterval(this.rotationTimer);
  }

  /** Retire the current token signing key now (`keygate admin keys rotate`); the old one stays published. */
  async rotateKeys(): Promise<string> {
    await this.d.store.retireSigningKeys('token', this.d.clock.now());
    await this.reloadKeys();
    return this.keys.current().kid;
  }

  jwks(): { keys: unknown[] } {
    return this.keys.jwks();
  }

  /**
   * The current token signing key, which the JWKS publishes: per-user upstream federation signs
   * its subject tokens with it (the workspace verifies them against this JWKS).
   */
  signingKey(): ActiveKey {
    return this.keys.current();
  }

  private loadKeys(): Promise<SigningKeys> {
    const c = this.d.config.tokens;
    return SigningKeys.load(this.d.store, 'token', this.d.clock, {
      rotateAfterMs: c.signingKeyRotation,
      // A retired key signed tokens for at most this long after it retired.
      publishForMs: Math.max(c.peopleAccessTokenLifetime, c.machineAccessTokenLifetime) + 60_000,
    });
  }

  /** Re-read the keys (rotation here or on another replica); rebuild the provider if the signer changed. */
  private async reloadKeys(): Promise<boolean> {
    const next = await this.loadKeys();
    if (next.fingerprint === this.keys.fingerprint && next.current().kid === this.keys.current().kid) return false;
    const signerChanged = next.current().kid !== this.keys.current().kid;
    this.keys = next;
    this.tokens?.refreshKeys();
    if (signerChanged && this.issuerUrl !== '') this.build();
    return true;
  }

  private build(): void {
    const d = this.d;
    const provider = createProvider(this.issuerUrl, {
      config: d.config,
      store: d.store,
      clock: d.clock,
      events: d.events,
      sps: this.sps,
      revocations: this.revocations,
      agentGrants: this.agentGrants,
      accessTokens: () => this.tokens,
      signingKey: () => this.keys.current().jwk,
      cookieKeys: this.cookieKeys,
      audiences: d.audiences,
      trusts: () => this.allTrusts,
      clientIp: d.clientIp,
      log: (detail, msg) => d.log.warn(detail, msg),
    });
    provider.use((ctx, next) => this.postProcess(ctx as KoaContextWithOIDC, next));
    const grantOf = (ctx: KoaContextWithOIDC) => {
      const g = String(ctx.oidc?.params?.grant_type ?? 'unknown');
      return KNOWN_GRANTS.has(g) ? g.replace('urn:ietf:params:oauth:grant-type:', '') : 'other';
    };
    provider.on('grant.success', (ctx) => d.onTokenOutcome?.(grantOf(ctx), 'issued'));
    // A refresh is no new authentication: it is audited against the login behind its grant.
    provider.on('grant.success', async (ctx) => {
      const audit = d.audit;
      if (ctx.oidc.params?.grant_type !== 'refresh_token' || audit === undefined) return;
      const rt = ctx.oidc.entities.RefreshToken;
      const at = d.clock.now();
      const gc = rt?.grantId === undefined ? null : await loadGrantContext(d.store, rt.grantId, at).catch(() => null);
      const ua = ctx.req.headers['user-agent'];
      audit({
        kind: 'token.refreshed',
        at,
        actor: {
          type: 'user',
          ...(rt?.accountId === undefined ? {} : { id: rt.accountId }),
          ...(gc === null
            ? {}
            : {
                authEventId: gc.authEventId,
                credentialId: gc.credentialId,
                aaguid: gc.aaguid,
                uv: gc.uv,
                authTime: gc.authTime,
              }),
          // The provider verified the proof when there is one: the new tokens are bound to it.
          deviceBound: typeof ctx.req.headers.dpop === 'string',
        },
        request: {
          method: 'POST',
          path: '/.keygate/oauth/token',
          ip: d.clientIp(ctx.req),
          ...(ua === undefined ? {} : { userAgent: ua.slice(0, 256) }),
        },
        outcome: 'success',
        detail: { client: ctx.oidc.client?.clientId ?? null, grant: rt?.grantId ?? null },
      });
    });
    provider.on('grant.error', (ctx, err) => d.onTokenOutcome?.(grantOf(ctx), String(err.error ?? 'error')));
    provider.on('grant.error', (ctx, err) => {
      // oidc-provider keeps the specific reason in error_detail (the client sees a generic description).
      if ((err as { error_detail?: string }).error_detail !== 'refresh token already used') return;
      const ev = { ip: d.clientIp(ctx.req), userAgent: String(ctx.req.headers['user-agent'] ?? '') };
      d.events
        .record('token.reuse_detected', ev, { outcome: 'failure', reason: 'refresh_token_reused' })
        .catch(() => undefined);
      d.log.warn({ client: ctx.oidc?.client?.clientId }, 'refresh token reused: its family was revoked');
    });
    provider.on('server_error', (_ctx, err) => d.log.warn({ detail: err.message }, 'authorization server error'));
    this.provider = provider;
    this.callback = provider.callback();
  }

  /**
   * Revocation (RFC 7009) and introspection (RFC 7662) of Keygate's JWT access tokens, which
   * oidc-provider declines (it stores no JWTs). The provider has already authenticated the
   * client when it declines, so this only has to check the token and its owner.
   */
  private async postProcess(ctx: KoaContextWithOIDC, next: () => Promise<void>): Promise<void> {
    try {
      await next();
    } catch (e) {
      // An error the provider did not turn into an OAuth answer — e.g. a device-code form
      // posted without the provider's session cookie — is the client's request we cannot
      // process: 400 with a page, never a 500 with a stack on stderr. Logged for the operator.
      const status =
        (e as { status?: number; statusCode?: number }).status ?? (e as { statusCode?: number }).statusCode;
      if (status !== undefined && status < 500) throw e;
      this.d.log.warn(
        { path: ctx.path, detail: (e as Error).message },
        'authorization server could not process a request',
      );
      ctx.status = 400;
      ctx.type = 'html';
      ctx.set('cache-control', 'no-store');
      ctx.body = errorPage('invalid_request', 'This request could not be processed. Start again from your tool.');
      return;
    }
    const route = ctx.oidc?.route;
    // A DPoP proof used at the token endpoint is spent for Keygate's own checks too (the
    // proxy, the token exchange): oidc-provider keeps its own replay record.
    if (route === 'token') await this.spendProof(ctx.req.headers.dpop);
    if (route !== 'revocation' && route !== 'introspection') return;
    const body = ctx.body as { error?: string } | undefined;
    const client = ctx.oidc.client;
    if (ctx.status !== 400 || body?.error !== 'unsupported_token_type' || !client) return;
    const token = String(ctx.oidc.params?.token ?? '');
    let v: Awaited<ReturnType<AccessTokens['verify']>> | null = null;
    try {
      v = await this.tokens.verify(token);
    } catch {
      v = null;
    }
    const own = v !== null && v.claims.client_id === client.clientId;
    if (route === 'revocation') {
      // RFC 7009 §2.2: an invalid token, or someone else's, is answered 200 and left alone.
      if (v !== null && own) {
        await this.revocations.revokeToken(v.claims.jti as string, v.expiresAt);
        await this.d.events.record(
          'token.revoked',
          { ip: this.d.clientIp(ctx.req), userAgent: String(ctx.req.headers['user-agent'] ?? '') },
          { outcome: 'success', userId: v.claims.sub ?? null },
        );
      }
      ctx.status = 200;
      ctx.body = '';
      return;
    }
    // Introspection: a public client sees only its own tokens.
    const visible = v !== null && (own || client.clientAuthMethod !== 'none');
    const c = v?.claims;
    const active =
      visible &&
      c !== undefined &&
      !this.revocations.isRevoked(c.jti as string, c.kg_grant, c.sub) &&
      (v as { expiresAt: number }).expiresAt > this.d.clock.now();
    ctx.status = 200;
    ctx.set('cache-control', 'no-store');
    ctx.body =
      !active || c === undefined
        ? { active: false }
        : {
            active: true,
            iss: c.iss,
            sub: c.sub,
            aud: c.aud,
            client_id: c.client_id,
            scope: c.scope,
            exp: c.exp,
            iat: c.iat,
            jti: c.jti,
            token_type: c.cnf?.jkt === undefined ? 'Bearer' : 'DPoP',
            ...(c.cnf === undefined ? {} : { cnf: c.cnf }),
          };
  }

  private async spendProof(header: string | string[] | undefined): Promise<void> {
    if (typeof header !== 'string') return;
    try {
      const { jwk } = decodeProtectedHeader(header) as { jwk?: JWK };
      const { jti } = decodeJwt(header);
      if (jwk === undefined || typeof jti !== 'string') return;
      this.replay.claim(`${await calculateJwkThumbprint(jwk)}:${jti}`);
    } catch {
      // Not a JWS: the provider refused it already.
    }
  }

  /** Hand a request to the provider (after Fastify's rate limit). */
  private pass(req: FastifyRequest, reply: FastifyReply, url?: string): void {
    const cb = this.callback;
    if (cb === undefined) throw new KeygateError('TEMPORARILY_UNAVAILABLE');
    if (url !== undefined) req.raw.url = url;
    reply.hijack();
    cb(req.raw, reply.raw);
  }

  /** The discovery document in the shape the Databricks SDKs read, pointing at the workspace paths. */
  private databricksDiscovery(): Record<string, unknown> {
    const o = this.issuerUrl;
    return {
      issuer: o,
      authorization_endpoint: `${o}/oidc/v1/authorize`,
      token_endpoint: `${o}/oidc/v1/token`,
      jwks_uri: `${o}${ROUTES.jwks}`,
      revocation_endpoint: `${o}${ROUTES.revocation}`,
      device_authorization_endpoint: `${o}${ROUTES.device_authorization}`,
      grant_types_supported: [
        'authorization_code',
        'refresh_token',
        'client_credentials',
        'urn:ietf:params:oauth:grant-type:device_code',
        'urn:ietf:params:oauth:grant-type:token-exchange',
      ],
      response_types_supported: ['code'],
      code_challenge_methods_supported: ['S256'],
      token_endpoint_auth_methods_supported: ['none', 'client_secret_basic', 'private_key_jwt'],
      scopes_supported: ['all-apis', 'offline_access'],
    };
  }

  /**
   * Routes: the provider's endpoints (with the raw body left for it to read), discovery, the
   * JWKS, the interaction that hands over to the WebAuthn login, and in the Databricks preset
   * the workspace's own authentication paths.
   */
  registerRoutes(app: FastifyInstance, o: { databricks: boolean; assertionKeys: () => readonly unknown[] }): void {
    const pass = (url?: (req: FastifyRequest) => string) => async (req: FastifyRequest, reply: FastifyReply) =>
      this.pass(req, reply, url?.(req));
    const query = (req: FastifyRequest) => {
      const u = req.raw.url ?? '';
      const q = u.indexOf('?');
      return q === -1 ? '' : u.slice(q);
    };

    app.register(async (raw) => {
      // The provider parses its own bodies: leave the stream unread.
      raw.removeAllContentTypeParsers();
      raw.addContentTypeParser('*', (_req, _payload, done) => done(null, undefined));
      raw.all(`${OAUTH_PREFIX}/*`, pass());
      raw.get('/.well-known/openid-configuration', pass());
      raw.get(
        '/.well-known/oauth-authorization-server',
        pass(() => '/.well-known/openid-configuration'),
      );
      if (o.databricks) {
        raw.get(
          '/oidc/v1/authorize',
          pass((req) => `${ROUTES.authorization}${query(req)}`),
        );
        raw.post(
          '/oidc/v1/token',
          pass(() => ROUTES.token),
        );
      }
    });

    app.get(ROUTES.jwks, async (_req, reply) => {
      // One key set for everything Keygate signs: access tokens and upstream identity assertions.
      reply.header('cache-control', 'public, max-age=300').header('content-type', 'application/jwk-set+json');
      return { keys: [...this.keys.jwks().keys, ...o.assertionKeys()] };
    });

    if (o.databricks) {
      const discovery = async (_req: FastifyRequest, reply: FastifyReply) => {
        reply.header('cache-control', 'no-store');
        return this.databricksDiscovery();
      };
      app.get('/oidc/.well-known/oauth-authorization-server', discovery);
      app.get('/oidc/.well-known/openid-configuration', discovery);
      // Host metadata (databricks-api.md §1.2): newer SDKs read this first.
      app.get('/.well-known/databricks-config', async (_req, reply) => {
        reply.header('cache-control', 'no-store');
        return {
          oidc_endpoint: `${this.issuerUrl}/oidc`,
          workspace_id: DATABRICKS_WORKSPACE_ID,
          host_type: 'WORKSPACE_HOST',
          token_federation_default_oidc_audiences: [`${this.issuerUrl}/oidc/v1/token`],
        };
      });
    }

    app.get(`${OAUTH_PREFIX}/interaction/:uid`, (req, reply) => this.interaction(req, reply));
  }

  /** When the browser first opened this interaction (ms, shared by replicas through the store). */
  private async firstSeen(uid: string): Promise<number> {
    const now = this.d.clock.now();
    const record = {
      model: 'KeygateInteractionStart',
      id: uid,
      payload: String(now),
      grantId: null,
      userCode: null,
      uid: null,
      expiresAt: now + INTERACTION_TTL_S * 1000,
      consumedAt: null,
    };
    if (await this.d.store.insertOAuthArtifactIfAbsent(record, now)) return now;
    const seen = await this.d.store.findOAuthArtifact(record.model, 'id', uid, now);
    return seen === null ? now : Number(seen.payload);
  }

  /**
   * The provider needs a login (or consent): the person proves themselves with WebAuthn.
   * An approval needs a tap made after the request started, not just an existing session.
   */
  private async interaction(req: FastifyRequest, reply: FastifyReply): Promise<void> {
    const provider = this.provider;
    if (provider === undefined) throw new KeygateError('TEMPORARILY_UNAVAILABLE');
    const { uid } = req.params as { uid: string };
    let details: Awaited<ReturnType<Provider['interactionDetails']>>;
    try {
      details = await provider.interactionDetails(req.raw, reply.raw);
    } catch {
      reply.code(400).type('text/html; charset=utf-8').header('cache-control', 'no-store');
      return reply.send(
        errorPage('invalid_request', 'This sign-in request has expired or was opened in another browser.'),
      ) as never;
    }
    if (details.uid !== uid) throw new KeygateError('NOT_FOUND');
    // Before any redirect to the login page: the tap that follows must come after this moment.
    const started = await this.firstSeen(uid);
    const value = readCookie(req.headers.cookie, this.d.sessions.cookieName);
    const resolved = value === undefined ? null : await this.d.sessions.resolve(value);
    const toLogin = () =>
      reply.redirect(
        `/.keygate/login?return_to=${encodeURIComponent(`${OAUTH_PREFIX}/interaction/${uid}`)}`,
        303,
      ) as never;
    if (resolved === null) return toLogin();
    const { session, user } = resolved;
    const login = {
      accountId: user.id,
      ts: Math.floor(session.authTime / 1000),
      amr: ['hwk', ...(session.uv ? ['user'] : [])],
      remember: false,
    };
    // Every authorization needs a WebAuthn assertion made after it reached this browser: an
    // existing session — Keygate's or the provider's own — never approves a token on its own.
    // At the consent prompt, the login answered a moment ago in this same request counts.
    const lastLogin = (details.lastSubmission as { login?: { accountId?: string } } | undefined)?.login;
    const tappedForThis =
      session.authTime >= started || (details.prompt.name !== 'login' && lastLogin?.accountId === user.id);
    if (!tappedForThis) return toLogin();
    let result: Record<string, unknown>;
    if (details.prompt.name === 'login') {
      result = { login };
    } else {
      // Consent: Keygate's clients are first-party; the grant covers what was asked, and the
      // policy still decides every request made with it. If the provider skipped the login
      // prompt (its own session), the tap just made is submitted as the login too, so the
      // grant is always the person who tapped.
      const clientId = String(details.params.client_id);
      const grant =
        details.grantId !== undefined
          ? ((await provider.Grant.find(details.grantId)) ?? new provider.Grant({ accountId: user.id, clientId }))
          : new provider.Grant({ accountId: user.id, clientId });
      const missing = details.prompt.details as {
        missingOIDCScope?: string[];
        missingResourceScopes?: Record<string, string[]>;
      };
      if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
      for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes ?? {})) {
        grant.addResourceScope(indicator, scopes.join(' '));
      }
      const grantId = await grant.save();
      await saveGrantContext(
        this.d.store,
        grantId,
        {
          authEventId: session.authEventId,
          credentialId: session.credentialId,
          aaguid: resolved.credential?.aaguid ?? '',
          uv: session.uv,
          authTime: session.authTime,
        },
        session.authTime + this.d.config.tokens.refreshLifetime,
      );
      await this.d.events.record(
        'token.issued',
        { ip: this.d.clientIp(req.raw), userAgent: String(req.headers['user-agent'] ?? '') },
        { outcome: 'success', userId: user.id, credentialId: session.credentialId, uv: session.uv },
      );
      result = lastLogin?.accountId === user.id ? { consent: { grantId } } : { login, consent: { grantId } };
    }
    const to = await provider.interactionResult(req.raw, reply.raw, result, { mergeWithLastSubmission: true });
    return reply.redirect(to, 303) as never;
  }
}
