/**
 * The composition root: wires identify → (authorize, later issues) → upstream credential →
 * forward → record, and the gateway's own routes under /.keygate/. Proxied requests take a
 * lean path on node:http and undici; Keygate's own pages and APIs go through Fastify.
 */
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import { dirname } from 'node:path';
import type { Duplex } from 'node:stream';
import { Readable } from 'node:stream';
import rateLimit from '@fastify/rate-limit';
import Fastify, { type FastifyInstance, LogController } from 'fastify';
import type { Logger } from 'pino';
import { Pool, request as undiciRequest } from 'undici';
import { registerAdminRoutes } from '../admin/routes.js';
import { APPROVAL_HEADER, Approvals, approvalDigest, MAX_APPROVAL_BODY } from '../agents/approvals.js';
import { registerAgentRoutes } from '../agents/routes.js';
import { People } from '../admin/people.js';
import { registerScimRoutes } from '../scim/server.js';
import { actorOf, fromAuthEvent } from '../audit/entries.js';
import { AuditLog } from '../audit/log.js';
import { drainOutbox } from '../audit/outbox.js';
import { identifyRequest } from '../authenticate/identify.js';
import type { Identifier, Identity, Principal } from '../authenticate/identity.js';
import { type Authentication, createAuthentication } from '../authenticate/index.js';
import { ACTION_NAMES, isSensitive } from '../authorize/actions.js';
import { MAX_BODY_FOR_CLASSIFICATION, readBodyField, readBounded } from '../authorize/body-field.js';
import { DatabricksClassifier } from '../authorize/classify/databricks.js';
import { GenericClassifier } from '../authorize/classify/generic.js';
import type { Classification } from '../authorize/classify/types.js';
import { Authorizer, type Decision, denialMessage } from '../authorize/engine.js';
import { type PendingRequest, PendingSteps } from '../authorize/pending.js';
import type { Config } from '../config/schema.js';
import { SigningKeys } from '../crypto/keys.js';
import { sha256Hex } from '../crypto/random.js';
import { KeygateError, toKeygateError } from '../errors/index.js';
import { type Clock, systemClock } from '../lib/clock.js';
import { globMatch } from '../lib/glob.js';
import { OAuthServer } from '../oauth/index.js';
import { AssertionSigner } from '../proxy/assertion.js';
import { createCredentialProvider, type UpstreamAuth, type UpstreamIdentity } from '../proxy/credentials/index.js';
import { type ForwardResult, forward, type UpstreamRuntime } from '../proxy/forward.js';
import { upstreamRequestHeaders } from '../proxy/headers.js';
import { type NormalizedTarget, normalizeTarget } from '../proxy/path.js';
import { openStore } from '../store/open.js';
import { PostgresStore } from '../store/postgres/index.js';
import type { Store } from '../store/types.js';
import { clientIpResolver } from './client-ip.js';
import { createLogger, flushLogger } from './logger.js';
import { Metrics } from './metrics.js';
import { registerOpsRoutes } from './ops.js';
import { registerPendingRoutes } from './pending-routes.js';
import { requestIdFrom } from './request-id.js';
import { sendError } from './respond.js';
import { RouteTable } from './routes.js';
import { readTls, watchTls } from './tls.js';

export interface GatewayOptions {
  config: Config;
  env?: NodeJS.ProcessEnv;
  /** Default: SQLite at config.store.path (or <dataDir>/keygate.db). */
  store?: Store;
  /**
   * Extra ways to recognise callers, tried after the browser session (tests and benchmarks
   * inject one programmatically; configuration cannot).
   */
  identifiers?: Identifier[];
  clock?: Clock;
  logger?: Logger;
  metrics?: Metrics;
  /** Poll interval for watched secret and certificate files. */
  filePollMs?: number;
  /** How often token signing keys are re-read from the store (tests use a short one). */
  keyReloadMs?: number;
  /**
   * Replace the Cedar authorizer (benchmarks measure the proxy with and without policy; tests).
   * Programmatic only: configuration cannot turn authorization off.
   */
  authorizer?: Pick<Authorizer, 'decide' | 'stepUpMaxAgeS'>;
  /**
   * false: no audit record per proxied request (benchmarks measure the proxy with and without
   * them). Programmatic only: configuration cannot turn the audit log off.
   */
  auditRequests?: boolean;
}

/** One proxied request on its way through the pipeline. */
interface Exchange {
  req: IncomingMessage;
  res: ServerResponse;
  requestId: string;
  start: number;
  target: NormalizedTarget;
  up: UpstreamRuntime;
  identity: Identity;
  /** Client address (trusted proxies applied), resolved once per request. */
  ip: string;
  /** Set when classification had to read the body; forwarded instead of the request stream. */
  body: Readable | undefined;
  classification?: Classification;
  decision?: Decision;
  /** Who the upstream saw (from the credential provider), for the audit record. */
  upstreamIdentity?: UpstreamIdentity;
}

/**
 * Paths Keygate answers itself; everything else is proxied. With a Databricks upstream the
 * workspace's own authentication surface (`/oidc/…`) is Keygate's too, so that unmodified
 * SDKs authenticate against Keygate and never obtain an upstream token.
 */
export function isOwnPath(url: string, databricks = false): boolean {
  return (
    url.startsWith('/.keygate/') ||
    url === '/.keygate' ||
    url.startsWith('/.well-known/') ||
    (databricks && (url.startsWith('/oidc/') || url === '/oidc'))
  );
}

/** How long a refused request's remaining body is read and discarded before the socket is cut. */
const LINGER_MS = 5_000;

/**
 * Lingering close (as nginx does): after refusing a request whose body is still arriving, read
 * and discard the rest for a while, so the client finishes sending and reads the answer instead
 * of failing with EPIPE; a client that keeps sending past the deadline is cut off.
 */
function linger(req: IncomingMessage): void {
  const timer = setTimeout(() => req.socket.destroy(), LINGER_MS);
  timer.unref();
  req.once('end', () => clearTimeout(timer));
  req.once('close', () => clearTimeout(timer));
  req.resume();
}

function hasUnreadBody(req: IncomingMessage): boolean {
  if (req.complete) return false;
  const cl = req.headers['content-length'];
  return (cl !== undefined && cl !== '0') || req.headers['transfer-encoding'] !== undefined;
}

/**
 * An access token is only good for the upstream it was issued to (RFC 9068 §4 step 4: `aud`)
 * and, when narrowed, only for the actions its scope names (`action` or `action/<resource glob>`).
 */
function tokenRefusal(identity: Identity, audience: string, c: Classification): KeygateError | undefined {
  const { audiences, scopes } = identity.auth;
  // RFC 9449 §7.1: a DPoP-bound token is challenged with the DPoP scheme.
  const scheme = identity.auth.method === 'dpop' ? 'DPoP' : 'Bearer';
  if (audiences !== undefined && !audiences.includes(audience)) {
    return new KeygateError('UNAUTHENTICATED', {
      message: 'The access token was issued for another service.',
      detail: `token audience ${audiences.join(',')} is not ${audience}`,
      headers: {
        'www-authenticate': `${scheme} realm="keygate", error="invalid_token", error_description="wrong audience"`,
      },
    });
  }
  if (scopes === undefined) return undefined;
  const name = c.resource.id;
  const ok = scopes.some((s) => {
    const slash = s.indexOf('/');
    if (slash === -1) return s === c.action;
    return s.slice(0, slash) === c.action && globMatch(s.slice(slash + 1), name);
  });
  if (ok) return undefined;
  return new KeygateError('PERMISSION_DENIED', {
    message: `This token's scope does not include ${c.action} on ${c.resource.type === 'Workspace' ? 'this workspace' : `${c.resource.type} "${name}"`}.`,
    detail: `token scope ${scopes.join(' ')} lacks ${c.action} ${c.resource.type}::${name}`,
    headers: { 'www-authenticate': `${scheme} realm="keygate", error="insufficient_scope", scope="${c.action}"` },
  });
}

/** The workspace's authentication surface after normalization (case and `;params` ignored). */
const RESERVED_AUTH_PATH = /^\/+(oidc|\.well-known)(;[^/]*)?(\/|$)/i;

/** How a refusal that never reached policy is recorded: denied, or an error for a 5xx. */
function refusalDecision(err: KeygateError): Decision | undefined {
  if (err.status >= 500) return { effect: 'deny', reasons: [`error:${err.code}`] };
  return { effect: 'deny', reasons: [err.code] };
}

export class Gateway {
  readonly config: Config;
  readonly store: Store;
  readonly metrics: Metrics;
  readonly log: Logger;
  /**
   * One line per proxied request. Its fields are fixed and carry no secrets (no headers, no
   * query strings), so it skips redaction, which would cost more than the line itself.
   */
  private readonly accessLog: Logger;
  readonly app: FastifyInstance;
  readonly server: Server | HttpsServer;
  /** Set once listening: the base URL this process listens on, and the public origin. */
  url = '';
  publicOrigin = '';
  private readonly upstreams: UpstreamRuntime[] = [];
  private readonly routes: RouteTable;
  private identifiers: readonly Identifier[];
  private authentication: Authentication | undefined;
  private oauthServer: OAuthServer | undefined;
  private auditLog: AuditLog | undefined;
  private readonly auditRequests: boolean;
  /** A Databricks upstream exists: Keygate answers the workspace's /oidc/ surface. */
  private readonly databricks: boolean;
  private readonly clock: Clock;
  private readonly clientIp: (req: IncomingMessage) => string;
  private signer: AssertionSigner | undefined;
  /** Cedar policies: every proxied request is decided here. */
  readonly authorizer: Pick<Authorizer, 'decide' | 'stepUpMaxAgeS'>;
  /** Browser submissions waiting for a step-up before they are replayed. */
  readonly pending: PendingSteps;
  /** Agents' requests held for their person's approval (src/agents/approvals.ts). */
  approvals: Approvals | undefined;
  /** The actions an agent's request is held for. */
  private readonly approvalActions: ReadonlySet<string>;
  private keys: SigningKeys | undefined;
  private draining = false;
  private inflight = 0;
  private readonly idleWaiters: (() => void)[] = [];
  private readonly closers: (() => void)[] = [];
  private publicProto = 'http';
  private publicHost = '';

  private constructor(opts: GatewayOptions, store: Store) {
    this.auditRequests = opts.auditRequests !== false;
    const { config } = opts;
    this.config = config;
    this.store = store;
    this.clock = opts.clock ?? systemClock;
    this.log = opts.logger ?? createLogger(config.log.level);
    this.accessLog = this.log.child({}, { redact: [] });
    this.metrics = opts.metrics ?? new Metrics();
    this.identifiers = opts.identifiers ?? [];
    this.clientIp = clientIpResolver(config.trustedProxies);
    this.authorizer = opts.authorizer ?? new Authorizer(config);
    this.pending = new PendingSteps(this.clock);
    const held = opts.config.agents.approvalActions;
    this.approvalActions = new Set(held.includes('*') ? ACTION_NAMES : held);
    const env = opts.env ?? process.env;

    for (const [name, u] of Object.entries(config.upstreams)) {
      const url = new URL(u.url);
      const credentialDeps: Parameters<typeof createCredentialProvider>[3] = {
        env,
        clock: this.clock,
        events: {
          onRefresh: (outcome, detail) => {
            this.metrics.credentialRefreshes.inc({ upstream: name, outcome });
            if (outcome === 'error') this.log.warn({ upstream: name, detail }, 'upstream credential refresh failed');
          },
          onFallback: (code, detail) =>
            this.log.warn(
              { upstream: name, code, detail },
              'per-user federation failed; sent as the shared service principal',
            ),
        },
        // databricks-federation signs with the token keys Keygate publishes at its public URL.
        federation: {
          issuer: config.publicUrl === undefined ? '' : new URL(config.publicUrl).origin,
          signingKey: () => this.oauth.signingKey(),
        },
        onSecretReload: (ok, detail) =>
          ok
            ? this.log.info({ upstream: name }, 'upstream secret reloaded')
            : this.log.error({ upstream: name, detail }, 'upstream secret reload failed; keeping the previous one'),
      };
      if (opts.filePollMs !== undefined) credentialDeps.filePollMs = opts.filePollMs;
      const credential = createCredentialProvider(u.credential, u.url, `upstreams.${name}.credential`, credentialDeps);
      if (u.credential.type === 'databricks-federation' && u.credential.dangerouslyFallBackToServicePrincipal) {
        this.log.warn(
          { upstream: name },
          'FEDERATION FALLBACK: when per-user federation fails, requests go upstream as the shared service principal (dangerouslyFallBackToServicePrincipal)',
        );
      }
      this.upstreams.push({
        name,
        origin: url.origin,
        basePath: url.pathname.replace(/\/+$/, ''),
        audience: u.url,
        pool: new Pool(url.origin, {
          connections: u.connections,
          connect: { timeout: u.timeouts.connect },
          headersTimeout: u.timeouts.headers,
          bodyTimeout: u.timeouts.body,
          keepAliveTimeout: 4_000,
        }),
        credential,
        classifier: u.preset === 'databricks' ? new DatabricksClassifier() : new GenericClassifier(name, u.rules),
        maxRequestBodyBytes: u.maxRequestBodyBytes,
      });
    }
    const byName = new Map(this.upstreams.map((u) => [u.name, u]));
    const routeEntries =
      config.routes.length > 0
        ? config.routes.map((r) => ({ prefix: r.prefix, upstream: byName.get(r.upstream) as UpstreamRuntime }))
        : this.upstreams.length === 1
          ? [{ prefix: '/', upstream: this.upstreams[0] as UpstreamRuntime }]
          : [];
    this.routes = new RouteTable(routeEntries);

    this.databricks = Object.values(config.upstreams).some((u) => u.preset === 'databricks');
    const databricks = this.databricks;
    const proxy = (req: IncomingMessage, res: ServerResponse) => this.onProxyRequest(req, res);
    let server!: Server | HttpsServer;
    const serverOptions = {
      maxHeaderSize: config.limits.maxHeaderBytes,
      // Slow clients: the headers within headersTimeout, the whole request within
      // requestTimeout (408 either way), checked every second rather than Node's 30 s.
      headersTimeout: Math.min(config.limits.headersTimeout, config.limits.requestTimeout),
      requestTimeout: config.limits.requestTimeout,
      connectionsCheckingInterval: 1_000,
      keepAliveTimeout: config.limits.keepAliveTimeout,
      // Host is checked by framingProblem (exactly one), answered in the contract's shape.
      requireHostHeader: false,
    };
    this.app = Fastify({
      loggerInstance: this.log,
      logController: new LogController({ disableRequestLogging: true, requestIdLogLabel: 'req_id' }),
      genReqId: (req) => requestIdFrom(req.headers['x-request-id']),
      requestIdHeader: false,
      bodyLimit: 1024 * 1024,
      clientErrorHandler: (err: Error, socket: Duplex) => this.onClientError(err as NodeJS.ErrnoException, socket),
      serverFactory: (handler) => {
        const route = (req: IncomingMessage, res: ServerResponse) => {
          const problem = framingProblem(req, config.limits.maxHeaderBytes);
          if (problem !== undefined) {
            this.refuseFraming(res, problem);
            return;
          }
          if (isOwnPath(req.url ?? '', databricks)) handler(req, res);
          else proxy(req, res);
        };
        server = config.tls
          ? createHttpsServer({ ...serverOptions, ...readTls(config.tls) }, route)
          : createHttpServer(serverOptions, route);
        return server;
      },
      // The typed instance is parameterised by server and logger; we use the default view.
    }) as unknown as FastifyInstance;
    this.server = server;
    server.on('connect', (_req: IncomingMessage, socket: Duplex) => this.refuseConnect(socket));
    if (config.tls && 'setSecureContext' in server) {
      this.closers.push(
        watchTls(
          server as HttpsServer,
          config.tls,
          (ok, detail) =>
            ok
              ? this.log.info('TLS certificate reloaded')
              : this.log.error({ detail }, 'TLS certificate reload failed; keeping the previous one'),
          opts.filePollMs,
        ),
      );
    }
    this.installFastifyHandlers();
  }

  static async create(opts: GatewayOptions): Promise<Gateway> {
    const store = opts.store ?? openStore(opts.config, opts.env ?? process.env);
    let gw: Gateway | undefined;
    try {
      await store.migrate();
      gw = new Gateway(opts, store);
      return await Gateway.build(gw, opts, store);
    } catch (e) {
      // A gateway that cannot start leaves nothing open (a database pool would keep the process alive).
      if (gw !== undefined) await gw.close().catch(() => undefined);
      else await store.close().catch(() => undefined);
      throw e;
    }
  }

  private static async build(gw: Gateway, opts: GatewayOptions, store: Store): Promise<Gateway> {
    gw.keys = await SigningKeys.load(store, 'assertion', gw.clock);
    const auditKey = (await SigningKeys.load(store, 'audit', gw.clock)).current();
    const a = opts.config.audit;
    if (a.failOpen) {
      gw.log.warn(
        {},
        'AUDIT FAIL-OPEN: requests are served even when the audit log cannot record them (audit.failOpen)',
      );
    }
    if (store instanceof PostgresStore && a.path !== undefined)
      gw.log.warn({}, 'audit.path is not used: with a PostgreSQL store the audit chain is in the database');
    gw.auditLog = await AuditLog.open({
      // On PostgreSQL the chain is in the database, one chain for every replica.
      ...(store instanceof PostgresStore ? { postgres: store.connectionString } : {}),
      path:
        a.path ??
        `${opts.config.store.path === undefined ? opts.config.dataDir : dirname(opts.config.store.path)}/audit.db`,
      maxQueue: a.maxQueue,
      flushMs: a.flushInterval,
      batchMax: a.batchMax,
      checkpointEvery: a.checkpointEvery,
      checkpointEveryMs: a.checkpointInterval,
      failOpen: a.failOpen,
      busyTimeoutMs: a.busyTimeout,
      retentionMs: a.retention ?? null,
      pruneEveryMs: a.pruneInterval,
      sinks: {
        stdout: a.sinks.stdout,
        ...(a.sinks.file === undefined
          ? {}
          : { file: { path: a.sinks.file.path, maxBytes: a.sinks.file.maxSize, keep: a.sinks.file.keep } }),
      },
      key: { kid: auditKey.kid, jwk: auditKey.jwk },
      log: gw.log,
    });
    const auditLog = gw.auditLog;
    gw.metrics.auditState = () => ({ committedSeq: auditLog.committedSeq, queued: auditLog.queued });
    gw.auditLog.record({
      kind: 'audit.started',
      at: gw.clock.now(),
      actor: { type: 'system' },
      detail: { pid: process.pid },
    });
    // Role bindings and federation trusts made through the admin API (by this process or another
    // on the same store).
    await gw.reloadBindings();
    const bindingsTimer = setInterval(() => {
      Promise.all([gw.reloadBindings(), gw.oauthServer?.reloadTrusts()]).catch((e: unknown) =>
        gw.log.warn({ detail: (e as Error).message }, 'stored role bindings or trusts not reloaded; retrying'),
      );
    }, 5_000);
    bindingsTimer.unref();
    gw.closers.push(() => clearInterval(bindingsTimer));
    // Changes made with the admin CLI on the local store wait in its outbox for a gateway.
    let draining = false;
    const drain = () => {
      if (draining || !auditLog.accepting) return;
      draining = true;
      drainOutbox(store, auditLog, gw.log)
        .catch((e: unknown) => gw.log.warn({ detail: (e as Error).message }, 'audit outbox not drained; retrying'))
        .finally(() => {
          draining = false;
        });
    };
    drain();
    const outboxTimer = setInterval(drain, 5_000);
    outboxTimer.unref();
    gw.closers.push(() => clearInterval(outboxTimer));
    gw.authentication = await createAuthentication({
      config: opts.config,
      store,
      clock: gw.clock,
      publicOrigin: () => gw.publicOrigin,
      clientIp: gw.clientIp,
      log: gw.log,
      env: opts.env ?? process.env,
    });
    gw.oauthServer = await OAuthServer.create({
      config: opts.config,
      store,
      clock: gw.clock,
      events: gw.authentication.events,
      sessions: gw.authentication.sessions,
      clientIp: gw.clientIp,
      log: gw.log,
      audiences: gw.upstreams.map((u) => u.audience),
      onTokenOutcome: (grant, outcome) => gw.metrics.tokens.inc({ grant, outcome }),
      audit: (e) => auditLog.record(e),
      ...(opts.keyReloadMs === undefined ? {} : { keyReloadMs: opts.keyReloadMs }),
    });
    // Session ends reach the other replicas through the revocations every proxy polls.
    const revocations = gw.oauthServer.revocations;
    const sessions = gw.authentication.sessions;
    sessions.shared = {
      isRevoked: (h) => revocations.isSessionRevoked(h),
      add: (hs) => revocations.revokeSessions(hs),
    };
    revocations.onUserChanged = (userId) => sessions.forgetUser(userId);
    // An Authorization header (a Keygate token) is checked first; then the browser session.
    gw.identifiers = [gw.oauthServer.identifier, gw.authentication.identifier, ...gw.identifiers];
    // Every authentication event also goes to the audit log, once stored.
    const audit = gw.auditLog;
    gw.authentication.events.onStored = (e) => {
      const entry = fromAuthEvent(e);
      if (entry !== null) audit.record(entry);
    };
    const auth = gw.authentication;
    const oauth = gw.oauthServer;
    const agentsConfig = opts.config.agents;
    const webhookSecret =
      agentsConfig.webhook === undefined ? undefined : (opts.env ?? process.env)[agentsConfig.webhook.secretEnv];
    gw.approvals = new Approvals({
      store,
      clock: gw.clock,
      ttlMs: agentsConfig.approvalLifetime,
      publicOrigin: () => gw.publicOrigin,
      webhook:
        agentsConfig.webhook === undefined || webhookSecret === undefined
          ? undefined
          : { url: agentsConfig.webhook.url, secret: webhookSecret },
      describe: async (c) => ({
        user: (await store.getUser(c.userId))?.email ?? c.userId,
        agent: (await store.getServicePrincipal(c.agentId))?.name ?? c.agentId,
      }),
      log: gw.log,
    });
    // Keygate's own APIs, each call limited per client address (login and enrollment have
    // tighter limits of their own, per address and per account).
    gw.app.register(async (api) => {
      await api.register(rateLimit, {
        global: true,
        max: opts.config.rateLimits.apiPerIpPerMinute,
        timeWindow: 60_000,
        keyGenerator: (req) => `api:${gw.clientIp(req.raw)}`,
        errorResponseBuilder: (_req, ctx) =>
          new KeygateError('REQUEST_LIMIT_EXCEEDED', { message: `Too many requests; retry in ${ctx.after}.` }),
      });
      // Nothing happens unaudited: when the audit log cannot take records, Keygate's own APIs
      // (logins, tokens, admin) answer 503 too.
      api.addHook('onRequest', async () => {
        if (!audit.accepting) throw new KeygateError('TEMPORARILY_UNAVAILABLE', { detail: `audit log ${audit.state}` });
      });
      auth.registerRoutes(api);
      oauth.registerRoutes(api, {
        databricks: gw.databricks,
        assertionKeys: () => (gw.keys as SigningKeys).jwks().keys,
      });
      // A token family ends: its refresh tokens are deleted, its access tokens refused everywhere.
      const revokeGrant = async (grantId: string) => {
        await oauth.revocations.revokeGrant(grantId);
        await store.revokeOAuthGrant(grantId);
      };
      // A person's groups changed: this replica's cached sessions go now, the others' within a second.
      const groupsChanged = (userId: string) => {
        auth.sessions.forgetUser(userId);
        oauth.revocations
          .userChanged(userId)
          .catch((e: unknown) =>
            gw.log.warn({ detail: (e as Error).message }, 'group change not shared with other replicas'),
          );
      };
      const people = new People({
        store,
        sessions: auth.sessions,
        revokeGrant,
        revokeSubject: (subject) => oauth.revocations.revokeSubject(subject),
        now: () => gw.clock.now(),
      });
      registerScimRoutes(api, {
        store,
        now: () => gw.clock.now(),
        setDisabled: (u, disabled) => people.setDisabled(u, disabled),
        deleteUser: (u) => people.delete(u),
        groupsChanged,
        audit: (e) => audit.record(e),
      });
      registerAdminRoutes(api, {
        auth,
        people,
        groupsChanged,
        publicOrigin: () => gw.publicOrigin,
        clientIp: gw.clientIp,
        sps: oauth.sps,
        tokens: oauth.identifier,
        adminAudience: () => oauth.issuer,
        audit,
        store,
        config: opts.config,
        authorizer: gw.authorizer,
        revokeSubject: (subject) => oauth.revocations.revokeSubject(subject),
        reloadBindings: () => gw.reloadBindings(),
        reloadTrusts: () => oauth.reloadTrusts(),
        trusts: () => oauth.trusts(),
        revokeGrant,
        now: () => gw.clock.now(),
      });
      registerAgentRoutes(api, {
        auth,
        grants: oauth.agentGrants,
        store,
        tokens: oauth.identifier,
        keygateAudience: () => oauth.issuer,
        clientIp: gw.clientIp,
        freshMs: opts.config.authorization.stepUpMaxAge,
        upstreamJson: (upstream, path, userId) => gw.upstreamJson(upstream, path, userId),
        audit: (e) => audit.record(e),
        now: () => gw.clock.now(),
      });
      registerPendingRoutes(api, {
        auth,
        pending: gw.pending,
        replay: (p, identity, via, res) => gw.replay(p, identity, via, res),
      });
    });
    registerOpsRoutes(gw.app, {
      store,
      metrics: gw.metrics,
      upstreams: gw.upstreams,
      isDraining: () => gw.draining,
      audit: () => audit.state,
    });
    return gw;
  }

  private bindingsSignature = '';

  /**
   * Load the role bindings kept in the store into the authorizer: at start, every 5 s (changes
   * made by another process), and at once after a change made here.
   */
  async reloadBindings(): Promise<void> {
    if (!(this.authorizer instanceof Authorizer)) return;
    const rows = await this.store.listRoleBindings();
    const signature = JSON.stringify(rows.map((r) => [r.id, r.subjectType, r.subject, r.role]));
    if (signature === this.bindingsSignature) return;
    this.bindingsSignature = signature;
    this.authorizer.setStoredBindings(
      rows.map((r) =>
        r.subjectType === 'group' ? { group: r.subject, roles: [r.role] } : { user: r.subject, roles: [r.role] },
      ),
    );
  }

  /** People's authentication: sessions, enrollment links, ceremonies. */
  get auth(): Authentication {
    return this.authentication as Authentication;
  }

  /** The tamper-evident audit log. */
  get audit(): AuditLog {
    return this.auditLog as AuditLog;
  }

  /** The authorization server: tokens, service principals, revocations. */
  get oauth(): OAuthServer {
    return this.oauthServer as OAuthServer;
  }

  /** Start listening; resolves to the URL this process answers on. */
  async listen(): Promise<string> {
    const { host, port } = this.config.listen;
    await this.app.listen({ host, port });
    const addr = this.server.address();
    const actualPort = typeof addr === 'object' && addr !== null ? addr.port : port;
    const scheme = this.config.tls ? 'https' : 'http';
    const hostForUrl = host.includes(':') ? `[${host}]` : host;
    this.url = `${scheme}://${hostForUrl}:${actualPort}`;
    const pub = new URL(this.config.publicUrl ?? `${scheme}://localhost:${actualPort}`);
    this.publicOrigin = pub.origin;
    this.publicProto = pub.protocol.slice(0, -1);
    this.publicHost = pub.host;
    const keys = this.keys as SigningKeys;
    this.signer = new AssertionSigner(() => keys.current(), this.publicOrigin, this.clock);
    this.oauth.start(this.publicOrigin, this.url);
    return this.url;
  }

  /**
   * Graceful shutdown: stop accepting, let in-flight requests finish (up to the drain
   * timeout), then close connections, pools, watchers and the store.
   */
  async close(): Promise<void> {
    if (this.draining) return;
    this.draining = true;
    const drained = new Promise<void>((resolve) => {
      if (this.inflight === 0) resolve();
      else this.idleWaiters.push(resolve);
    });
    const appClosed = this.app.close();
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<'timeout'>((r) => {
      timer = setTimeout(() => r('timeout'), this.config.shutdown.drainTimeout);
    });
    const outcome = await Promise.race([drained.then(() => 'drained' as const), timedOut]);
    clearTimeout(timer);
    if (outcome === 'timeout') this.log.warn({ inflight: this.inflight }, 'drain timeout; closing connections');
    this.server.closeAllConnections();
    await appClosed;
    await Promise.all(this.upstreams.map((u) => u.pool.destroy()));
    for (const u of this.upstreams) u.credential.close();
    for (const c of this.closers) c();
    this.oauthServer?.close();
    await this.auditLog?.close();
    await this.store.close();
    this.log.info('stopped');
    flushLogger(this.log);
  }

  // Metric children bound once per label set: label hashing on every request costs more than the count.
  private readonly latencyChildren = new Map<string, ReturnType<Metrics['upstreamLatency']['labels']>>();
  private readonly proxiedChildren = new Map<number, ReturnType<Metrics['requests']['labels']>>();

  private latencyOf(upstream: string) {
    let c = this.latencyChildren.get(upstream);
    if (c === undefined) {
      c = this.metrics.upstreamLatency.labels(upstream);
      this.latencyChildren.set(upstream, c);
    }
    return c;
  }

  private proxiedCount(status: number) {
    let c = this.proxiedChildren.get(status);
    if (c === undefined) {
      c = this.metrics.requests.labels('proxy', String(status));
      this.proxiedChildren.set(status, c);
    }
    return c;
  }

  // ---- the proxied request path ------------------------------------------------------

  private onProxyRequest(req: IncomingMessage, res: ServerResponse): void {
    const requestId = requestIdFrom(req.headers['x-request-id']);
    this.inflight++;
    this.metrics.inflight.inc();
    const start = performance.now();
    res.once('close', () => this.requestClosed());
    if (this.draining) res.setHeader('connection', 'close');

    if (!this.audit.accepting) {
      const err = new KeygateError('TEMPORARILY_UNAVAILABLE', {
        message: 'The gateway cannot record requests right now; retry shortly.',
        detail: `audit log ${this.audit.state}`,
        headers: { 'retry-after': '5' },
      });
      this.fail(req, res, requestId, err, start);
      return;
    }
    let target: NormalizedTarget;
    try {
      target = normalizeTarget(req.url ?? '');
    } catch (e) {
      this.fail(req, res, requestId, toKeygateError(e), start);
      return;
    }
    // Keygate's own authentication paths, however spelled (`//oidc`, `/%6fidc`, `/OIDC`,
    // `/oidc;x`): never proxied, so no client reaches the workspace's token endpoint.
    if (this.databricks && RESERVED_AUTH_PATH.test(target.path)) {
      this.fail(req, res, requestId, new KeygateError('NOT_FOUND'), start);
      return;
    }
    const up = this.routes.match(target.path);
    if (up === undefined) {
      this.fail(
        req,
        res,
        requestId,
        new KeygateError('NOT_FOUND', { message: 'No upstream serves this path.' }),
        start,
      );
      return;
    }
    let identity: Identity | null | Promise<Identity | null>;
    try {
      identity = identifyRequest(this.identifiers, req);
    } catch (e) {
      this.fail(req, res, requestId, toKeygateError(e), start);
      return;
    }
    if (identity instanceof Promise) {
      identity.then(
        (id) => this.afterIdentify(req, res, requestId, start, target, up, id),
        (e: unknown) => this.fail(req, res, requestId, toKeygateError(e), start),
      );
    } else {
      this.afterIdentify(req, res, requestId, start, target, up, identity);
    }
  }

  private afterIdentify(
    req: IncomingMessage,
    res: ServerResponse,
    requestId: string,
    start: number,
    target: NormalizedTarget,
    up: UpstreamRuntime,
    identity: Identity | null,
  ): void {
    if (identity === null) {
      this.unauthenticated(req, res, requestId, target, start);
      return;
    }
    const x: Exchange = { req, res, requestId, start, target, up, identity, ip: this.clientIp(req), body: undefined };
    // Classify: method + normalized path → action and resource (DESIGN §5).
    let c: ReturnType<UpstreamRuntime['classifier']['classify']>;
    try {
      c = up.classifier.classify(req.method ?? 'GET', target.path, target.query);
    } catch (e) {
      this.fail(req, res, requestId, toKeygateError(e), start, identity);
      return;
    }
    if ('needsBody' in c) {
      const need = c.needsBody;
      if (need.query !== undefined && !hasUnreadBody(req)) {
        this.authorize(x, need.resolve(need.query));
        return;
      }
      readBodyField(req, need.field).then(
        (r) => {
          // With both, the query and the body must name the same resource.
          if (need.query !== undefined && r.value !== need.query) {
            const err = new KeygateError('BAD_REQUEST', {
              message: `The query and the body name different resources in "${need.field}".`,
              detail: `${need.field} differs between query and body`,
            });
            this.fail(req, res, requestId, err, start, identity);
            return;
          }
          x.body = r.body;
          this.authorize(x, need.resolve(r.value));
        },
        (e: unknown) => this.fail(req, res, requestId, toKeygateError(e), start, identity),
      );
      return;
    }
    this.authorize(x, c);
  }

  /** Decide with Cedar; a denial or a step-up never reaches the upstream. */
  private authorize(x: Exchange, c: Classification): void {
    const { req, res, requestId, start, identity } = x;
    const refusal = tokenRefusal(identity, x.up.audience, c);
    if (refusal !== undefined) {
      this.fail(req, res, requestId, refusal, start, identity, x.up.name);
      return;
    }
    const decision = this.authorizer.decide({
      identity,
      action: c.action,
      resource: c.resource,
      ip: x.ip,
      method: req.method ?? 'GET',
      path: x.target.path,
      now: this.clock.now(),
    });
    x.classification = c;
    x.decision = decision;
    if (decision.effect === 'deny') {
      // A plain bearer token refused only for being one: say what would work.
      const bearerOnly = decision.reasons.length === 1 && decision.reasons[0] === 'keygate:device-bound';
      const err = new KeygateError('PERMISSION_DENIED', {
        message: bearerOnly
          ? `${denialMessage(c.action, c.resource)} It needs a device-bound token: use \`keygate proxy\` (or the browser), not a bearer token from \`keygate token\`.`
          : denialMessage(c.action, c.resource),
        detail: `${c.action} ${c.resource.type}::${c.resource.id}: ${decision.reasons.join(',')}`,
      });
      this.fail(req, res, requestId, err, start, identity, x.up.name, decision, c);
      return;
    }
    // An agent cannot tap a key: for the actions that need it, its person approves the exact
    // request instead (which also stands for the fresh login a step-up would ask for).
    if (identity.principal.type === 'agent' && this.approvalActions.has(c.action)) {
      this.approvalGate(x, c);
      return;
    }
    if (decision.effect === 'step_up') {
      this.stepUp(x, c);
      return;
    }
    this.withCredentials(x);
  }

  /**
   * An agent's request for an action that needs its person's approval (src/agents/approvals.ts).
   * The body is read (bounded) and the request digested: without an approval id it is held and
   * answered 401 APPROVAL_REQUIRED; with one it is forwarded only if that approval covers
   * exactly this request — and the approval is then used, once.
   */
  private approvalGate(x: Exchange, c: Classification): void {
    const { req, res, requestId, start, identity } = x;
    const who = identity.principal.onBehalfOf;
    const approvals = this.approvals;
    const refuse = (e: unknown, reason: string) =>
      this.fail(
        req,
        res,
        requestId,
        toKeygateError(e),
        start,
        identity,
        x.up.name,
        { effect: 'deny', reasons: [reason] },
        c,
      );
    if (who === undefined || approvals === undefined) {
      refuse(new KeygateError('PERMISSION_DENIED', { detail: 'agent without a person' }), 'keygate:agent');
      return;
    }
    const caller = { userId: who.id, agentId: identity.principal.id, grantId: who.grantId };
    const asked = req.headers[APPROVAL_HEADER];
    const method = req.method ?? 'GET';
    readBounded(x.body ?? req, MAX_APPROVAL_BODY, 'A request that needs approval must have a body of at most 1 MiB.')
      .then(async (body) => {
        const digest = approvalDigest({
          method,
          path: x.target.path,
          query: x.target.query,
          bodySha256: sha256Hex(body),
        });
        if (typeof asked === 'string' && asked !== '') {
          let a: Awaited<ReturnType<Approvals['redeem']>>;
          try {
            a = await approvals.redeem(asked, caller, digest);
          } catch (e) {
            refuse(e, `approval_invalid:${asked.slice(0, 64)}`);
            return;
          }
          x.body = Readable.from(body.length === 0 ? [] : [body]);
          x.decision = { effect: 'allow', reasons: [...(x.decision?.reasons ?? []), `approval:${a.id}`] };
          this.withCredentials(x);
          return;
        }
        const a = await approvals.request({
          caller,
          upstream: x.up.name,
          method,
          path: x.target.path,
          query: x.target.query,
          action: c.action,
          resource: `${c.resource.type}::${c.resource.id}`,
          contentType: typeof req.headers['content-type'] === 'string' ? req.headers['content-type'] : null,
          body,
        });
        const err = new KeygateError('APPROVAL_REQUIRED', {
          detail: `held as ${a.id}`,
          fields: { approval_id: a.id, approval_url: approvals.url(a.id) },
        });
        refuse(err, `approval_required:${a.id}`);
      })
      .catch((e: unknown) => refuse(e, 'approval_error'));
  }

  /**
   * An upstream's JSON at a path, fetched as the person would see it (their upstream identity
   * with per-user federation): the approval page compares a requested configuration with it.
   * Null when it cannot be had.
   */
  async upstreamJson(upstreamName: string, path: string, userId: string): Promise<unknown | null> {
    const up = this.upstreams.find((u) => u.name === upstreamName);
    const user = await this.store.getUser(userId);
    if (up === undefined || user === null) return null;
    const principal: Principal = {
      type: 'user',
      id: user.id,
      email: user.email,
      groups: user.groups,
      roles: user.roles,
    };
    const auth = await up.credential.authorization(principal);
    const r = await undiciRequest(`${up.origin}${up.basePath}${path}`, {
      headers: auth.header === null ? {} : { authorization: auth.header },
      headersTimeout: 5_000,
      bodyTimeout: 5_000,
    });
    if (r.statusCode !== 200) {
      await r.body.dump();
      return null;
    }
    return r.body.json();
  }

  /**
   * RFC 9470: the caller must authenticate again, freshly and with user verification. A browser
   * asking for a page is sent to the step-up page, which returns here afterwards.
   */
  private stepUp(x: Exchange, c: Classification): void {
    const { req, res, requestId, start, identity } = x;
    const maxAge = this.authorizer.stepUpMaxAgeS;
    if ((req.method === 'GET' || req.method === 'HEAD') && (req.headers.accept ?? '').includes('text/html')) {
      const returnTo = encodeURIComponent(x.target.path + x.target.query);
      res.writeHead(302, { location: `/.keygate/step-up?return_to=${returnTo}`, 'x-request-id': requestId });
      res.end();
      this.metrics.requests.inc({ class: 'proxy', status: 302 });
      return;
    }
    // A browser submitting a change (a navigation, not a script's fetch): keep the request and
    // let the person see what they approve before it is replayed after a fresh tap.
    if (req.headers['sec-fetch-mode'] === 'navigate' && identity.auth.method === 'webauthn') {
      const source: AsyncIterable<unknown> = x.body ?? req;
      readBounded(source, MAX_BODY_FOR_CLASSIFICATION).then(
        (body) => {
          const p = this.pending.add({
            userId: identity.principal.id,
            method: req.method ?? 'POST',
            target: x.target.path + x.target.query,
            contentType: req.headers['content-type'],
            body,
          });
          if (p === undefined) {
            const busy = new KeygateError('TEMPORARILY_UNAVAILABLE', { detail: 'pending step-up store full' });
            this.fail(req, res, requestId, busy, start, identity);
            return;
          }
          res.writeHead(303, { location: `/.keygate/step-up?pending=${p.id}`, 'x-request-id': requestId });
          res.end();
          this.metrics.requests.inc({ class: 'proxy', status: 303 });
        },
        (e: unknown) => this.fail(req, res, requestId, toKeygateError(e), start, identity),
      );
      return;
    }
    const err = new KeygateError('STEP_UP_REQUIRED', {
      message: `To ${c.action === 'serving:manage' ? 'change a serving endpoint' : 'do this'} (${c.action}), tap your security key again: POST /.keygate/api/webauthn/step-up/options, then /verify, then retry.`,
      headers: {
        'www-authenticate': `Bearer error="insufficient_user_authentication", error_description="A fresh, user-verified authentication is required", max_age=${maxAge}`,
      },
      detail: `${c.action} ${isSensitive(c.action) ? 'sensitive' : ''} auth age beyond ${maxAge}s`,
    });
    this.fail(req, res, requestId, err, start, identity, x.up.name, x.decision, c);
  }

  private withCredentials(x: Exchange): void {
    const { req, res, requestId, start, identity, up } = x;
    let authz: UpstreamAuth | Promise<UpstreamAuth>;
    let assertion: string | Promise<string>;
    // A credential that cannot be had (per-user federation refused, the token endpoint down) is
    // audited against the upstream and the classified request; nothing reaches the upstream.
    const refused = (e: unknown) =>
      this.fail(req, res, requestId, toKeygateError(e), start, identity, up.name, undefined, x.classification);
    try {
      authz = up.credential.authorization(upstreamPrincipal(identity.principal));
      assertion = (this.signer as AssertionSigner).get(identity, up.audience);
    } catch (e) {
      refused(e);
      return;
    }
    if (authz instanceof Promise || assertion instanceof Promise) {
      Promise.all([authz, assertion]).then(([a, s]) => this.send(x, a, s), refused);
    } else {
      this.send(x, authz, assertion);
    }
  }

  private send(x: Exchange, auth: UpstreamAuth, assertion: string): void {
    const { req, res, requestId, target, up } = x;
    if (res.destroyed) return;
    x.upstreamIdentity = auth.identity;
    const headers = upstreamRequestHeaders(req.rawHeaders);
    if (auth.header !== null) headers.push('authorization', auth.header);
    headers.push(
      'x-keygate-assertion',
      assertion,
      'x-request-id',
      requestId,
      'x-forwarded-for',
      x.ip,
      'x-forwarded-proto',
      this.publicProto,
      'x-forwarded-host',
      this.publicHost,
    );
    forward(
      req,
      res,
      up,
      target.path + target.query,
      headers,
      this.publicOrigin,
      requestId,
      (r) => this.forwarded(x, r),
      x.body,
    );
  }

  private forwarded(x: Exchange, r: ForwardResult): void {
    const { req, res, requestId, start, up, identity } = x;
    if (r.status > 0) this.latencyOf(up.name).observe(r.upstreamMs / 1000);
    if (r.error !== undefined && r.status === 0) {
      this.fail(req, res, requestId, r.error, start, identity, up.name, x.decision);
      return;
    }
    this.proxiedCount(r.status).inc();
    this.auditRequest(req, requestId, x.ip, identity, r.status, x.classification, x.decision, {
      name: up.name,
      status: r.status,
      latencyMs: Math.round(r.upstreamMs * 1000) / 1000,
      bytes: r.bytesOut,
      // Set by send() before anything was forwarded.
      identity: x.upstreamIdentity as UpstreamIdentity,
    });
    if (r.error !== undefined) {
      this.log.warn({ req_id: requestId, upstream: up.name, detail: r.error.detail }, 'upstream response cut short');
    }
    if (this.config.log.requests) {
      this.accessLog.info(
        {
          req_id: requestId,
          method: req.method,
          path: (req.url ?? '').split('?', 1)[0],
          status: r.status,
          ms: Math.round((performance.now() - start) * 100) / 100,
          upstream: up.name,
          principal: identity.principal.id,
          action: x.classification?.action,
          reasons: x.decision?.reasons,
        },
        'proxied',
      );
    }
  }

  /**
   * Replay an approved pending request for `identity` (after its step-up), through the same
   * classification and authorization as any request; the answer streams to `res`.
   */
  replay(p: PendingRequest, identity: Identity, via: IncomingMessage, res: ServerResponse): void {
    const body = Readable.from([p.body]);
    const headers: Record<string, string> = { 'content-length': String(p.body.length) };
    if (p.contentType !== undefined) headers['content-type'] = p.contentType;
    const rawHeaders = Object.entries(headers).flat();
    const req = Object.assign(body, {
      method: p.method,
      url: p.target,
      headers,
      rawHeaders,
      complete: true,
      socket: via.socket,
    }) as unknown as IncomingMessage;
    const requestId = requestIdFrom(via.headers['x-request-id']);
    this.inflight++;
    this.metrics.inflight.inc();
    res.once('close', () => this.requestClosed());
    let target: NormalizedTarget;
    try {
      target = normalizeTarget(p.target);
    } catch (e) {
      this.fail(req, res, requestId, toKeygateError(e), performance.now(), identity);
      return;
    }
    if (this.databricks && RESERVED_AUTH_PATH.test(target.path)) {
      this.fail(req, res, requestId, new KeygateError('NOT_FOUND'), performance.now(), identity);
      return;
    }
    const up = this.routes.match(target.path);
    if (up === undefined) {
      this.fail(req, res, requestId, new KeygateError('NOT_FOUND'), performance.now(), identity);
      return;
    }
    this.afterIdentify(req, res, requestId, performance.now(), target, up, identity);
  }

  private unauthenticated(
    req: IncomingMessage,
    res: ServerResponse,
    requestId: string,
    target: NormalizedTarget,
    start: number,
  ): void {
    const accept = req.headers.accept ?? '';
    if ((req.method === 'GET' || req.method === 'HEAD') && accept.includes('text/html')) {
      // DESIGN §3: browsers go to the login page; return_to is always a same-origin relative path.
      const returnTo = encodeURIComponent(target.path + target.query);
      res.writeHead(302, { location: `/.keygate/login?return_to=${returnTo}`, 'x-request-id': requestId });
      res.end();
      this.metrics.requests.inc({ class: 'proxy', status: 302 });
      return;
    }
    this.fail(
      req,
      res,
      requestId,
      new KeygateError('UNAUTHENTICATED', {
        message: 'Authentication is required: present a Keygate access token or log in.',
        headers: { 'www-authenticate': 'Bearer realm="keygate"' },
      }),
      start,
    );
  }

  private fail(
    req: IncomingMessage,
    res: ServerResponse,
    requestId: string,
    err: KeygateError,
    start: number,
    identity?: Identity,
    upstream?: string,
    decision?: Decision,
    classification?: Classification,
  ): void {
    if (hasUnreadBody(req)) linger(req);
    sendError(res, err, requestId);
    this.metrics.requests.inc({ class: 'proxy', status: err.status });
    if (err.code !== 'TEMPORARILY_UNAVAILABLE' || this.audit.accepting) {
      this.auditRequest(
        req,
        requestId,
        this.clientIp(req),
        identity,
        err.status,
        classification,
        decision ?? refusalDecision(err),
        undefined,
        upstream,
      );
    }
    const fields = {
      req_id: requestId,
      method: req.method,
      path: (req.url ?? '').split('?', 1)[0],
      status: err.status,
      code: err.code,
      detail: err.detail,
      upstream,
      principal: identity?.principal.id,
      reasons: decision?.reasons,
      ms: Math.round((performance.now() - start) * 100) / 100,
    };
    if (err.status >= 500) this.log.error(fields, 'request failed');
    // Refusals are security events (ASVS 16.3.2, 16.3.3): always logged.
    else this.accessLog.info(fields, 'refused');
  }

  /** One audit record per proxied request: allowed and forwarded, refused, or failed. */
  private auditRequest(
    req: IncomingMessage,
    requestId: string,
    ip: string,
    identity: Identity | null | undefined,
    status: number,
    classification: Classification | undefined,
    decision: Decision | undefined,
    upstream?: { name: string; status: number; latencyMs: number; bytes: number; identity?: UpstreamIdentity },
    upstreamName?: string,
  ): void {
    if (!this.auditRequests) return;
    const q = (req.url ?? '').indexOf('?');
    const ua = req.headers['user-agent'];
    this.audit.record({
      kind: 'http.request',
      at: this.clock.now(),
      actor: actorOf(identity),
      request: {
        method: req.method ?? '',
        // The path only: query strings may carry secrets.
        path: q === -1 ? (req.url ?? '') : (req.url ?? '').slice(0, q),
        ...(classification === undefined
          ? {}
          : {
              action: classification.action,
              resource: `${classification.resource.type}::${classification.resource.id}`,
            }),
        ip,
        ...(ua === undefined ? {} : { userAgent: ua.slice(0, 256) }),
        requestId,
      },
      // The decision cache's own frozen object: the encoder serialises each one once.
      ...(decision === undefined ? {} : { decision }),
      ...(upstream === undefined
        ? upstreamName === undefined
          ? {}
          : { detail: { upstream: upstreamName } }
        : { upstream }),
      status,
    });
  }

  private requestClosed(): void {
    this.inflight--;
    this.metrics.inflight.dec();
    if (this.inflight === 0 && this.idleWaiters.length > 0) {
      for (const w of this.idleWaiters.splice(0)) w();
    }
  }

  /** Malformed HTTP never reaches a handler: answer in the contract's shape and close. */
  private onClientError(err: NodeJS.ErrnoException, socket: Duplex): void {
    if (!socket.writable || (socket as Duplex & { _httpMessage?: unknown })._httpMessage) {
      socket.destroy();
      return;
    }
    const tooLarge = err.code === 'HPE_HEADER_OVERFLOW';
    // headersTimeout / requestTimeout (Node's ERR_HTTP_REQUEST_TIMEOUT): a slow client.
    const timedOut = err.code === 'ERR_HTTP_REQUEST_TIMEOUT';
    const e = tooLarge
      ? new KeygateError('HEADERS_TOO_LARGE')
      : timedOut
        ? new KeygateError('REQUEST_TIMEOUT')
        : new KeygateError('BAD_REQUEST', { message: 'The request is not valid HTTP.' });
    const body = JSON.stringify(e.toWire());
    const reason = tooLarge ? 'Request Header Fields Too Large' : timedOut ? 'Request Timeout' : 'Bad Request';
    socket.end(
      `HTTP/1.1 ${e.status} ${reason}\r\n` +
        `content-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
    );
    this.metrics.requests.inc({ class: 'invalid', status: e.status });
    this.log.info({ code: err.code }, 'malformed request refused');
  }

  /** A request whose framing or target is refused before routing: 400 (or 431) JSON, and the connection closes. */
  private refuseFraming(
    res: ServerResponse,
    problem: { code: 'BAD_REQUEST' | 'HEADERS_TOO_LARGE'; message: string },
  ): void {
    const e = new KeygateError(problem.code, { message: problem.message });
    const body = JSON.stringify(e.toWire());
    res.shouldKeepAlive = false;
    res.writeHead(e.status, {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(body),
      connection: 'close',
    });
    res.end(body, () => res.socket?.destroySoon());
    this.metrics.requests.inc({ class: 'invalid', status: e.status });
    this.log.info({ detail: problem.message }, 'malformed request refused');
  }

  /** CONNECT (authority-form): Keygate is not a forward proxy. Answered on the raw socket, closed. */
  private refuseConnect(socket: Duplex): void {
    const e = new KeygateError('BAD_REQUEST', { message: 'CONNECT is not supported: Keygate is not a forward proxy.' });
    const body = JSON.stringify(e.toWire());
    socket.end(
      `HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
    );
    this.metrics.requests.inc({ class: 'invalid', status: 400 });
  }

  // ---- Keygate's own routes ---------------------------------------------------------------

  private installFastifyHandlers(): void {
    this.app.addHook('onRequest', async (_req, reply) => {
      if (this.draining) reply.header('connection', 'close');
    });
    this.app.addHook('onResponse', async (_req, reply) => {
      this.metrics.requests.inc({ class: 'keygate', status: reply.statusCode });
    });
    this.app.setNotFoundHandler((req, reply) => {
      const e = new KeygateError('NOT_FOUND');
      reply.code(404).header('cache-control', 'no-store').send(e.toWire(req.id));
    });
    this.app.setErrorHandler((error, req, reply) => {
      const fastifyStatus = (error as { statusCode?: number }).statusCode;
      let e: KeygateError;
      if (error instanceof KeygateError) e = error;
      else if (fastifyStatus === 413) e = new KeygateError('REQUEST_TOO_LARGE');
      else if (fastifyStatus !== undefined && fastifyStatus >= 400 && fastifyStatus < 500) {
        e = new KeygateError('BAD_REQUEST', { message: 'The request is malformed.', detail: (error as Error).message });
      } else e = toKeygateError(error);
      if (e.status >= 500) this.log.error({ req_id: req.id, detail: e.detail ?? (error as Error).message }, 'error');
      reply
        .code(e.status)
        .headers({ ...e.headers, 'cache-control': 'no-store' })
        .send(e.toWire(req.id));
    });
  }
}

/**
 * Whom the upstream should see: an agent acts for its person, so per-user federation exchanges
 * for the person (the workspace's own audit names them), never for the agent.
 */
function upstreamPrincipal(p: Principal): Principal {
  if (p.type !== 'agent' || p.onBehalfOf === undefined) return p;
  return {
    type: 'user',
    id: p.onBehalfOf.id,
    ...(p.onBehalfOf.email === undefined ? {} : { email: p.onBehalfOf.email }),
    groups: p.groups,
    roles: p.roles,
  };
}

/** Most header fields in a request (Node would silently drop those past 2,000). */
const MAX_HEADER_FIELDS = 256;

/**
 * What the parser lets through but a gateway must not (RFC 9112 §3.2, §3.2.2, §6.1; RFC 9113
 * §3.1): exactly one Host; an origin-form target (Keygate is not a forward proxy: absolute-,
 * authority- and asterisk-form are refused); a Transfer-Encoding that is exactly `chunked`; no
 * protocol upgrade (h2c or WebSocket: the gateway proxies HTTP/1.1 requests only); and the
 * header block within its limits however it is split (Node counts a long run of short fields
 * per chunk). Undefined when the request may proceed.
 */
export function framingProblem(
  req: IncomingMessage,
  maxHeaderBytes: number,
): { code: 'BAD_REQUEST' | 'HEADERS_TOO_LARGE'; message: string } | undefined {
  const raw = req.rawHeaders;
  if (raw.length / 2 > MAX_HEADER_FIELDS)
    return { code: 'HEADERS_TOO_LARGE', message: `A request may carry at most ${MAX_HEADER_FIELDS} header fields.` };
  let hosts = 0;
  let bytes = (req.url ?? '').length;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] as string;
    bytes += name.length + (raw[i + 1] as string).length + 4;
    if (name.length === 4 && name.toLowerCase() === 'host') hosts++;
  }
  if (bytes > maxHeaderBytes) return { code: 'HEADERS_TOO_LARGE', message: 'The request headers are too large.' };
  const bad = (message: string) => ({ code: 'BAD_REQUEST' as const, message });
  if (hosts !== 1 && !(hosts === 0 && req.httpVersion === '1.0'))
    return bad(hosts === 0 ? 'The request has no Host header.' : 'The request has more than one Host header.');
  if (!(req.url ?? '').startsWith('/')) return bad('The request target must be a path (origin-form).');
  const te = req.headers['transfer-encoding'];
  if (te !== undefined && te.trim().toLowerCase() !== 'chunked')
    return bad('Transfer-Encoding must be chunked, alone.');
  if (req.headers.upgrade !== undefined) return bad('Protocol upgrades (h2c, WebSocket) are not supported.');
  return undefined;
}
