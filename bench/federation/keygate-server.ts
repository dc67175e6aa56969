/**
 * The Keygates of bench/federation, all in this one process, each in front of bench/proxy's
 * minimal upstream with the workspace simulator (BENCH_SIM_URL) as its token endpoint:
 *
 *   m2m          databricks-m2m: one shared service principal token for everyone
 *   m2m-control  the same again: an identical gateway, to show how much two identical targets
 *                differ in this measurement (the noise floor of the comparison)
 *   federation   databricks-federation: a token per person, exchanged with a JWT Keygate signs
 *                (1 h, so nothing expires during a run); listens on BENCH_FED_PORT, and its
 *                publicUrl http://127.0.0.1:BENCH_FED_PORT is the federation policy's issuer
 *
 * One process, so that the comparison is of the code paths and not of two processes' JIT and
 * heap (separate processes of the same code differ by several per cent on a small VM). They are
 * measured one at a time; the others are idle. Each keeps its audit log in a real file on its
 * own writer thread, and authenticates callers with the test identifier
 * (`x-test-identity: test-identity-secret:<user>` → <user>@example.com).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEMO_SP, DEMO_SP_SECRET } from '../../sim/index.js';
import { parseConfig } from '../../src/config/load.js';
import type { CredentialConfig } from '../../src/config/schema.js';
import { Gateway } from '../../src/server/gateway.js';
import { SqliteStore } from '../../src/store/sqlite/index.js';
import { testIdentifier } from '../../test/helpers/index.js';

process.env.BENCH_SP_SECRET = DEMO_SP_SECRET;
const tokenUrl = `${process.env.BENCH_SIM_URL as string}/oidc/v1/token`;
const auditDir = mkdtempSync(join(tmpdir(), 'kg-bench-fed-audit-'));
process.once('exit', () => rmSync(auditDir, { recursive: true, force: true }));

async function start(name: string, port: number, credential: CredentialConfig | Record<string, unknown>) {
  const config = parseConfig({
    listen: { host: '127.0.0.1', port },
    // The federation gateway's issuer; the others have no use for one.
    ...(port === 0 ? {} : { publicUrl: `http://127.0.0.1:${port}` }),
    shutdown: { drainTimeout: '1s' },
    audit: { path: join(auditDir, `${name}.db`) },
    upstreams: { ws: { url: process.env.BENCH_UPSTREAM_URL as string, credential } },
  });
  const gw = await Gateway.create({
    config,
    store: new SqliteStore({ path: ':memory:' }),
    identifiers: [testIdentifier()],
  });
  return { gw, url: await gw.listen() };
}

const m2m = { type: 'databricks-m2m', clientId: DEMO_SP.userName, clientSecretEnv: 'BENCH_SP_SECRET', tokenUrl };
const started = {
  m2m: await start('m2m', 0, m2m),
  'm2m-control': await start('m2m-control', 0, m2m),
  federation: await start('federation', Number(process.env.BENCH_FED_PORT), {
    type: 'databricks-federation',
    tokenUrl,
    jwtLifetime: '1h',
  }),
};
process.once('SIGTERM', () => {
  Promise.all(Object.values(started).map((s) => s.gw.close())).then(() => process.exit(0));
});
const urls = Object.fromEntries(Object.entries(started).map(([k, v]) => [k, v.url]));
if (process.send === undefined) console.error(urls);
else {
  process.send({ url: urls.m2m, urls });
  process.once('disconnect', () => process.exit(0));
}
