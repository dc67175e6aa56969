import { describe, expect, it } from 'vitest';
import { ONE_CPU_NODE_ARGS, RELAUNCHED_ENV, relaunchArgs } from './relaunch.js';

describe('relaunchArgs: when the server commands start a second node', () => {
  const base = { args: ['serve', '--config', 'k.yaml'], execArgv: [] as string[], env: {}, cpus: () => 1 };

  it('serve and demo on one CPU: relaunched with a single-threaded collector, node flags kept', () => {
    expect(relaunchArgs(base)).toEqual([...ONE_CPU_NODE_ARGS]);
    expect(relaunchArgs({ ...base, args: ['demo'] })).toEqual([
      '--single-threaded-gc',
      '--min-semi-space-size=16',
      '--max-semi-space-size=32',
    ]);
    // The operator's own flags come last, so theirs win where both set the same thing.
    expect(relaunchArgs({ ...base, execArgv: ['--max-semi-space-size=64'] })?.slice(-2)).toEqual([
      '--max-semi-space-size=32',
      '--max-semi-space-size=64',
    ]);
  });

  it.each([
    ['two or more CPUs', { cpus: () => 2 }],
    ['another command', { args: ['audit', 'verify'] }],
    ['no command', { args: [] }],
    ['already relaunched', { env: { [RELAUNCHED_ENV]: '1' } }],
    ['--single-threaded-gc given by hand', { execArgv: ['--single-threaded-gc'] }],
    ['--no-single-threaded-gc given by hand', { execArgv: ['--no-single-threaded-gc'] }],
    ['--single_threaded_gc given by hand', { execArgv: ['--single_threaded_gc'] }],
    ['--no-parallel-scavenge given by hand', { execArgv: ['--no-parallel-scavenge'] }],
    ['--concurrent-marking given by hand', { execArgv: ['--concurrent-marking'] }],
  ])('%s: runs in this process', (_name, change) => {
    expect(relaunchArgs({ ...base, ...change })).toBeUndefined();
  });

  it('other commands do not even ask how many CPUs there are', () => {
    const ask = () => {
      throw new Error('asked');
    };
    expect(relaunchArgs({ ...base, args: ['token'], cpus: ask })).toBeUndefined();
  });

  it('an unrelated flag that merely resembles one does not count as a choice', () => {
    expect(relaunchArgs({ ...base, execArgv: ['--single-threaded-gc-foo'] })).toEqual([
      ...ONE_CPU_NODE_ARGS,
      '--single-threaded-gc-foo',
    ]);
  });
});
