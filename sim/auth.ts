// Bearer-token bookkeeping: PATs (configured or minted by /api/2.0/token/create) and the OAuth
// access tokens the token endpoint issues. Issued tokens are real ES256 JWTs (like Databricks'),
// but they are accepted only by lookup, so a forged or replayed-after-expiry token never passes.
import { randomBytes, randomUUID } from 'node:crypto';
import { type CryptoKey, exportJWK, generateKeyPair, type JWK, SignJWT } from 'jose';
import type { SimIdentity } from './types.js';

export interface Caller {
  identity: SimIdentity;
  tokenKind: 'pat' | 'oauth';
}

interface Issued {
  identity: SimIdentity;
  expiresAt: number; // epoch ms
}

export type Lookup = { ok: true; caller: Caller } | { ok: false; reason: 'unknown' | 'expired' };

export class TokenStore {
  private readonly pats = new Map<string, SimIdentity>();
  private readonly issued = new Map<string, Issued>();
  private readonly kid = randomUUID();

  private constructor(
    private readonly privateKey: CryptoKey,
    readonly publicJwk: JWK,
    private readonly now: () => number,
  ) {}

  static async create(pats: Record<string, SimIdentity>, now: () => number): Promise<TokenStore> {
    const { privateKey, publicKey } = await generateKeyPair('ES256');
    const store = new TokenStore(privateKey, await exportJWK(publicKey), now);
    store.publicJwk.kid = store.kid;
    store.publicJwk.alg = 'ES256';
    store.publicJwk.use = 'sig';
    for (const [token, identity] of Object.entries(pats)) store.pats.set(token, identity);
    return store;
  }

  /** Mints a PAT in the documented `dapi` + 32 hex format. */
  mintPat(identity: SimIdentity): string {
    const token = `dapi${randomBytes(16).toString('hex')}`;
    this.pats.set(token, identity);
    return token;
  }

  async issue(identity: SimIdentity, opts: { issuer: string; ttlSeconds: number; scope: string; clientId: string | null }): Promise<string> {
    const nowMs = this.now();
    this.sweep(nowMs);
    const iat = Math.floor(nowMs / 1000);
    const jwt = new SignJWT({ scope: opts.scope, ...(opts.clientId ? { client_id: opts.clientId } : {}) })
      .setProtectedHeader({ alg: 'ES256', kid: this.kid, typ: 'at+jwt' })
      .setIssuer(opts.issuer)
      .setAudience(opts.issuer)
      .setSubject(identity.userName)
      .setIssuedAt(iat)
      .setExpirationTime(iat + opts.ttlSeconds)
      .setJti(randomUUID());
    const token = await jwt.sign(this.privateKey);
    this.issued.set(token, { identity, expiresAt: nowMs + opts.ttlSeconds * 1000 });
    return token;
  }

  lookup(token: string): Lookup {
    const pat = this.pats.get(token);
    if (pat) return { ok: true, caller: { identity: pat, tokenKind: 'pat' } };
    const issued = this.issued.get(token);
    if (!issued) return { ok: false, reason: 'unknown' };
    if (this.now() >= issued.expiresAt) return { ok: false, reason: 'expired' };
    return { ok: true, caller: { identity: issued.identity, tokenKind: 'oauth' } };
  }

  private sweep(nowMs: number): void {
    for (const [token, t] of this.issued) if (nowMs >= t.expiresAt) this.issued.delete(token);
  }
}
