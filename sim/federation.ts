// RFC 8693 token exchange against federation policies (databricks-api.md §1.6): verify the
// subject JWT with the issuer's keys, check the policy's claims, map the subject to an identity.
import { createRemoteJWKSet, decodeJwt, decodeProtectedHeader, errors, type JWTPayload, jwtVerify } from 'jose';
import { OAuthError } from './errors.js';
import type { SimFederationPolicy, SimIdentity } from './types.js';

/** Databricks accepts only these two algorithms for subject tokens [DOC-FEDX]. */
const ALGORITHMS = ['RS256', 'ES256'];

export interface Exchanged {
  identity: SimIdentity;
  subject: string;
  /** `exp` of the subject token (epoch seconds): the issued token must not outlive it. */
  expiresAt: number;
}

type KeySet = ReturnType<typeof createRemoteJWKSet>;

const grant = (description: string): OAuthError => new OAuthError(400, 'invalid_grant', description);

export class Federation {
  private readonly keySets = new Map<string, KeySet>();
  private readonly jwksUris = new Map<string, string>();

  constructor(
    private readonly policies: SimFederationPolicy[],
    private readonly users: SimIdentity[],
    private readonly servicePrincipals: Map<string, SimIdentity>,
    private readonly now: () => number,
  ) {}

  async exchange(subjectToken: string, clientId: string | null): Promise<Exchanged> {
    // Ensure the token is a compact JWS signed with an allowed algorithm before any network call.
    let alg: unknown;
    let iss: unknown;
    try {
      alg = decodeProtectedHeader(subjectToken).alg;
      iss = decodeJwt(subjectToken).iss;
    } catch {
      throw grant('subject_token is not a valid JWT.');
    }
    if (typeof alg !== 'string' || !ALGORITHMS.includes(alg)) {
      throw grant(`subject_token algorithm '${String(alg)}' is not allowed; use RS256 or ES256.`);
    }
    if (typeof iss !== 'string') throw grant("subject_token has no 'iss' claim.");

    // Ensure a policy trusts this issuer: SP policies need the SP's client_id, account policies must not have one.
    if (clientId !== null && !this.servicePrincipals.has(clientId)) {
      throw new OAuthError(401, 'invalid_client', 'Unknown client_id.');
    }
    const candidates = this.policies.filter(
      (p) => p.issuer === iss && (clientId === null ? p.servicePrincipalClientId === undefined : p.servicePrincipalClientId === clientId),
    );
    if (candidates.length === 0) throw grant(`No federation policy trusts issuer '${iss}'${clientId ? ' for this client' : ''}.`);

    let failure: OAuthError = grant('subject_token was rejected.');
    for (const policy of candidates) {
      try {
        return await this.verifyWith(policy, subjectToken);
      } catch (err) {
        failure = err instanceof OAuthError ? err : grant(describe(err));
      }
    }
    throw failure;
  }

  private async verifyWith(policy: SimFederationPolicy, token: string): Promise<Exchanged> {
    const keys = await this.keySet(policy);
    // Ensure signature, iss, aud ∈ audiences, exp and nbf (jose checks all of them here).
    const { payload } = await jwtVerify(token, keys, {
      algorithms: ALGORITHMS,
      issuer: policy.issuer,
      audience: policy.audiences,
      requiredClaims: ['exp'],
      currentDate: new Date(this.now()),
    });
    const claim = policy.subjectClaim ?? 'sub';
    const subject = claimString(payload, claim);
    if (!subject) throw grant(`subject_token has no '${claim}' claim.`);
    if (policy.subject !== undefined && subject !== policy.subject) throw grant('subject_token subject is not allowed by the federation policy.');
    return { identity: this.identityFor(policy, subject), subject, expiresAt: payload.exp ?? 0 };
  }

  /** SP policies map to their service principal; account policies map the subject to a known user (no auto-provisioning). */
  private identityFor(policy: SimFederationPolicy, subject: string): SimIdentity {
    if (policy.servicePrincipalClientId !== undefined) {
      const sp = this.servicePrincipals.get(policy.servicePrincipalClientId);
      if (!sp) throw grant('The federation policy names an unknown service principal.');
      return sp;
    }
    const user = this.users.find((u) => u.userName.toLowerCase() === subject.toLowerCase());
    if (!user) throw grant(`No user '${subject}' exists in this workspace.`);
    return user;
  }

  private async keySet(policy: SimFederationPolicy): Promise<KeySet> {
    const uri = policy.jwksUri ?? (await this.discoverJwksUri(policy.issuer));
    let keys = this.keySets.get(uri);
    if (!keys) {
      keys = createRemoteJWKSet(new URL(uri), { timeoutDuration: 5000 });
      this.keySets.set(uri, keys);
    }
    return keys;
  }

  private async discoverJwksUri(issuer: string): Promise<string> {
    const cached = this.jwksUris.get(issuer);
    if (cached) return cached;
    let uri: unknown;
    try {
      const res = await fetch(`${issuer.replace(/\/+$/, '')}/.well-known/openid-configuration`, { signal: AbortSignal.timeout(5000) });
      if (res.ok) uri = ((await res.json()) as { jwks_uri?: unknown }).jwks_uri;
    } catch {
      // Reported below; failures are not cached so a restarted issuer recovers.
    }
    if (typeof uri !== 'string') throw grant(`Could not discover signing keys for issuer '${issuer}'.`);
    this.jwksUris.set(issuer, uri);
    return uri;
  }
}

function claimString(payload: JWTPayload, claim: string): string | undefined {
  const v = payload[claim];
  return typeof v === 'string' && v !== '' ? v : undefined;
}

function describe(err: unknown): string {
  if (err instanceof errors.JWTExpired) return 'subject_token has expired.';
  if (err instanceof errors.JWTClaimValidationFailed) return `subject_token claim '${err.claim}' is invalid (${err.reason}).`;
  if (err instanceof errors.JWKSNoMatchingKey) return "No key in the issuer's JWKS matches the subject_token.";
  if (err instanceof errors.JWSSignatureVerificationFailed) return 'subject_token signature verification failed.';
  if (err instanceof errors.JOSEAlgNotAllowed) return 'subject_token algorithm is not allowed.';
  if (err instanceof errors.JWKSTimeout || err instanceof errors.JWKSInvalid) return "Could not load the issuer's signing keys.";
  return 'subject_token could not be verified.';
}
