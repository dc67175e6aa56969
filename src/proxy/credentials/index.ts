import type { CredentialConfig } from '../../config/schema.js';
import type { Clock } from '../../lib/clock.js';
import { DatabricksM2MCredential } from './databricks-m2m.js';
import { SecretSource } from './secret-source.js';
import { NoCredential, StaticCredential } from './static.js';
import type { CredentialEvents, CredentialProvider } from './types.js';

export type { CredentialProvider } from './types.js';

export interface CredentialDeps {
  env: NodeJS.ProcessEnv;
  clock?: Clock;
  events?: CredentialEvents;
  /** Poll interval for secret files (tests use a short one). */
  filePollMs?: number;
  onSecretReload?: (ok: boolean, detail?: string) => void;
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
  switch (cfg.type) {
    case 'none':
      return new NoCredential();
    case 'static':
      return new StaticCredential(new SecretSource({ env: cfg.tokenEnv, file: cfg.tokenFile, what }, deps.env, watch));
    case 'databricks-m2m': {
      const secret = new SecretSource({ env: cfg.clientSecretEnv, file: cfg.clientSecretFile, what }, deps.env, watch);
      const opts: ConstructorParameters<typeof DatabricksM2MCredential>[0] = {
        tokenUrl: cfg.tokenUrl ?? new URL('oidc/v1/token', upstreamUrl.endsWith('/') ? upstreamUrl : `${upstreamUrl}/`).href,
        clientId: cfg.clientId,
        secret,
        scope: cfg.scope,
      };
      if (deps.clock) opts.clock = deps.clock;
      if (deps.events) opts.events = deps.events;
      return new DatabricksM2MCredential(opts);
    }
  }
}
