/**
 * bench/soak's gateway, in a child process of its own (the runner's load must not share a core's
 * event loop with it), with the workspace simulator in a grandchild (sim.ts) so that this
 * process's memory is the gateway's alone: the default config, SQLite in a temp folder, limits
 * raised for one client address. It announces the gateway's URL, then the enrollment links and a
 * service principal for the runner; it answers `{ type: 'pid' }` with its pid (the runner reads
 * RSS and descriptors from /proc) and `{ type: 'mem', gc }` with `process.memoryUsage()`, after
 * a full garbage collection when `gc` is set (it runs with --expose-gc): the live heap.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DEMO_SP, DEMO_SP_SECRET } from '../../sim/index.js';
import { parseConfig } from '../../src/config/load.js';
import { Gateway } from '../../src/server/gateway.js';

const dataDir = mkdtempSync(join(tmpdir(), 'kg-soak-'));
const simChild: ChildProcess = fork(join(fileURLToPath(new URL('.', import.meta.url)), 'sim.ts'), [], {
  execArgv: ['--import', 'tsx'],
  stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
});
const stopSim = () => {
  if (simChild.exitCode === null && simChild.pid !== undefined) process.kill(simChild.pid, 'SIGTERM');
};
process.once('exit', () => {
  stopSim();
  rmSync(dataDir, { recursive: true, force: true });
});
const [sim] = (await once(simChild, 'message')) as [{ url: string }];
process.env.SOAK_SIM_SECRET = DEMO_SP_SECRET;
const config = parseConfig({
  listen: { host: '127.0.0.1', port: 0 },
  dataDir,
  log: { level: 'error' },
  rateLimits: { perIpPerMinute: 100_000_000, perAccountPerMinute: 100_000_000, apiPerIpPerMinute: 100_000_000 },
  upstreams: {
    workspace: {
      url: sim.url,
      credential: {
        type: 'databricks-m2m',
        clientId: DEMO_SP.userName,
        clientSecretEnv: 'SOAK_SIM_SECRET',
      },
    },
  },
});
const gw = await Gateway.create({ config, identifiers: [] });
const url = await gw.listen();
const people = Number(process.env.SOAK_PEOPLE ?? 4);
const invites: { email: string; token: string }[] = [];
for (let i = 0; i < people; i++) {
  const email = `soak${i}@example.com`;
  // Half engineers (allowed), half readers (the runner's denied requests come from them).
  const link = await gw.auth.enrollment.invite(gw.publicOrigin, {
    email,
    roles: [i % 2 === 0 ? 'ml-engineer' : 'ml-reader'],
    createdBy: 'soak',
  });
  invites.push({ email, token: link.token });
}
const made = await gw.oauth.sps.create({
  name: 'soak-bot',
  roles: ['ml-engineer'],
  createdBy: 'soak',
  withSecret: true,
});
process.send?.({
  url,
  publicOrigin: gw.publicOrigin,
  invites,
  sp: { id: made.sp.id, secret: made.secret?.secret },
});
process.on('message', (m: { type?: string; gc?: boolean }) => {
  if (m.type === 'pid') process.send?.({ type: 'pid', pid: process.pid });
  if (m.type === 'mem') {
    if (m.gc === true) (globalThis as { gc?: () => void }).gc?.();
    process.send?.({ type: 'mem', mem: process.memoryUsage() });
  }
});
process.once('disconnect', () => process.exit(0));
process.once('SIGTERM', () => {
  void gw.close().then(async () => {
    stopSim();
    process.exit(0);
  });
});
