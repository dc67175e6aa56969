/**
 * The authentication service for people: WebAuthn ceremonies, enrollment links, sessions and
 * their auth events, assembled once for the gateway.
 */
import type { IncomingMessage } from 'node:http';
import type { FastifyInstance } from 'fastify';
import type { Config } from '../config/schema.js';
import { randomId } from '../crypto/random.js';
import type { Clock } from '../lib/clock.js';
import type { Store } from '../store/types.js';
import { AuthEvents } from './auth-events.js';
import { Sealer } from '../crypto/seal.js';
import { Enrollment } from './enrollment.js';
import { IdentityProviders } from './idp/providers.js';
import { IdpCookies } from './idp/routes.js';
import type { Identifier } from './identity.js';
import { registerAuthRoutes } from './routes.js';
import { sessionIdentifier } from './session-identifier.js';
import { Sessions } from './sessions.js';
import { Ceremonies } from './webauthn/ceremony.js';
import { type RelyingParty, relyingParty } from './webauthn/relying-party.js';
import { type AuthenticatorMetadata, loadMetadataBlob } from './webauthn/metadata.js';
import { WebAuthnService } from './webauthn/service.js';

export interface AuthenticationDeps {
  config: Config;
  store: Store;
  clock: Clock;
  /** Known once the gateway listens. */
  publicOrigin: () => string;
  clientIp: (req: IncomingMessage) => string;
  log: { warn(o: object, msg: string): void; info(o: object, msg: string): void };
  /** For identity providers' client secrets and the sealing key. */
  env?: NodeJS.ProcessEnv;
}

export interface Authentication {
  sessions: Sessions;
  enrollment: Enrollment;
  events: AuthEvents;
  webauthn: WebAuthnService;
  identifier: Identifier;
  rp: () => RelyingParty;
  /** The FIDO metadata BLOB, when configured: model names and icons. */
  metadata: AuthenticatorMetadata | undefined;
  registerRoutes(app: FastifyInstance): void;
}

export function isSecureDeployment(config: Config): boolean {
  return config.publicUrl !== undefined ? config.publicUrl.startsWith('https:') : config.tls !== undefined;
}

export async function createAuthentication(d: AuthenticationDeps): Promise<Authentication> {
  const { config, store, clock } = d;
  let rpCache: RelyingParty | undefined;
  const rp = () => {
    rpCache ??= relyingParty(config, d.publicOrigin());
    return rpCache;
  };
  const secure = isSecureDeployment(config);
  const events = new AuthEvents(store, clock);
  const sessions = new Sessions(
    store,
    clock,
    {
      idleMs: config.sessions.idleTimeout,
      absoluteMs: config.sessions.absoluteLifetime,
      freshMs: config.sessions.freshAuthWindow,
      secure,
    },
    (e) => d.log.warn({ detail: (e as Error).message }, 'session touch failed'),
  );
  const enrollment = new Enrollment(store, clock, config.enrollment.tokenLifetime);
  const w = config.webauthn;
  const metadata = w.mdsBlobFile === undefined ? undefined : await loadMetadataBlob(w.mdsBlobFile, w.mdsRootCertFile);
  if (metadata) d.log.info({ entries: metadata.entries }, 'FIDO metadata BLOB loaded');
  const webauthn = new WebAuthnService({
    store,
    clock,
    rp,
    ceremonies: new Ceremonies(store, clock, config.webauthn.challengeTimeout),
    events,
    sessions,
    metadata,
    decoyKey: await store.initMeta('decoy_key', randomId(32)),
    log: (o, msg) => d.log.info(o, msg),
  });
  const origins = () => rp().origins;
  const idp = identityProviders(d, sessions, events);
  return {
    sessions,
    enrollment,
    events,
    webauthn,
    rp,
    metadata,
    identifier: sessionIdentifier(sessions, origins),
    registerRoutes: (app) =>
      registerAuthRoutes(app, {
        store,
        clock,
        webauthn,
        enrollment,
        sessions,
        events,
        clientIp: d.clientIp,
        origins,
        publicOrigin: d.publicOrigin,
        secure,
        rateLimits: config.rateLimits,
        ...(idp === undefined ? {} : { idp }),
      }),
  };
}

/**
 * Corporate identity providers, when configured: their logins, and the re-confirmation of their
 * groups on sessions older than `groupsTtl` (with the sealed refresh token, when a key is set).
 */
function identityProviders(
  d: AuthenticationDeps,
  sessions: Sessions,
  events: AuthEvents,
): { providers: IdentityProviders; cookies: IdpCookies } | undefined {
  const { config, store, clock } = d;
  if (config.identityProviders.length === 0) return undefined;
  const env = d.env ?? process.env;
  const key = config.secretKeyEnv === undefined ? undefined : env[config.secretKeyEnv];
  const sealer = key === undefined || key.trim() === '' ? null : Sealer.fromBase64(key);
  if (sealer === null) {
    d.log.warn(
      {},
      "no secretKeyEnv: identity providers' refresh tokens are not kept, so their groups lapse after groupsTtl until the next login",
    );
  }
  const providers = new IdentityProviders({ config, store, clock, publicOrigin: d.publicOrigin, env, sealer });
  sessions.idpGroupsTtl = (name) => providers.find(name)?.groupsTtl;
  sessions.refreshIdp = async (session) => {
    const p = providers.find(session.idp.provider);
    if (p === undefined || session.idp.refresh === null) return null;
    let r: Awaited<ReturnType<IdentityProviders['refresh']>>;
    try {
      r = await providers.refresh(p, session.idp.refresh);
    } catch (e) {
      // The provider no longer vouches for the person: recorded, and the session ends.
      await events.record(
        'auth.idp_login',
        { ip: session.ip, userAgent: session.userAgent },
        { outcome: 'failure', reason: 'idp_refused', userId: session.userId, via: `idp:${p.name}` },
      );
      throw e;
    }
    return r === null ? null : { ...session.idp, groups: r.groups, groupsAt: clock.now(), refresh: r.sealedRefresh };
  };
  return { providers, cookies: new IdpCookies({ store, clock, secure: isSecureDeployment(config) }) };
}
