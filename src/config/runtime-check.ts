import { accessSync, constants } from 'node:fs';
import type { ConfigIssue } from './load.js';
import type { Config } from './schema.js';

/**
 * Checks that need the machine, not just the file: the environment variables and files the
 * config points at exist and are readable. `keygate config check` and `serve` both run it.
 */
export function runtimeIssues(config: Config, env: NodeJS.ProcessEnv): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const needEnv = (path: string, name: string) => {
    if (env[name] === undefined || env[name]?.trim() === '') {
      issues.push({ path, message: `environment variable ${name} is not set` });
    }
  };
  const needFile = (path: string, file: string) => {
    try {
      accessSync(file, constants.R_OK);
    } catch {
      issues.push({ path, message: `cannot read ${file}` });
    }
  };
  if (config.tls) {
    needFile('tls.certFile', config.tls.certFile);
    needFile('tls.keyFile', config.tls.keyFile);
  }
  if (config.webauthn.mdsBlobFile !== undefined) needFile('webauthn.mdsBlobFile', config.webauthn.mdsBlobFile);
  if (config.webauthn.mdsRootCertFile !== undefined)
    needFile('webauthn.mdsRootCertFile', config.webauthn.mdsRootCertFile);
  for (const [name, u] of Object.entries(config.upstreams)) {
    const c = u.credential;
    const base = `upstreams.${name}.credential`;
    if (c.type === 'static') {
      if (c.tokenEnv !== undefined) needEnv(`${base}.tokenEnv`, c.tokenEnv);
      if (c.tokenFile !== undefined) needFile(`${base}.tokenFile`, c.tokenFile);
    } else if (c.type === 'databricks-m2m') {
      if (c.clientSecretEnv !== undefined) needEnv(`${base}.clientSecretEnv`, c.clientSecretEnv);
      if (c.clientSecretFile !== undefined) needFile(`${base}.clientSecretFile`, c.clientSecretFile);
    } else if (c.type === 'databricks-federation' && c.dangerouslyFallBackToServicePrincipal !== undefined) {
      const f = c.dangerouslyFallBackToServicePrincipal;
      const fb = `${base}.dangerouslyFallBackToServicePrincipal`;
      if (f.clientSecretEnv !== undefined) needEnv(`${fb}.clientSecretEnv`, f.clientSecretEnv);
      if (f.clientSecretFile !== undefined) needFile(`${fb}.clientSecretFile`, f.clientSecretFile);
    }
  }
  if (config.store.urlEnv !== undefined) needEnv('store.urlEnv', config.store.urlEnv);
  if (config.agents.webhook !== undefined) needEnv('agents.webhook.secretEnv', config.agents.webhook.secretEnv);
  if (config.secretKeyEnv !== undefined) {
    needEnv('secretKeyEnv', config.secretKeyEnv);
    const v = env[config.secretKeyEnv];
    if (v !== undefined && v.trim() !== '' && Buffer.from(v.trim(), 'base64').length !== 32) {
      issues.push({ path: 'secretKeyEnv', message: `${config.secretKeyEnv} must hold 32 bytes in base64` });
    }
  }
  config.identityProviders.forEach((p, i) => {
    if (p.clientSecretEnv !== undefined) needEnv(`identityProviders[${i}].clientSecretEnv`, p.clientSecretEnv);
    if (p.privateKeyFile !== undefined) needFile(`identityProviders[${i}].privateKeyFile`, p.privateKeyFile);
  });
  return issues;
}
