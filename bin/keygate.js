#!/usr/bin/env node
// Thin shim: the CLI is compiled to dist/ by `npm run build`. On one CPU the server commands
// run in a second node whose garbage collector stays on the request thread (see
// src/server/relaunch.ts); this file then only passes signals and the exit status through.
import { fileURLToPath } from 'node:url';
import { cpuBudget } from '../dist/src/server/cpu-budget.js';
import { followSupervisor, ONE_CPU_NODE_ARGS, relaunchArgs, supervise } from '../dist/src/server/relaunch.js';

const args = process.argv.slice(2);
const nodeArgs = relaunchArgs({ args, execArgv: process.execArgv, env: process.env, cpus: cpuBudget });
if (nodeArgs !== undefined) {
  process.stderr.write(
    `keygate: 1 CPU available: starting node with ${ONE_CPU_NODE_ARGS.join(' ')} ` +
      '(give node a GC flag yourself to choose otherwise)\n',
  );
  process.exitCode = await supervise(nodeArgs, fileURLToPath(import.meta.url), args);
} else {
  followSupervisor();
  const { main } = await import('../dist/src/cli/main.js');
  process.exitCode = await main(args);
}
