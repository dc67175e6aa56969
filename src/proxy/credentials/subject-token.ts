/**
 * The subject token of a Databricks token exchange (RFC 8693 §2.1 `subject_token`, of type
 * `urn:ietf:params:oauth:token-type:jwt`): a short-lived JWT that Keygate signs for one
 * principal with its current token signing key. Keygate's JWKS publishes that key, and the
 * workspace's federation policy finds the JWKS through `<issuer>/.well-known/openid-configuration`.
 */
import { SignJWT } from 'jose';
import type { ActiveKey } from '../../crypto/keys.js';
import { randomId } from '../../crypto/random.js';

export interface SubjectTokenSpec {
  /** Keygate's public URL: the policy's `issuer`. */
  issuer: string;
  /** One of the policy's `audiences`. */
  audience: string;
  /** An email for a person; for a service principal, the value its policy's `subject` requires. */
  subject: string;
  /** The policy's `subject_claim` (Databricks' default is `sub`). */
  subjectClaim: string;
  lifetimeS: number;
}

export function signSubjectToken(key: ActiveKey, spec: SubjectTokenSpec, nowMs: number): Promise<string> {
  const iat = Math.floor(nowMs / 1000);
  const claims: Record<string, string> = {};
  // The policy reads the subject from its subject claim; `sub` always carries it too.
  if (spec.subjectClaim !== 'sub') claims[spec.subjectClaim] = spec.subject;
  return (
    new SignJWT(claims)
      // Databricks accepts RS256 or ES256 subject tokens [DOC-FEDX]; Keygate's keys are ES256.
      // typ JWT: never `at+jwt`, so Keygate itself never takes this for one of its access tokens.
      .setProtectedHeader({ alg: 'ES256', kid: key.kid, typ: 'JWT' })
      // RFC 7523 §3: iss, sub, aud and exp are required; iat and jti are set as well.
      .setIssuer(spec.issuer)
      .setSubject(spec.subject)
      .setAudience(spec.audience)
      .setIssuedAt(iat)
      // The workspace token lives no longer than this one [DOC-FEDX].
      .setExpirationTime(iat + spec.lifetimeS)
      .setJti(randomId())
      .sign(key.key)
  );
}
