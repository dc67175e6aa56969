/**
 * What a workspace must be told to trust Keygate for `databricks-federation`: the federation
 * policies (databricks-api.md §1.6, `FederationPolicy.oidc_policy`) that match what Keygate signs.
 * `keygate config check` prints them.
 */
import type { Config } from '../../config/schema.js';
import { federationAudience } from './index.js';

/** `oidc_policy` of a FederationPolicy, as the account API takes it. */
export interface OidcPolicy {
  issuer: string;
  audiences: string[];
  subject_claim: string;
  /** Service principal policies only: the subject the policy accepts. */
  subject?: string;
}

export interface WorkspacePolicies {
  /** Upstream name. */
  upstream: string;
  /** The account-wide policy: the subject claim holds a person's email (their workspace user name). */
  account: OidcPolicy;
  /** One policy per mapped service principal, to create on that workspace service principal. */
  servicePrincipals: { keygateId: string; clientId: string; policy: OidcPolicy }[];
}

/** The policies for every upstream that uses `databricks-federation` (none when publicUrl is unset). */
export function workspacePolicies(config: Config): WorkspacePolicies[] {
  if (config.publicUrl === undefined) return [];
  // Keygate's OIDC issuer is the origin of its public URL.
  const issuer = new URL(config.publicUrl).origin;
  const out: WorkspacePolicies[] = [];
  for (const [name, u] of Object.entries(config.upstreams)) {
    const c = u.credential;
    if (c.type !== 'databricks-federation') continue;
    const base = { issuer, audiences: [federationAudience(c.audience, u.url)], subject_claim: c.subjectClaim };
    out.push({
      upstream: name,
      account: base,
      servicePrincipals: c.servicePrincipals.map((sp) => ({
        keygateId: sp.keygateId,
        clientId: sp.clientId,
        policy: { ...base, subject: sp.keygateId },
      })),
    });
  }
  return out;
}
