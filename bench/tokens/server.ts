/**
 * Keygate for bench/tokens, in its own process: one upstream (BENCH_UPSTREAM_URL, a static
 * credential, the default `databricks` preset's classification), its store and audit log on
 * SQLite files in a temporary folder (as deployed: each issuance writes an authentication event,
 * each proxied request an audit record), and one service principal with the admin role. It tells the runner over IPC where it listens and the client's id and
 * secret, then serves until the runner goes away (or SIGTERM, which lets `--cpu-prof` write).
 *
 * No test identifier is installed: the only way in is a real access token.
 * The per-address limit on Keygate's APIs (default 600/min) is lifted: the benchmark asks for
 * thousands of tokens a second from one address.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig } from '../../src/config/load.js';
import { Gateway } from '../../src/server/gateway.js';
import { SqliteStore } from '../../src/store/sqlite/index.js';

export interface ServerHello {
  url: string;
  clientId: string;
  secret: string;
}

const dir = mkdtempSync(join(tmpdir(), 'kg-bench-tokens-'));
process.env.BENCH_UPSTREAM_TOKEN = 'bench-token';
const config = parseConfig({
  listen: { host: '127.0.0.1', port: 0 },
  dataDir: dir,
  shutdown: { drainTimeout: '1s' },
  rateLimits: { apiPerIpPerMinute: 1_000_000 },
  upstreams: {
    ws: {
      url: process.env.BENCH_UPSTREAM_URL as string,
      credential: { type: 'static', tokenEnv: 'BENCH_UPSTREAM_TOKEN' },
    },
  },
});
const gw = await Gateway.create({ config, store: new SqliteStore({ path: join(dir, 'keygate.db') }) });
const url = await gw.listen();
const { sp, secret } = await gw.oauth.sps.create({ name: 'bench', roles: ['admin'], createdBy: 'bench' });
if (secret === null) throw new Error('the service principal has no secret');

let stopping = false;
const stop = () => {
  if (stopping) return;
  stopping = true;
  gw.close()
    .catch(() => undefined)
    .finally(() => {
      rmSync(dir, { recursive: true, force: true });
      process.exit(0);
    });
};
process.once('SIGTERM', stop);
process.once('disconnect', stop);

const hello: ServerHello = { url, clientId: sp.id, secret: secret.secret };
if (process.send === undefined) console.error(JSON.stringify(hello));
else process.send(hello);
