/**
 * `keygate serve` on one CPU (taskset -c 0): the bin relaunches node with a single-threaded
 * garbage collector and passes signals and the exit status through; killed outright, it
 * takes the gateway with it; a GC flag given by hand is respected. When taskset is missing
 * these tests skip with a loud message locally and fail under CI=true.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningCli, startCli } from '../../helpers/cli.js';
import { type RunningUpstream, startUpstream } from '../../helpers/index.js';

function tasksetAvailable(): boolean {
  if (spawnSync('taskset', ['-c', '0', 'true']).status === 0) return true;
  const msg = 'taskset (util-linux) is missing or cannot pin to CPU 0';
  if (process.env.CI === 'true') throw new Error(`${msg} (CI=true: the one-CPU tests must run)`);
  console.warn(`\n!!! SKIPPING ONE-CPU TESTS: ${msg} !!!\n`);
  return false;
}
const hasTaskset = tasksetAvailable();

const dir = mkdtempSync(join(tmpdir(), 'kg-one-cpu-'));
let up: RunningUpstream;
let config: string;

beforeAll(async () => {
  up = await startUpstream((_req, res) => res.end('ok'));
  config = join(dir, 'keygate.yaml');
  writeFileSync(
    config,
    `listen: { port: 0 }\ndataDir: ${join(dir, 'data')}\nlog: { level: warn }\nupstreams:\n  ws:\n    url: ${up.url}\n    credential: { type: static, tokenEnv: WS_TOKEN }\n`,
  );
});
afterAll(async () => {
  await up?.close();
});

/** Process ids whose parent is `pid`. */
function childrenOf(pid: number): number[] {
  // ps exits 1 when there are none.
  return spawnSync('ps', ['-o', 'pid=', '--ppid', String(pid)], { encoding: 'utf8' })
    .stdout.split('\n')
    .map((l) => Number(l.trim()))
    .filter((n) => n > 0);
}
const cmdline = (pid: number) => readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
/** Gone, or a zombie nobody has reaped yet: either way no longer running. */
const running = (pid: number) =>
  existsSync(`/proc/${pid}`) && !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));

async function until(ok: () => boolean, ms: number): Promise<boolean> {
  for (const end = Date.now() + ms; Date.now() < end; await new Promise((r) => setTimeout(r, 50)))
    if (ok()) return true;
  return ok();
}

async function startOnOneCpu(nodeArgs: string[] = []): Promise<{ p: RunningCli; url: string }> {
  const p = startCli(['serve', '--config', config], { WS_TOKEN: 'x' }, undefined, {
    prefix: ['taskset', '-c', '0'],
    nodeArgs,
  });
  const [, url = ''] = await p.waitFor(/listening on (http:\/\/\S+)/);
  return { p, url };
}

describe.skipIf(!hasTaskset)('keygate serve on one CPU', () => {
  it('runs the gateway in a second node with --single-threaded-gc; SIGTERM drains it and exits 0', async () => {
    const { p, url } = await startOnOneCpu();
    try {
      expect(p.output()).toContain('keygate: 1 CPU available: starting node with --single-threaded-gc');
      const [child] = childrenOf(p.proc.pid as number);
      expect(child).toBeDefined();
      expect(cmdline(child as number)).toContain('--single-threaded-gc');
      const h = await request(`${url}/.keygate/healthz`);
      expect(h.statusCode).toBe(200);
      await h.body.text();
      expect(await p.stop('SIGTERM')).toBe(0);
      expect(p.output()).toContain('SIGTERM: draining in-flight requests');
      expect(running(child as number)).toBe(false);
    } finally {
      await p.stop('SIGKILL');
    }
  });

  it('the supervising process killed with SIGKILL: the gateway stops too, and its port is free', async () => {
    const { p, url } = await startOnOneCpu();
    const [child] = childrenOf(p.proc.pid as number);
    expect(child).toBeDefined();
    try {
      await p.stop('SIGKILL');
      expect(await until(() => !running(child as number), 15_000)).toBe(true);
      await expect(request(`${url}/.keygate/healthz`)).rejects.toThrow(/ECONNREFUSED/);
    } finally {
      if (child !== undefined && running(child)) process.kill(child, 'SIGKILL');
    }
  });

  it('a GC flag given to node by hand is the operator’s choice: no second process', async () => {
    const { p, url } = await startOnOneCpu(['--no-single-threaded-gc']);
    try {
      expect(p.output()).not.toContain('CPU available');
      expect(childrenOf(p.proc.pid as number)).toEqual([]);
      const h = await request(`${url}/.keygate/healthz`);
      expect(h.statusCode).toBe(200);
      await h.body.text();
      expect(await p.stop('SIGTERM')).toBe(0);
    } finally {
      await p.stop('SIGKILL');
    }
  });
});
