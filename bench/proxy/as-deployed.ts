/**
 * The node flags a benchmark gives a Keygate it starts on one pinned core: the ones
 * `keygate serve` itself would relaunch with there (src/server/relaunch.ts: the garbage
 * collector on the request thread only), so that the benchmark measures the gateway as it
 * runs on one CPU. Unpinned, the benchmarks give Keygate the machine's CPUs, and none.
 */
import { availableParallelism } from 'node:os';
import { relaunchArgs } from '../../src/server/relaunch.js';

export function keygateNodeArgs(pinnedToOneCore: boolean): string[] {
  const cpus = pinnedToOneCore ? 1 : availableParallelism();
  return relaunchArgs({ args: ['serve'], execArgv: [], env: {}, cpus: () => cpus }) ?? [];
}
