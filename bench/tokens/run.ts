/**
 * bench/tokens: Keygate's own OAuth tokens, issued and used, on loopback.
 *
 * Part 1, issuance: client_credentials tokens per second through the real token endpoint
 * (`POST /.keygate/oauth/token`, client_secret_basic), a closed loop of 32 requests in flight
 * from this runner (undici keep-alive Pool); also DPoP-bound tokens (a fresh proof per request).
 *
 * Part 2, the proxy with tokens, saturation throughput with wrk on one upstream
 * (bench/proxy/upstream.ts), path /api/2.0/clusters/list (an action the admin role may do):
 *   bare-node  bench/proxy/bare-proxy.ts, node:http + an undici Pool: the baseline
 *   bearer     Keygate, `Authorization: Bearer <jwt>`, the same token on every request
 *   dpop       Keygate, `Authorization: DPoP <jwt>` and a fresh DPoP proof per request
 * The same wrk Lua script builds every request of every target; for dpop it adds the next
 * line of a file of proofs made just before the measurement (iat = now, unique jti).
 *
 * Every Keygate is its own process (bench/tokens/server.ts; its store and audit log are SQLite
 * files in a temporary folder, the audit writer on its own thread, as deployed): one
 * for issuance, one for bearer, one for dpop. Servers run on core 0; wrk, the issuance loop and
 * this runner on core 1. All measurements are interleaved round by round; medians are reported,
 * and ratios are medians of per-round ratios.
 *
 *   npx tsx bench/tokens/run.ts [--quick] [--rounds 5] [--duration 10] [--concurrency 32]
 *       [--connections 64] [--only issue,dpop] [--profile] [--max-foreign 10] [--attempts 4]
 *   npx tsx bench/tokens/run.ts --report bench/results/tokens-<time>.json   (re-print a saved run)
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, release, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { decodeJwt } from 'jose';
import { request } from 'undici';
import { keygateNodeArgs } from '../proxy/as-deployed.js';
import { type Interference, measureQuietly } from '../proxy/quiet.js';
import { bulkProofs, checkBulkProof, type DpopKey, newDpopKey, tokenRequestProof } from './dpop.js';
import { basicAuth, type IssueResult, issueLoad, TOKEN_PATH } from './issue.js';
import {
  childPids,
  cpuSeconds,
  nproc,
  pinned,
  pinSelfToLoadCore,
  runOnLoadCore,
  startServer,
  stopAll,
} from './procs.js';
import type { ServerHello } from './server.js';

const HERE = fileURLToPath(new URL('.', import.meta.url));
const ROOT = join(HERE, '../..');
const PATH = '/api/2.0/clusters/list';
const LUA = join(HERE, 'lines.lua');

const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    rounds: { type: 'string' },
    duration: { type: 'string' },
    concurrency: { type: 'string', default: '32' },
    connections: { type: 'string', default: '64' },
    profile: { type: 'boolean', default: false },
    'max-foreign': { type: 'string', default: '10' },
    attempts: { type: 'string', default: '4' },
    only: { type: 'string' },
    report: { type: 'string' },
  },
});
const quick = args.quick;
const opts = {
  rounds: Number(args.rounds ?? (quick ? 1 : 5)),
  durationS: Number(args.duration ?? (quick ? 2 : 10)),
  warmupS: quick ? 1 : 3,
  concurrency: Number(args.concurrency),
  connections: Number(args.connections),
  maxForeignPct: Number(args['max-foreign']),
  attempts: Number(args.attempts),
};

const ALL = ['issue', 'issue-dpop', 'bare-node', 'bearer', 'dpop'] as const;
type Name = (typeof ALL)[number];
const NAMES = ALL.filter((n) => args.only === undefined || args.only.split(',').includes(n));
const UNIT: Record<Name, string> = {
  issue: 'tokens/s',
  'issue-dpop': 'tokens/s',
  'bare-node': 'req/s',
  bearer: 'req/s',
  dpop: 'req/s',
};

interface Sample {
  rps: number;
  /** Non-2xx answers and socket errors (wrk), or non-200 answers by kind (issuance). */
  errors: Record<string, number>;
  /** CPU used by the measured server process(es) during the run, % of one core. */
  serverCpuPct: Record<string, number>;
  /** The same for each process's main thread (the event loop) alone. */
  mainThreadPct?: Record<string, number>;
  interference?: Interference;
  /** dpop only: proofs made for the run, and sent. */
  proofs?: { made: number; used: number };
  attempts: number;
}

interface Saved {
  opts: typeof opts;
  samples: Record<Name, Sample[]>;
}

const tmp = mkdtempSync(join(tmpdir(), 'bench-tokens-'));
const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
};
const hasErrors = (e: Record<string, number>) => Object.values(e).some((n) => n > 0);

// ---- servers ------------------------------------------------------------------------------

interface Gateway extends ServerHello {
  pid: number;
}

const profileStamp = new Date().toISOString().replace(/[:.]/g, '-');
async function startGateway(role: string, upstream: string): Promise<Gateway> {
  const nodeArgs = [
    // The flags `keygate serve` picks on the CPUs the gateway has (one, when pinned).
    ...keygateNodeArgs(pinned),
    ...(args.profile
      ? // One folder per gateway: the process writes one profile per thread (main, tsx's loader).
        ['--cpu-prof', '--cpu-prof-dir', join(ROOT, `bench/results/profiles/tokens-${profileStamp}-${role}`)]
      : []),
  ];
  const { hello, pid } = await startServer<ServerHello>(
    join(HERE, 'server.ts'),
    { BENCH_UPSTREAM_URL: upstream },
    nodeArgs,
  );
  return { ...hello, pid };
}

/** One token from the real endpoint; with a key, DPoP-bound (the proof made with jose). */
async function mint(g: Gateway, key?: DpopKey): Promise<string> {
  const headers: Record<string, string> = {
    authorization: basicAuth(g.clientId, g.secret),
    'content-type': 'application/x-www-form-urlencoded',
  };
  if (key !== undefined) headers.dpop = await tokenRequestProof(key, g.url + TOKEN_PATH);
  const r = await request(g.url + TOKEN_PATH, { method: 'POST', headers, body: 'grant_type=client_credentials' });
  const text = await r.body.text();
  if (r.statusCode !== 200) throw new Error(`token endpoint answered ${r.statusCode}: ${text}`);
  const body = JSON.parse(text) as { access_token: string; token_type: string };
  const want = key === undefined ? 'Bearer' : 'DPoP';
  if (body.token_type !== want) throw new Error(`token_type ${body.token_type}, expected ${want}`);
  return body.access_token;
}

async function status(url: string, headers: Record<string, string>): Promise<number> {
  const r = await request(url + PATH, { headers });
  await r.body.dump();
  return r.statusCode;
}

// ---- measurements -------------------------------------------------------------------------

interface WrkResult {
  rps: number;
  errors: Record<string, number>;
  proofsUsed: number | undefined;
}

async function wrk(url: string, seconds: number, authorization: string, proofsFile?: string): Promise<WrkResult> {
  const argv = ['-t1', `-c${opts.connections}`, `-d${seconds}s`, '-s', LUA, '-H', `authorization: ${authorization}`];
  argv.push(url + PATH);
  if (proofsFile !== undefined) argv.push('--', proofsFile);
  const out = await runOnLoadCore('wrk', argv);
  const rps = /Requests\/sec:\s+([\d.]+)/.exec(out)?.[1];
  if (rps === undefined) throw new Error(`wrk printed no rate:\n${out}`);
  const errors: Record<string, number> = {};
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0);
  if (non2xx > 0) errors['non-2xx'] = non2xx;
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  if (sock) {
    const [, connect, read, write, timeout] = sock.map(Number) as [number, number, number, number, number];
    Object.assign(errors, { connect, read, write, timeout });
  }
  const used = /proofs used: (\d+) of/.exec(out)?.[1];
  return { rps: Number(rps), errors, proofsUsed: proofsFile === undefined ? undefined : Number(used) };
}

/** CPU of the given processes over a span, % of one core: each process, and each one's main thread. */
function watchCpu(
  pids: Record<string, number>,
): () => { serverCpuPct: Record<string, number>; mainThreadPct: Record<string, number> } {
  const t0 = performance.now();
  const before = Object.fromEntries(Object.entries(pids).map(([k, pid]) => [k, cpuSeconds(pid)]));
  return () => {
    const s = (performance.now() - t0) / 1000;
    const pct = (x: number) => Math.round((x / s) * 1000) / 10;
    const serverCpuPct: Record<string, number> = {};
    const mainThreadPct: Record<string, number> = {};
    for (const [k, pid] of Object.entries(pids)) {
      const a = before[k];
      const b = cpuSeconds(pid);
      if (a === undefined || b === undefined) continue;
      serverCpuPct[k] = pct(b.all - a.all);
      mainThreadPct[k] = pct(b.main - a.main);
    }
    return { serverCpuPct, mainThreadPct };
  };
}

/** Prepare, then measure, again while other processes were busy (bench/proxy/quiet.ts). */
function guarded<P>(
  what: string,
  prepare: () => Promise<P> | P,
  run: (p: P) => Promise<Omit<Sample, 'attempts' | 'interference'>>,
): Promise<Sample> {
  return measureQuietly(
    what,
    { maxForeignPct: opts.maxForeignPct, attempts: opts.attempts, pids: childPids },
    prepare,
    run,
  );
}

// ---- the run ------------------------------------------------------------------------------

async function main(): Promise<void> {
  if (args.report !== undefined) {
    const saved = JSON.parse(readFileSync(args.report, 'utf8')) as Saved;
    report(saved);
    return;
  }
  pinSelfToLoadCore();
  // wrk -v prints its version and exits 1.
  const v = spawnSync('wrk', ['-v'], { encoding: 'utf8' });
  // The code under test: other work may be changing the tree, so record what it was.
  const git = (argv: string[]) => spawnSync('git', argv, { cwd: ROOT, encoding: 'utf8' }).stdout?.trim() ?? '';
  const machine = {
    git: {
      head: git(['rev-parse', '--short', 'HEAD']),
      changedSrc: git(['status', '--short', '--', 'src']).split('\n'),
    },
    cpus: nproc,
    cpu: cpus()[0]?.model ?? 'unknown',
    kernel: release(),
    node: process.version,
    wrk: `${v.stdout ?? ''}${v.stderr ?? ''}`.split('\n')[0]?.trim() ?? '',
    pinning: pinned ? 'servers on core 0, load generators on core 1' : 'not pinned (fewer than 2 cores or no taskset)',
  };
  console.log(`bench/tokens on ${machine.cpus}× ${machine.cpu}, Node ${machine.node}, ${machine.wrk}`);
  console.log(`pinning: ${machine.pinning}`);
  console.log(`code: ${machine.git.head}, ${machine.git.changedSrc.filter(Boolean).length} changed files under src/`);
  console.log(`settings: ${JSON.stringify(opts)}${quick ? ' (quick)' : ''}`);

  const proxyDir = join(HERE, '../proxy');
  const { hello: up, pid: upstreamPid } = await startServer<{ url: string }>(join(proxyDir, 'upstream.ts'), {});
  const { hello: bare, pid: barePid } = await startServer<{ url: string }>(join(proxyDir, 'bare-proxy.ts'), {
    BENCH_UPSTREAM_URL: up.url,
  });
  const issuer = await startGateway('issue', up.url);
  const kgBearer = await startGateway('bearer', up.url);
  const kgDpop = await startGateway('dpop', up.url);
  const key = await newDpopKey();
  const dpopHtu = kgDpop.url + PATH;

  // ---- checks: the path measured is the authenticated one ---------------------------------
  let bearerToken = await mint(kgBearer);
  let dpopToken = await mint(kgDpop, key);
  await mint(issuer);
  await mint(issuer, key);
  if ((await status(bare.url, { authorization: `Bearer ${bearerToken}` })) !== 200)
    throw new Error('bare-node not 200');
  if ((await status(kgBearer.url, { authorization: `Bearer ${bearerToken}` })) !== 200)
    throw new Error('Keygate refused the bearer token');
  if ((await status(kgBearer.url, {})) !== 401) throw new Error('Keygate did not refuse a request without a token');
  const [p1] = bulkProofs(key, 'GET', dpopHtu, dpopToken, 1) as [string];
  await checkBulkProof(p1, dpopHtu, dpopToken);
  if ((await status(kgDpop.url, { authorization: `DPoP ${dpopToken}`, dpop: p1 })) !== 200)
    throw new Error('Keygate refused the DPoP token and proof');
  if ((await status(kgDpop.url, { authorization: `DPoP ${dpopToken}`, dpop: p1 })) !== 401)
    throw new Error('Keygate accepted a replayed DPoP proof');
  if ((await status(kgDpop.url, { authorization: `Bearer ${dpopToken}` })) !== 401)
    throw new Error('Keygate accepted a DPoP-bound token as a bearer token');
  const claims = decodeJwt(dpopToken) as { roles?: string[]; exp?: number; iat?: number };
  console.log(
    `tokens: ES256 JWT, roles ${JSON.stringify(claims.roles)}, lifetime ${(claims.exp ?? 0) - (claims.iat ?? 0)} s; checks passed`,
  );

  const samples = Object.fromEntries(ALL.map((n) => [n, [] as Sample[]])) as Record<Name, Sample[]>;
  // The highest rate each target has reached so far (warm-up included): sizes the proof files.
  const peak = Object.fromEntries(ALL.map((n) => [n, 0])) as Record<Name, number>;
  const best = (n: Name) => peak[n];
  let proofFile = 0;
  const writeProofs = (proofs: string[]) => {
    const file = join(tmp, `proofs-${++proofFile}.txt`);
    writeFileSync(file, `${proofs.join('\n')}\n`);
    return file;
  };

  const measure: Record<Name, (seconds: number, round: number) => Promise<Sample>> = {
    issue: (s) =>
      guarded(
        'issue',
        () => undefined,
        async () => {
          const cpu = watchCpu({ gateway: issuer.pid });
          const r = await issueLoad(issuer.url, { ...issuer, concurrency: opts.concurrency, durationMs: s * 1000 });
          return fromIssue(r, cpu());
        },
      ),
    'issue-dpop': (s) =>
      guarded(
        'issue-dpop',
        () => {
          const rate = Math.max(best('issue'), best('issue-dpop'), 2000);
          return bulkProofs(key, 'POST', issuer.url + TOKEN_PATH, undefined, Math.ceil(rate * s * 1.5) + 500);
        },
        async (proofs) => {
          const cpu = watchCpu({ gateway: issuer.pid });
          const r = await issueLoad(issuer.url, {
            ...issuer,
            concurrency: opts.concurrency,
            durationMs: s * 1000,
            proofs,
          });
          return fromIssue(r, cpu());
        },
      ),
    'bare-node': (s) =>
      guarded(
        'bare-node',
        () => undefined,
        async () => {
          const cpu = watchCpu({ proxy: barePid, upstream: upstreamPid });
          const r = await wrk(bare.url, s, `Bearer ${bearerToken}`);
          return { rps: r.rps, errors: r.errors, ...cpu() };
        },
      ),
    bearer: (s) =>
      guarded(
        'bearer',
        () => undefined,
        async () => {
          const cpu = watchCpu({ gateway: kgBearer.pid, upstream: upstreamPid });
          const r = await wrk(kgBearer.url, s, `Bearer ${bearerToken}`);
          return { rps: r.rps, errors: r.errors, ...cpu() };
        },
      ),
    dpop: (s, round) =>
      guarded(
        'dpop',
        async () => {
          // Enough proofs for this round's bearer rate and then some (dpop does more work per request).
          const bearerNow = samples.bearer[round - 1]?.rps ?? best('bearer');
          const rate = Math.max(bearerNow, best('dpop'), best('bare-node'), 1000);
          const made = Math.ceil(rate * s * 1.5) + 1000;
          return { file: writeProofs(bulkProofs(key, 'GET', dpopHtu, dpopToken, made)), made };
        },
        async ({ file, made }) => {
          const cpu = watchCpu({ gateway: kgDpop.pid, upstream: upstreamPid });
          const r = await wrk(kgDpop.url, s, `DPoP ${dpopToken}`, file);
          const used = cpu();
          rmSync(file, { force: true });
          const sent = r.proofsUsed ?? 0;
          if (sent > made) r.errors['out-of-proofs'] = sent - made;
          return { rps: r.rps, errors: r.errors, ...used, proofs: { made, used: sent } };
        },
      ),
  };

  const line = (what: string, n: Name, x: Sample) => {
    peak[n] = Math.max(peak[n], x.rps);
    const cpu = Object.entries(x.serverCpuPct)
      .map(([k, v]) => `${k} ${v}% (main thread ${x.mainThreadPct?.[k] ?? '?'}%)`)
      .join(', ');
    const extra = [
      `cpu: ${cpu}`,
      ...(x.proofs ? [`proofs used ${x.proofs.used} of ${x.proofs.made}`] : []),
      ...(x.interference ? [`foreign CPU ${x.interference.foreignPct}%`] : []),
      ...(hasErrors(x.errors) ? [`ERRORS ${JSON.stringify(x.errors)}`] : []),
    ];
    console.log(`${what} ${n.padEnd(10)} ${x.rps.toFixed(0).padStart(6)} ${UNIT[n].padEnd(8)}  (${extra.join('; ')})`);
  };

  // Warm every target up (JIT, pools, caches), then interleave the rounds.
  for (const n of NAMES) line('warm-up     ', n, await measure[n](opts.warmupS, 0));
  for (let round = 1; round <= opts.rounds; round++) {
    // Fresh tokens every round: a machine token lives 15 minutes, a full run is longer.
    bearerToken = await mint(kgBearer);
    dpopToken = await mint(kgDpop, key);
    for (const n of NAMES) {
      const x = await measure[n](opts.durationS, round);
      samples[n].push(x);
      line(`round ${round}/${opts.rounds}`, n, x);
      if (n !== 'issue' && n !== 'issue-dpop' && hasErrors(x.errors)) {
        throw new Error(`${n}: errors during the measurement: ${JSON.stringify(x.errors)}`);
      }
    }
  }

  const saved: Saved = { opts, samples };
  const summary = report(saved);
  mkdirSync(join(ROOT, 'bench/results'), { recursive: true });
  const file = join(ROOT, `bench/results/tokens-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, `${JSON.stringify({ machine, command: process.argv.slice(1), ...saved, summary }, null, 2)}\n`);
  console.log(`\nresults: ${file}`);
}

function fromIssue(
  r: IssueResult,
  cpu: Pick<Sample, 'serverCpuPct' | 'mainThreadPct'>,
): Omit<Sample, 'attempts' | 'interference'> {
  const errors = { ...r.errors, ...(r.exhausted ? { 'out-of-proofs': 1 } : {}) };
  return { rps: r.rps, errors, ...cpu };
}

/** Print the tables and the target checks; return the same figures for the JSON file. */
function report(saved: Saved) {
  const { samples, opts: o } = saved;
  const rps = (n: Name) => (samples[n] ?? []).map((s) => s.rps);
  const ratio = (n: Name, base: Name) => {
    const b = rps(base);
    return rps(n).map((x, i) => x / (b[i] as number));
  };
  const f = (x: number, d = 0) =>
    Number.isFinite(x) ? x.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d }) : '–';
  const errs = (n: Name) => samples[n].reduce((sum, s) => sum + Object.values(s.errors).reduce((a, b) => a + b, 0), 0);
  const cpu = (n: Name, k: string) => median(samples[n].map((s) => s.serverCpuPct[k] ?? Number.NaN));

  console.log(`\n| measurement | median of ${o.rounds} | per round | server CPU, % of a core (median) | errors |`);
  console.log('|---|---|---|---|---|');
  for (const n of ALL.filter((x) => (samples[x] ?? []).length > 0)) {
    const per = rps(n)
      .map((x) => f(x))
      .join(' / ');
    const keys = Object.keys(samples[n][0]?.serverCpuPct ?? {});
    const c = keys.map((k) => `${k} ${f(cpu(n, k))}`).join(', ');
    console.log(`| ${n} (${UNIT[n]}) | ${f(median(rps(n)))} | ${per} | ${c} | ${errs(n)} |`);
  }

  // Server CPU per request (or token): what the core-0 budget is spent on, per process and thread.
  const perOp = (n: Name, k: string, field: 'serverCpuPct' | 'mainThreadPct') =>
    median(samples[n].map((s) => ((s[field]?.[k] ?? Number.NaN) / 100 / s.rps) * 1e6));
  console.log(
    '\n| measurement | server CPU per request or token, µs (median): process = main thread + other threads |',
  );
  console.log('|---|---|');
  const cpuPerOp: Record<string, Record<string, { all: number; main: number }>> = {};
  for (const n of ALL.filter((x) => (samples[x] ?? []).length > 0)) {
    const keys = Object.keys(samples[n][0]?.serverCpuPct ?? {});
    const row = Object.fromEntries(
      keys.map((k) => [k, { all: perOp(n, k, 'serverCpuPct'), main: perOp(n, k, 'mainThreadPct') }]),
    );
    cpuPerOp[n] = row;
    const cells = Object.entries(row).map(([k, { all, main }]) => `${k} ${f(all)} = ${f(main)} + ${f(all - main)}`);
    console.log(`| ${n} | ${cells.join('; ')} |`);
  }
  const checks = {
    issueRps: median(rps('issue')),
    issueDpopRps: median(rps('issue-dpop')),
    bearerVsBare: median(ratio('bearer', 'bare-node')),
    bearerVsBarePerRound: ratio('bearer', 'bare-node'),
    dpopVsBearer: median(ratio('dpop', 'bearer')),
    dpopVsBearerPerRound: ratio('dpop', 'bearer'),
    dpopVsBare: median(ratio('dpop', 'bare-node')),
    cpuPerOp,
  };
  const per = (xs: number[]) => xs.map((x) => f(x, 2)).join(' ');
  // A figure that was not measured (--only) is NaN: no verdict for it.
  const verdict = (x: number, ok: boolean) => (Number.isNaN(x) ? 'not measured' : ok ? 'met' : 'NOT met');
  console.log(
    `\ntoken issuance ${f(checks.issueRps)} tokens/s (target ≥ 1,000): ${verdict(checks.issueRps, checks.issueRps >= 1000)}`,
  );
  console.log(`DPoP-bound issuance ${f(checks.issueDpopRps)} tokens/s`);
  console.log(
    `bearer / bare-node ${f(checks.bearerVsBare, 2)} (per round ${per(checks.bearerVsBarePerRound)}; target ≥ 0.90): ${verdict(checks.bearerVsBare, checks.bearerVsBare >= 0.9)}`,
  );
  console.log(
    `dpop / bearer ${f(checks.dpopVsBearer, 2)} (per round ${per(checks.dpopVsBearerPerRound)}; target ≥ 0.60): ${verdict(checks.dpopVsBearer, checks.dpopVsBearer >= 0.6)}`,
  );
  return checks;
}

try {
  await main();
} catch (e) {
  console.error(e instanceof Error ? e.message : e);
  process.exitCode = 1;
} finally {
  await stopAll();
  rmSync(tmp, { recursive: true, force: true });
}
