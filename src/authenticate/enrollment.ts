/**
 * One-time enrollment and recovery links: a random token, stored only as its SHA-256, single
 * use, expiring. An enrollment link lets a (new) person register a first credential; a
 * recovery link revokes nothing by itself but lets a person who lost their keys register a
 * new one.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { randomId, sha256Hex } from '../crypto/random.js';
import type { Clock } from '../lib/clock.js';
import type { EnrollmentTokenRecord, Store, UserRecord } from '../store/types.js';

export interface IssuedLink {
  url: string;
  token: string;
  user: UserRecord;
  expiresAt: number;
}

const EMAIL = /^[^\s@]{1,64}@[^\s@]{1,255}$/;

export function isEmail(s: string): boolean {
  return EMAIL.test(s);
}

export class Enrollment {
  constructor(
    private readonly store: Store,
    private readonly clock: Clock,
    private readonly lifetimeMs: number,
  ) {}

  /** Create (or find) the user and issue an enrollment link for them. */
  async invite(
    publicOrigin: string,
    o: { email: string; displayName?: string; roles?: string[]; createdBy: string },
  ): Promise<IssuedLink> {
    if (!isEmail(o.email)) throw new Error(`not an email address: ${o.email}`);
    const user = await this.store.upsertUser(
      {
        id: randomUUID(),
        email: o.email.toLowerCase(),
        displayName: o.displayName ?? o.email.split('@')[0] ?? o.email,
        webauthnId: randomBytes(32).toString('base64url'),
        createdAt: this.clock.now(),
      },
      o.roles ?? [],
    );
    return this.issue(publicOrigin, user, 'enroll', o.createdBy);
  }

  /**
   * A short-lived enrollment link for a person an identity provider has just vouched for, who
   * has no key yet (require-local-key): their first key is registered in the same sitting.
   */
  async firstKey(publicOrigin: string, user: UserRecord, createdBy: string, lifetimeMs: number): Promise<IssuedLink> {
    return this.issue(publicOrigin, user, 'enroll', createdBy, lifetimeMs);
  }

  /** Issue a recovery link for an existing user. */
  async recover(publicOrigin: string, email: string, createdBy: string): Promise<IssuedLink> {
    const user = await this.store.getUserByEmail(email);
    if (!user) throw new Error(`no user with email ${email}`);
    return this.issue(publicOrigin, user, 'recovery', createdBy);
  }

  private async issue(
    publicOrigin: string,
    user: UserRecord,
    kind: EnrollmentTokenRecord['kind'],
    createdBy: string,
    lifetimeMs = this.lifetimeMs,
  ): Promise<IssuedLink> {
    const token = randomId(32);
    const now = this.clock.now();
    const expiresAt = now + lifetimeMs;
    await this.store.insertEnrollmentToken({
      tokenHash: sha256Hex(token),
      userId: user.id,
      kind,
      createdBy,
      createdAt: now,
      expiresAt,
      usedAt: null,
    });
    return { url: `${publicOrigin}/.keygate/enroll?token=${token}`, token, user, expiresAt };
  }

  /** The unused, unexpired token and its (enabled) user, or null. */
  async inspect(token: unknown): Promise<{ record: EnrollmentTokenRecord; user: UserRecord } | null> {
    if (typeof token !== 'string' || token.length < 16 || token.length > 128) return null;
    const record = await this.store.getEnrollmentToken(sha256Hex(token));
    if (!record || record.usedAt !== null || record.expiresAt <= this.clock.now()) return null;
    const user = await this.store.getUser(record.userId);
    if (!user || user.disabledAt !== null) return null;
    return { record, user };
  }
}
