/**
 * bench/replicas: Keygate with 1, 2 and 3 replicas behind nginx on loopback, all on one
 * throwaway PostgreSQL, two workloads:
 *
 *   proxy   an authenticated proxied GET (the test identity: no store lookup per request)
 *   tokens  client_credentials token issuance (a service principal; every token is an auth
 *           event written to PostgreSQL)
 *
 * For each replica count: wrk's requests/s (median of interleaved rounds), the ratio to one
 * replica, and where the CPU went (replicas, nginx, PostgreSQL, the upstream, wrk) as a share of the
 * machine's cores over the run. The replicas all run for the whole benchmark; nginx is started
 * per measurement with the replica count's upstream block.
 *
 *   npx tsx bench/replicas/run.ts [--duration 10] [--rounds 3] [--connections 64]
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { type AddressInfo, createServer } from 'node:net';
import { availableParallelism, cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { systemClock } from '../../src/lib/clock.js';
import { ServicePrincipals } from '../../src/oauth/service-principals.js';
import { PostgresStore } from '../../src/store/postgres/index.js';
import { startPostgres } from '../../test/helpers/postgres.js';
import { nginxConfig } from '../proxy/nginx.js';

const HERE = fileURLToPath(new URL('.', import.meta.url));
const ROOT = join(HERE, '../..');
const { values: args } = parseArgs({
  options: {
    duration: { type: 'string', default: '10' },
    rounds: { type: 'string', default: '3' },
    connections: { type: 'string', default: '64' },
  },
});
const durationS = Number(args.duration);
const rounds = Number(args.rounds);
const connections = Number(args.connections);
const tmp = mkdtempSync(join(tmpdir(), 'bench-replicas-'));
const running = new Set<ChildProcess>();

function track(c: ChildProcess): ChildProcess {
  running.add(c);
  c.once('exit', () => running.delete(c));
  return c;
}

/** A child that announces its URL over IPC (bench/proxy/child.ts). */
async function child(script: string, env: Record<string, string>): Promise<{ proc: ChildProcess; url: string }> {
  const proc = track(
    spawn(process.execPath, ['--import', 'tsx', join(HERE, script)], {
      cwd: ROOT,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
    }),
  );
  const [m] = (await once(proc, 'message')) as [{ url: string }];
  return { proc, url: m.url };
}

async function freePort(): Promise<number> {
  const s = createServer().listen(0, '127.0.0.1');
  await once(s, 'listening');
  const port = (s.address() as AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

/** utime + stime of a process, in clock ticks (0 when it is gone). */
function ticks(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(fields[11]) + Number(fields[12]);
  } catch {
    return 0;
  }
}

/** Every PostgreSQL server process (the throwaway cluster is the only one running). */
function postgresPids(): number[] {
  return readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .map(Number)
    .filter((pid) => {
      try {
        return readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'postgres';
      } catch {
        return false;
      }
    });
}

interface Measure {
  workload: string;
  replicas: number;
  rps: number;
  non2xx: number;
  /** Share of the machine's CPU over the run, by component (1.0 = every core busy). */
  cpu: Record<string, number>;
}

async function measure(
  workload: 'proxy' | 'tokens',
  replicaUrls: string[],
  replicaPids: number[],
  upstreamPid: number,
  nginxPort: number,
  lua: string,
): Promise<Measure> {
  const dir = mkdtempSync(join(tmp, 'nginx-'));
  for (const d of ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) mkdirSync(join(dir, d));
  writeFileSync(join(dir, 'nginx.conf'), nginxConfig(dir, nginxPort, replicaUrls));
  const nginx = track(spawn('/usr/sbin/nginx', ['-c', join(dir, 'nginx.conf'), '-p', dir], { stdio: 'ignore' }));
  await new Promise((r) => setTimeout(r, 300));
  const url = `http://127.0.0.1:${nginxPort}${workload === 'proxy' ? '/api/2.0/clusters/list' : '/.keygate/oauth/token'}`;
  // Warm-up: caches, pools, JIT.
  execFileSync('wrk', ['-t1', `-c${connections}`, '-d2s', '-s', lua, url], { stdio: 'ignore' });
  const pgBefore = new Map(postgresPids().map((pid) => [pid, ticks(pid)]));
  const before = {
    replicas: replicaPids.map(ticks),
    nginx: ticks(nginx.pid as number),
    upstream: ticks(upstreamPid),
  };
  const t0 = process.hrtime.bigint();
  const wrk = spawn('wrk', ['-t1', `-c${connections}`, `-d${durationS}s`, '-s', lua, url]);
  let out = '';
  wrk.stdout.on('data', (d) => {
    out += d;
  });
  let wrkTicks = 0;
  const sampler = setInterval(() => {
    wrkTicks = Math.max(wrkTicks, ticks(wrk.pid as number));
  }, 200);
  await once(wrk, 'exit');
  clearInterval(sampler);
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const hz = 100;
  const cores = availableParallelism();
  const share = (t: number) => t / hz / seconds / cores;
  const cpu = {
    replicas: share(replicaPids.map(ticks).reduce((a, b, i) => a + b - (before.replicas[i] as number), 0)),
    nginx: share(ticks(nginx.pid as number) - before.nginx),
    // Backends that ended during the run are not counted; those that started count whole.
    postgres: share(postgresPids().reduce((sum, pid) => sum + Math.max(0, ticks(pid) - (pgBefore.get(pid) ?? 0)), 0)),
    upstream: share(ticks(upstreamPid) - before.upstream),
    wrk: share(wrkTicks),
  };
  nginx.kill('SIGTERM');
  await once(nginx, 'exit');
  rmSync(dir, { recursive: true, force: true });
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? 0);
  const non2xx = Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(out)?.[1] ?? 0);
  return { workload, replicas: replicaUrls.length, rps, non2xx, cpu };
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] as number;
};

let cluster: Awaited<ReturnType<typeof startPostgres>> | undefined;

async function main(): Promise<void> {
  const pg = await startPostgres();
  cluster = pg;
  try {
    // The schema and a service principal for the token workload.
    const store = new PostgresStore({ connectionString: pg.url });
    await store.migrate();
    const sps = new ServicePrincipals(store, systemClock, 90 * 86_400_000);
    const { sp, secret } = await sps.create({
      name: 'bench',
      roles: ['ml-reader'],
      createdBy: 'bench',
      withSecret: true,
    });
    await store.close();

    const upstream = await child('../proxy/upstream.ts', {});
    const nginxPort = await freePort();
    const publicUrl = `http://127.0.0.1:${nginxPort}`;
    const replicas: { proc: ChildProcess; url: string }[] = [];
    for (let i = 0; i < 3; i++) {
      replicas.push(
        await child('replica.ts', {
          BENCH_PG_URL: pg.url,
          BENCH_PUBLIC_URL: publicUrl,
          BENCH_UPSTREAM_URL: upstream.url,
        }),
      );
    }
    const proxyLua = join(tmp, 'proxy.lua');
    writeFileSync(proxyLua, 'wrk.headers["x-test-identity"] = "test-identity-secret:bench"\n');
    const tokenLua = join(tmp, 'tokens.lua');
    const basic = Buffer.from(`${sp.id}:${secret?.secret as string}`).toString('base64');
    writeFileSync(
      tokenLua,
      [
        'wrk.method = "POST"',
        'wrk.body = "grant_type=client_credentials"',
        'wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"',
        `wrk.headers["Authorization"] = "Basic ${basic}"`,
        '',
      ].join('\n'),
    );

    const results: Measure[] = [];
    for (let round = 1; round <= rounds; round++) {
      for (const workload of ['proxy', 'tokens'] as const) {
        for (const n of [1, 2, 3]) {
          const m = await measure(
            workload,
            replicas.slice(0, n).map((r) => r.url),
            replicas.slice(0, n).map((r) => r.proc.pid as number),
            upstream.proc.pid as number,
            nginxPort,
            workload === 'proxy' ? proxyLua : tokenLua,
          );
          results.push(m);
          console.error(
            `round ${round} ${workload} ×${n}: ${m.rps.toFixed(0)} req/s (non-2xx ${m.non2xx}) cpu ${JSON.stringify(
              Object.fromEntries(Object.entries(m.cpu).map(([k, v]) => [k, Number(v.toFixed(2))])),
            )}`,
          );
        }
      }
    }
    const cpuModel = cpus()[0]?.model ?? 'unknown';
    console.log(
      `\nbench/replicas — ${availableParallelism()} cores (${cpuModel}), ${rounds} rounds of ${durationS} s, wrk -t1 -c${connections}`,
    );
    console.log(
      '| workload | replicas | req/s (median) | × one replica | CPU: replicas | nginx | PostgreSQL | upstream | wrk |',
    );
    console.log('|---|---|---|---|---|---|---|---|---|');
    for (const workload of ['proxy', 'tokens']) {
      const base = median(results.filter((r) => r.workload === workload && r.replicas === 1).map((r) => r.rps));
      for (const n of [1, 2, 3]) {
        const ms = results.filter((r) => r.workload === workload && r.replicas === n);
        const rps = median(ms.map((r) => r.rps));
        const c = (k: string) => `${(median(ms.map((r) => r.cpu[k] as number)) * 100).toFixed(0)} %`;
        console.log(
          `| ${workload} | ${n} | ${rps.toFixed(0)} | ${(rps / base).toFixed(2)}× | ${c('replicas')} | ${c('nginx')} | ${c('postgres')} | ${c('upstream')} | ${c('wrk')} |`,
        );
      }
    }
    mkdirSync(join(ROOT, 'bench/results'), { recursive: true });
    const file = join(ROOT, 'bench/results', `replicas-${Date.now()}.json`);
    writeFileSync(
      file,
      JSON.stringify({ cores: availableParallelism(), cpuModel, durationS, rounds, results }, null, 2),
    );
    console.log(`\n(raw results: ${file})`);
  } finally {
    for (const c of running) c.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 1500));
    for (const c of running) c.kill('SIGKILL');
    await pg.stop();
    rmSync(tmp, { recursive: true, force: true });
  }
}

// Ctrl-C or a kill still stops the children and the cluster, by their PIDs and data dir.
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    for (const c of running) c.kill('SIGKILL');
    const stopping = cluster?.stop() ?? Promise.resolve();
    stopping.finally(() => process.exit(130));
  });
}
await main();
