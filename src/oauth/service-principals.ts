/**
 * Service principals: machines (CI, schedulers, agents) as OAuth clients. They never own
 * WebAuthn credentials or browser sessions; they authenticate at the token endpoint with a
 * secret (client_secret_basic), a registered public key (private_key_jwt), or — when they
 * have neither — only through workload federation (RFC 8693).
 *
 * Secrets are shown once and stored as scrypt hashes. Checking scrypt on every token request
 * would cap the token endpoint at a few dozen requests per second, so a successful check is
 * remembered (keyed by a SHA-256 of the presented secret) while that secret stays live; a
 * wrong secret always pays the full hash.
 */
import { randomUUID, scrypt, timingSafeEqual } from 'node:crypto';
import { promisify } from 'node:util';
import { importJWK, type JWK } from 'jose';
import { KeygateError } from '../errors/index.js';
import { randomId, sha256Hex } from '../crypto/random.js';
import type { Clock } from '../lib/clock.js';
import type { ServicePrincipalRecord, ServicePrincipalSecretRecord, Store } from '../store/types.js';

const scryptAsync = promisify(scrypt) as (
  password: string,
  salt: Buffer,
  keylen: number,
  options: { N: number; r: number; p: number; maxmem: number },
) => Promise<Buffer>;

/** OWASP's minimum for scrypt (N=2^17 is their first choice; 2^15 keeps a token request under ~100 ms here). */
const SCRYPT = { N: 2 ** 15, r: 8, p: 1, keylen: 32 };
/** Wrong secrets a principal may receive per minute before unknown secrets are refused unhashed. */
const FAILURES_PER_MINUTE = 10;
/** scrypt runs at once (each takes 32 MiB and a libuv thread shared with DNS and file I/O). */
const MAX_CONCURRENT_HASHES = 2;

/** At most this many secrets are live at once: the current one and the one being rotated out. */
const MAX_LIVE_SECRETS = 2;
const NAME = /^[a-z0-9][a-z0-9._-]{0,62}$/i;

export async function hashSecret(secret: string): Promise<string> {
  const salt = Buffer.from(randomId(16), 'base64url');
  const { N, r, p, keylen } = SCRYPT;
  const dk = await scryptAsync(secret, salt, keylen, { N, r, p, maxmem: 64 * 1024 * 1024 });
  return `scrypt$${N}$${r}$${p}$${salt.toString('base64url')}$${dk.toString('base64url')}`;
}

export async function verifySecretHash(secret: string, stored: string): Promise<boolean> {
  const parts = stored.split('$');
  if (parts.length !== 6 || parts[0] !== 'scrypt') return false;
  const [, n, r, p, salt, hash] = parts as [string, string, string, string, string, string];
  const expected = Buffer.from(hash, 'base64url');
  const dk = await scryptAsync(secret, Buffer.from(salt, 'base64url'), expected.length, {
    N: Number(n),
    r: Number(r),
    p: Number(p),
    maxmem: 64 * 1024 * 1024,
  });
  return timingSafeEqual(dk, expected);
}

export interface CreatedSecret {
  /** Shown once; never stored. */
  secret: string;
  record: ServicePrincipalSecretRecord;
}

export class ServicePrincipals {
  /** `${spId}:${sha256(secret)}` → the secret record id it matched. */
  private readonly verified = new Map<string, string>();
  /** Recent wrong secrets per principal: [count, window start ms]. */
  private readonly failures = new Map<string, [number, number]>();
  private hashing = 0;
  private readonly hashQueue: (() => void)[] = [];

  constructor(
    private readonly store: Store,
    private readonly clock: Clock,
    private readonly secretLifetimeMs: number,
  ) {}

  /** By id (the client_id) or by name. */
  async find(idOrName: string): Promise<ServicePrincipalRecord | null> {
    return (await this.store.getServicePrincipal(idOrName)) ?? (await this.store.getServicePrincipalByName(idOrName));
  }

  list(): Promise<ServicePrincipalRecord[]> {
    return this.store.listServicePrincipals();
  }

  async create(o: {
    name: string;
    roles: string[];
    createdBy: string;
    description?: string;
    /** false: no secret (federation or private_key_jwt only). */
    withSecret?: boolean;
    jwks?: { keys: JWK[] };
  }): Promise<{ sp: ServicePrincipalRecord; secret: CreatedSecret | null }> {
    if (!NAME.test(o.name)) {
      throw new KeygateError('BAD_REQUEST', {
        message: 'A service principal name is 1–63 letters, digits, dots, dashes or underscores.',
      });
    }
    await assertUsableKeys(o.jwks?.keys ?? []);
    if (await this.store.getServicePrincipalByName(o.name)) {
      throw new KeygateError('CONFLICT', { message: `A service principal named "${o.name}" exists already.` });
    }
    const sp: ServicePrincipalRecord = {
      id: randomUUID(),
      name: o.name,
      description: o.description ?? '',
      roles: [...new Set(o.roles)].sort(),
      jwks: o.jwks === undefined ? null : JSON.stringify(publicJwks(o.jwks)),
      createdAt: this.clock.now(),
      createdBy: o.createdBy,
      disabledAt: null,
    };
    await this.store.insertServicePrincipal(sp);
    const secret = o.withSecret === false || o.jwks !== undefined ? null : await this.addSecret(sp.id);
    return { sp, secret };
  }

  /** Register (replace) the public keys it signs private_key_jwt assertions with. */
  async setKeys(idOrName: string, jwks: { keys: JWK[] }): Promise<ServicePrincipalRecord> {
    const sp = await this.find(idOrName);
    if (!sp || sp.disabledAt !== null) throw new KeygateError('NOT_FOUND', { message: 'No such service principal.' });
    await assertUsableKeys(jwks.keys);
    const stored = JSON.stringify(publicJwks(jwks));
    await this.store.setServicePrincipalJwks(sp.id, stored);
    return { ...sp, jwks: stored };
  }

  /** Disable: no new tokens (the token endpoint no longer knows it as a client). */
  async disable(idOrName: string): Promise<ServicePrincipalRecord> {
    const sp = await this.find(idOrName);
    if (!sp || sp.disabledAt !== null) throw new KeygateError('NOT_FOUND', { message: 'No such live service principal.' });
    await this.store.disableServicePrincipal(sp.id, this.clock.now());
    return sp;
  }

  /**
   * A new secret; the newest previous one stays valid (overlap for the rotation) and any
   * older live ones are revoked, so at most two are live.
   */
  async rotate(idOrName: string): Promise<{ sp: ServicePrincipalRecord; secret: CreatedSecret; revoked: string[] }> {
    const sp = await this.find(idOrName);
    if (!sp) throw new KeygateError('NOT_FOUND', { message: `No service principal "${idOrName}".` });
    if (sp.jwks !== null) {
      throw new KeygateError('BAD_REQUEST', {
        message: 'This service principal authenticates with a key, not a secret.',
      });
    }
    const secret = await this.addSecret(sp.id);
    const live = (await this.liveSecrets(sp.id)).filter((s) => s.id !== secret.record.id);
    const revoked: string[] = [];
    for (const old of live.slice(MAX_LIVE_SECRETS - 1)) {
      await this.store.revokeServicePrincipalSecret(sp.id, old.id, this.clock.now());
      revoked.push(old.id);
    }
    return { sp, secret, revoked };
  }

  async revokeSecret(idOrName: string, secretId: string): Promise<boolean> {
    const sp = await this.find(idOrName);
    if (!sp) return false;
    const ok = await this.store.revokeServicePrincipalSecret(sp.id, secretId, this.clock.now());
    this.forget(sp.id);
    return ok;
  }

  async liveSecrets(spId: string): Promise<ServicePrincipalSecretRecord[]> {
    const now = this.clock.now();
    return (await this.store.listServicePrincipalSecrets(spId)).filter(
      (s) => s.revokedAt === null && s.expiresAt > now,
    );
  }

  /**
   * client_secret_basic: does `secret` match a live secret of this principal? The principal
   * must be enabled; expired and revoked secrets never match.
   */
  async verifySecret(spId: string, secret: string): Promise<boolean> {
    const sp = await this.store.getServicePrincipal(spId);
    if (!sp || sp.disabledAt !== null) return false;
    const live = await this.liveSecrets(spId);
    const key = `${spId}:${sha256Hex(secret)}`;
    const remembered = this.verified.get(key);
    if (remembered !== undefined && live.some((s) => s.id === remembered)) return true;
    // Someone is guessing: secrets already known good still pass (above), unknown ones are
    // refused without spending scrypt on them until the minute is over.
    const now = this.clock.now();
    const f = this.failures.get(spId);
    if (f !== undefined && now - f[1] < 60_000 && f[0] >= FAILURES_PER_MINUTE) return false;
    for (const s of live) {
      if (await this.limited(() => verifySecretHash(secret, s.hash))) {
        if (this.verified.size > 10_000) this.verified.clear();
        this.verified.set(key, s.id);
        return true;
      }
    }
    if (f === undefined || now - f[1] >= 60_000) this.failures.set(spId, [1, now]);
    else f[0]++;
    if (this.failures.size > 10_000) this.failures.clear();
    return false;
  }

  /** Run a hash with at most MAX_CONCURRENT_HASHES in flight; the rest wait their turn. */
  private async limited<T>(fn: () => Promise<T>): Promise<T> {
    if (this.hashing >= MAX_CONCURRENT_HASHES) await new Promise<void>((r) => this.hashQueue.push(r));
    this.hashing++;
    try {
      return await fn();
    } finally {
      this.hashing--;
      this.hashQueue.shift()?.();
    }
  }

  private async addSecret(spId: string): Promise<CreatedSecret> {
    const secret = `kgs_${randomId(32)}`;
    const now = this.clock.now();
    const record: ServicePrincipalSecretRecord = {
      // A prefix, so that an id never starts with '-' (a command line would read it as an option).
      id: `sec_${randomId(9)}`,
      spId,
      hash: await hashSecret(secret),
      createdAt: now,
      expiresAt: now + this.secretLifetimeMs,
      revokedAt: null,
    };
    await this.store.insertServicePrincipalSecret(record);
    return { secret, record };
  }

  private forget(spId: string): void {
    for (const k of this.verified.keys()) if (k.startsWith(`${spId}:`)) this.verified.delete(k);
  }
}

/** Each registered key must be a usable public key now, not an error at its first use. */
export async function assertUsableKeys(keys: JWK[]): Promise<void> {
  for (const k of keys) {
    try {
      await importJWK(
        k,
        typeof k.alg === 'string' ? k.alg : k.kty === 'RSA' ? 'RS256' : k.kty === 'OKP' ? 'EdDSA' : 'ES256',
      );
    } catch {
      throw new KeygateError('BAD_REQUEST', { message: 'A registered key is not a valid public JWK.' });
    }
  }
}

/** Keep only public members of the keys (a private key must never be registered by mistake). */
export function publicJwks(jwks: { keys: JWK[] }): { keys: JWK[] } {
  return {
    keys: jwks.keys.map((k) => {
      if ('d' in k || k.kty === 'oct') {
        throw new KeygateError('BAD_REQUEST', {
          message: 'Register the public key only (the JWK has private members).',
        });
      }
      const { kty, crv, x, y, n, e, kid, alg, use } = k;
      return Object.fromEntries(
        Object.entries({ kty, crv, x, y, n, e, kid, alg, use }).filter(([, v]) => v !== undefined),
      );
    }),
  };
}
