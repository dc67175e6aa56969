/**
 * The runner's child processes, as in bench/proxy/run.ts: every process started is tracked and
 * stopped by its PID (on exit, on error, on Ctrl-C); servers are pinned to core 0 and load
 * generators (and the runner) to core 1 when there are two cores and `taskset`.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { hasTaskset } from '../proxy/quiet.js';
import { availableParallelism } from 'node:os';

const running = new Set<ChildProcess>();

export function track(child: ChildProcess): ChildProcess {
  running.add(child);
  child.once('exit', () => running.delete(child));
  return child;
}

/** PIDs of the live children (for the other-load accounting of bench/proxy/quiet.ts). */
export const childPids = (): number[] => [...running].flatMap((c) => (c.pid === undefined ? [] : [c.pid]));

let cleaning: Promise<void> | undefined;
export function stopAll(): Promise<void> {
  cleaning ??= (async () => {
    await Promise.all(
      [...running].map((c) => {
        const exited = once(c, 'exit');
        c.kill('SIGTERM');
        const force = setTimeout(() => c.kill('SIGKILL'), 5000);
        return exited.finally(() => clearTimeout(force));
      }),
    );
  })();
  return cleaning;
}
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    console.error(`\n${sig}: stopping servers`);
    stopAll().then(() => process.exit(130));
  });
}
process.once('exit', () => {
  for (const c of running) c.kill('SIGKILL');
});

export const nproc = availableParallelism();
export const pinned = nproc >= 2 && hasTaskset();

/** Prefix a command with `taskset -c <core>` when pinning is possible. */
export const onCore = (core: number, cmd: string, argv: string[]): [string, string[]] =>
  pinned ? ['taskset', ['-c', String(core), cmd, ...argv]] : [cmd, argv];

/** Move this process (all its threads) to core 1, with the load generators. */
export function pinSelfToLoadCore(): void {
  if (pinned) execFileSync('taskset', ['-apc', '1', String(process.pid)], { stdio: 'ignore' });
}

/**
 * Start a server script under Node (with tsx) on core 0 and wait for its first IPC message
 * (where it listens, and whatever else it announces). stdout is discarded (the gateway's log).
 */
export async function startServer<T extends { url: string }>(
  script: string,
  env: Record<string, string>,
  nodeArgs: string[] = [],
): Promise<{ hello: T; pid: number; child: ChildProcess }> {
  const [cmd, argv] = onCore(0, process.execPath, [...nodeArgs, '--import', 'tsx', script]);
  const child = track(
    spawn(cmd, argv, { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'inherit', 'ipc'] }),
  );
  const [hello] = (await Promise.race([
    once(child, 'message'),
    once(child, 'exit').then(() => {
      throw new Error(`${script} exited before listening`);
    }),
  ])) as [T];
  return { hello, pid: child.pid as number, child };
}

/** Run a command to completion on core 1; its stdout. A non-zero exit throws. */
export async function runOnLoadCore(cmd: string, argv: string[]): Promise<string> {
  const [c, a] = onCore(1, cmd, argv);
  const child = track(spawn(c, a, { stdio: ['ignore', 'pipe', 'inherit'] }));
  let out = '';
  child.stdout?.on('data', (d: Buffer) => {
    out += d.toString();
  });
  const [code] = (await once(child, 'exit')) as [number | null];
  if (code !== 0) throw new Error(`${cmd} failed (exit ${code}):\n${out}`);
  return out;
}

function statSeconds(path: string): number | undefined {
  try {
    const stat = readFileSync(path, 'utf8');
    // Fields after "(comm)": utime is [11], stime [12], in USER_HZ (100) ticks.
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / 100;
  } catch {
    return undefined;
  }
}

/**
 * CPU time a process has used so far, in seconds (user + system; Linux only): all its threads,
 * and its main thread alone (the event loop; the rest is V8's GC helpers, libuv's thread pool
 * and worker threads such as Keygate's audit writer).
 */
export function cpuSeconds(pid: number): { all: number; main: number } | undefined {
  const all = statSeconds(`/proc/${pid}/stat`);
  const main = statSeconds(`/proc/${pid}/task/${pid}/stat`);
  return all === undefined || main === undefined ? undefined : { all, main };
}
