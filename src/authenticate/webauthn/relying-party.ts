import type { Config } from '../../config/schema.js';

/** The relying party as the ceremonies see it, resolved once from config and the public URL. */
export interface RelyingParty {
  id: string;
  name: string;
  origins: string[];
  userVerification: 'required' | 'preferred' | 'discouraged';
  residentKey: 'required' | 'preferred' | 'discouraged';
  attestation: 'none' | 'direct';
  aaguidAllowList: readonly string[];
  allowSyncedPasskeys: boolean;
  challengeTimeoutMs: number;
  /** COSE algorithms offered and accepted: ES256, EdDSA, RS256 (SECURITY-CHECKLIST R9: the same list on both sides). */
  algorithms: number[];
}

export function relyingParty(config: Config, publicOrigin: string): RelyingParty {
  const w = config.webauthn;
  return {
    id: w.rpId ?? new URL(publicOrigin).hostname,
    name: w.rpName,
    origins: w.origins.length > 0 ? w.origins.map((o) => new URL(o).origin) : [publicOrigin],
    userVerification: w.userVerification,
    residentKey: w.residentKey,
    attestation: w.attestation,
    aaguidAllowList: w.aaguidAllowList,
    allowSyncedPasskeys: w.allowSyncedPasskeys,
    challengeTimeoutMs: w.challengeTimeout,
    algorithms: [-7, -8, -257],
  };
}
