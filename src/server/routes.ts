import type { UpstreamRuntime } from '../proxy/forward.js';

export interface RouteEntry {
  prefix: string;
  upstream: UpstreamRuntime;
}

/** Longest-prefix route table; a prefix matches whole path segments only. */
export class RouteTable {
  private readonly entries: RouteEntry[];

  constructor(entries: RouteEntry[]) {
    this.entries = [...entries].sort((a, b) => b.prefix.length - a.prefix.length);
  }

  match(path: string): UpstreamRuntime | undefined {
    for (const e of this.entries) {
      const p = e.prefix;
      if (p === '/' || path === p || (path.startsWith(p) && (p.endsWith('/') || path.charCodeAt(p.length) === 47))) {
        return e.upstream;
      }
    }
    return undefined;
  }
}
