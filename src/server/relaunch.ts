/**
 * On one CPU, the gateway runs V8's garbage collector on the request thread only.
 *
 * V8 collects garbage with helper threads: parallel scavenges, concurrent marking and
 * sweeping. With one CPU those helpers cannot run beside the request thread; they take turns
 * with it, and the request thread waits out their scheduler slices (in a scavenge it joins
 * helpers that are not running). `--single-threaded-gc` removes the helpers. Measured in
 * bench/proxy with the gateway pinned to one core (docs/BENCHMARKS.md): rounds at 1,000 req/s
 * with a p99 over 10 ms, 15 of 38 with V8's defaults against 6 of 94 with these flags;
 * throughput the same when the defaults did not stall, up to a third higher when they did.
 * V8 reads the flag when it starts (setting it later
 * aborts the process), so `keygate serve` and `keygate demo` on one CPU start a second node
 * with it and pass signals and the exit status through — what the JVM does when it picks its
 * collector by the CPUs it may use. A GC flag given to node by hand means the operator chose:
 * no relaunch.
 */
import { spawn } from 'node:child_process';
import { constants } from 'node:os';

/**
 * What node is given on one CPU: the collector on the request thread, and a young generation
 * that starts at 16 MB semi-spaces (V8's default maximum; it may grow to 32). V8 starts them
 * at 1 MB and grows them only when many objects survive a scavenge, which in a proxy they
 * rarely do, so it scavenges every MB or so of allocation — and with one CPU every scavenge
 * now runs on the request thread. Measured: +13 to +22 % requests per second on top of the
 * first flag alone, p99 at 1,000 req/s +0.1 to +0.7 ms; the cost is up to ~64 MB more memory.
 */
export const ONE_CPU_NODE_ARGS: readonly string[] = [
  '--single-threaded-gc',
  '--min-semi-space-size=16',
  '--max-semi-space-size=32',
];

/** Set in the relaunched process: it must not relaunch again, and it follows its supervisor. */
export const RELAUNCHED_ENV = 'KEYGATE_RELAUNCHED';

/** The long-running commands; every other command is short and keeps the first process. */
const SERVER_COMMANDS = new Set(['serve', 'demo']);

/**
 * A V8 flag that decides how the collector uses threads, in either spelling, negated or not:
 * given by hand, it means the operator chose. (Young-generation sizes given by hand do not stop
 * the relaunch; they come after ours on the new command line, and the last one counts.)
 */
const GC_THREADING_FLAG =
  /^--(no-?)?(single[-_]threaded[-_]gc|single[-_]threaded|parallel[-_]scavenge|concurrent[-_]marking|parallel[-_]marking|concurrent[-_]sweeping)(=|$)/;

export interface RelaunchInput {
  /** The CLI's arguments (process.argv after the script). */
  args: readonly string[];
  /** The flags node was started with (process.execArgv). */
  execArgv: readonly string[];
  env: NodeJS.ProcessEnv;
  /** CPUs this process may use (cpuBudget); asked only for a server command. */
  cpus: () => number;
}

/** The node flags to relaunch with, or undefined to run in this process. */
export function relaunchArgs(o: RelaunchInput): string[] | undefined {
  if (!SERVER_COMMANDS.has(o.args[0] ?? '')) return undefined;
  if (o.env[RELAUNCHED_ENV] !== undefined) return undefined;
  if (o.execArgv.some((a) => GC_THREADING_FLAG.test(a))) return undefined;
  if (o.cpus() >= 2) return undefined;
  return [...ONE_CPU_NODE_ARGS, ...o.execArgv];
}

/**
 * Run `script args` in a new node with `nodeArgs` and wait for it. SIGINT and SIGTERM are
 * passed on (the child is in its own process group, so a terminal's Ctrl-C reaches it once,
 * through here); the child's exit status becomes this process's (128 + n for signal n). If
 * this process dies without passing anything on, the child sees its IPC channel close and
 * stops as on SIGTERM (followSupervisor).
 */
export function supervise(nodeArgs: readonly string[], script: string, args: readonly string[]): Promise<number> {
  const child = spawn(process.execPath, [...nodeArgs, script, ...args], {
    stdio: ['inherit', 'inherit', 'inherit', 'ipc'],
    env: { ...process.env, [RELAUNCHED_ENV]: '1' },
    detached: true,
  });
  const pass = (sig: NodeJS.Signals) => child.kill(sig);
  process.on('SIGINT', pass);
  process.on('SIGTERM', pass);
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      process.off('SIGINT', pass);
      process.off('SIGTERM', pass);
      resolve(code ?? 128 + (signal === null ? 0 : constants.signals[signal]));
    });
  });
}

/** In the relaunched process: stop (as on SIGTERM) when the supervising process is gone. */
export function followSupervisor(): void {
  if (process.env[RELAUNCHED_ENV] === undefined || process.channel === undefined) return;
  delete process.env[RELAUNCHED_ENV]; // not inherited by what this process starts
  process.channel.unref(); // the channel alone must not keep the process alive
  process.once('disconnect', () => process.kill(process.pid, 'SIGTERM'));
}
