import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cgroupCpus, cpuBudget, parseCpuMax, quotaCpus } from './cpu-budget.js';

/** A cgroup file system in a temporary folder: { 'kubepods/pod1/cpu.max': '50000 100000' }. */
function fakeCgroups(files: Record<string, string>): string {
  const root = mkdtempSync(join(tmpdir(), 'kg-cgroup-'));
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(join(root, path, '..'), { recursive: true });
    writeFileSync(join(root, path), text);
  }
  return root;
}

describe('CPU quota parsing', () => {
  it.each([
    ['max 100000\n', undefined],
    ['100000 100000\n', 1],
    ['50000 100000', 1],
    ['150000 100000', 2],
    ['400000 100000', 4],
    ['', undefined],
    ['garbage', undefined],
    ['-1 100000', undefined],
    ['100000 0', undefined],
  ])('cpu.max %j → %s CPUs', (text, cpus) => {
    expect(parseCpuMax(text)).toBe(cpus);
  });

  it('a v1 quota of -1 is no quota', () => {
    expect(quotaCpus(-1, 100_000)).toBeUndefined();
    expect(quotaCpus(250_000, 100_000)).toBe(3);
  });
});

describe('cgroupCpus', () => {
  it('v2: the tightest quota over the process cgroup and its parents', () => {
    const root = fakeCgroups({
      'cpu.max': 'max 100000',
      'kubepods/cpu.max': '400000 100000',
      'kubepods/pod1/cpu.max': '100000 100000',
      'kubepods/pod1/c1/cpu.max': 'max 100000',
    });
    expect(cgroupCpus(root, '0::/kubepods/pod1/c1\n')).toBe(1);
    expect(cgroupCpus(root, '0::/kubepods\n')).toBe(4);
  });

  it('v2 inside a container: the process cgroup is the mount root', () => {
    expect(cgroupCpus(fakeCgroups({ 'cpu.max': '200000 100000' }), '0::/\n')).toBe(2);
  });

  it('v1: cpu.cfs_quota_us over cpu.cfs_period_us under the cpu controller', () => {
    const root = fakeCgroups({
      'cpu,cpuacct/docker/abc/cpu.cfs_quota_us': '100000\n',
      'cpu,cpuacct/docker/abc/cpu.cfs_period_us': '100000\n',
      'cpu,cpuacct/cpu.cfs_quota_us': '-1\n',
      'cpu,cpuacct/cpu.cfs_period_us': '100000\n',
    });
    expect(cgroupCpus(root, '4:memory:/docker/abc\n3:cpu,cpuacct:/docker/abc\n')).toBe(1);
  });

  it('no cgroup files, or no quota anywhere: undefined', () => {
    expect(cgroupCpus(fakeCgroups({}), '0::/user.slice\n')).toBeUndefined();
    expect(cgroupCpus(fakeCgroups({ 'cpu.max': 'max 100000' }), '0::/\n')).toBeUndefined();
    expect(cgroupCpus(fakeCgroups({}), '')).toBeUndefined();
  });
});

describe('cpuBudget', () => {
  const none = fakeCgroups({});
  it('is the affinity without a quota, the smaller of the two with one', () => {
    expect(cpuBudget({ parallelism: 8, cgroupRoot: none, cgroupSelf: '0::/\n' })).toBe(8);
    const one = fakeCgroups({ 'cpu.max': '100000 100000' });
    expect(cpuBudget({ parallelism: 8, cgroupRoot: one, cgroupSelf: '0::/\n' })).toBe(1);
    const four = fakeCgroups({ 'cpu.max': '400000 100000' });
    expect(cpuBudget({ parallelism: 2, cgroupRoot: four, cgroupSelf: '0::/\n' })).toBe(2);
  });
});
