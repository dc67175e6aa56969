/**
 * Ceremony challenges: random, stored server-side, bound to the ceremony kind, the browser
 * that asked for them (a ceremony cookie) and, where known, the user; they expire and are
 * consumed on first use, success or failure (SECURITY-CHECKLIST R2, A4).
 */
import { randomBytes } from 'node:crypto';
import { sha256Hex } from '../../crypto/random.js';
import type { Clock } from '../../lib/clock.js';
import type { ChallengeRecord, Store } from '../../store/types.js';
import type { AuthFailureReason } from '../auth-events.js';

export class CeremonyError extends Error {
  constructor(readonly reason: AuthFailureReason) {
    super(reason);
    this.name = 'CeremonyError';
  }
}

/** The `challenge` a client put in its clientDataJSON (untrusted until matched against the store). */
export function clientChallenge(clientDataJSON: unknown): string {
  if (typeof clientDataJSON !== 'string' || clientDataJSON.length > 4096) throw new CeremonyError('malformed_response');
  try {
    const parsed = JSON.parse(Buffer.from(clientDataJSON, 'base64url').toString('utf8')) as { challenge?: unknown };
    if (typeof parsed.challenge !== 'string' || parsed.challenge.length > 128) throw new Error('no challenge');
    return parsed.challenge;
  } catch {
    throw new CeremonyError('malformed_response');
  }
}

export class Ceremonies {
  constructor(
    private readonly store: Store,
    private readonly clock: Clock,
    private readonly timeoutMs: number,
  ) {}

  /** Issue a challenge (32 random bytes; ASVS 6.7.2 asks for at least 64 bits). */
  async issue(
    kind: ChallengeRecord['kind'],
    binding: string,
    opts: { userId?: string | null; enrollmentHash?: string | null; allowIds?: string[] } = {},
  ): Promise<string> {
    const challenge = randomBytes(32).toString('base64url');
    await this.store.insertChallenge({
      challenge,
      kind,
      userId: opts.userId ?? null,
      bindingHash: sha256Hex(binding),
      enrollmentHash: opts.enrollmentHash ?? null,
      allowIds: opts.allowIds ?? [],
      expiresAt: this.clock.now() + this.timeoutMs,
    });
    return challenge;
  }

  /**
   * Take (delete) the challenge the response names and check it was issued for this kind of
   * ceremony, to this browser, and has not expired. A second take of the same challenge finds
   * nothing: replay fails.
   */
  async take(kind: ChallengeRecord['kind'], clientDataJSON: unknown, binding: string | undefined): Promise<ChallengeRecord> {
    const challenge = clientChallenge(clientDataJSON);
    const rec = await this.store.takeChallenge(challenge);
    if (!rec) throw new CeremonyError('challenge_unknown');
    if (rec.kind !== kind) throw new CeremonyError('challenge_wrong_kind');
    if (rec.expiresAt <= this.clock.now()) throw new CeremonyError('challenge_expired');
    if (binding === undefined || sha256Hex(binding) !== rec.bindingHash) throw new CeremonyError('challenge_binding');
    return rec;
  }
}

/** Classify a verification error from @simplewebauthn/server into a stable reason (its text stays in the log). */
export function reasonFromLibraryError(e: unknown): AuthFailureReason {
  const m = e instanceof Error ? e.message : '';
  if (/origin/i.test(m)) return 'origin';
  if (/RP ID hash/.test(m)) return 'rp_id';
  if (/User verification/.test(m)) return 'user_verification';
  if (/User presence|User not present/.test(m)) return 'user_presence';
  if (/public key alg/.test(m)) return 'algorithm_not_allowed';
  return 'verification_failed';
}
