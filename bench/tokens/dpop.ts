/**
 * DPoP proofs (RFC 9449 §4.2) for the benchmark's client: one ES256 key per run.
 *
 * The proof for the token request is built with jose, as a client would. The proofs for proxied
 * requests are made in bulk before each round (tens of thousands), so they are signed with
 * node:crypto directly — the same JWS (ES256, raw r‖s signature), a fraction of the cost —
 * and checked once against jose's verifier so the two cannot drift apart.
 */
import { createHash, generateKeyPairSync, type KeyObject, randomUUID, sign } from 'node:crypto';
import { EmbeddedJWK, exportJWK, type JWK, jwtVerify, SignJWT } from 'jose';

export interface DpopKey {
  privateKey: KeyObject;
  publicJwk: JWK;
}

export async function newDpopKey(): Promise<DpopKey> {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const { kty, crv, x, y } = await exportJWK(publicKey);
  return { privateKey, publicJwk: { kty, crv, x, y } as JWK };
}

/** `ath`: base64url(SHA-256(access token)). */
export const ath = (accessToken: string): string => createHash('sha256').update(accessToken).digest('base64url');

/** The proof for one token request, made the way a client would make it (jose). */
export async function tokenRequestProof(key: DpopKey, htu: string): Promise<string> {
  return new SignJWT({ htm: 'POST', htu, iat: Math.floor(Date.now() / 1000), jti: randomUUID() })
    .setProtectedHeader({ alg: 'ES256', typ: 'dpop+jwt', jwk: key.publicJwk })
    .sign(key.privateKey);
}

/**
 * `count` proofs for `htm htu` (with the access token's hash when one is given), iat = now and
 * a fresh jti each: the header and the constant claims are encoded once, only the jti changes.
 */
export function bulkProofs(
  key: DpopKey,
  htm: 'GET' | 'POST',
  htu: string,
  accessToken: string | undefined,
  count: number,
): string[] {
  const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const header = b64({ alg: 'ES256', typ: 'dpop+jwt', jwk: key.publicJwk });
  const iat = Math.floor(Date.now() / 1000);
  const claims = accessToken === undefined ? {} : { ath: ath(accessToken) };
  const out = new Array<string>(count);
  for (let i = 0; i < count; i++) {
    const input = `${header}.${b64({ htm, htu, iat, jti: randomUUID(), ...claims })}`;
    const sig = sign('sha256', Buffer.from(input), { key: key.privateKey, dsaEncoding: 'ieee-p1363' });
    out[i] = `${input}.${sig.toString('base64url')}`;
  }
  return out;
}

/** Check one bulk proof with jose's verifier (the same checks Keygate starts with). */
export async function checkBulkProof(proof: string, htu: string, accessToken: string): Promise<void> {
  const { payload } = await jwtVerify(proof, EmbeddedJWK, { typ: 'dpop+jwt', algorithms: ['ES256'] });
  if (payload.htu !== htu || payload.htm !== 'GET' || payload.ath !== ath(accessToken)) {
    throw new Error('bulk DPoP proof does not carry the expected claims');
  }
}
