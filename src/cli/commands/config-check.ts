import { ConfigError, formatIssue, loadConfig } from '../../config/load.js';
import { runtimeIssues } from '../../config/runtime-check.js';
import type { Config } from '../../config/schema.js';
import { SigningKeys } from '../../crypto/keys.js';
import { isKeygateError } from '../../errors/index.js';
import { systemClock } from '../../lib/clock.js';
import { ROUTES } from '../../oauth/provider.js';
import { createCredentialProvider, type DatabricksFederationCredential } from '../../proxy/credentials/index.js';
import { type OidcPolicy, workspacePolicies } from '../../proxy/credentials/federation-policy.js';
import { openStore } from '../../store/open.js';
import { EXIT, type Output } from '../output.js';

export interface ConfigCheckOptions {
  /** Exchange one token per federated upstream: true for each upstream's probeUser, or this email. */
  probe?: boolean | string;
}

/**
 * `keygate config check [file] [--probe [email]]`: print the problems, or "ok" — then, for each
 * upstream with per-user federation, exactly what to enter in the workspace's federation
 * policies, and with --probe the outcome of one real exchange.
 */
export async function configCheck(
  file: string | undefined,
  out: Output,
  env: NodeJS.ProcessEnv = process.env,
  opts: ConfigCheckOptions = {},
): Promise<number> {
  let config: Config;
  let source: string;
  try {
    ({ config, source } = loadConfig({ file, env }));
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    const src = e.message.slice(0, e.message.indexOf(':'));
    for (const i of e.issues) out.err(`${src}: ${formatIssue(i)}`);
    return EXIT.FAILED;
  }
  const issues = runtimeIssues(config, env);
  if (issues.length > 0) {
    for (const i of issues) out.err(`${source}: ${formatIssue(i)}`);
    return EXIT.FAILED;
  }
  out.out(`${source}: ok`);
  printPolicies(config, out);
  if (opts.probe === undefined || opts.probe === false) return EXIT.OK;
  return probe(config, env, out, typeof opts.probe === 'string' ? opts.probe : undefined);
}

function printPolicies(config: Config, out: Output): void {
  const publicUrl = config.publicUrl as string;
  for (const p of workspacePolicies(config)) {
    out.out('');
    out.out(
      `upstreams.${p.upstream}: databricks-federation. Enter in the Databricks account (Settings > Security > Federation policies):`,
    );
    out.out(
      '  account-wide policy (people; the subject claim holds their email, which must be their workspace user name)',
    );
    out.out('  POST /api/2.0/accounts/<account id>/federationPolicies');
    printPolicy(p.account, out);
    for (const sp of p.servicePrincipals) {
      out.out(`  service principal ${sp.clientId} (Keygate service principal ${sp.keygateId})`);
      out.out(`  POST /api/2.0/accounts/<account id>/servicePrincipals/<id of ${sp.clientId}>/federationPolicies`);
      printPolicy(sp.policy, out);
    }
    const origin = new URL(publicUrl).origin;
    out.out(
      `  keys: leave jwks_uri and jwks_json empty; the workspace finds them through ${origin}/.well-known/openid-configuration (${origin}${ROUTES.jwks}), which must be reachable from it`,
    );
  }
}

function printPolicy(p: OidcPolicy, out: Output): void {
  out.out(`    issuer         ${p.issuer}`);
  out.out(`    audiences      ${p.audiences.join(', ')}`);
  out.out(`    subject claim  ${p.subject_claim}`);
  if (p.subject !== undefined) out.out(`    subject        ${p.subject}`);
  out.out(`    ${JSON.stringify({ oidc_policy: p })}`);
}

/**
 * One real exchange per federated upstream, signed with the token key Keygate publishes now:
 * the workspace fetches that key from the running gateway's public URL, so this proves the
 * policy, the keys' reachability and the user mapping together. The token obtained is discarded.
 */
async function probe(config: Config, env: NodeJS.ProcessEnv, out: Output, email: string | undefined): Promise<number> {
  const targets = Object.entries(config.upstreams).filter(([, u]) => u.credential.type === 'databricks-federation');
  if (targets.length === 0) {
    out.err('keygate: --probe: no upstream uses databricks-federation');
    return EXIT.FAILED;
  }
  const store = openStore(config, env);
  let code: number = EXIT.OK;
  try {
    await store.migrate();
    if ((await store.listSigningKeys('token')).length === 0) {
      out.err(
        'keygate: --probe: Keygate has no token signing key yet; start `keygate serve` first (the workspace fetches its keys from it)',
      );
      return EXIT.FAILED;
    }
    const keys = await SigningKeys.load(store, 'token', systemClock);
    const issuer = new URL(config.publicUrl as string).origin;
    for (const [name, u] of targets) {
      const c = u.credential;
      const user = email ?? (c.type === 'databricks-federation' ? c.probeUser : undefined);
      if (user === undefined) {
        out.err(`upstreams.${name}: --probe needs an email: set probeUser, or run --probe <email>`);
        code = EXIT.FAILED;
        continue;
      }
      const provider = createCredentialProvider(c, u.url, `upstreams.${name}.credential`, {
        env,
        federation: { issuer, signingKey: () => keys.current() },
      }) as DatabricksFederationCredential;
      try {
        await provider.probe(user);
        out.out(`upstreams.${name}: probe ok: the workspace exchanged a token for ${user} (key ${keys.current().kid})`);
      } catch (e) {
        const why = isKeygateError(e) ? `${e.code}: ${e.detail ?? e.publicMessage}` : (e as Error).message;
        out.err(`upstreams.${name}: probe failed: ${why}`);
        code = EXIT.FAILED;
      } finally {
        provider.close();
      }
    }
  } finally {
    await store.close();
  }
  return code;
}
