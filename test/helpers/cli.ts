import { type ChildProcess, spawn } from 'node:child_process';

export const KEYGATE_BIN = new URL('../../bin/keygate.js', import.meta.url).pathname;

/**
 * Node flags for a test that SIGKILLs the gateway: a GC flag given by hand keeps `keygate
 * serve` in the process the test started (on a one-CPU machine it would otherwise relaunch
 * node and the SIGKILL would reach only the supervisor; see src/server/relaunch.ts).
 */
export const GATEWAY_IN_THIS_PROCESS: readonly string[] = ['--single-threaded-gc'];

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Run `keygate …` to completion. */
export function runCli(args: string[], env: NodeJS.ProcessEnv = {}, cwd?: string): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [KEYGATE_BIN, ...args], {
      env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
      cwd,
    });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => {
      stdout += d;
    });
    p.stderr.on('data', (d) => {
      stderr += d;
    });
    p.on('error', reject);
    p.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

export interface RunningCli {
  proc: ChildProcess;
  output(): string;
  /** Resolves with the first match of `re` in stdout+stderr. */
  waitFor(re: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  exited: Promise<number | null>;
  /** Stop by process id (never by name). */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/**
 * Start a long-running `keygate …` (serve, demo, sim). `launch.prefix` runs it under another
 * command (`taskset -c 0`); `launch.nodeArgs` are flags for node itself.
 */
export function startCli(
  args: string[],
  env: NodeJS.ProcessEnv = {},
  cwd?: string,
  launch: { prefix?: string[]; nodeArgs?: string[] } = {},
): RunningCli {
  const [cmd = process.execPath, ...pre] = [...(launch.prefix ?? []), process.execPath];
  const proc = spawn(cmd, [...pre, ...(launch.nodeArgs ?? []), KEYGATE_BIN, ...args], {
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
    cwd,
  });
  let out = '';
  const waiters: (() => void)[] = [];
  const onData = (d: Buffer) => {
    out += d.toString();
    for (const w of waiters.splice(0)) w();
  };
  proc.stdout?.on('data', onData);
  proc.stderr?.on('data', onData);
  const exited = new Promise<number | null>((r) => proc.on('exit', (code) => r(code)));
  return {
    proc,
    output: () => out,
    exited,
    waitFor(re, timeoutMs = 20_000) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`timed out waiting for ${re}; output:\n${out}`)), timeoutMs);
        const check = () => {
          const m = out.match(re);
          if (m) {
            clearTimeout(timer);
            resolve(m);
          } else if (proc.exitCode !== null) {
            clearTimeout(timer);
            reject(new Error(`exited (${proc.exitCode}) before ${re}; output:\n${out}`));
          } else waiters.push(check);
        };
        check();
      });
    },
    async stop(signal = 'SIGTERM') {
      if (proc.exitCode === null && proc.pid !== undefined) process.kill(proc.pid, signal);
      return exited;
    },
  };
}
