import { type CryptoKey, calculateJwkThumbprint, exportJWK, generateKeyPair, importJWK, type JWK } from 'jose';
import type { Clock } from '../lib/clock.js';
import type { SigningKeyRecord, Store } from '../store/types.js';

export interface ActiveKey {
  kid: string;
  key: CryptoKey;
}

/**
 * ES256 signing keys of one use, kept in the store so that replicas share them. The newest
 * key that has not retired signs; every key not yet past its publication window is published.
 */
export class SigningKeys {
  private constructor(
    private readonly active: ActiveKey,
    private readonly published: JWK[],
  ) {}

  static async load(store: Store, use: SigningKeyRecord['use'], clock: Clock): Promise<SigningKeys> {
    let records = await store.listSigningKeys(use);
    const now = clock.now();
    let current = records.find((r) => r.retiresAt === null || r.retiresAt > now);
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
    const key = (await importJWK(JSON.parse(current.privateJwk) as JWK, 'ES256')) as CryptoKey;
    const published = records.map((r) => JSON.parse(r.publicJwk) as JWK);
    return new SigningKeys({ kid: current.kid, key }, published);
  }

  current(): ActiveKey {
    return this.active;
  }

  jwks(): { keys: JWK[] } {
    return { keys: this.published };
  }
}
