/**
 * bench/audit/chain.ts: how fast the audit chain is written (hashing, batches of 5,000, one
 * synchronous=FULL commit each, on this thread) and how long `verifyChain` — what
 * `keygate audit verify` runs — takes over the result.
 *
 *   npx tsx bench/audit/chain.ts              # 1,000,000 records
 *   N=100000 npx tsx bench/audit/chain.ts
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportJWK, generateKeyPair } from 'jose';
import { openAuditDb, queued, SqliteChain, signerFor } from '../../src/audit/sqlite-chain.js';
import { verifyChain } from '../../src/audit/verify.js';
const path = join(mkdtempSync(join(tmpdir(), 'kg-bench-audit-')), 'audit.db');
for (const f of [path, `${path}-wal`, `${path}-shm`]) rmSync(f, { force: true });
const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
const db = openAuditDb(path);
const chain = new SqliteChain(db, {
  every: 10_000,
  everyMs: 3_600_000,
  sign: await signerFor({ kid: 'k', jwk: await exportJWK(privateKey) }),
});
const N = Number(process.env.N ?? 1_000_000);
// 1,000 people, each actor one shared (frozen) object, as the gateway caches them per identity.
const actors = Array.from({ length: 1000 }, (_, u) =>
  Object.freeze({
    type: 'user' as const,
    id: `u${u}`,
    email: `u${u}@example.com`,
    authEventId: '6f1c2a9e-4b3d-4e8f-9a7b-1c2d3e4f5a6b',
    method: 'dpop',
    uv: true,
    authTime: 1_800_000_000_000,
    deviceBound: true,
  }),
);
let t = performance.now();
for (let i = 0; i < N; i += 5000) {
  await chain.append(
    Array.from({ length: 5000 }, (_, k) =>
      queued({
        kind: 'http.request' as const,
        at: 1_800_000_000_000 + i + k,
        actor: actors[(i + k) % 1000] as (typeof actors)[number],
        request: {
          method: 'POST',
          path: '/serving-endpoints/fraud/invocations',
          action: 'serving:invoke',
          resource: 'Endpoint::fraud',
          ip: '10.0.4.7',
          userAgent: 'databricks-sdk-py/0.133.0',
          requestId: `req-${i + k}`,
        },
        decision: { effect: 'allow' as const, reasons: ['role:ml-inference:0'] },
        upstream: { name: 'workspace', status: 200, latencyMs: 41.2, bytes: 312 },
        status: 200,
      }),
    ),
  );
}
const writeS = (performance.now() - t) / 1000;
console.log(
  `wrote ${N} records in ${writeS.toFixed(1)} s (${(N / writeS).toFixed(0)} records/s, batches of 5000, hashing + FULL commits)`,
);
db.close();
const db2 = openAuditDb(path);
t = performance.now();
const r = await verifyChain(db2, { keys: [{ ...(await exportJWK(publicKey)), kid: 'k', alg: 'ES256' }] });
console.log(
  `verify: ok=${r.ok} records=${r.records} checkpoints=${r.checkpoints} in ${((performance.now() - t) / 1000).toFixed(1)} s`,
);
db2.close();
rmSync(path, { force: true });
