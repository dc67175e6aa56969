/**
 * Keygate for the benchmark, in its own process: one upstream, and the test identifier so
 * that requests carrying `x-test-identity` are authenticated (until real tokens exist).
 * The default config applies (level info; refusals logged, no line per successful request).
 * BENCH_LOG_REQUESTS=1 turns the per-request access line on (to stdout, which the runner points
 * at /dev/null).
 * BENCH_POLICY=off injects an allow-all authorizer, to measure what Cedar authorization costs
 * (the benchmark's identity holds the admin role, so with policy on every request is allowed
 * too — through the decision cache).
 * BENCH_AUDIT=off skips the audit record of every proxied request (`auditRequests: false`), to
 * measure what the audit log costs; the log itself is still opened. BENCH_AUDIT_FLUSH sets
 * `audit.flushInterval` (e.g. `50ms`; default 10ms). BENCH_CODE=dist runs the built code
 * (dist/, what `npm start` runs) instead of the TypeScript sources through tsx. BENCH_BURN_US=n
 * spins n µs of CPU per request (a synthetic cost to compare with a real one).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type * as LoadModule from '../../src/config/load.js';
import type * as GatewayModule from '../../src/server/gateway.js';
import type * as StoreModule from '../../src/store/sqlite/index.js';
import { testIdentifier } from '../../test/helpers/index.js';
import { announce } from './child.js';

// The code under test: the TypeScript sources through tsx (default), or with BENCH_CODE=dist
// the build `npm start` runs (dist/, from tsc; `npm run build` first).
const code = process.env.BENCH_CODE === 'dist' ? '../../dist/src' : '../../src';
const { parseConfig } = (await import(`${code}/config/load.js`)) as typeof LoadModule;
const { Gateway } = (await import(`${code}/server/gateway.js`)) as typeof GatewayModule;
const { SqliteStore } = (await import(`${code}/store/sqlite/index.js`)) as typeof StoreModule;
const logRequests = process.env.BENCH_LOG_REQUESTS === '1';
// BENCH_BURN_US=n: spin n µs of CPU in every identification — a synthetic per-request cost, to
// compare with what a real one (the audit record) costs the throughput.
const burnUs = Number(process.env.BENCH_BURN_US ?? 0);
function burning(id: ReturnType<typeof testIdentifier>): ReturnType<typeof testIdentifier> {
  if (burnUs <= 0) return id;
  return {
    ...id,
    identify(req) {
      const until = performance.now() + burnUs / 1000;
      while (performance.now() < until);
      return id.identify(req);
    },
  };
}
process.env.BENCH_UPSTREAM_TOKEN = 'bench-token';
// A real file on its writer thread, as deployed; a saturation run writes hundreds of MB into it,
// so the folder goes when the process does.
const auditDir = mkdtempSync(join(tmpdir(), 'kg-bench-audit-'));
process.once('exit', () => rmSync(auditDir, { recursive: true, force: true }));
const config = parseConfig({
  listen: { host: '127.0.0.1', port: 0 },
  log: logRequests ? { requests: true } : {},
  shutdown: { drainTimeout: '1s' },
  audit: {
    path: join(auditDir, 'audit.db'),
    ...(process.env.BENCH_AUDIT_FLUSH === undefined ? {} : { flushInterval: process.env.BENCH_AUDIT_FLUSH }),
  },
  upstreams: {
    ws: {
      url: process.env.BENCH_UPSTREAM_URL as string,
      credential: { type: 'static', tokenEnv: 'BENCH_UPSTREAM_TOKEN' },
    },
  },
});
const gw = await Gateway.create({
  config,
  store: new SqliteStore({ path: ':memory:' }),
  identifiers: [burning(testIdentifier())],
  ...(process.env.BENCH_POLICY === 'off'
    ? {
        authorizer: { decide: () => ({ effect: 'allow' as const, reasons: ['bench:policy-off'] }), stepUpMaxAgeS: 300 },
      }
    : {}),
  ...(process.env.BENCH_AUDIT === 'off' ? { auditRequests: false } : {}),
});
// A clean exit on SIGTERM lets `node --cpu-prof` write its profile.
process.once('SIGTERM', () => {
  gw.close().then(() => process.exit(0));
});
announce(await gw.listen());
