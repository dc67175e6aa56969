/**
 * What one DPoP proof check costs, and what it is made of: CPU time per operation in one
 * process (run it pinned: `taskset -c 0 npx tsx bench/tokens/proof-cost.ts`).
 *
 *   keygate checkProof   Keygate's own AccessTokens.checkProof on a fresh ES256 proof
 *   jose jwtVerify       the jose call it starts with (EmbeddedJWK: the key imported per proof)
 *   importJWK            importing the proof's public key through WebCrypto
 *   jwtVerify, key given the same verify with the key imported once
 *   thumbprint           calculateJwkThumbprint of the proof's key (RFC 7638)
 *   node verify          node:crypto's synchronous ECDSA P-256 verify, KeyObject made once: the floor
 *   sha256 ath           hashing a ~900-byte access token
 *
 *   npx tsx bench/tokens/proof-cost.ts [--n 3000] [--rounds 3]
 */
import { createHash, createPublicKey, verify } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { parseArgs } from 'node:util';
import { calculateJwkThumbprint, EmbeddedJWK, importJWK, type JWK, jwtVerify } from 'jose';
import { systemClock as clock } from '../../src/lib/clock.js';
import { AccessTokens, DpopReplayCache } from '../../src/oauth/access-tokens.js';
import { bulkProofs, newDpopKey } from './dpop.js';

const { values: args } = parseArgs({
  options: { n: { type: 'string', default: '3000' }, rounds: { type: 'string', default: '3' } },
});
const N = Number(args.n);
const ROUNDS = Number(args.rounds);
const ORIGIN = 'http://127.0.0.1:8443';
const PATH = '/api/2.0/clusters/list';
const TOKEN = 'e'.repeat(900); // a stand-in of an access token's length; only its hash is used

const key = await newDpopKey();
const jkt = await calculateJwkThumbprint(key.publicJwk);
// Only checkProof is called: the token-side dependencies are never reached.
const tokens = new AccessTokens({
  issuer: () => ORIGIN,
  jwks: () => ({ keys: [] }),
  reloadKeys: async () => false,
  revocations: undefined as never,
  replay: new DpopReplayCache(clock),
  clock,
  origins: () => [ORIGIN],
});

let proofs: string[] = [];
let next = 0;
const proof = () => proofs[next++] as string;
const imported = await importJWK(key.publicJwk, 'ES256');
const keyObject = createPublicKey({ key: key.publicJwk as JWK & { kty: string }, format: 'jwk' });

const cases: [string, () => unknown][] = [
  [
    'keygate checkProof',
    () =>
      tokens.checkProof(
        { method: 'GET', url: PATH, headers: { dpop: proof() } } as unknown as IncomingMessage,
        TOKEN,
        jkt,
      ),
  ],
  ['jose jwtVerify (EmbeddedJWK)', () => jwtVerify(proof(), EmbeddedJWK, { typ: 'dpop+jwt', algorithms: ['ES256'] })],
  ['importJWK', () => importJWK(key.publicJwk, 'ES256')],
  ['jose jwtVerify, key given', () => jwtVerify(proof(), imported, { typ: 'dpop+jwt', algorithms: ['ES256'] })],
  ['thumbprint', () => calculateJwkThumbprint(key.publicJwk)],
  [
    'node verify (sync, KeyObject)',
    () => {
      const p = proof();
      const dot = p.lastIndexOf('.');
      const sig = Buffer.from(p.slice(dot + 1), 'base64url');
      return verify('sha256', Buffer.from(p.slice(0, dot)), { key: keyObject, dsaEncoding: 'ieee-p1363' }, sig);
    },
  ],
  ['sha256 ath', () => createHash('sha256').update(TOKEN).digest('base64url')],
];

const cpuUs = () => {
  const c = process.cpuUsage();
  return c.user + c.system;
};
const results = new Map<string, number[]>(cases.map(([name]) => [name, []]));
for (let round = 0; round <= ROUNDS; round++) {
  for (const [name, op] of cases) {
    proofs = bulkProofs(key, 'GET', ORIGIN + PATH, TOKEN, N);
    next = 0;
    const c0 = cpuUs();
    for (let i = 0; i < N; i++) await op();
    const perOp = (cpuUs() - c0) / N;
    // Round 0 warms up the JIT and is not kept.
    if (round > 0) results.get(name)?.push(perOp);
  }
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
console.log(`CPU per operation (all threads), median of ${ROUNDS} rounds of ${N}; Node ${process.version}\n`);
console.log('| operation | µs CPU |\n|---|---|');
for (const [name, xs] of results) console.log(`| ${name} | ${median(xs).toFixed(1)} |`);
