/**
 * bench/federation: what per-user token federation costs on the proxy path, against the shared
 * service principal, both warm-cached, in the same run.
 *
 *   bare-node            bench/proxy's bare node:http + undici proxy (reference floor)
 *   keygate-m2m          Keygate with databricks-m2m: one cached token for every caller
 *   keygate-m2m-control  an identical second m2m gateway: the noise floor of the comparison
 *   keygate-federation   Keygate with databricks-federation: one cached token per person
 *
 * The three Keygates run in one process (keygate-server.ts) and are measured one at a time:
 * separate processes of identical code differ by several per cent on a small VM, more than the
 * difference sought; in one process the comparison is of the code paths.
 *
 * The upstream is bench/proxy's minimal upstream; the workspace simulator (its own process) is
 * the token endpoint of the Keygates and verifies the federated JWTs against Keygate's JWKS.
 * wrk sends every request as the next of --users people (users.lua, round robin, for every
 * target alike). Before measuring, every person has been exchanged once; after measuring, the
 * simulator must have issued no further token, so the measurement is of the cached path only.
 *
 * Servers run on core 0; wrk, the fixed-rate generator, the simulator and this runner on core 1
 * (when there are two cores and taskset). Throughput: wrk -t1 at saturation, targets interleaved
 * over rounds (in reverse order every other round), median; the cost of federation is
 * keygate-m2m / keygate-federation − 1 (the extra server time per request), the median of
 * per-round values, shown beside the same figure for the control. Latency: p50/p99 at a fixed
 * rate for one person (bench/proxy/fixed-rate.ts).
 *
 *   npx tsx bench/federation/run.ts [--quick] [--rounds 5] [--duration 10] [--users 1000]
 *       [--connections 64] [--rate 1000] [--latency-duration 10] [--max-foreign 10] [--attempts 4]
 *       [--profile]
 *   npx tsx bench/federation/run.ts --report bench/results/federation-<time>.json
 */
import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { type AddressInfo, createServer } from 'node:net';
import { availableParallelism, cpus, loadavg, release } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { request } from 'undici';
import { keygateNodeArgs } from '../proxy/as-deployed.js';
import type { FixedRateOptions, LatencySummary } from '../proxy/fixed-rate.js';
import { hasTaskset, type Interference, measureQuietly } from '../proxy/quiet.js';

const HERE = fileURLToPath(new URL('.', import.meta.url));
const PROXY = join(HERE, '../proxy');
const ROOT = join(HERE, '../..');
const PATH = '/api/2.0/clusters/list';
const LUA = join(HERE, 'users.lua');
const identity = (user: number) => ({ 'x-test-identity': `test-identity-secret:user${user}` });

const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    rounds: { type: 'string' },
    duration: { type: 'string' },
    users: { type: 'string', default: '1000' },
    connections: { type: 'string', default: '64' },
    rate: { type: 'string', default: '1000' },
    'latency-duration': { type: 'string' },
    'max-foreign': { type: 'string', default: '10' },
    attempts: { type: 'string', default: '4' },
    profile: { type: 'boolean', default: false },
    report: { type: 'string' },
  },
});
const quick = args.quick;
const opts = {
  rounds: Number(args.rounds ?? (quick ? 1 : 5)),
  durationS: Number(args.duration ?? (quick ? 2 : 10)),
  warmupS: quick ? 1 : 3,
  users: Number(args.users),
  connections: Number(args.connections),
  rate: Number(args.rate),
  latencyS: Number(args['latency-duration'] ?? (quick ? 2 : 10)),
  maxForeignPct: Number(args['max-foreign']),
  attempts: Number(args.attempts),
};

// ---- processes: every one we start is tracked and stopped by its PID ----------------------

const running = new Set<ChildProcess>();
function track(child: ChildProcess): ChildProcess {
  running.add(child);
  child.once('exit', () => running.delete(child));
  return child;
}
let cleaning: Promise<void> | undefined;
function cleanup(): Promise<void> {
  cleaning ??= Promise.all(
    [...running].map((c) => {
      const exited = once(c, 'exit');
      c.kill('SIGTERM');
      const force = setTimeout(() => c.kill('SIGKILL'), 3000);
      return exited.finally(() => clearTimeout(force));
    }),
  ).then(() => undefined);
  return cleaning;
}
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    console.error(`\n${sig}: stopping servers`);
    cleanup().then(() => process.exit(130));
  });
}
process.once('exit', () => {
  for (const c of running) c.kill('SIGKILL');
});

const nproc = availableParallelism();
const pinned = nproc >= 2 && hasTaskset();
const onCore = (core: number, cmd: string, argv: string[]): [string, string[]] =>
  pinned ? ['taskset', ['-c', String(core), cmd, ...argv]] : [cmd, argv];
if (pinned) execFileSync('taskset', ['-apc', '1', String(process.pid)], { stdio: 'ignore' });

async function startNode(
  core: number,
  script: string,
  env: Record<string, string>,
  nodeArgs: string[] = [],
): Promise<ChildProcess & { url: string; urls: Record<string, string> }> {
  const [cmd, argv] = onCore(core, process.execPath, [...nodeArgs, '--import', 'tsx', script]);
  const child = track(
    spawn(cmd, argv, { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'inherit', 'ipc'] }),
  );
  const [msg] = (await Promise.race([
    once(child, 'message'),
    once(child, 'exit').then(() => {
      throw new Error(`${script} exited before listening`);
    }),
  ])) as [{ url: string; urls?: Record<string, string> }];
  return Object.assign(child, { url: msg.url, urls: msg.urls ?? {} });
}

async function freePort(): Promise<number> {
  const s = createServer().listen(0, '127.0.0.1');
  await once(s, 'listening');
  const { port } = s.address() as AddressInfo;
  s.close();
  return port;
}

interface SimStats {
  exchanges: number;
  clientCredentials: number;
  failed: number;
  people: number;
}
async function simStats(sim: ChildProcess): Promise<SimStats> {
  sim.send({ type: 'stats' });
  const [m] = (await once(sim, 'message')) as [SimStats & { type: string }];
  const { type: _type, ...stats } = m;
  return stats;
}

// ---- measurements -------------------------------------------------------------------------

interface WrkResult {
  rps: number;
  non2xx: number;
  socketErrors: string | undefined;
}

async function wrk(url: string, seconds: number): Promise<WrkResult> {
  const argv = ['-t1', `-c${opts.connections}`, `-d${seconds}s`, '-s', LUA, url + PATH, '--', String(opts.users)];
  const [cmd, a] = onCore(1, 'wrk', argv);
  const child = track(spawn(cmd, a, { stdio: ['ignore', 'pipe', 'inherit'] }));
  let out = '';
  child.stdout?.on('data', (d: Buffer) => {
    out += d.toString();
  });
  const [code] = (await once(child, 'exit')) as [number | null];
  const rps = /Requests\/sec:\s+([\d.]+)/.exec(out)?.[1];
  if (code !== 0 || rps === undefined) throw new Error(`wrk failed (exit ${code}):\n${out}`);
  return {
    rps: Number(rps),
    non2xx: Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0),
    socketErrors: /Socket errors: (.*)/.exec(out)?.[1],
  };
}

async function startGenerator(): Promise<(url: string, o: FixedRateOptions) => Promise<LatencySummary>> {
  const nodeArgs = ['--max-semi-space-size=64', '--import', 'tsx', join(PROXY, 'fixed-rate.ts')];
  const [cmd, argv] = onCore(1, process.execPath, nodeArgs);
  const child = track(spawn(cmd, argv, { cwd: ROOT, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }));
  return async (url, o) => {
    child.send({ url, opts: o });
    const [summary] = (await once(child, 'message')) as [LatencySummary];
    return summary;
  };
}

type Guarded<T> = T & { interference?: Interference };
function guarded<T extends object>(what: string, run: () => Promise<T>): Promise<Guarded<T>> {
  const pids = () => [...running].flatMap((c) => (c.pid === undefined ? [] : [c.pid]));
  return measureQuietly(
    what,
    { maxForeignPct: opts.maxForeignPct, attempts: opts.attempts, pids },
    () => undefined,
    run,
  );
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
};

async function get(url: string, headers: Record<string, string>): Promise<number> {
  const r = await request(url + PATH, { headers });
  await r.body.dump();
  return r.statusCode;
}

// ---- the run ------------------------------------------------------------------------------

interface Target {
  name: string;
  url: string;
  rps: number[];
  samples: Guarded<WrkResult>[];
  latency: Guarded<LatencySummary>[];
}

const foreign = (i: Interference | undefined) => (i === undefined ? '' : `  [foreign CPU ${i.foreignPct}%]`);

async function main(): Promise<void> {
  if (args.report !== undefined) {
    const saved = JSON.parse(readFileSync(args.report, 'utf8')) as { targets: Target[]; opts: typeof opts };
    report(saved.targets, saved.opts);
    return;
  }
  const git = (a: string[]) => spawnSync('git', a, { cwd: ROOT, encoding: 'utf8' }).stdout.trim();
  const machine = {
    cpus: nproc,
    cpu: cpus()[0]?.model ?? 'unknown',
    kernel: release(),
    node: process.version,
    wrk: `${spawnSync('wrk', ['-v'], { encoding: 'utf8' }).stdout ?? ''}`.split('\n')[0]?.trim(),
    pinning: pinned ? 'servers on core 0; wrk, generator, simulator and runner on core 1' : 'not pinned',
    head: git(['rev-parse', '--short', 'HEAD']),
    loadavg: loadavg(),
  };
  console.log(`bench/federation on ${machine.cpus}× ${machine.cpu}, Node ${machine.node}, ${machine.wrk}`);
  console.log(`pinning: ${machine.pinning}`);
  console.log(`settings: ${JSON.stringify(opts)}${quick ? ' (quick)' : ''}`);

  const upstream = await startNode(0, join(PROXY, 'upstream.ts'), {});
  const fedPort = await freePort();
  const sim = await startNode(1, join(HERE, 'sim.ts'), {
    BENCH_USERS: String(opts.users),
    BENCH_ISSUER: `http://127.0.0.1:${fedPort}`,
    // databricks-federation's default audience: <upstream url>/oidc/v1/token.
    BENCH_AUDIENCE: `${upstream.url}/oidc/v1/token`,
  });
  const env = { BENCH_UPSTREAM_URL: upstream.url, BENCH_SIM_URL: sim.url };
  const profileArgs = args.profile ? ['--cpu-prof', '--cpu-prof-dir', join(ROOT, 'bench/results/profiles')] : [];
  const targets: Target[] = [];
  const add = (name: string, url: string) => targets.push({ name, url, rps: [], samples: [], latency: [] });
  add('bare-node', (await startNode(0, join(PROXY, 'bare-proxy.ts'), env)).url);
  const keygates = await startNode(
    0,
    join(HERE, 'keygate-server.ts'),
    { ...env, BENCH_FED_PORT: String(fedPort) },
    [...profileArgs, ...keygateNodeArgs(pinned)], // the flags `keygate serve` picks on one CPU
  );
  for (const [name, url] of Object.entries(keygates.urls)) add(`keygate-${name}`, url);
  const byName = (n: string) => targets.find((t) => t.name === n) as Target;

  // Every target answers 200; Keygate refuses a caller without identity.
  for (const t of targets) {
    if ((await get(t.url, identity(0))) !== 200) throw new Error(`${t.name} does not answer 200`);
    if (t.name.startsWith('keygate') && (await get(t.url, {})) !== 401) throw new Error(`${t.name} lets anonymous in`);
  }
  // Warm the caches: every person once through each Keygate (16 at a time).
  for (const name of ['keygate-m2m', 'keygate-m2m-control', 'keygate-federation']) {
    for (let i = 0; i < opts.users; i += 16) {
      const batch = Array.from({ length: Math.min(16, opts.users - i) }, (_, j) =>
        get(byName(name).url, identity(i + j)),
      );
      const statuses = await Promise.all(batch);
      if (statuses.some((s) => s !== 200)) throw new Error(`${name}: warm-up answered ${statuses.join(',')}`);
    }
  }
  const warm = await simStats(sim);
  console.log(
    `warm: the workspace issued ${warm.exchanges} federated tokens (${warm.people} people) and ${warm.clientCredentials} service principal token(s)`,
  );
  if (warm.exchanges !== opts.users || warm.clientCredentials !== 2 || warm.failed !== 0) {
    throw new Error(`unexpected token requests after warm-up: ${JSON.stringify(warm)}`);
  }

  for (const t of targets) await wrk(t.url, opts.warmupS);
  // Odd rounds run the targets in order, even rounds in reverse: no target always follows another.
  const ordered = (round: number) => (round % 2 === 1 ? targets : [...targets].reverse());
  for (let round = 1; round <= opts.rounds; round++) {
    for (const t of ordered(round)) {
      const r = await guarded(t.name, () => wrk(t.url, opts.durationS));
      if (r.non2xx > 0 || r.socketErrors) throw new Error(`${t.name}: ${r.non2xx} non-2xx, errors ${r.socketErrors}`);
      t.rps.push(r.rps);
      t.samples.push(r);
      console.log(
        `saturation round ${round}/${opts.rounds} ${t.name.padEnd(19)} ${r.rps.toFixed(0)} req/s${foreign(r.interference)}`,
      );
    }
  }
  const fixedRate = await startGenerator();
  const load = { rate: opts.rate, headers: identity(0), path: PATH };
  for (const t of targets) await fixedRate(t.url, { ...load, durationMs: opts.warmupS * 1000 });
  for (let round = 1; round <= opts.rounds; round++) {
    for (const t of ordered(round)) {
      await fixedRate(t.url, { ...load, durationMs: 1000 });
      const l = await guarded(t.name, () => fixedRate(t.url, { ...load, durationMs: opts.latencyS * 1000 }));
      if (l.errors > 0) throw new Error(`${t.name}: ${l.errors} failed requests at fixed rate`);
      t.latency.push(l);
      console.log(
        `latency round ${round}/${opts.rounds} ${t.name.padEnd(19)} p50 ${l.p50.toFixed(3)} ms  p99 ${l.p99.toFixed(3)} ms${foreign(l.interference)}`,
      );
    }
  }
  const after = await simStats(sim);
  const stayedWarm = after.exchanges === warm.exchanges && after.clientCredentials === warm.clientCredentials;
  console.log(
    `after: ${after.exchanges} federated and ${after.clientCredentials} service principal token(s) issued in all: ${stayedWarm ? 'none during the measurements' : 'SOME DURING THE MEASUREMENTS'}`,
  );
  if (!stayedWarm) throw new Error('tokens were fetched during the measurements: not the warm path');

  const summary = report(targets, opts);
  mkdirSync(join(ROOT, 'bench/results'), { recursive: true });
  const file = join(ROOT, `bench/results/federation-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(
    file,
    `${JSON.stringify({ machine, opts, command: process.argv.slice(1), warm, after, summary, targets }, null, 2)}\n`,
  );
  console.log(`\nresults: ${file}`);
}

function report(targets: Target[], o: typeof opts) {
  const byName = new Map(targets.map((t) => [t.name, t]));
  const rps = (n: string) => median(byName.get(n)?.rps ?? [Number.NaN]);
  const ratio = (n: string, base: string) => {
    const a = byName.get(n)?.rps ?? [];
    const b = byName.get(base)?.rps ?? [];
    return median(a.map((x, i) => x / (b[i] as number)));
  };
  const lat = (n: string, k: 'p50' | 'p99') => median((byName.get(n)?.latency ?? []).map((l) => l[k]));
  const f = (x: number, d: number) => (Number.isNaN(x) ? '–' : x.toFixed(d));
  console.log(`\n| target | req/s (median of ${o.rounds}) | × bare-node | × keygate-m2m | p50 ms | p99 ms |`);
  console.log(`|${'---|'.repeat(6)}`);
  const rows = targets.map((t) => ({
    target: t.name,
    rps: rps(t.name),
    vsBare: ratio(t.name, 'bare-node'),
    vsM2m: ratio(t.name, 'keygate-m2m'),
    p50: lat(t.name, 'p50'),
    p99: lat(t.name, 'p99'),
  }));
  for (const r of rows) {
    console.log(`| ${[r.target, f(r.rps, 0), f(r.vsBare, 2), f(r.vsM2m, 3), f(r.p50, 3), f(r.p99, 3)].join(' | ')} |`);
  }
  // Extra server time per request of `n` over `base`: base / n − 1, round by round.
  const extra = (n: string, base: string) => {
    const a = byName.get(n)?.rps ?? [];
    const b = byName.get(base)?.rps ?? [];
    return a.map((x, i) => (b[i] as number) / x - 1);
  };
  const perRound = extra('keygate-federation', 'keygate-m2m');
  const cost = median(perRound);
  const controlPerRound = extra('keygate-m2m-control', 'keygate-m2m');
  const control = median(controlPerRound);
  const vsControlPerRound = extra('keygate-federation', 'keygate-m2m-control');
  const vsControl = median(vsControlPerRound);
  const pct = (xs: number[]) => xs.map((c) => `${(c * 100).toFixed(1)} %`).join(', ');
  console.log(
    `\nper-user federation costs ${f(cost * 100, 1)} % more than the shared service principal (per round: ${pct(perRound)}); target ≤ 5 %: ${cost <= 0.05 ? 'met' : 'NOT met'}`,
  );
  console.log(
    `control: an identical second m2m gateway measured ${f(control * 100, 1)} % (per round: ${pct(controlPerRound)}), the noise floor of the comparison`,
  );
  console.log(`federation against the control: ${f(vsControl * 100, 1)} % (per round: ${pct(vsControlPerRound)})`);
  console.log(
    `p99 at ${o.rate} req/s: federation ${f(lat('keygate-federation', 'p99'), 3)} ms, m2m ${f(lat('keygate-m2m', 'p99'), 3)} ms`,
  );
  return { rows, costVsM2m: cost, costPerRound: perRound, control, controlPerRound, vsControl, vsControlPerRound };
}

try {
  await main();
} catch (e) {
  console.error(e instanceof Error ? e.message : e);
  process.exitCode = 1;
} finally {
  await cleanup();
}
