import type { CredentialConfig } from '../../config/schema.js';
import type { ActiveKey } from '../../crypto/keys.js';
import type { Clock } from '../../lib/clock.js';
import { DatabricksFederationCredential, type DatabricksFederationOptions } from './databricks-federation.js';
import { DatabricksM2MCredential } from './databricks-m2m.js';
import { SecretSource } from './secret-source.js';
import { NoCredential, StaticCredential } from './static.js';
import type { CredentialEvents, CredentialProvider } from './types.js';

export type { CredentialProvider, UpstreamAuth, UpstreamIdentity } from './types.js';
export { DatabricksFederationCredential } from './databricks-federation.js';

export interface CredentialDeps {
  env: NodeJS.ProcessEnv;
  clock?: Clock;
  events?: CredentialEvents;
  /** Poll interval for secret files (tests use a short one). */
  filePollMs?: number;
  onSecretReload?: (ok: boolean, detail?: string) => void;
  /** What `databricks-federation` signs with: Keygate's issuer URL and its current token signing key. */
  federation?: { issuer: string; signingKey: () => ActiveKey };
}

type M2MConfig = Pick<
  Extract<CredentialConfig, { type: 'databricks-m2m' }>,
  'clientId' | 'clientSecretEnv' | 'clientSecretFile' | 'tokenUrl' | 'scope'
>;

/** The workspace token endpoint: configured, or `<upstream url>/oidc/v1/token`. */
export function workspaceTokenUrl(tokenUrl: string | undefined, upstreamUrl: string): string {
  return tokenUrl ?? new URL('oidc/v1/token', upstreamUrl.endsWith('/') ? upstreamUrl : `${upstreamUrl}/`).href;
}

/** Build the provider a config entry names. Throws a plain Error naming what is missing. */
export function createCredentialProvider(
  cfg: CredentialConfig,
  upstreamUrl: string,
  what: string,
  deps: CredentialDeps,
): CredentialProvider {
  const watch: { pollMs?: number; onReload?: (ok: boolean, detail?: string) => void } = {};
  if (deps.filePollMs !== undefined) watch.pollMs = deps.filePollMs;
  if (deps.onSecretReload) watch.onReload = deps.onSecretReload;
  const m2m = (c: M2MConfig, at: string): DatabricksM2MCredential => {
    const secret = new SecretSource({ env: c.clientSecretEnv, file: c.clientSecretFile, what: at }, deps.env, watch);
    const opts: ConstructorParameters<typeof DatabricksM2MCredential>[0] = {
      tokenUrl: workspaceTokenUrl(c.tokenUrl, upstreamUrl),
      clientId: c.clientId,
      secret,
      scope: c.scope,
    };
    if (deps.clock) opts.clock = deps.clock;
    if (deps.events) opts.events = deps.events;
    return new DatabricksM2MCredential(opts);
  };
  switch (cfg.type) {
    case 'none':
      return new NoCredential();
    case 'static':
      return new StaticCredential(new SecretSource({ env: cfg.tokenEnv, file: cfg.tokenFile, what }, deps.env, watch));
    case 'databricks-m2m':
      return m2m(cfg, what);
    case 'databricks-federation': {
      if (deps.federation === undefined) throw new Error(`${what}: databricks-federation needs Keygate's signing keys`);
      const opts: DatabricksFederationOptions = {
        tokenUrl: workspaceTokenUrl(cfg.tokenUrl, upstreamUrl),
        issuer: deps.federation.issuer,
        signingKey: deps.federation.signingKey,
        audience: federationAudience(cfg.audience, upstreamUrl),
        subjectClaim: cfg.subjectClaim,
        scope: cfg.scope,
        jwtLifetimeMs: cfg.jwtLifetime,
        servicePrincipals: new Map(cfg.servicePrincipals.map((s) => [s.keygateId, s.clientId])),
        cacheSize: cfg.cacheSize,
      };
      if (cfg.probeUser !== undefined) opts.probeUser = cfg.probeUser;
      const fb = cfg.dangerouslyFallBackToServicePrincipal;
      if (fb !== undefined) {
        opts.fallback = m2m(
          { ...fb, tokenUrl: fb.tokenUrl ?? cfg.tokenUrl },
          `${what}.dangerouslyFallBackToServicePrincipal`,
        );
      }
      if (deps.clock) opts.clock = deps.clock;
      if (deps.events) opts.events = deps.events;
      return new DatabricksFederationCredential(opts);
    }
  }
}

/** The `aud` of the subject tokens: configured, or the workspace token endpoint (what the Databricks SDKs use). */
export function federationAudience(audience: string | undefined, upstreamUrl: string): string {
  return audience ?? workspaceTokenUrl(undefined, upstreamUrl);
}
