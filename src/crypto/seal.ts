/**
 * Sealing secrets Keygate must keep (an identity provider's refresh token) with a key from the
 * environment: AES-256-GCM from node:crypto, a random 96-bit IV per value, the purpose bound as
 * associated data so a value sealed for one use cannot be opened as another.
 * Format: `v1.<iv>.<ciphertext>.<tag>` (base64url).
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';

export class Sealer {
  private constructor(private readonly key: Buffer) {}

  /** A sealer from a base64 (or base64url) 32-byte key; throws naming what is wrong. */
  static fromBase64(value: string): Sealer {
    const key = Buffer.from(value.trim(), 'base64');
    if (key.length !== 32) throw new Error(`the secret key must be 32 bytes in base64 (it has ${key.length})`);
    return new Sealer(key);
  }

  seal(plaintext: string, purpose: string): string {
    const iv = randomBytes(12);
    const c = createCipheriv('aes-256-gcm', this.key, iv);
    c.setAAD(Buffer.from(purpose));
    const ct = Buffer.concat([c.update(plaintext, 'utf8'), c.final()]);
    return ['v1', iv, ct, c.getAuthTag()].map((p) => (typeof p === 'string' ? p : p.toString('base64url'))).join('.');
  }

  /** The plaintext; throws when the value was altered, sealed with another key or for another purpose. */
  open(sealed: string, purpose: string): string {
    const [v, iv, ct, tag] = sealed.split('.');
    if (v !== 'v1' || iv === undefined || ct === undefined || tag === undefined) throw new Error('not a sealed value');
    const d = createDecipheriv('aes-256-gcm', this.key, Buffer.from(iv, 'base64url'));
    d.setAAD(Buffer.from(purpose));
    d.setAuthTag(Buffer.from(tag, 'base64url'));
    return Buffer.concat([d.update(Buffer.from(ct, 'base64url')), d.final()]).toString('utf8');
  }
}
