/**
 * Revoked tokens and grants, as every replica's proxy sees them. A revocation is written to the
 * store and applied in this process at once; other processes pick it up by polling the store
 * (`pollMs`, under a second), so a revoked token stops working everywhere within a second.
 */
import { randomUUID } from 'node:crypto';
import type { Clock } from '../lib/clock.js';
import type { Store } from '../store/types.js';

export class Revocations {
  /** `jti:<id>` / `grant:<id>` → when the row may be forgotten (epoch ms). */
  private readonly revoked = new Map<string, number>();
  private lastSeen = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly store: Store,
    private readonly clock: Clock,
    /** How long a revocation must be remembered: the longest access-token lifetime. */
    private readonly rememberMs: number,
  ) {}

  async start(pollMs = 500): Promise<void> {
    await this.poll();
    const tick = () => {
      this.poll().catch(() => {
        // A failed poll keeps the previous list; the next one catches up (lastSeen did not move).
      });
    };
    this.timer = setInterval(tick, pollMs);
    this.timer.unref();
    // Where the store can tell (PostgreSQL NOTIFY), another replica's revocation is polled at once.
    this.unsubscribe = this.store.onRevocation?.(tick);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.unsubscribe?.();
  }

  private unsubscribe: (() => void) | undefined;

  isRevoked(jti: string, grantId: string | undefined, subject?: string): boolean {
    if (this.revoked.size === 0) return false;
    return (
      this.revoked.has(`jti:${jti}`) ||
      (grantId !== undefined && this.revoked.has(`grant:${grantId}`)) ||
      (subject !== undefined && this.revoked.has(`sub:${subject}`))
    );
  }

  /** Every token of a subject issued so far (a disabled service principal): refused from now on. */
  async revokeSubject(subject: string): Promise<void> {
    await this.add(`sub:${subject}`, this.clock.now() + this.rememberMs);
  }

  /**
   * Ended browser sessions, for the other replicas: each caches a resolved session for a few
   * seconds, so the end is remembered a minute and checked on every request.
   */
  async revokeSessions(idHashes: readonly string[]): Promise<void> {
    for (const h of idHashes) await this.add(`ses:${h}`, this.clock.now() + 60_000);
  }

  isSessionRevoked(idHash: string): boolean {
    return this.revoked.size > 0 && this.revoked.has(`ses:${idHash}`);
  }

  /** Told of each person whose groups or roles another replica changed (their cached sessions go). */
  onUserChanged: ((userId: string) => void) | undefined;

  /** A person's groups or roles changed here: the other replicas re-read their sessions at once. */
  async userChanged(userId: string): Promise<void> {
    await this.add(`usr:${userId}:${randomUUID()}`, this.clock.now() + 60_000);
  }

  async revokeToken(jti: string, expiresAtMs: number): Promise<void> {
    await this.add(`jti:${jti}`, expiresAtMs);
  }

  async revokeGrant(grantId: string): Promise<void> {
    await this.add(`grant:${grantId}`, this.clock.now() + this.rememberMs);
  }

  private async add(id: string, expiresAt: number): Promise<void> {
    const now = this.clock.now();
    await this.store.insertRevocation({ id, revokedAt: now, expiresAt });
    this.revoked.set(id, expiresAt);
  }

  private async poll(): Promise<void> {
    const now = this.clock.now();
    // Overlap by a second: rows written by another process with a slightly older clock.
    const rows = await this.store.listRevocationsSince(Math.max(0, this.lastSeen - 1_000));
    for (const r of rows) {
      if (r.id.startsWith('usr:')) {
        if (!this.revoked.has(r.id) && r.expiresAt > now) this.onUserChanged?.(r.id.split(':')[1] as string);
      }
      if (r.expiresAt > now) this.revoked.set(r.id, r.expiresAt);
      if (r.revokedAt > this.lastSeen) this.lastSeen = r.revokedAt;
    }
    for (const [id, exp] of this.revoked) if (exp <= now) this.revoked.delete(id);
  }
}
