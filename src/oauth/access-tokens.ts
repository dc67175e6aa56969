/**
 * Recognises Keygate's own access tokens on proxied requests: `Authorization: Bearer <JWT>`
 * and `Authorization: DPoP <JWT>` with a `DPoP` proof (RFC 9449).
 *
 * A token's signature is verified once and the result kept until the token expires (an ES256
 * verify costs about as much as proxying the request); revocation is checked on every request.
 * A DPoP proof is new on every request, so each one costs a signature check.
 */
import { createHash } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import {
  type CryptoKey,
  calculateJwkThumbprint,
  createLocalJWKSet,
  EmbeddedJWK,
  type FlattenedJWSInput,
  type JSONWebKeySet,
  type JWSHeaderParameters,
  type JWK,
  type JWTPayload,
  jwtVerify,
} from 'jose';
import type { Identifier, Identity } from '../authenticate/identity.js';
import { KeygateError } from '../errors/index.js';
import type { Clock } from '../lib/clock.js';
import type { Revocations } from './revocations.js';

/** Keygate's private claims in its access tokens (RFC 9068 allows any). */
export interface KeygateTokenClaims extends JWTPayload {
  client_id: string;
  scope?: string;
  /** Principal type: a person, a service principal, or an agent acting for a person (`act`). */
  kg_pt: 'user' | 'sp' | 'agent';
  /** RFC 8693 §4.1: the actor — for an agent's token, the agent (its service principal). */
  act?: { sub: string; name?: string };
  /** An agent's token: the delegation grant it was exchanged for. */
  kg_dlg?: string;
  roles?: string[];
  groups?: string[];
  email?: string;
  name?: string;
  /** The authentication event (login ceremony or token issuance) the token descends from. */
  kg_aev?: string;
  kg_cred?: string;
  kg_aaguid?: string;
  kg_uv?: boolean;
  kg_grant?: string;
  /** How the token was obtained: authorization_code, device_code, refresh_token, client_credentials, token-exchange. */
  kg_gty?: string;
  auth_time?: number;
  cnf?: { jkt?: string };
}

export interface VerifiedToken {
  claims: KeygateTokenClaims;
  identity: Identity;
  /** Epoch ms. */
  expiresAt: number;
  audiences: readonly string[];
}

/**
 * A token is narrowed when its scope names actions (`serving:invoke`, `serving:invoke/fraud-*`)
 * and not `all-apis`; otherwise it may be used for whatever policy allows.
 */
export function narrowedScopes(scope: string | undefined): readonly string[] | undefined {
  if (scope === undefined) return undefined;
  const parts = scope.split(' ').filter((s) => s.includes(':'));
  if (parts.length === 0 || scope.split(' ').includes('all-apis')) return undefined;
  return Object.freeze(parts);
}

/** DPoP proofs are accepted this long after (and a little before) their `iat`. */
export const DPOP_MAX_AGE_S = 60;
const DPOP_FUTURE_SKEW_S = 5;
const CACHE_MAX = 10_000;

/**
 * Single use of DPoP proof ids while they can still pass the `iat` window. Two generations,
 * each as long as that window, are swapped instead of scanned: a claim is O(1) and memory
 * holds at most two windows of proofs.
 */
export class DpopReplayCache {
  private current = new Set<string>();
  private previous = new Set<string>();
  private rotatedAt: number;
  constructor(
    private readonly clock: Clock,
    private readonly windowMs = (DPOP_MAX_AGE_S + DPOP_FUTURE_SKEW_S) * 1000,
  ) {
    this.rotatedAt = clock.now();
  }

  /** True the first time a key is used; false on replay. */
  claim(key: string): boolean {
    const now = this.clock.now();
    if (now - this.rotatedAt >= this.windowMs) {
      // A proof older than two windows fails its iat check anyway.
      this.previous = now - this.rotatedAt >= 2 * this.windowMs ? new Set() : this.current;
      this.current = new Set();
      this.rotatedAt = now;
    }
    if (this.current.has(key) || this.previous.has(key)) return false;
    this.current.add(key);
    return true;
  }
}

export interface AccessTokenDeps {
  issuer: () => string;
  /** Every published token key (current and retired-but-valid). */
  jwks: () => JSONWebKeySet;
  /** Re-read keys from the store (another replica may have rotated); true when something changed. */
  reloadKeys: () => Promise<boolean>;
  revocations: Revocations;
  replay: DpopReplayCache;
  /**
   * Replicas on one database: a proof id claimed in the store too (insert-if-absent, atomic), so
   * a proof replayed to another replica is refused as well. Absent for a single process.
   */
  sharedReplay?: (key: string, expiresAt: number) => Promise<boolean>;
  clock: Clock;
  /** The origins a DPoP proof's `htu` may name: the public URL and the listener's own. */
  origins: () => readonly string[];
}

function invalidToken(description: string, scheme: 'Bearer' | 'DPoP' = 'Bearer'): KeygateError {
  return new KeygateError('UNAUTHENTICATED', {
    message: `The access token is not valid: ${description}.`,
    detail: description,
    headers: {
      'www-authenticate': `${scheme} realm="keygate", error="invalid_token", error_description="${description}"`,
    },
  });
}

function invalidProof(description: string): KeygateError {
  return new KeygateError('UNAUTHENTICATED', {
    message: `The DPoP proof is not valid: ${description}.`,
    detail: description,
    headers: {
      'www-authenticate': `DPoP realm="keygate", error="invalid_dpop_proof", error_description="${description}"`,
    },
  });
}

export class AccessTokens {
  private readonly cache = new Map<string, VerifiedToken>();
  /** Imported DPoP proof keys by algorithm and key members, and key thumbprints by key members. */
  private readonly proofKeys = new Map<string, CryptoKey>();
  private readonly thumbprints = new Map<string, string>();
  private keySet: ReturnType<typeof createLocalJWKSet>;
  private lastReload = 0;

  constructor(private readonly d: AccessTokenDeps) {
    this.keySet = createLocalJWKSet(d.jwks());
  }

  /** Keys changed (rotation): verify new tokens against the new set. Cached verifications stay valid. */
  refreshKeys(): void {
    this.keySet = createLocalJWKSet(this.d.jwks());
  }

  identifier(): Identifier {
    return {
      name: 'access-token',
      identify: (req: IncomingMessage) => {
        const h = req.headers.authorization;
        if (h === undefined) return null;
        const space = h.indexOf(' ');
        const scheme = space > 0 ? h.slice(0, space).toLowerCase() : '';
        if (scheme !== 'bearer' && scheme !== 'dpop') return null;
        const token = h.slice(space + 1).trim();
        const cached = this.cache.get(token);
        if (cached !== undefined && cached.expiresAt > this.d.clock.now()) {
          return this.check(cached, scheme, token, req);
        }
        return this.verify(token).then((v) => this.check(v, scheme, token, req));
      },
    };
  }

  /** RFC 9068 §4: validate a JWT access token of ours; the result is cached until it expires. */
  async verify(token: string): Promise<VerifiedToken> {
    const cached = this.cache.get(token);
    if (cached !== undefined && cached.expiresAt > this.d.clock.now()) return cached;
    let payload: KeygateTokenClaims;
    try {
      payload = (await this.verifySignature(token)) as KeygateTokenClaims;
    } catch (e) {
      throw invalidToken(describeJoseError(e));
    }
    // Our own claims must be present: a JWT from this issuer of another kind is not an access token.
    if (typeof payload.sub !== 'string' || typeof payload.jti !== 'string' || typeof payload.exp !== 'number') {
      throw invalidToken('missing claims');
    }
    if (payload.kg_pt !== 'user' && payload.kg_pt !== 'sp' && payload.kg_pt !== 'agent')
      throw invalidToken('not a Keygate access token');
    // An agent's token names its actor and its grant.
    if (payload.kg_pt === 'agent' && (typeof payload.act?.sub !== 'string' || typeof payload.kg_dlg !== 'string'))
      throw invalidToken('missing claims');
    const v = toVerified(payload);
    if (this.cache.size >= CACHE_MAX) this.cache.delete(this.cache.keys().next().value as string);
    this.cache.set(token, v);
    return v;
  }

  private async verifySignature(token: string): Promise<JWTPayload> {
    const opts = {
      // RFC 9068 §4 steps: typ at+jwt, our issuer, an algorithm we sign with (never none or HS*), unexpired.
      typ: 'at+jwt',
      issuer: this.d.issuer(),
      algorithms: ['ES256'],
      requiredClaims: ['exp', 'iat', 'sub', 'jti', 'aud'],
      currentDate: new Date(this.d.clock.now()),
    };
    try {
      return (await jwtVerify(token, this.keySet, opts)).payload;
    } catch (e) {
      // An unknown key may be a rotation on another replica: re-read the keys, at most every 5 s.
      if (
        (e as { code?: string }).code === 'ERR_JWKS_NO_MATCHING_KEY' &&
        this.d.clock.now() - this.lastReload > 5_000
      ) {
        this.lastReload = this.d.clock.now();
        if (await this.d.reloadKeys()) {
          this.refreshKeys();
          return (await jwtVerify(token, this.keySet, opts)).payload;
        }
      }
      throw e;
    }
  }

  private check(
    v: VerifiedToken,
    scheme: 'bearer' | 'dpop',
    token: string,
    req: IncomingMessage,
  ): Identity | Promise<Identity> {
    if (this.d.revocations.isRevoked(v.claims.jti as string, v.claims.kg_grant, v.claims.sub))
      throw invalidToken('token revoked');
    const jkt = v.claims.cnf?.jkt;
    if (jkt === undefined) {
      // RFC 9449 §7.1: the DPoP scheme is for DPoP-bound tokens only.
      if (scheme === 'dpop') throw invalidToken('token is not DPoP-bound', 'DPoP');
      return v.identity;
    }
    // RFC 9449 §7.2: a bound token must come with the DPoP scheme and a proof of its key.
    if (scheme !== 'dpop') throw invalidToken('DPoP-bound token presented as a bearer token', 'DPoP');
    return this.checkProof(req, token, jkt).then(() => v.identity);
  }

  /** RFC 9449 §4.3: check the DPoP proof of one request. */
  async checkProof(req: IncomingMessage, accessToken: string | undefined, jkt: string | undefined): Promise<JWK> {
    const header = req.headers.dpop;
    // Step 1: exactly one DPoP header.
    if (typeof header !== 'string' || header.length === 0) throw invalidProof('missing DPoP proof');
    if (header.includes(',')) throw invalidProof('more than one DPoP proof');
    // Steps 2–7: a well-formed JWS, typ dpop+jwt, an asymmetric algorithm we accept, signed by
    // the public key in its own header.
    let payload: JWTPayload;
    let jwk: JWK;
    try {
      const r = await jwtVerify(header, (h, t) => this.proofKey(h, t), {
        typ: 'dpop+jwt',
        algorithms: ['ES256', 'EdDSA'],
        requiredClaims: ['jti', 'htm', 'htu', 'iat'],
        currentDate: new Date(this.d.clock.now()),
      });
      payload = r.payload;
      jwk = r.protectedHeader.jwk as JWK;
    } catch (e) {
      throw invalidProof(describeJoseError(e));
    }
    // Step 8: htm matches the request method.
    if (payload.htm !== req.method) throw invalidProof('htm does not match the request method');
    // Step 9: htu matches the request URI, without query and fragment.
    if (!this.htuMatches(payload.htu, req)) throw invalidProof('htu does not match the request URL');
    // Step 11: iat within an acceptable window.
    const now = this.d.clock.now() / 1000;
    const iat = payload.iat as number;
    if (iat < now - DPOP_MAX_AGE_S || iat > now + DPOP_FUTURE_SKEW_S)
      throw invalidProof('iat outside the accepted window');
    // Step 10 (with an access token): ath is the hash of that token.
    if (accessToken !== undefined) {
      const ath = createHash('sha256').update(accessToken).digest('base64url');
      if (payload.ath !== ath) throw invalidProof('ath does not match the access token');
    }
    // Step 12: the key is the one the token is bound to.
    const thumbprint = await this.thumbprint(jwk);
    if (jkt !== undefined && thumbprint !== jkt) throw invalidProof('proof key is not the key the token is bound to');
    // Single use: a proof id is accepted once while its iat is in the window.
    const jti = payload.jti as string;
    if (jti.length > 256) throw invalidProof('jti too long');
    const key = `${thumbprint}:${jti}`;
    if (!this.d.replay.claim(key)) {
      throw invalidProof('proof replayed');
    }
    // Across replicas: claimed once in the shared store while the proof could still be accepted.
    if (this.d.sharedReplay !== undefined) {
      const until = (iat + DPOP_MAX_AGE_S + DPOP_FUTURE_SKEW_S) * 1000;
      if (!(await this.d.sharedReplay(key, until))) throw invalidProof('proof replayed');
    }
    return jwk;
  }

  /**
   * A client signs every proof with the same key: import it (jose's EmbeddedJWK, with its
   * checks — public, `use` sig, `alg` consistent) once per key and algorithm, not per request.
   */
  private async proofKey(h: JWSHeaderParameters, t: FlattenedJWSInput): Promise<CryptoKey | Uint8Array> {
    const id = proofKeyId(h);
    const hit = this.proofKeys.get(id);
    if (hit !== undefined) return hit;
    const key = (await EmbeddedJWK(h, t)) as CryptoKey;
    if (this.proofKeys.size >= CACHE_MAX) this.proofKeys.delete(this.proofKeys.keys().next().value as string);
    this.proofKeys.set(id, key);
    return key;
  }

  private async thumbprint(jwk: JWK): Promise<string> {
    const id = jwkId(jwk);
    let t = this.thumbprints.get(id);
    if (t === undefined) {
      t = await calculateJwkThumbprint(jwk);
      if (this.thumbprints.size >= CACHE_MAX) this.thumbprints.delete(this.thumbprints.keys().next().value as string);
      this.thumbprints.set(id, t);
    }
    return t;
  }

  private htuMatches(htu: unknown, req: IncomingMessage): boolean {
    if (typeof htu !== 'string') return false;
    let u: URL;
    try {
      u = new URL(htu);
    } catch {
      return false;
    }
    const raw = req.url ?? '/';
    const q = raw.indexOf('?');
    const path = q === -1 ? raw : raw.slice(0, q);
    let reqPath: string;
    try {
      reqPath = new URL(path, 'http://x').pathname;
    } catch {
      return false;
    }
    if (u.pathname !== reqPath) return false;
    // Never the Host header: a client could name any origin there (RFC 9449 §4.3 step 9).
    const origins = this.d.origins();
    return origins.includes(u.origin);
  }
}

function jwkId(jwk: JWK | undefined): string {
  return JSON.stringify([jwk?.kty, jwk?.crv, jwk?.x, jwk?.y, jwk?.n, jwk?.e, jwk?.use, jwk?.alg, jwk?.d !== undefined]);
}

function proofKeyId(h: JWSHeaderParameters): string {
  return `${String(h.alg)}|${jwkId(h.jwk as JWK | undefined)}`;
}

function toVerified(c: KeygateTokenClaims): VerifiedToken {
  const person = c.kg_pt === 'user';
  // An agent is the principal (policies see `Agent`), with the person's groups and roles: what
  // it may do is what the person may do, narrowed by the grant's scope.
  const agent = c.kg_pt === 'agent' ? (c.act as { sub: string; name?: string }) : undefined;
  const aud = Object.freeze(c.aud === undefined ? [] : Array.isArray(c.aud) ? [...c.aud] : [c.aud]);
  const narrowed = narrowedScopes(c.scope);
  const jkt = c.cnf?.jkt;
  const identity: Identity = {
    principal:
      agent !== undefined
        ? {
            type: 'agent',
            id: agent.sub,
            displayName: agent.name ?? agent.sub,
            groups: Object.freeze([...(c.groups ?? [])]),
            roles: Object.freeze([...(c.roles ?? [])]),
            onBehalfOf: {
              id: c.sub as string,
              ...(c.email === undefined ? {} : { email: c.email }),
              grantId: c.kg_dlg as string,
            },
          }
        : {
            type: person ? 'user' : 'service_principal',
            id: c.sub as string,
            ...(c.email === undefined ? {} : { email: c.email }),
            ...(c.name === undefined ? {} : { displayName: c.name }),
            groups: Object.freeze([...(c.groups ?? [])]),
            roles: Object.freeze([...(c.roles ?? [])]),
          },
    auth: {
      method: jkt !== undefined ? 'dpop' : 'token',
      authEventId: c.kg_aev ?? (c.jti as string),
      authTime: ((c.auth_time ?? c.iat) as number) * 1000,
      uv: c.kg_uv === true,
      deviceBound: jkt !== undefined,
      tokenId: c.jti as string,
      ...(c.kg_cred === undefined ? {} : { credentialId: c.kg_cred }),
      ...(c.kg_aaguid === undefined ? {} : { aaguid: c.kg_aaguid }),
      audiences: aud,
      ...(narrowed === undefined ? {} : { scopes: narrowed }),
    },
    cacheKey: `tok:${c.jti as string}`,
  };
  return { claims: c, identity, expiresAt: (c.exp as number) * 1000, audiences: aud };
}

function describeJoseError(e: unknown): string {
  const code = (e as { code?: string }).code;
  switch (code) {
    case 'ERR_JWT_EXPIRED':
      return 'expired';
    case 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED':
      return 'bad signature';
    case 'ERR_JWKS_NO_MATCHING_KEY':
      return 'signed by an unknown key';
    case 'ERR_JOSE_ALG_NOT_ALLOWED':
      return 'algorithm not allowed';
    case 'ERR_JWT_CLAIM_VALIDATION_FAILED':
      return `claim ${(e as { claim?: string }).claim ?? ''} not valid`.replace(/ +/g, ' ');
    case 'ERR_JWS_INVALID':
    case 'ERR_JWT_INVALID':
      return 'malformed';
    default:
      return 'not valid';
  }
}
