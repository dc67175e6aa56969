/**
 * One Keygate replica for bench/replicas, in its own process: the PostgreSQL store shared with
 * the other replicas (BENCH_PG_URL), with the audit chain there too, the test identifier so that requests
 * carrying `x-test-identity` are authenticated, and the default config otherwise.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig } from '../../src/config/load.js';
import { Gateway } from '../../src/server/gateway.js';
import { testIdentifier } from '../../test/helpers/index.js';
import { announce } from '../proxy/child.js';

const dataDir = mkdtempSync(join(tmpdir(), 'kg-bench-replica-'));
process.once('exit', () => rmSync(dataDir, { recursive: true, force: true }));
process.env.BENCH_UPSTREAM_TOKEN = 'bench-token';
const config = parseConfig({
  publicUrl: process.env.BENCH_PUBLIC_URL as string,
  listen: { host: '127.0.0.1', port: 0 },
  dataDir,
  shutdown: { drainTimeout: '1s' },
  // The benchmark's token workload comes from one address (nginx): no per-address limit.
  rateLimits: { apiPerIpPerMinute: 100_000_000 },
  store: { driver: 'postgres', url: process.env.BENCH_PG_URL as string, poolSize: 10 },
  upstreams: {
    ws: {
      url: process.env.BENCH_UPSTREAM_URL as string,
      credential: { type: 'static', tokenEnv: 'BENCH_UPSTREAM_TOKEN' },
    },
  },
});
const gw = await Gateway.create({ config, identifiers: [testIdentifier()] });
process.once('SIGTERM', () => {
  gw.close().then(() => process.exit(0));
});
announce(await gw.listen());
