// RFC 8693 token exchange against federation policies (databricks-api.md §1.6): verify the
// subject JWT with the issuer's keys, check the policy's claims, map the subject to an identity.
import {
  createLocalJWKSet,
  decodeJwt,
  decodeProtectedHeader,
  errors,
  type FlattenedJWSInput,
  type JSONWebKeySet,
  type JWTHeaderParameters,
  type JWTPayload,
  jwtVerify,
} from 'jose';
import { OAuthError } from './errors.js';
import type { SimFederationPolicy, SimIdentity } from './types.js';

/** Databricks accepts only these two algorithms for subject tokens [DOC-FEDX]. */
const ALGORITHMS = ['RS256', 'ES256'];
/** A fetched key set is used this long before it is fetched again (jose's default). */
const JWKS_MAX_AGE_MS = 10 * 60_000;

export interface Exchanged {
  identity: SimIdentity;
  subject: string;
  /** `exp` of the subject token (epoch seconds): the issued token must not outlive it. */
  expiresAt: number;
  /** `kid` of the subject token's key, if it named one. */
  keyId?: string;
}

const grant = (description: string): OAuthError => new OAuthError(400, 'invalid_grant', description);

/**
 * Policies as the facts file describes them, checked before the simulator listens: `issuer` is
 * required; `audiences` default to the account id; `subject` is required for a service-principal
 * policy and forbidden for an account-wide one; at most one of `jwksUri` and `jwksJson`.
 */
export function validatePolicies(policies: SimFederationPolicy[], accountId: string): SimFederationPolicy[] {
  return policies.map((p, i) => {
    const where = `SimOptions.federationPolicies[${i}]`;
    if (typeof p.issuer !== 'string' || p.issuer === '') throw new TypeError(`${where}.issuer is required`);
    if (p.servicePrincipalClientId !== undefined && (p.subject === undefined || p.subject === '')) {
      throw new TypeError(`${where}.subject is required for a service principal policy`);
    }
    if (p.servicePrincipalClientId === undefined && p.subject !== undefined) {
      throw new TypeError(`${where}.subject is not allowed in an account-wide policy`);
    }
    if (p.jwksUri !== undefined && p.jwksJson !== undefined) throw new TypeError(`${where}: set jwksUri or jwksJson, not both`);
    if (p.audiences !== undefined && p.audiences.length === 0) throw new TypeError(`${where}.audiences must not be empty`);
    return { ...p, audiences: p.audiences ?? [accountId] };
  });
}

/**
 * One issuer's keys, fetched from its JWKS URI and cached on the simulator's clock: fetched again
 * after JWKS_MAX_AGE_MS, or when a token names a `kid` the cached set lacks, at most once per
 * cooldown (so that a stream of tokens with made-up `kid`s cannot make it fetch without end).
 */
class IssuerKeys {
  private keys: ReturnType<typeof createLocalJWKSet> | undefined;
  private fetchedAt = Number.NEGATIVE_INFINITY;

  constructor(
    private readonly uri: () => Promise<string>,
    private readonly now: () => number,
    private readonly cooldownMs: number,
  ) {}

  /** A jose key resolver. */
  readonly resolve = async (header: JWTHeaderParameters, token: FlattenedJWSInput) => {
    if (this.keys === undefined || this.now() - this.fetchedAt >= JWKS_MAX_AGE_MS) await this.reload();
    try {
      return await (this.keys as ReturnType<typeof createLocalJWKSet>)(header, token);
    } catch (err) {
      if (!(err instanceof errors.JWKSNoMatchingKey) || this.now() - this.fetchedAt < this.cooldownMs) throw err;
      // A key we have not seen: the issuer may have rotated. Fetch once more.
      await this.reload();
      return (this.keys as ReturnType<typeof createLocalJWKSet>)(header, token);
    }
  };

  private async reload(): Promise<void> {
    const uri = await this.uri();
    let jwks: unknown;
    try {
      const res = await fetch(uri, { signal: AbortSignal.timeout(5000) });
      if (res.ok) jwks = await res.json();
    } catch {
      // Reported below; a failed fetch is not cached, so a restarted issuer recovers.
    }
    if (typeof jwks !== 'object' || jwks === null || !Array.isArray((jwks as JSONWebKeySet).keys)) {
      throw grant("Could not load the issuer's signing keys.");
    }
    this.keys = createLocalJWKSet(jwks as JSONWebKeySet);
    this.fetchedAt = this.now();
  }
}

export class Federation {
  /** Key sets by JWKS URI (or by inline JWKS), shared by the policies that name the same keys. */
  private readonly keySets = new Map<string, IssuerKeys | ReturnType<typeof createLocalJWKSet>>();
  private readonly jwksUris = new Map<string, string>();

  constructor(
    private readonly policies: SimFederationPolicy[],
    private readonly users: SimIdentity[],
    private readonly servicePrincipals: Map<string, SimIdentity>,
    private readonly now: () => number,
    private readonly jwksCooldownMs: number,
  ) {}

  async exchange(subjectToken: string, clientId: string | null): Promise<Exchanged> {
    // Ensure the token is a compact JWS signed with an allowed algorithm before any network call.
    let alg: unknown;
    let kid: unknown;
    let iss: unknown;
    try {
      ({ alg, kid } = decodeProtectedHeader(subjectToken));
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
        const out = await this.verifyWith(policy, subjectToken);
        return typeof kid === 'string' ? { ...out, keyId: kid } : out;
      } catch (err) {
        failure = err instanceof OAuthError ? err : grant(describe(err));
      }
    }
    if (typeof kid === 'string') failure.keyId = kid;
    throw failure;
  }

  private async verifyWith(policy: SimFederationPolicy, token: string): Promise<Exchanged> {
    // Ensure signature, iss, aud ∈ audiences, exp and nbf (jose checks all of them here).
    const options = {
      algorithms: ALGORITHMS,
      issuer: policy.issuer,
      audience: policy.audiences as string[],
      requiredClaims: ['exp'],
      currentDate: new Date(this.now()),
    };
    const keys = this.keySet(policy);
    const { payload } =
      keys instanceof IssuerKeys ? await jwtVerify(token, keys.resolve, options) : await jwtVerify(token, keys, options);
    const claim = policy.subjectClaim ?? 'sub';
    const subject = claimString(payload, claim);
    if (!subject) throw grant(`subject_token has no '${claim}' claim.`);
    try {
      if (policy.subject !== undefined && subject !== policy.subject) throw grant('subject_token subject is not allowed by the federation policy.');
      return { identity: this.identityFor(policy, subject), subject, expiresAt: payload.exp ?? 0 };
    } catch (err) {
      // The token was genuine: record whom it named.
      if (err instanceof OAuthError) err.subject = subject;
      throw err;
    }
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

  /** The policy's keys: `jwksJson`, else `jwksUri`, else discovered from the issuer's well-known URL. */
  private keySet(policy: SimFederationPolicy): IssuerKeys | ReturnType<typeof createLocalJWKSet> {
    const id = policy.jwksJson !== undefined ? JSON.stringify(policy.jwksJson) : `uri:${policy.jwksUri ?? `issuer:${policy.issuer}`}`;
    let keys = this.keySets.get(id);
    if (keys === undefined) {
      keys =
        policy.jwksJson !== undefined
          ? createLocalJWKSet(policy.jwksJson)
          : new IssuerKeys(
              async () => policy.jwksUri ?? (await this.discoverJwksUri(policy.issuer)),
              this.now,
              this.jwksCooldownMs,
            );
      this.keySets.set(id, keys);
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
