/**
 * The audit log's cost on the proxy: bench/proxy with Keygate's default config (one audit
 * record per proxied request) and `keygate-noaudit` (the same without it), interleaved round by
 * round in one run, with bare-node as the usual floor. The cost is 1 − keygate / keygate-noaudit,
 * the median of the per-round ratios.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

export interface ProxyOptions {
  rounds: number;
  duration: number | undefined;
  /** Re-read a saved bench/proxy run instead of running one. */
  report: string | undefined;
  root: string;
}

interface SavedTarget {
  name: string;
  rps: number[];
  latency: { p50: number; p99: number; interference?: { foreignPct: number } }[];
  samples: { interference?: { foreignPct: number } }[];
}

export interface ProxyResult {
  file: string;
  rounds: number;
  /** Median req/s per target. */
  rps: Record<string, number>;
  /** Per round: 1 − keygate / keygate-noaudit. */
  costPerRound: number[];
  cost: number;
  keygateVsBare: number;
  noauditVsBare: number;
  /** Median p99 at the fixed rate, ms. */
  p99: Record<string, number>;
  /** Highest foreign CPU seen during any saturation measurement, % of one core. */
  maxForeignPct: number;
}

const TARGETS = ['bare-node', 'keygate', 'keygate-noaudit'];

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

async function runProxyBench(o: ProxyOptions): Promise<string> {
  const argv = [
    '--import',
    'tsx',
    join(o.root, 'bench/proxy/run.ts'),
    '--only',
    TARGETS.join(','),
    '--rounds',
    String(o.rounds),
  ];
  if (o.duration !== undefined) argv.push('--duration', String(o.duration));
  const child = spawn(process.execPath, argv, { cwd: o.root, stdio: ['ignore', 'pipe', 'inherit'] });
  // Stop it by its PID if this process is interrupted (it stops its own servers).
  const stop = () => child.kill('SIGTERM');
  process.once('SIGINT', stop);
  let out = '';
  child.stdout?.on('data', (d: Buffer) => {
    process.stdout.write(d);
    out += d.toString();
  });
  const [code] = (await once(child, 'exit')) as [number | null];
  process.off('SIGINT', stop);
  const file = /^results: (.+)$/m.exec(out)?.[1];
  if (code !== 0 || file === undefined) throw new Error(`bench/proxy failed (exit ${code})`);
  return file.trim();
}

export async function proxyBench(o: ProxyOptions): Promise<ProxyResult> {
  const file = o.report ?? (await runProxyBench(o));
  const saved = JSON.parse(readFileSync(file, 'utf8')) as { targets: SavedTarget[] };
  const by = new Map(saved.targets.map((t) => [t.name, t]));
  const get = (n: string): SavedTarget => {
    const t = by.get(n);
    if (t === undefined) throw new Error(`${file} has no ${n} target`);
    return t;
  };
  const on = get('keygate').rps;
  const off = get('keygate-noaudit').rps;
  const bare = get('bare-node').rps;
  const perRound = (a: number[], b: number[]) => a.map((x, i) => x / (b[i] as number));
  const costPerRound = perRound(on, off).map((x) => 1 - x);
  return {
    file,
    rounds: on.length,
    rps: Object.fromEntries(TARGETS.map((n) => [n, median(get(n).rps)])),
    costPerRound,
    cost: median(costPerRound),
    keygateVsBare: median(perRound(on, bare)),
    noauditVsBare: median(perRound(off, bare)),
    p99: Object.fromEntries(TARGETS.map((n) => [n, median(get(n).latency.map((l) => l.p99))])),
    maxForeignPct: Math.max(0, ...saved.targets.flatMap((t) => t.samples.map((s) => s.interference?.foreignPct ?? 0))),
  };
}
