import { SignJWT } from 'jose';
import type { Identity } from '../authenticate/identity.js';
import type { ActiveKey } from '../crypto/keys.js';
import type { Clock } from '../lib/clock.js';

/**
 * The identity assertion sent upstream in X-Keygate-Assertion: a short-lived ES256 JWT naming
 * the principal, its roles and the authentication event behind the request. Upstreams verify
 * it against /.keygate/oauth/jwks. Signing costs far more than proxying a request, so an
 * assertion is reused for the same identity and audience until a third of its life is left.
 */
export class AssertionSigner {
  private readonly cache = new Map<string, { jwt: string; reuseUntil: number }>();
  private static readonly MAX_ENTRIES = 10_000;

  constructor(
    private readonly key: () => ActiveKey,
    private readonly issuer: string,
    private readonly clock: Clock,
    private readonly ttlSeconds = 60,
  ) {}

  /** The assertion for `identity` at `audience`; synchronous when cached. */
  get(identity: Identity, audience: string): string | Promise<string> {
    const cacheKey = `${audience}\n${identity.cacheKey}`;
    const hit = this.cache.get(cacheKey);
    if (hit !== undefined && this.clock.now() < hit.reuseUntil) return hit.jwt;
    return this.sign(identity, audience).then((jwt) => {
      if (this.cache.size >= AssertionSigner.MAX_ENTRIES) {
        // Drop the oldest entry (Map keeps insertion order).
        const first = this.cache.keys().next();
        if (!first.done) this.cache.delete(first.value);
      }
      this.cache.set(cacheKey, { jwt, reuseUntil: this.clock.now() + (this.ttlSeconds * 1000 * 2) / 3 });
      return jwt;
    });
  }

  private async sign(identity: Identity, audience: string): Promise<string> {
    const { principal: p, auth: a } = identity;
    const { kid, key } = this.key();
    const nowS = Math.floor(this.clock.now() / 1000);
    const auth: Record<string, unknown> = {
      method: a.method,
      event_id: a.authEventId,
      uv: a.uv,
      device_bound: a.deviceBound,
    };
    if (a.credentialId !== undefined) auth.credential_id = a.credentialId;
    if (a.aaguid !== undefined) auth.aaguid = a.aaguid;
    const claims: Record<string, unknown> = {
      principal_type: p.type,
      groups: p.groups,
      roles: p.roles,
      auth_time: Math.floor(a.authTime / 1000),
      auth,
    };
    if (p.email !== undefined) claims.email = p.email;
    if (p.displayName !== undefined) claims.name = p.displayName;
    return new SignJWT(claims)
      .setProtectedHeader({ alg: 'ES256', kid, typ: 'keygate-assertion+jwt' })
      .setIssuer(this.issuer)
      .setSubject(p.id)
      .setAudience(audience)
      .setIssuedAt(nowS)
      .setExpirationTime(nowS + this.ttlSeconds)
      .sign(key);
  }
}
