/**
 * Where the audit log's cost on the proxy goes, thread by thread: bench/proxy's upstream and
 * Keygate (default config, and with `BENCH_AUDIT=off`) pinned to core 0, wrk on core 1 at
 * saturation, and the CPU time (user + system, from /proc/<pid>/task/<tid>/stat) each thread of
 * each process used during the measurement, per request. Interleaved rounds; medians.
 *
 *   npx tsx bench/audit/threads.ts [--rounds 3] [--duration 10] [--profile] [--burn 4] [--writer-core 1]
 *
 * --profile also writes a V8 CPU profile of each Keygate (every thread) to
 * bench/results/profiles/threads-<target>/ and prints the main thread's functions with the most
 * self time, in µs per request (warm-ups included in the count), side by side.
 * --burn n adds a third Keygate without audit records that spins n µs of CPU per request
 * (BENCH_BURN_US): a synthetic per-request cost of known size, to compare with the record's.
 * --writer-core n adds a Keygate with audit records whose audit writer thread is moved to core n
 * (the load generator's) after its first warm-up: what the record costs the request thread when
 * the writer does not share its core. The writer is found as the thread other than the main
 * one that used the most CPU in that warm-up, and only if it used more than 4 µs a request
 * (V8's GC helpers use ~1); the runner prints which thread it moved.
 * Every Keygate runs with the node flags `keygate serve` picks on one CPU
 * (bench/proxy/as-deployed.ts); --node-args="…" gives these flags instead (--node-args=" "
 * for V8's defaults).
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { keygateNodeArgs } from '../proxy/as-deployed.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const PROXY = join(ROOT, 'bench/proxy');
const { values: args } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    duration: { type: 'string', default: '10' },
    profile: { type: 'boolean', default: false },
    burn: { type: 'string' },
    'writer-core': { type: 'string' },
    'node-args': { type: 'string' },
  },
});
const rounds = Number(args.rounds);
const extraNodeArgs = args['node-args']?.split(' ').filter((a) => a !== '') ?? keygateNodeArgs(true);
const seconds = Number(args.duration);
const TICK_US = 1e6 / Number(execFileSync('getconf', ['CLK_TCK']).toString().trim());

const children: ChildProcess[] = [];
process.once('exit', () => {
  for (const c of children) if (c.exitCode === null && c.pid !== undefined) process.kill(c.pid, 'SIGTERM');
});
execFileSync('taskset', ['-apc', '1', String(process.pid)], { stdio: 'ignore' });

interface Started {
  url: string;
  pid: number;
  child: ChildProcess;
  /** Requests sent to it in all, warm-ups included. */
  requests: number;
  /** Move its audit writer thread to this core after the first warm-up. */
  writerCore?: string;
}

async function start(script: string, env: Record<string, string>, nodeArgs: string[] = []): Promise<Started> {
  const flags = script === 'keygate-server.ts' ? extraNodeArgs : [];
  const child = spawn(
    'taskset',
    ['-c', '0', process.execPath, ...flags, ...nodeArgs, '--import', 'tsx', join(PROXY, script)],
    {
      cwd: ROOT,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
    },
  );
  children.push(child);
  const [msg] = (await once(child, 'message')) as [{ url: string }];
  return { url: msg.url, pid: child.pid as number, child, requests: 0 };
}

/** CPU ticks per thread of a process. */
function threads(pid: number): Map<number, number> {
  const out = new Map<number, number>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    out.set(Number(tid), Number(f[11]) + Number(f[12]));
  }
  return out;
}

async function wrk(url: string): Promise<number> {
  const child = spawn(
    'taskset',
    [
      '-c',
      '1',
      'wrk',
      '-t1',
      '-c64',
      `-d${seconds}s`,
      '-H',
      'x-test-identity: test-identity-secret:bench',
      `${url}/api/2.0/clusters/list`,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  let out = '';
  child.stdout?.on('data', (d: Buffer) => {
    out += d.toString();
  });
  await once(child, 'exit');
  const rps = /Requests\/sec:\s+([\d.]+)/.exec(out)?.[1];
  if (rps === undefined || /Non-2xx/.test(out)) throw new Error(`wrk failed:\n${out}`);
  return Number(rps);
}

interface Row {
  rps: number;
  main: number;
  others: number;
  busiestOther: number;
  upstream: number;
}

async function measure(target: Started, upstreamPid: number): Promise<Row> {
  // Warm-up (same length: the audit file and the pools reach steady state).
  const warm = threads(target.pid);
  const warmed = (await wrk(target.url)) * seconds;
  target.requests += warmed;
  if (target.writerCore !== undefined) moveWriter(target, warm, warmed);
  const before = threads(target.pid);
  const upBefore = [...threads(upstreamPid).values()].reduce((a, b) => a + b, 0);
  const rps = await wrk(target.url);
  const after = threads(target.pid);
  const upAfter = [...threads(upstreamPid).values()].reduce((a, b) => a + b, 0);
  const n = rps * seconds;
  target.requests += n;
  const per = (ticks: number) => (ticks * TICK_US) / n;
  let others = 0;
  let busiest = 0;
  for (const [tid, t] of after) {
    const d = t - (before.get(tid) ?? 0);
    if (tid === target.pid) continue;
    others += d;
    busiest = Math.max(busiest, d);
  }
  return {
    rps,
    main: per((after.get(target.pid) ?? 0) - (before.get(target.pid) ?? 0)),
    others: per(others),
    busiestOther: per(busiest),
    upstream: per(upAfter - upBefore),
  };
}

/** --writer-core: the busiest thread but the main one during the warm-up is the audit writer. */
function moveWriter(target: Started, before: Map<number, number>, requests: number): void {
  const core = target.writerCore as string;
  delete target.writerCore;
  let tid = 0;
  let most = 0;
  for (const [t, ticks] of threads(target.pid)) {
    const d = ticks - (before.get(t) ?? 0);
    if (t !== target.pid && d > most) {
      most = d;
      tid = t;
    }
  }
  const us = (most * TICK_US) / requests;
  if (us <= 4)
    throw new Error(`--writer-core: no thread looks like the audit writer (busiest ${us.toFixed(1)} µs a request)`);
  execFileSync('taskset', ['-pc', core, String(tid)], { stdio: 'ignore' });
  console.error(`moved thread ${tid} (${us.toFixed(1)} µs a request in the warm-up) to core ${core}`);
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;

const upstream = await start('upstream.ts', {});
const env = { BENCH_UPSTREAM_URL: upstream.url };
const profileDir = (name: string) => join(ROOT, 'bench/results/profiles', `threads-${name}`);
const prof = (name: string) => (args.profile ? ['--cpu-prof', '--cpu-prof-dir', profileDir(name)] : []);
if (args.profile)
  for (const n of ['keygate', 'keygate-noaudit']) rmSync(profileDir(n), { recursive: true, force: true });
const targets: Record<string, Started> = {
  keygate: await start('keygate-server.ts', env, prof('keygate')),
  'keygate-noaudit': await start('keygate-server.ts', { ...env, BENCH_AUDIT: 'off' }, prof('keygate-noaudit')),
};
if (args.burn !== undefined)
  targets[`keygate-noaudit-burn${args.burn}`] = await start('keygate-server.ts', {
    ...env,
    BENCH_AUDIT: 'off',
    BENCH_BURN_US: args.burn,
  });
if (args['writer-core'] !== undefined) {
  const t = await start('keygate-server.ts', env);
  t.writerCore = args['writer-core'];
  targets[`keygate-writer-on-core${args['writer-core']}`] = t;
}
const rows: Record<string, Row[]> = Object.fromEntries(Object.keys(targets).map((k) => [k, []]));
for (let r = 0; r < rounds; r++) {
  for (const [name, t] of Object.entries(targets)) {
    const row = await measure(t, upstream.pid);
    (rows[name] as Row[]).push(row);
    console.error(`round ${r + 1} ${name}: ${JSON.stringify(row)}`);
  }
}
console.log(`\nbench/audit/threads — ${rounds} rounds of ${seconds} s, µs of CPU per request (median of rounds)\n`);
// Audit cost: 1 − req/s ÷ the Keygate without records, per round (interleaved), median.
const noaudit = rows['keygate-noaudit'] as Row[];
console.log(
  '| target | req/s | cost vs keygate-noaudit | main thread | other threads | · busiest other thread | upstream | total |',
);
console.log('|---|---|---|---|---|---|---|---|');
for (const [name, rs] of Object.entries(rows)) {
  const m = (k: keyof Row) => median(rs.map((x) => x[k]));
  const total = median(rs.map((x) => x.main + x.others + x.upstream));
  const cost = median(rs.map((x, i) => 1 - x.rps / (noaudit[i] as Row).rps));
  console.log(
    `| ${name} | ${m('rps').toFixed(0)} | ${(cost * 100).toFixed(1)} % | ${m('main').toFixed(1)} | ${m('others').toFixed(1)} | ${m('busiestOther').toFixed(1)} | ${m('upstream').toFixed(1)} | ${total.toFixed(1)} |`,
  );
}
if (args.profile) {
  // A clean exit on SIGTERM writes the profiles.
  const self: Record<string, Map<string, number>> = {};
  for (const name of ['keygate', 'keygate-noaudit']) {
    const t = targets[name] as Started;
    process.kill(t.pid, 'SIGTERM');
    if (t.child.exitCode === null) await once(t.child, 'exit');
    const main = readdirSync(profileDir(name)).find((f) => f.includes(`.${t.pid}.0.`));
    if (main === undefined) throw new Error(`no main-thread profile for ${name}`);
    const p = JSON.parse(readFileSync(join(profileDir(name), main), 'utf8')) as {
      nodes: { id: number; callFrame: { functionName: string; url: string } }[];
      samples: number[];
      timeDeltas: number[];
    };
    const fn = new Map(p.nodes.map((n) => [n.id, n.callFrame]));
    const by = new Map<string, number>();
    p.samples.forEach((id, i) => {
      const f = fn.get(id);
      const key = `${f?.functionName || '(anonymous)'} ${f?.url.replace(/^.*\/(node_modules|src)\//, '$1/') ?? ''}`;
      if (f?.functionName === '(idle)') return;
      by.set(key, (by.get(key) ?? 0) + (p.timeDeltas[i] ?? 0) / t.requests);
    });
    self[name] = by;
  }
  const on = self.keygate as Map<string, number>;
  const off = self['keygate-noaudit'] as Map<string, number>;
  const keys = [...new Set([...on.keys(), ...off.keys()])]
    .map((k) => ({ k, d: (on.get(k) ?? 0) - (off.get(k) ?? 0) }))
    .sort((a, b) => b.d - a.d)
    .slice(0, 25);
  console.log('\nmain thread, self time in µs per request: audit on − off (largest differences)\n');
  console.log('| function | audit on | audit off | difference |\n|---|---|---|---|');
  for (const { k, d } of keys)
    console.log(`| ${k} | ${(on.get(k) ?? 0).toFixed(2)} | ${(off.get(k) ?? 0).toFixed(2)} | ${d.toFixed(2)} |`);
}
process.exit(0);
