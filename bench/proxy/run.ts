/**
 * bench/proxy: one upstream, reached nine ways, on loopback.
 *
 *   direct      the minimal upstream itself
 *   nginx       Debian's nginx as a plain reverse proxy (one worker, keep-alive upstream)
 *   bare-node   node:http + an undici Pool in a few lines: the floor of what Node can do
 *   bare-node+hdrs  the same, also sending the ~800 bytes of headers Keygate adds upstream
 *   keygate     Keygate with its default config (refusals logged; no line per successful request)
 *   keygate-accesslog  the same with log.requests on (one JSON line per successful request)
 *   keygate-nopolicy  the default config with an allow-all authorizer (the cost of Cedar)
 *   keygate-noaudit  the default config without the per-request audit record (the cost of the audit log)
 *   keygate-parallel-gc  the default config with V8's default (threaded) collector
 *
 * Every Keygate but the last runs with the node flags `keygate serve` picks for the CPUs it
 * has (bench/proxy/as-deployed.ts): one core when pinned, so --single-threaded-gc.
 *
 * Servers run on core 0, the load generators (wrk, then the fixed-rate generator process)
 * and this runner on core 1, when there are two cores and taskset. Saturation throughput is wrk's
 * requests/s, median of interleaved rounds; latency is p50/p99 at a fixed 1,000 requests/s.
 *
 *   npx tsx bench/proxy/run.ts [--quick] [--duration 10] [--connections 64] [--rounds 3]
 *       [--rate 1000] [--latency-duration 10] [--only nginx,keygate] [--profile]
 *       [--max-foreign 10] [--attempts 4]
 *   npx tsx bench/proxy/run.ts --report bench/results/proxy-<time>.json   (re-print a saved run)
 */
import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { availableParallelism, cpus, release, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { request } from 'undici';
import type { FixedRateOptions, LatencySummary } from './fixed-rate.js';
import { keygateNodeArgs } from './as-deployed.js';
import { nginxConfig } from './nginx.js';
import { hasTaskset, type Interference, measureQuietly } from './quiet.js';

const HERE = fileURLToPath(new URL('.', import.meta.url));
const ROOT = join(HERE, '../..');
const PATH = '/api/2.0/clusters/list';
const IDENTITY = { 'x-test-identity': 'test-identity-secret:bench' };

const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    duration: { type: 'string' },
    connections: { type: 'string', default: process.env.BENCH_CONNECTIONS ?? '64' },
    rounds: { type: 'string' },
    rate: { type: 'string', default: process.env.BENCH_RATE ?? '1000' },
    'latency-duration': { type: 'string' },
    only: { type: 'string' },
    'max-foreign': { type: 'string', default: '10' },
    attempts: { type: 'string', default: '4' },
    profile: { type: 'boolean', default: false },
    report: { type: 'string' },
  },
});
const quick = args.quick;
const opts = {
  durationS: Number(args.duration ?? process.env.BENCH_DURATION ?? (quick ? 2 : 10)),
  warmupS: quick ? 1 : 3,
  connections: Number(args.connections),
  rounds: Number(args.rounds ?? process.env.BENCH_ROUNDS ?? (quick ? 1 : 3)),
  rate: Number(args.rate),
  latencyS: Number(args['latency-duration'] ?? (quick ? 2 : 10)),
  maxForeignPct: Number(args['max-foreign']),
  attempts: Number(args.attempts),
};

// ---- processes: every one we start is tracked and stopped by its PID ----------------------

const running = new Set<ChildProcess>();
const tmp = mkdtempSync(join(tmpdir(), 'bench-proxy-'));

function track(child: ChildProcess): ChildProcess {
  running.add(child);
  child.once('exit', () => running.delete(child));
  return child;
}

let cleaning: Promise<void> | undefined;
function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    const exits = [...running].map((c) => {
      const exited = once(c, 'exit');
      c.kill('SIGTERM');
      const force = setTimeout(() => c.kill('SIGKILL'), 3000);
      return exited.finally(() => clearTimeout(force));
    });
    await Promise.all(exits);
    rmSync(tmp, { recursive: true, force: true });
  })();
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

// ---- pinning ------------------------------------------------------------------------------

const nproc = availableParallelism();
const pinned = nproc >= 2 && hasTaskset();
/** Prefix a command with `taskset -c <core>` when pinning is possible. */
const onCore = (core: number, cmd: string, argv: string[]): [string, string[]] =>
  pinned ? ['taskset', ['-c', String(core), cmd, ...argv]] : [cmd, argv];
// This process mostly waits; it belongs with the load generators on core 1, not with the servers.
if (pinned) execFileSync('taskset', ['-apc', '1', String(process.pid)], { stdio: 'ignore' });

// ---- servers ------------------------------------------------------------------------------

async function startNode(script: string, env: Record<string, string>, nodeArgs: string[] = []): Promise<string> {
  const [cmd, argv] = onCore(0, process.execPath, [...nodeArgs, '--import', 'tsx', join(HERE, script)]);
  const child = track(
    spawn(cmd, argv, { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'inherit', 'ipc'] }),
  );
  const [msg] = (await Promise.race([
    once(child, 'message'),
    once(child, 'exit').then(() => {
      throw new Error(`${script} exited before listening`);
    }),
  ])) as [{ url: string }];
  return msg.url;
}

async function freePort(): Promise<number> {
  const s = createServer().listen(0, '127.0.0.1');
  await once(s, 'listening');
  const { port } = s.address() as AddressInfo;
  s.close();
  return port;
}

async function startNginx(upstreamUrl: string): Promise<string> {
  const port = await freePort();
  const conf = join(tmp, 'nginx.conf');
  writeFileSync(conf, nginxConfig(tmp, port, upstreamUrl));
  const [cmd, argv] = onCore(0, 'nginx', ['-e', join(tmp, 'error.log'), '-p', tmp, '-c', conf]);
  track(spawn(cmd, argv, { stdio: ['ignore', 'ignore', 'inherit'] }));
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 100; i++) {
    try {
      await (await request(url + PATH)).body.dump();
      return url;
    } catch {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  throw new Error('nginx did not start; see its error log above');
}

// ---- measurements -------------------------------------------------------------------------

/** The fixed-rate generator: one process on core 1 for the whole run, one measurement at a time. */
async function startGenerator(): Promise<(url: string, o: FixedRateOptions) => Promise<LatencySummary>> {
  const nodeArgs = ['--max-semi-space-size=64', '--import', 'tsx', join(HERE, 'fixed-rate.ts')];
  const [cmd, argv] = onCore(1, process.execPath, nodeArgs);
  const child = track(spawn(cmd, argv, { cwd: ROOT, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }));
  return async (url, o) => {
    child.send({ url, opts: o });
    const [summary] = (await once(child, 'message')) as [LatencySummary];
    return summary;
  };
}

interface WrkResult {
  rps: number;
  non2xx: number;
  socketErrors: string | undefined;
}

async function wrk(url: string, seconds: number): Promise<WrkResult> {
  const headers = Object.entries(IDENTITY).flatMap(([k, v]) => ['-H', `${k}: ${v}`]);
  const [cmd, argv] = onCore(1, 'wrk', ['-t1', `-c${opts.connections}`, `-d${seconds}s`, ...headers, url + PATH]);
  const child = track(spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'inherit'] }));
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

/**
 * Run one measurement; when other processes took more than --max-foreign % of a core during
 * it, wait and measure again, up to --attempts times, keeping the quietest attempt.
 */
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

/** First line a tool prints about its version (nginx -v writes to stderr; wrk -v exits 1). */
function version(cmd: string, argv: string[]): string {
  const r = spawnSync(cmd, argv, { encoding: 'utf8' });
  return `${r.stdout ?? ''}${r.stderr ?? ''}`.split('\n')[0]?.trim() ?? '';
}

// ---- the run ------------------------------------------------------------------------------

interface Target {
  name: string;
  url: string;
  rps: number[];
  samples: (WrkResult & { interference?: Interference })[];
  latency: (LatencySummary & { interference?: Interference })[];
}

const foreign = (i: Interference | undefined) => (i === undefined ? '' : `  [foreign CPU ${i.foreignPct}%]`);

async function main(): Promise<void> {
  if (args.report !== undefined) {
    const saved = JSON.parse(readFileSync(args.report, 'utf8')) as { targets: Target[]; opts: typeof opts };
    report(saved.targets, saved.opts.rounds, saved.opts.rate);
    return;
  }
  const machine = {
    cpus: nproc,
    cpu: cpus()[0]?.model ?? 'unknown',
    kernel: release(),
    node: process.version,
    nginx: version('nginx', ['-v']),
    wrk: version('wrk', ['-v']),
    pinning: pinned ? 'servers on core 0, load generators on core 1' : 'not pinned (fewer than 2 cores or no taskset)',
  };
  console.log(`bench/proxy on ${machine.cpus}× ${machine.cpu}, Node ${machine.node}, ${machine.nginx}, ${machine.wrk}`);
  console.log(`pinning: ${machine.pinning}`);
  console.log(`settings: ${JSON.stringify(opts)}${quick ? ' (quick)' : ''}`);

  const upstream = await startNode('upstream.ts', {});
  const env = { BENCH_UPSTREAM_URL: upstream };
  const profileArgs = args.profile ? ['--cpu-prof', '--cpu-prof-dir', join(ROOT, 'bench/results/profiles')] : [];
  // Every Keygate runs with the node flags `keygate serve` picks on its CPUs (one, when pinned);
  // keygate-parallel-gc keeps V8's defaults, the way Keygate ran before it picked them.
  const kgArgs = [...profileArgs, ...keygateNodeArgs(pinned)];
  const all: [string, () => Promise<string>][] = [
    ['direct', async () => upstream],
    ['nginx', () => startNginx(upstream)],
    ['bare-node', () => startNode('bare-proxy.ts', env)],
    ['bare-node+hdrs', () => startNode('bare-proxy.ts', { ...env, BENCH_GATEWAY_HEADERS: '1' })],
    ['keygate', () => startNode('keygate-server.ts', env, kgArgs)],
    ['keygate-accesslog', () => startNode('keygate-server.ts', { ...env, BENCH_LOG_REQUESTS: '1' }, kgArgs)],
    ['keygate-nopolicy', () => startNode('keygate-server.ts', { ...env, BENCH_POLICY: 'off' }, kgArgs)],
    ['keygate-noaudit', () => startNode('keygate-server.ts', { ...env, BENCH_AUDIT: 'off' }, kgArgs)],
    ['keygate-parallel-gc', () => startNode('keygate-server.ts', env, profileArgs)],
  ];
  const only = args.only?.split(',');
  const targets: Target[] = [];
  for (const [name, start] of all) {
    if (only && !only.includes(name)) continue;
    targets.push({ name, url: await start(), rps: [], samples: [], latency: [] });
  }

  // Every target must answer 200 with the identity header; Keygate must refuse without it.
  for (const t of targets) {
    const r = await request(t.url + PATH, { headers: IDENTITY });
    await r.body.dump();
    if (r.statusCode !== 200) throw new Error(`${t.name} answered ${r.statusCode}`);
    if (t.name.startsWith('keygate')) {
      const anon = await request(t.url + PATH);
      await anon.body.dump();
      if (anon.statusCode !== 401) throw new Error(`${t.name} answered ${anon.statusCode} without an identity`);
    }
  }

  for (const t of targets) await wrk(t.url, opts.warmupS);
  for (let round = 1; round <= opts.rounds; round++) {
    for (const t of targets) {
      const r = await guarded(t.name, () => wrk(t.url, opts.durationS));
      if (r.non2xx > 0 || r.socketErrors) throw new Error(`${t.name}: ${r.non2xx} non-2xx, errors ${r.socketErrors}`);
      t.rps.push(r.rps);
      t.samples.push(r);
      console.log(
        `saturation round ${round}/${opts.rounds} ${t.name.padEnd(15)} ${r.rps.toFixed(0)} req/s${foreign(r.interference)}`,
      );
    }
  }
  const fixedRate = await startGenerator();
  const load = { rate: opts.rate, headers: IDENTITY, path: PATH };
  for (const t of targets) await fixedRate(t.url, { ...load, durationMs: opts.warmupS * 1000 });
  for (let round = 1; round <= opts.rounds; round++) {
    for (const t of targets) {
      await fixedRate(t.url, { ...load, durationMs: 1000 });
      const l = await guarded(t.name, () => fixedRate(t.url, { ...load, durationMs: opts.latencyS * 1000 }));
      if (l.errors > 0) throw new Error(`${t.name}: ${l.errors} failed requests at fixed rate`);
      t.latency.push(l);
      console.log(
        `latency round ${round}/${opts.rounds} ${t.name.padEnd(15)} p50 ${l.p50.toFixed(3)} ms  p99 ${l.p99.toFixed(3)} ms  (${l.achievedRate} req/s)${foreign(l.interference)}`,
      );
    }
  }

  const summary = report(targets, opts.rounds, opts.rate);
  mkdirSync(join(ROOT, 'bench/results'), { recursive: true });
  const file = join(ROOT, `bench/results/proxy-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(
    file,
    `${JSON.stringify({ machine, opts, command: process.argv.slice(1), summary, targets }, null, 2)}\n`,
  );
  console.log(`\nresults: ${file}`);
}

/** Print the table and the two target checks; return the same figures for the JSON file. */
function report(targets: Target[], rounds: number, rate: number) {
  const byName = new Map(targets.map((t) => [t.name, t]));
  const rps = (n: string) => (byName.has(n) ? median((byName.get(n) as Target).rps) : Number.NaN);
  // Ratios pair the targets round by round (median of per-round ratios): a slow spell on a
  // shared VM then lowers both sides of a ratio instead of one.
  const ratio = (n: string, base: string) => {
    const a = byName.get(n)?.rps;
    const b = byName.get(base)?.rps;
    return a && b ? median(a.map((x, i) => x / (b[i] as number))) : Number.NaN;
  };
  const lat = (n: string, k: 'p50' | 'p90' | 'p99' | 'max') =>
    byName.has(n) ? median((byName.get(n) as Target).latency.map((l) => l[k])) : Number.NaN;
  const rows = targets.map((t) => ({
    target: t.name,
    rps: rps(t.name),
    vsBare: ratio(t.name, 'bare-node'),
    vsNginx: ratio(t.name, 'nginx'),
    p50: lat(t.name, 'p50'),
    p90: lat(t.name, 'p90'),
    p99: lat(t.name, 'p99'),
    addedP99: lat(t.name, 'p99') - lat('direct', 'p99'),
  }));
  const f = (x: number, d: number) => (Number.isNaN(x) ? '–' : x.toFixed(d));
  const signed = (x: number, d: number) => (x >= 0 ? '+' : '') + f(x, d);
  const header = `| target | req/s (median of ${rounds}) | × bare-node | × nginx | p50 ms | p90 ms | p99 ms | p99 added vs direct, ms |`;
  console.log(`\n${header}\n|${'---|'.repeat(8)}`);
  for (const r of rows) {
    const cells = [
      r.target,
      f(r.rps, 0),
      f(r.vsBare, 2),
      f(r.vsNginx, 2),
      f(r.p50, 3),
      f(r.p90, 3),
      f(r.p99, 3),
      f(r.addedP99, 3),
    ];
    console.log(`| ${cells.join(' | ')} |`);
  }
  const checks = {
    throughputRatio: ratio('keygate', 'bare-node'),
    addedP99VsBareMs: lat('keygate', 'p99') - lat('bare-node', 'p99'),
    addedP99VsDirectMs: lat('keygate', 'p99') - lat('direct', 'p99'),
    /** Keygate against a bare proxy that sends the same upstream headers: the code's own cost. */
    throughputRatioVsBareWithHeaders: ratio('keygate', 'bare-node+hdrs'),
  };
  const verdict = (ok: boolean) => (ok ? 'met' : 'NOT met');
  console.log(
    `\nkeygate throughput ${f(checks.throughputRatio, 2)}× bare-node (target ≥ 0.90): ${verdict(checks.throughputRatio >= 0.9)}`,
  );
  console.log(
    `keygate throughput ${f(checks.throughputRatioVsBareWithHeaders, 2)}× bare-node+hdrs (same upstream headers)`,
  );
  console.log(
    `keygate p99 at ${rate} req/s: ${signed(checks.addedP99VsBareMs, 3)} ms vs bare-node (target ≤ 1 ms): ${verdict(checks.addedP99VsBareMs <= 1)}; ${signed(checks.addedP99VsDirectMs, 3)} ms vs direct`,
  );
  return { rows, checks };
}

try {
  await main();
} catch (e) {
  console.error(e instanceof Error ? e.message : e);
  process.exitCode = 1;
} finally {
  await cleanup();
}
