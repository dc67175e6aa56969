/**
 * The machine is shared: other processes on it (a build, a test run) steal the cores the
 * benchmark pinned. This measures, over one measurement, how much CPU went to processes
 * that are not ours, from /proc (Linux only; elsewhere it reports nothing).
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

const TICKS_PER_SECOND = 100; // USER_HZ on Linux

interface Sample {
  at: number;
  busy: number;
  steal: number;
  ours: number;
}

function procTicks(pid: number | 'self'): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after "(comm)": state is [0], utime [11], stime [12], cutime [13], cstime [14].
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return [11, 12, 13, 14].reduce((sum, i) => sum + Number(f[i]), 0);
  } catch {
    return 0;
  }
}

function sample(pids: readonly number[]): Sample | undefined {
  try {
    const cpu = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]?.split(/\s+/).slice(1).map(Number) ?? [];
    const [user = 0, nice = 0, system = 0, , , , , steal = 0] = cpu;
    const ours = pids.reduce((sum, pid) => sum + procTicks(pid), procTicks('self'));
    return { at: performance.now(), busy: user + nice + system, steal, ours };
  } catch {
    return undefined;
  }
}

export interface Interference {
  /** CPU used by processes other than the benchmark's, in % of one core, on average. */
  foreignPct: number;
  /** CPU time the hypervisor took, in % of one core. */
  stealPct: number;
}

/** Start watching; call the result at the end of the measurement. `pids`: our live children. */
export function watchInterference(pids: () => readonly number[]): () => Interference | undefined {
  const before = sample(pids());
  return () => {
    const after = sample(pids());
    if (before === undefined || after === undefined) return undefined;
    const ticks = ((after.at - before.at) / 1000) * TICKS_PER_SECOND;
    const pct = (x: number) => Math.max(0, Math.round((x / ticks) * 1000) / 10);
    return {
      foreignPct: pct(after.busy - before.busy - (after.ours - before.ours)),
      stealPct: pct(after.steal - before.steal),
    };
  };
}

/** Whether `taskset` can pin processes to cores here. */
export function hasTaskset(): boolean {
  try {
    execFileSync('taskset', ['-V'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/**
 * Prepare, then measure; when other processes took more than `maxForeignPct` % of a core during
 * the measurement, wait and do both again, up to `attempts` times, keeping the quietest.
 */
export async function measureQuietly<P, T extends object>(
  what: string,
  limits: { maxForeignPct: number; attempts: number; pids: () => number[] },
  prepare: () => Promise<P> | P,
  run: (p: P) => Promise<T>,
): Promise<T & { interference?: Interference; attempts: number }> {
  type Kept = T & { interference?: Interference; attempts: number };
  let best: Kept | undefined;
  for (let attempt = 1; ; attempt++) {
    const p = await prepare();
    const stop = watchInterference(limits.pids);
    const result: Kept = { ...(await run(p)), attempts: attempt };
    const interference = stop();
    if (interference === undefined) return result;
    result.interference = interference;
    if (interference.foreignPct <= limits.maxForeignPct) return result;
    if (best === undefined || interference.foreignPct < (best.interference?.foreignPct ?? 0)) best = result;
    if (attempt >= limits.attempts) {
      console.log(`  ${what}: still ${interference.foreignPct}% foreign CPU; keeping the quietest attempt`);
      return best;
    }
    console.log(`  ${what}: other processes took ${interference.foreignPct}% of a core; measuring again`);
    await new Promise((r) => setTimeout(r, 5000));
  }
}
