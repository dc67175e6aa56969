/**
 * The WebAuthn relying-party ceremonies (WebAuthn L3 §7.1 registration, §7.2 authentication).
 * @simplewebauthn/server does the CBOR/COSE parsing, attestation formats and signature checks;
 * this file does what the library leaves to the relying party (SECURITY-CHECKLIST ✘ rows):
 * challenge custody, credential ownership, user handles, counters, backup flags, policy, and
 * persistence — in the order the spec gives, each step commented with what it ensures.
 */
import { createHmac } from 'node:crypto';
import {
  type AuthenticatorTransport,
  generateAuthenticationOptions,
  generateRegistrationOptions,
  type PublicKeyCredentialCreationOptionsJSON,
  type PublicKeyCredentialRequestOptionsJSON,
  verifyAuthenticationResponse,
  verifyRegistrationResponse,
} from '@simplewebauthn/server';
import type { z } from 'zod';
import { KeygateError } from '../../errors/index.js';
import type { Clock } from '../../lib/clock.js';
import {
  type CredentialRecord,
  DuplicateCredentialError,
  type SessionIdp,
  type Store,
  type UserRecord,
} from '../../store/types.js';
import type { AuthEvents, AuthFailureReason, EventContext } from '../auth-events.js';
import type { Sessions } from '../sessions.js';
import { authenticatorName } from './authenticators.js';
import { CeremonyError, type Ceremonies, reasonFromLibraryError } from './ceremony.js';
import type { AuthenticatorMetadata } from './metadata.js';
import type { RelyingParty } from './relying-party.js';
import {
  asAuthenticationJSON,
  asRegistrationJSON,
  type authenticationVerifyBody,
  type registrationVerifyBody,
} from './wire.js';

export interface WebAuthnDeps {
  store: Store;
  clock: Clock;
  /** Resolved on first use: the public origin is known once the gateway listens. */
  rp: () => RelyingParty;
  ceremonies: Ceremonies;
  events: AuthEvents;
  sessions: Sessions;
  /** From a FIDO MDS BLOB, when configured: models reported revoked or compromised are refused. */
  metadata?: AuthenticatorMetadata | undefined;
  /** Key for the decoy credential ids shown for unknown emails (no user enumeration, ASVS 6.3.8). */
  decoyKey: string;
  log: (detail: Record<string, unknown>, msg: string) => void;
}

export interface RegistrationOutcome {
  credential: CredentialRecord;
  user: UserRecord;
  viaEnrollment: boolean;
  /** The kind of link that allowed it (enroll or recovery), or null for a logged-in user. */
  enrollmentKind: 'enroll' | 'recovery' | null;
  eventId: string;
}

export interface LoginOutcome {
  credential: CredentialRecord;
  user: UserRecord;
  uv: boolean;
  eventId: string;
  /** The new session's cookie value. */
  sessionValue: string;
}

const REGISTRATION_MESSAGES: Partial<Record<AuthFailureReason, string>> = {
  aaguid_not_allowed: 'This authenticator model is not allowed here.',
  aaguid_revoked: 'This authenticator model has been reported revoked or compromised by the FIDO Alliance.',
  synced_passkey_refused: 'Synced passkeys are not allowed here: use a security key or a device-bound passkey.',
  user_verification: 'The authenticator did not verify you (PIN or biometric); that is required here.',
  attestation_required: 'This authenticator did not prove its model (attestation), which is required here.',
  algorithm_not_allowed: 'This authenticator uses a key type that is not allowed.',
};

function base64urlBytes(s: string): number {
  return Buffer.from(s, 'base64url').length;
}

export class WebAuthnService {
  constructor(private readonly d: WebAuthnDeps) {}

  // ---- registration (WebAuthn L3 §7.1) ------------------------------------------------------

  async registrationOptions(
    user: UserRecord,
    binding: string,
    enrollmentHash: string | null,
  ): Promise<PublicKeyCredentialCreationOptionsJSON> {
    const rp = this.d.rp();
    const existing = (await this.d.store.listCredentials(user.id)).filter((c) => c.revokedAt === null);
    const challenge = await this.d.ceremonies.issue('registration', binding, { userId: user.id, enrollmentHash });
    return generateRegistrationOptions({
      rpName: rp.name,
      rpID: rp.id,
      userName: user.email,
      userDisplayName: user.displayName,
      userID: new Uint8Array(Buffer.from(user.webauthnId, 'base64url')),
      challenge: new Uint8Array(Buffer.from(challenge, 'base64url')),
      timeout: rp.challengeTimeoutMs,
      attestationType: rp.attestation,
      excludeCredentials: existing.map((c) => ({ id: c.id, transports: c.transports as AuthenticatorTransport[] })),
      authenticatorSelection: { residentKey: rp.residentKey, userVerification: rp.userVerification },
      supportedAlgorithmIDs: rp.algorithms,
    });
  }

  /**
   * Verify a registration. `sessionUserId` is the logged-in user (adding a key), or null when an
   * enrollment link allowed the ceremony; the credential is stored under the user the challenge
   * was issued to, never one named in the request (SECURITY-CHECKLIST R15).
   */
  async verifyRegistration(
    body: z.infer<typeof registrationVerifyBody>,
    ctx: EventContext & { binding: string | undefined; sessionUserId: string | null; enrollmentHash: string | null },
  ): Promise<RegistrationOutcome> {
    const rp = this.d.rp();
    const { store, clock } = this.d;
    let userId: string | null = null;
    const fail = async (reason: AuthFailureReason, extra: Record<string, unknown> = {}): Promise<never> => {
      await this.d.events.record('auth.register', ctx, { outcome: 'failure', reason, userId, ...extra });
      throw registrationError(reason);
    };

    // R2: the challenge is ours, for a registration, to this browser, unexpired — and now spent.
    let challenge: Awaited<ReturnType<Ceremonies['take']>>;
    try {
      challenge = await this.d.ceremonies.take('registration', body.response.response.clientDataJSON, ctx.binding);
    } catch (e) {
      if (e instanceof CeremonyError) return fail(e.reason);
      throw e;
    }
    userId = challenge.userId;

    // Who may register: the holder of the enrollment link the challenge was issued for, or the
    // logged-in user it was issued to.
    if (challenge.enrollmentHash !== null) {
      // The link's holder presents it again: a challenge issued for a link is useless without it.
      if (ctx.enrollmentHash !== challenge.enrollmentHash) return fail('enrollment_token_invalid');
    } else if (ctx.sessionUserId === null || ctx.sessionUserId !== challenge.userId) {
      return fail('challenge_binding');
    }
    const user = challenge.userId === null ? null : await store.getUser(challenge.userId);
    if (!user || user.disabledAt !== null) return fail('user_disabled');

    // R1, R3, R5–R10: type, origin, RP ID hash, UP, UV, backup flags, algorithm, attestation
    // statement — verified by the library against our expectations.
    let info: NonNullable<Awaited<ReturnType<typeof verifyRegistrationResponse>>['registrationInfo']>;
    try {
      const v = await verifyRegistrationResponse({
        response: asRegistrationJSON(body.response),
        expectedChallenge: challenge.challenge,
        expectedOrigin: rp.origins,
        expectedRPID: rp.id,
        expectedType: 'webauthn.create',
        requireUserPresence: true,
        requireUserVerification: rp.userVerification === 'required',
        supportedAlgorithmIDs: rp.algorithms,
      });
      if (!v.verified || !v.registrationInfo) return fail('verification_failed');
      info = v.registrationInfo;
    } catch (e) {
      if (e instanceof KeygateError) throw e;
      this.d.log({ detail: (e as Error).message }, 'registration verification failed');
      return fail(reasonFromLibraryError(e));
    }
    const details = {
      credentialId: info.credential.id,
      aaguid: info.aaguid,
      uv: info.userVerified,
      backupEligible: info.credentialDeviceType === 'multiDevice',
      backedUp: info.credentialBackedUp,
    };

    // R12: credential ids are at most 1023 bytes.
    if (base64urlBytes(info.credential.id) > 1023) return fail('credential_id_too_long', details);
    // Policy: authenticator models (AAGUID allow-list), attestation, synced passkeys.
    if (rp.aaguidAllowList.length > 0 && !rp.aaguidAllowList.includes(info.aaguid)) {
      return fail('aaguid_not_allowed', details);
    }
    if (this.d.metadata?.isRefused(info.aaguid)) return fail('aaguid_revoked', details);
    if (rp.attestation === 'direct' && info.fmt === 'none') return fail('attestation_required', details);
    if (!rp.allowSyncedPasskeys && info.credentialDeviceType === 'multiDevice') {
      return fail('synced_passkey_refused', details);
    }

    // An enrollment link is single use: spend it now (race-free), before anything is stored.
    let enrollmentKind: RegistrationOutcome['enrollmentKind'] = null;
    if (challenge.enrollmentHash !== null) {
      enrollmentKind = (await store.getEnrollmentToken(challenge.enrollmentHash))?.kind ?? null;
      if (!(await store.consumeEnrollmentToken(challenge.enrollmentHash, clock.now()))) {
        return fail('enrollment_token_invalid', details);
      }
    }

    // R13: a credential id registered to anyone is refused (unique key in the store).
    const now = clock.now();
    const credential: CredentialRecord = {
      id: info.credential.id,
      userId: user.id,
      publicKey: info.credential.publicKey,
      counter: info.credential.counter,
      aaguid: info.aaguid,
      transports: info.credential.transports ?? body.response.response.transports ?? [],
      backupEligible: info.credentialDeviceType === 'multiDevice',
      backedUp: info.credentialBackedUp,
      uvInitialized: info.userVerified,
      attestationFmt: info.fmt,
      attested: info.fmt !== 'none',
      name: body.name ?? defaultName(info.aaguid, info.credentialDeviceType === 'multiDevice'),
      createdAt: now,
      lastUsedAt: null,
      revokedAt: null,
      clonedAt: null,
    };
    try {
      await store.insertCredential(credential);
    } catch (e) {
      if (e instanceof DuplicateCredentialError) return fail('duplicate_credential', details);
      throw e;
    }
    const ev = await this.d.events.record('auth.register', ctx, { outcome: 'success', userId: user.id, ...details });
    return { credential, user, viaEnrollment: challenge.enrollmentHash !== null, enrollmentKind, eventId: ev.id };
  }

  // ---- authentication (WebAuthn L3 §7.2) ----------------------------------------------------

  async authenticationOptions(
    email: string | undefined,
    binding: string,
  ): Promise<PublicKeyCredentialRequestOptionsJSON> {
    const rp = this.d.rp();
    const { store } = this.d;
    let userId: string | null = null;
    let allow: { id: string; transports?: AuthenticatorTransport[] }[] = [];
    if (email !== undefined && email !== '') {
      const user = await store.getUserByEmail(email);
      const creds = user && user.disabledAt === null ? (await store.listCredentials(user.id)).filter(usable) : [];
      if (user && creds.length > 0) {
        userId = user.id;
        // No transports: they would tell a real account from the decoy below.
        allow = creds.map((c) => ({ id: c.id }));
      } else {
        // Unknown email: a stable decoy id, so the answer looks like a real user's (ASVS 6.3.8).
        allow = [{ id: this.decoyId(email) }];
        userId = `decoy:${email.toLowerCase()}`;
      }
    }
    const challenge = await this.d.ceremonies.issue('authentication', binding, {
      userId,
      allowIds: allow.map((a) => a.id),
    });
    return generateAuthenticationOptions({
      rpID: rp.id,
      challenge: new Uint8Array(Buffer.from(challenge, 'base64url')),
      timeout: rp.challengeTimeoutMs,
      userVerification: rp.userVerification,
      allowCredentials: allow,
    });
  }

  /** Step-up (RFC 9470): the session's user taps one of their keys again, with user verification. */
  async stepUpOptions(user: UserRecord, binding: string): Promise<PublicKeyCredentialRequestOptionsJSON> {
    const rp = this.d.rp();
    const creds = (await this.d.store.listCredentials(user.id)).filter(usable);
    const allow = creds.map((c) => ({ id: c.id, transports: c.transports as AuthenticatorTransport[] }));
    const challenge = await this.d.ceremonies.issue('authentication', binding, {
      userId: user.id,
      allowIds: allow.map((a) => a.id),
    });
    return generateAuthenticationOptions({
      rpID: rp.id,
      challenge: new Uint8Array(Buffer.from(challenge, 'base64url')),
      timeout: rp.challengeTimeoutMs,
      userVerification: 'required',
      allowCredentials: allow,
    });
  }

  async verifyAuthentication(
    body: z.infer<typeof authenticationVerifyBody>,
    ctx: EventContext & {
      binding: string | undefined;
      previousSession: string | undefined;
      /** Set for a step-up: the session's user, who must be the one answering, with UV. */
      stepUpFor?: string;
      /**
       * Set after an identity provider login (require-local-key): the person it named must be the
       * one answering, and the session records that provider login too.
       */
      afterIdp?: { userId: string; idp: SessionIdp };
    },
  ): Promise<LoginOutcome> {
    const rp = this.d.rp();
    const { store, clock } = this.d;
    const r = body.response;
    const kind = ctx.stepUpFor === undefined ? 'auth.login' : 'auth.step_up';
    let userId: string | null = null;
    let details: Record<string, unknown> = { credentialId: r.id };
    const fail = async (reason: AuthFailureReason): Promise<never> => {
      await this.d.events.record(kind, ctx, { outcome: 'failure', reason, userId, ...details });
      throw loginError(reason);
    };

    // A4: the challenge is ours, for a login, to this browser, unexpired — and now spent.
    let challenge: Awaited<ReturnType<Ceremonies['take']>>;
    try {
      challenge = await this.d.ceremonies.take('authentication', r.response.clientDataJSON, ctx.binding);
    } catch (e) {
      if (e instanceof CeremonyError) return fail(e.reason);
      throw e;
    }

    // A2: find the credential by its id; it must exist, be live, and not be suspected cloned.
    const cred = await store.getCredential(r.id);
    if (!cred) return fail('unknown_credential');
    userId = cred.userId;
    details = { credentialId: cred.id, aaguid: cred.aaguid, backupEligible: cred.backupEligible };
    if (cred.revokedAt !== null) return fail('credential_revoked');
    if (cred.clonedAt !== null) return fail('credential_cloned');

    // A1/A2: in a username-first login (and a step-up) the credential must belong to that user
    // and be offered.
    const only = ctx.stepUpFor ?? ctx.afterIdp?.userId;
    if (only !== undefined && (challenge.userId !== only || cred.userId !== only)) {
      return fail('credential_not_allowed');
    }
    if (challenge.userId !== null && challenge.userId !== cred.userId) return fail('credential_not_allowed');
    if (challenge.allowIds.length > 0 && !challenge.allowIds.includes(cred.id)) return fail('credential_not_allowed');

    const user = await store.getUser(cred.userId);
    if (!user || user.disabledAt !== null) return fail('user_disabled');

    // A2: the user handle, when present, must be the owner's; a discoverable login needs one.
    const handle = r.response.userHandle;
    if (handle !== undefined && handle !== '' && handle !== user.webauthnId) return fail('user_handle_mismatch');
    if (challenge.userId === null && (handle === undefined || handle === '')) return fail('user_handle_missing');

    // A3, A5–A9, A11: type, origin, RP ID hash, UP, UV and the signature, by the library. The
    // counter check is ours (below, after the signature is known good), so pass 0 here.
    const checked = await this.checkAssertion(
      r,
      cred,
      challenge.challenge,
      // A step-up always needs user verification, whatever the login policy.
      ctx.stepUpFor !== undefined || rp.userVerification === 'required',
    );
    if ('reason' in checked) return fail(checked.reason);
    const info = checked.info;
    details = { ...details, uv: info.userVerified, backedUp: info.credentialBackedUp };

    // A13: persist counter and flags only now, as a compare-and-swap on the counter, together
    // with the auth event and the new session (a new id: no fixation; the old one ends).
    const event = this.d.events.build(kind, ctx, { outcome: 'success', userId: user.id, ...details });
    const session = this.d.sessions.prepare(user, cred, event.id, info.userVerified, {
      ...ctx,
      idp: ctx.afterIdp?.idp,
    });
    const ok = await store.completeLogin({
      credentialId: cred.id,
      expectedCounter: cred.counter,
      use: { counter: info.newCounter, backedUp: info.credentialBackedUp, uv: info.userVerified, at: clock.now() },
      event,
      session: session.record,
      endSessionHash: this.d.sessions.endingHash(ctx.previousSession),
    });
    if (!ok) return fail('concurrent_use');
    this.d.events.stored(event);
    return {
      credential: { ...cred, counter: info.newCounter },
      user,
      uv: info.userVerified,
      eventId: event.id,
      sessionValue: session.value,
    };
  }

  /**
   * Options for approving one exact request of an agent: the challenge is not random but
   * derived from the request's digest and the approval id (src/agents/approvals.ts), so the
   * assertion signs that request; only the person's own live keys are offered, with UV.
   */
  async approvalOptions(user: UserRecord, challenge: string): Promise<PublicKeyCredentialRequestOptionsJSON> {
    const rp = this.d.rp();
    const creds = (await this.d.store.listCredentials(user.id)).filter(usable);
    return generateAuthenticationOptions({
      rpID: rp.id,
      challenge: new Uint8Array(Buffer.from(challenge, 'base64url')),
      timeout: rp.challengeTimeoutMs,
      userVerification: 'required',
      allowCredentials: creds.map((c) => ({ id: c.id, transports: c.transports as AuthenticatorTransport[] })),
    });
  }

  /**
   * The approving assertion (WebAuthn L3 §7.2 steps as in verifyAuthentication, with the
   * derived challenge in place of a stored one). The credential must be the approval's person's;
   * user verification is required; the counter moves and the approval turns approved in one
   * transaction. Every outcome is an `auth.approval` event (audited) naming the approval.
   */
  async verifyApproval(
    body: z.infer<typeof authenticationVerifyBody>,
    o: { approvalId: string; userId: string; challenge: string },
    ctx: EventContext,
  ): Promise<{ credentialId: string; eventId: string }> {
    const { store, clock } = this.d;
    const r = body.response;
    const via = `approval:${o.approvalId}`;
    let details: Record<string, unknown> = { credentialId: r.id };
    const fail = async (reason: AuthFailureReason): Promise<never> => {
      await this.d.events.record('auth.approval', ctx, {
        outcome: 'failure',
        reason,
        userId: o.userId,
        via,
        ...details,
      });
      throw loginError(reason);
    };
    // A2: the credential exists, is live, is not suspected cloned, and is the approver's own.
    const cred = await store.getCredential(r.id);
    if (!cred) return fail('unknown_credential');
    details = { credentialId: cred.id, aaguid: cred.aaguid, backupEligible: cred.backupEligible };
    if (cred.revokedAt !== null) return fail('credential_revoked');
    if (cred.clonedAt !== null) return fail('credential_cloned');
    if (cred.userId !== o.userId) return fail('credential_not_allowed');
    const user = await store.getUser(cred.userId);
    if (!user || user.disabledAt !== null) return fail('user_disabled');
    const handle = r.response.userHandle;
    if (handle !== undefined && handle !== '' && handle !== user.webauthnId) return fail('user_handle_mismatch');
    // A3, A5–A12 against the challenge derived for this approval (A4: it is bound to this
    // request; single use comes from the approval's status, below). UV is always required.
    const checked = await this.checkAssertion(r, cred, o.challenge, true);
    if ('reason' in checked) return fail(checked.reason);
    const info = checked.info;
    details = { ...details, uv: info.userVerified, backedUp: info.credentialBackedUp };
    // A13: counter, event and approval together; false when the approval is no longer pending
    // (denied, expired, approved already) or the counter moved meanwhile.
    const event = this.d.events.build('auth.approval', ctx, { outcome: 'success', userId: user.id, via, ...details });
    const ok = await store.approveWithCredential({
      approvalId: o.approvalId,
      userId: user.id,
      credentialId: cred.id,
      expectedCounter: cred.counter,
      use: { counter: info.newCounter, backedUp: info.credentialBackedUp, uv: info.userVerified, at: clock.now() },
      event,
    });
    if (!ok) return fail('approval_not_pending');
    this.d.events.stored(event);
    return { credentialId: cred.id, eventId: event.id };
  }

  /**
   * A3, A5–A12 for an assertion by a known, live credential. The library checks the type,
   * origin, RP ID hash, user presence, user verification (when required) and the signature over
   * `expectedChallenge`; the counter check is ours (after the signature is known good, so the
   * library gets 0): if either counter is non-zero the new one must be greater, otherwise the key
   * may be cloned — it is flagged (it can no longer log in) and refused. A10: backup
   * eligibility is fixed at creation (a change means another authenticator), and a policy may
   * refuse synced passkeys. The failure reason, or what the authenticator reported.
   */
  private async checkAssertion(
    r: z.infer<typeof authenticationVerifyBody>['response'],
    cred: CredentialRecord,
    expectedChallenge: string,
    requireUserVerification: boolean,
  ): Promise<
    | { info: Awaited<ReturnType<typeof verifyAuthenticationResponse>>['authenticationInfo'] }
    | { reason: AuthFailureReason }
  > {
    const rp = this.d.rp();
    let info: Awaited<ReturnType<typeof verifyAuthenticationResponse>>['authenticationInfo'];
    try {
      const v = await verifyAuthenticationResponse({
        response: asAuthenticationJSON(r),
        expectedChallenge,
        expectedOrigin: rp.origins,
        expectedRPID: rp.id,
        expectedType: 'webauthn.get',
        credential: { id: cred.id, publicKey: new Uint8Array(cred.publicKey), counter: 0, transports: cred.transports },
        requireUserVerification,
      });
      if (!v.verified) return { reason: 'signature' };
      info = v.authenticationInfo;
    } catch (e) {
      if (e instanceof KeygateError) throw e;
      this.d.log({ detail: (e as Error).message }, 'assertion verification failed');
      return { reason: reasonFromLibraryError(e) };
    }
    if ((cred.counter > 0 || info.newCounter > 0) && info.newCounter <= cred.counter) {
      await this.d.store.markCredentialCloned(cred.id, this.d.clock.now());
      return { reason: 'counter_regression' };
    }
    if ((info.credentialDeviceType === 'multiDevice') !== cred.backupEligible)
      return { reason: 'backup_eligibility_changed' };
    if (!rp.allowSyncedPasskeys && info.credentialDeviceType === 'multiDevice')
      return { reason: 'synced_passkey_refused' };
    return { info };
  }

  private decoyId(email: string): string {
    return createHmac('sha256', this.d.decoyKey).update(email.toLowerCase()).digest().toString('base64url');
  }
}

function usable(c: CredentialRecord): boolean {
  return c.revokedAt === null && c.clonedAt === null;
}

function defaultName(aaguid: string, synced: boolean): string {
  const model = authenticatorName(aaguid);
  if (model !== 'Unknown authenticator') return model;
  return synced ? 'Passkey' : 'Security key';
}

function isChallengeReason(r: AuthFailureReason): boolean {
  return r.startsWith('challenge_') || r === 'malformed_response';
}

function registrationError(reason: AuthFailureReason): KeygateError {
  if (isChallengeReason(reason)) return new KeygateError('CHALLENGE_INVALID', { detail: reason });
  if (reason === 'enrollment_token_invalid') return new KeygateError('ENROLLMENT_TOKEN_INVALID', { detail: reason });
  if (reason === 'duplicate_credential') return new KeygateError('CREDENTIAL_ALREADY_REGISTERED', { detail: reason });
  const message = REGISTRATION_MESSAGES[reason];
  return new KeygateError(
    'REGISTRATION_REFUSED',
    message === undefined ? { detail: reason } : { message, detail: reason },
  );
}

function loginError(reason: AuthFailureReason): KeygateError {
  if (isChallengeReason(reason)) return new KeygateError('CHALLENGE_INVALID', { detail: reason });
  return new KeygateError('LOGIN_FAILED', { detail: reason });
}
