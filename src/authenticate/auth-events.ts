import { randomUUID } from 'node:crypto';
import type { Clock } from '../lib/clock.js';
import type { AuthEventRecord, Store } from '../store/types.js';
import { authenticatorName } from './webauthn/authenticators.js';

/**
 * The catalogue of authentication events (success and failure side by side). Every ceremony
 * writes one, whatever its outcome; the audit log (issue 6) will chain them.
 */
export const AUTH_EVENT_KINDS = [
  'auth.register', // a credential was registered (enrollment, backup key, recovery)
  'auth.login', // a WebAuthn login
  'auth.idp_login', // a login through a corporate identity provider (OIDC), before the key or instead of it
  'auth.step_up', // a fresh, user-verified assertion for a sensitive action (RFC 9470)
  'auth.approval', // a person's user-verified assertion approving one exact request of their agent
  'agent.granted', // a person delegated actions to an agent
  'agent.grant_revoked', // a person (or an admin) ended a delegation
  'auth.logout',
  'auth.credential_revoked',
  'auth.credential_renamed',
  'auth.enrollment_issued', // an enrollment or recovery link was created
  'auth.recovery_issued',
  'auth.recovery_used', // a recovery link was used to register a new credential
  'token.issued', // the authorization server issued a token (people: after an OAuth login; machines: each grant)
  'token.refused', // a token request was refused for a reason worth auditing (federation, exchange)
  'token.reuse_detected', // a rotated refresh token was presented again: its whole family was revoked
  'token.revoked', // a token or a grant was revoked (RFC 7009, logout)
] as const;
export type AuthEventKind = (typeof AUTH_EVENT_KINDS)[number];

/** Machine-readable failure reasons: what operators and tests see; clients get a generic error. */
export type AuthFailureReason =
  | 'challenge_unknown'
  | 'challenge_expired'
  | 'challenge_wrong_kind'
  | 'challenge_binding'
  | 'malformed_response'
  | 'verification_failed'
  | 'origin'
  | 'rp_id'
  | 'user_presence'
  | 'user_verification'
  | 'signature'
  | 'counter_regression'
  | 'concurrent_use'
  | 'unknown_credential'
  | 'credential_revoked'
  | 'credential_cloned'
  | 'credential_not_allowed'
  | 'user_handle_mismatch'
  | 'user_handle_missing'
  | 'backup_eligibility_changed'
  | 'synced_passkey_refused'
  | 'user_disabled'
  | 'duplicate_credential'
  | 'credential_id_too_long'
  | 'algorithm_not_allowed'
  | 'aaguid_not_allowed'
  | 'aaguid_revoked'
  | 'attestation_required'
  | 'enrollment_token_invalid'
  | 'federation_malformed'
  | 'federation_issuer'
  | 'federation_signature'
  | 'federation_audience'
  | 'federation_expired'
  | 'federation_subject'
  | 'federation_principal'
  | 'federation_client'
  | 'federation_replayed'
  | 'exchange_subject_invalid'
  | 'exchange_subject_revoked'
  | 'exchange_subject_not_bound'
  | 'exchange_proof_invalid'
  | 'refresh_token_reused'
  | 'approval_not_pending'
  | 'delegation_invalid'
  | 'idp_state'
  | 'idp_token'
  | 'idp_claims'
  | 'idp_email_unverified'
  | 'idp_mfa'
  | 'idp_not_approved'
  | 'idp_refused';

export interface EventContext {
  ip: string;
  userAgent: string;
}

export interface EventDetails {
  outcome: 'success' | 'failure';
  reason?: AuthFailureReason | null;
  userId?: string | null;
  credentialId?: string | null;
  aaguid?: string | null;
  uv?: boolean | null;
  backupEligible?: boolean | null;
  backedUp?: boolean | null;
  /** For the audit log: a machine's events name it as a service principal, and how it authenticated. */
  principalType?: 'user' | 'service_principal';
  via?: string;
}

export class AuthEvents {
  constructor(
    private readonly store: Store,
    private readonly clock: Clock,
  ) {}

  /** Told of every event once it is stored (the audit log subscribes). */
  onStored: ((e: AuthEventRecord) => void) | undefined;

  async record(kind: AuthEventKind, ctx: EventContext, d: EventDetails): Promise<AuthEventRecord> {
    const e = this.build(kind, ctx, d);
    await this.store.insertAuthEvent(e);
    this.stored(e);
    return e;
  }

  /** For events written by another transaction (a login's): report them once committed. */
  stored(e: AuthEventRecord): void {
    this.onStored?.(e);
  }

  /** The event, not yet written (for writes that must land together with it). */
  build(kind: AuthEventKind, ctx: EventContext, d: EventDetails): AuthEventRecord {
    return {
      id: randomUUID(),
      at: this.clock.now(),
      kind,
      outcome: d.outcome,
      reason: d.reason ?? null,
      userId: d.userId ?? null,
      credentialId: d.credentialId ?? null,
      aaguid: d.aaguid ?? null,
      authenticator: d.aaguid ? authenticatorName(d.aaguid) : null,
      uv: d.uv ?? null,
      backupEligible: d.backupEligible ?? null,
      backedUp: d.backedUp ?? null,
      // Bounded: a user agent is attacker-controlled text.
      ip: ctx.ip.slice(0, 64),
      userAgent: ctx.userAgent.slice(0, 512),
      ...(d.principalType === undefined ? {} : { principalType: d.principalType }),
      ...(d.via === undefined ? {} : { via: d.via }),
    };
  }
}
