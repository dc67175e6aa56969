import {
  type CryptoKey,
  calculateJwkThumbprint,
  decodeProtectedHeader,
  exportJWK,
  generateKeyPair,
  importJWK,
  jwtVerify,
} from 'jose';
import { describe, expect, it } from 'vitest';
import type { ActiveKey } from '../../crypto/keys.js';
import { signSubjectToken } from './subject-token.js';

async function key(): Promise<{ active: ActiveKey; verify: CryptoKey }> {
  const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
  const pub = await exportJWK(publicKey);
  const kid = await calculateJwkThumbprint(pub);
  const jwk = { ...(await exportJWK(privateKey)), kid, alg: 'ES256' };
  return {
    active: { kid, key: (await importJWK(jwk, 'ES256')) as CryptoKey, jwk },
    verify: publicKey as CryptoKey,
  };
}

const NOW = Date.UTC(2026, 5, 1, 12, 0, 0);
const spec = {
  issuer: 'https://keygate.example',
  audience: 'https://dbc-1.cloud.databricks.com/oidc/v1/token',
  subject: 'alice@example.com',
  subjectClaim: 'sub',
  lifetimeS: 300,
};

describe('subject token (RFC 8693 subject_token, RFC 7523 claims)', () => {
  it('is an ES256 JWT with kid, typ JWT, and exactly iss, sub, aud, iat, exp and jti', async () => {
    const k = await key();
    const jwt = await signSubjectToken(k.active, spec, NOW);
    expect(decodeProtectedHeader(jwt)).toEqual({ alg: 'ES256', kid: k.active.kid, typ: 'JWT' });
    const { payload } = await jwtVerify(jwt, k.verify, {
      issuer: spec.issuer,
      audience: spec.audience,
      currentDate: new Date(NOW),
    });
    expect(Object.keys(payload).sort()).toEqual(['aud', 'exp', 'iat', 'iss', 'jti', 'sub']);
    expect(payload).toMatchObject({ sub: 'alice@example.com', iat: NOW / 1000, exp: NOW / 1000 + 300 });
    expect(String(payload.jti)).toMatch(/^[\w-]{22}$/);
  });

  it('puts the subject in a custom subject claim as well as in sub', async () => {
    const k = await key();
    const jwt = await signSubjectToken(k.active, { ...spec, subjectClaim: 'email' }, NOW);
    const { payload } = await jwtVerify(jwt, k.verify, { currentDate: new Date(NOW) });
    expect(payload).toMatchObject({ sub: 'alice@example.com', email: 'alice@example.com' });
  });

  it('a fresh jti every time', async () => {
    const k = await key();
    const a = await jwtVerify(await signSubjectToken(k.active, spec, NOW), k.verify, { currentDate: new Date(NOW) });
    const b = await jwtVerify(await signSubjectToken(k.active, spec, NOW), k.verify, { currentDate: new Date(NOW) });
    expect(a.payload.jti).not.toBe(b.payload.jti);
  });
});
