import { type CryptoKey, calculateJwkThumbprint, exportJWK, generateKeyPair, importJWK, type JWK } from 'jose';
import type { Clock } from '../lib/clock.js';
import type { SigningKeyRecord, Store } from '../store/types.js';

export interface ActiveKey {
  kid: string;
  key: CryptoKey;
  /** The private key as a JWK (with kid, alg and use), for libraries that take JWKs. */
  jwk: JWK;
}

export interface KeyPolicy {
  /** Replace the signing key once it is this old (ms); undefined = never on schedule. */
  rotateAfterMs?: number;
  /** Keep publishing a retired key this long (ms): the longest lifetime of what it signed. */
  publishForMs?: number;
}

/**
 * ES256 signing keys of one use, kept in the store so that replicas share them. The newest
 * key that has not retired signs; every key not yet past its publication window is published.
 */
export class SigningKeys {
  private constructor(
    private readonly active: ActiveKey,
    private readonly published: JWK[],
    /** Identifies the set of keys in the store, to tell whether a reload changed anything. */
    readonly fingerprint: string,
  ) {}

  static async load(
    store: Store,
    use: SigningKeyRecord['use'],
    clock: Clock,
    policy: KeyPolicy = {},
  ): Promise<SigningKeys> {
    let records = await store.listSigningKeys(use);
    const now = clock.now();
    let current = records.find((r) => r.retiresAt === null || r.retiresAt > now);
    // Scheduled rotation: an old current key retires now and a new one is made below.
    if (current && policy.rotateAfterMs !== undefined && current.createdAt + policy.rotateAfterMs <= now) {
      await store.retireSigningKeys(use, now);
      records = await store.listSigningKeys(use);
      current = undefined;
    }
    if (!current) {
      const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
      const publicJwk = await exportJWK(publicKey);
      const kid = await calculateJwkThumbprint(publicJwk);
      await store.insertSigningKey({
        kid,
        alg: 'ES256',
        use,
        publicJwk: JSON.stringify({ ...publicJwk, kid, alg: 'ES256', use: 'sig' }),
        privateJwk: JSON.stringify(await exportJWK(privateKey)),
        createdAt: now,
        retiresAt: null,
      });
      records = await store.listSigningKeys(use);
      current = records.find((r) => r.retiresAt === null || r.retiresAt > now) as SigningKeyRecord;
    }
    const jwk = { ...(JSON.parse(current.privateJwk) as JWK), kid: current.kid, alg: 'ES256', use: 'sig' };
    const key = (await importJWK(jwk, 'ES256')) as CryptoKey;
    // Retired keys stay published until what they signed has expired.
    const publishFor = policy.publishForMs ?? Number.POSITIVE_INFINITY;
    const published = records
      .filter((r) => r.retiresAt === null || r.retiresAt + publishFor > now)
      .map((r) => JSON.parse(r.publicJwk) as JWK);
    return new SigningKeys({ kid: current.kid, key, jwk }, published, records.map((r) => r.kid).join(','));
  }

  current(): ActiveKey {
    return this.active;
  }

  jwks(): { keys: JWK[] } {
    return { keys: this.published };
  }
}
