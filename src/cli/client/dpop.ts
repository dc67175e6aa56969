/**
 * The CLI's DPoP key (RFC 9449): generated locally, kept as a private JWK in the credentials
 * file, never sent — only its public half travels, in each proof's header.
 */
import { createHash } from 'node:crypto';
import { type CryptoKey, exportJWK, importJWK, type JWK, SignJWT } from 'jose';
import * as oidc from 'openid-client';
import { randomId } from '../../crypto/random.js';
import type { Clock } from '../../lib/clock.js';
import type { PrivateEcJwk } from './credentials.js';
import { ClientError } from './errors.js';

export interface DpopKey {
  pair: oidc.CryptoKeyPair;
  privateJwk: PrivateEcJwk;
  publicJwk: JWK;
}

export async function generateDpopKey(): Promise<DpopKey> {
  const pair = await oidc.randomDPoPKeyPair('ES256', { extractable: true });
  const jwk = await exportJWK(pair.privateKey);
  const privateJwk: PrivateEcJwk = {
    kty: 'EC',
    crv: 'P-256',
    x: jwk.x as string,
    y: jwk.y as string,
    d: jwk.d as string,
  };
  return { pair, privateJwk, publicJwk: publicOf(privateJwk) };
}

export async function importDpopKey(privateJwk: PrivateEcJwk): Promise<DpopKey> {
  const publicJwk = publicOf(privateJwk);
  try {
    const privateKey = (await importJWK({ ...privateJwk }, 'ES256')) as CryptoKey;
    const publicKey = (await importJWK(publicJwk, 'ES256', { extractable: true })) as CryptoKey;
    return { pair: { privateKey, publicKey }, privateJwk, publicJwk };
  } catch (e) {
    throw new ClientError('CREDENTIALS_UNUSABLE', 'the stored DPoP key cannot be used: run keygate login', {
      cause: e,
    });
  }
}

function publicOf(k: PrivateEcJwk): JWK {
  return { kty: k.kty, crv: k.crv, x: k.x, y: k.y };
}

/**
 * A DPoP proof for one request to a protected resource (RFC 9449 §4.2): a fresh `jti`, `iat`
 * now, the method, the target URI without query and fragment, and `ath`, the hash of the
 * access token it accompanies.
 */
export function dpopProof(key: DpopKey, clock: Clock, htm: string, target: URL, accessToken: string): Promise<string> {
  return new SignJWT({
    jti: randomId(),
    htm,
    htu: `${target.origin}${target.pathname}`,
    iat: Math.floor(clock.now() / 1000),
    ath: createHash('sha256').update(accessToken).digest('base64url'),
  })
    .setProtectedHeader({ alg: 'ES256', typ: 'dpop+jwt', jwk: key.publicJwk })
    .sign(key.pair.privateKey);
}
