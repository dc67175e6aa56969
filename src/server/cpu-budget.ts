/**
 * How many CPUs this process may use: its affinity mask (taskset, cpusets) and, under a CPU
 * quota (a container's `--cpus`, a Kubernetes CPU limit), the quota rounded up — whichever is
 * smaller. The JVM calls the same figure "active processors" and picks its collector by it.
 */
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';

/** CPUs a CFS quota allows, rounded up; undefined when there is no quota (or it is garbled). */
export function quotaCpus(quotaUs: number, periodUs: number): number | undefined {
  if (!Number.isFinite(quotaUs) || !Number.isFinite(periodUs) || quotaUs <= 0 || periodUs <= 0) return undefined;
  return Math.ceil(quotaUs / periodUs);
}

/** cgroup v2 `cpu.max`: `max 100000` (no quota) or `150000 100000`. */
export function parseCpuMax(text: string): number | undefined {
  const [quota, period] = text.trim().split(/\s+/);
  if (quota === undefined || period === undefined || quota === 'max') return undefined;
  return quotaCpus(Number(quota), Number(period));
}

const read = (file: string): string | undefined => {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
};

/** The cgroup folders of this process, its own first, up to the hierarchy's root. */
function ancestry(path: string): string[] {
  const out: string[] = [];
  let p = path.replace(/\/+$/, '');
  while (p !== '') {
    out.push(p);
    p = p.slice(0, p.lastIndexOf('/'));
  }
  out.push('');
  return out;
}

/**
 * The tightest CPU quota over this process's cgroup and its parents (a parent's quota limits
 * its children too). `root` is where the cgroup file system is mounted; `self` is the text
 * of /proc/self/cgroup. Inside a container the process's own cgroup is usually the mount's
 * root, which the walk ends at.
 */
export function cgroupCpus(root = '/sys/fs/cgroup', self = read('/proc/self/cgroup') ?? ''): number | undefined {
  const quotas: number[] = [];
  const lines = self.split('\n').filter((l) => l !== '');
  // cgroup v2: one line "0::/path"; the controller files sit in each folder.
  const unified = lines.find((l) => l.startsWith('0::'))?.slice(3) ?? '';
  for (const dir of ancestry(unified)) {
    const q = parseCpuMax(read(`${root}${dir}/cpu.max`) ?? 'max');
    if (q !== undefined) quotas.push(q);
  }
  // cgroup v1: "N:cpu,cpuacct:/path", the files under the cpu controller's mount.
  const v1 = lines.map((l) => l.split(':')).find((f) => f[1]?.split(',').includes('cpu'));
  if (v1 !== undefined) {
    for (const mount of [`${root}/cpu`, `${root}/cpu,cpuacct`])
      for (const dir of ancestry(v1[2] ?? '')) {
        const quota = read(`${mount}${dir}/cpu.cfs_quota_us`);
        const period = read(`${mount}${dir}/cpu.cfs_period_us`);
        const q = quota === undefined || period === undefined ? undefined : quotaCpus(Number(quota), Number(period));
        if (q !== undefined) quotas.push(q);
      }
  }
  return quotas.length === 0 ? undefined : Math.min(...quotas);
}

/** CPUs this process may use (at least 1). */
export function cpuBudget(o: { parallelism?: number; cgroupRoot?: string; cgroupSelf?: string } = {}): number {
  const affinity = o.parallelism ?? availableParallelism();
  const quota = cgroupCpus(o.cgroupRoot, o.cgroupSelf);
  return Math.max(1, quota === undefined ? affinity : Math.min(affinity, quota));
}
