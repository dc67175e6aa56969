/**
 * An open-loop load generator: requests leave on a fixed timetable whatever the server does,
 * and each latency is measured from the request's *scheduled* start, so a stalled server is
 * charged for the requests that queued behind the stall (no coordinated omission).
 * The loop polls with setImmediate: it keeps its core busy, but a timer would add up to a
 * millisecond of its own lateness to every request.
 *
 * The runner keeps one generator process for the whole run (warm JIT, its own heap, a large
 * young generation so that scavenges are rare) and sends it one measurement at a time.
 */
import { pathToFileURL } from 'node:url';
import { Pool } from 'undici';

export interface FixedRateOptions {
  rate: number;
  durationMs: number;
  headers?: Record<string, string>;
  path?: string;
  connections?: number;
}

export interface LatencySummary {
  requests: number;
  errors: number;
  /** Requests per second actually sent. */
  achievedRate: number;
  /** Milliseconds. */
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
}

/** Nearest-rank percentile of an ascending array. */
export function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i] as number;
}

export async function fixedRate(url: string, opts: FixedRateOptions): Promise<LatencySummary> {
  const pool = new Pool(url, { connections: opts.connections ?? 64 });
  const total = Math.round((opts.rate * opts.durationMs) / 1000);
  const interval = 1000 / opts.rate;
  const latencies = new Float64Array(total);
  let done = 0;
  let errors = 0;
  let sent = 0;
  const request = { path: opts.path ?? '/', method: 'GET' as const, headers: opts.headers ?? {} };

  const fire = (scheduled: number, i: number) => {
    const settle = (ok: boolean) => {
      latencies[i] = performance.now() - scheduled;
      if (!ok) errors++;
      done++;
    };
    pool.request(request).then(
      async (r) => {
        await r.body.dump();
        settle(r.statusCode >= 200 && r.statusCode < 300);
      },
      () => settle(false),
    );
  };

  const t0 = performance.now() + 20;
  await new Promise<void>((resolve) => {
    const tick = () => {
      const now = performance.now();
      while (sent < total && t0 + sent * interval <= now) {
        fire(t0 + sent * interval, sent);
        sent++;
      }
      if (done === total) resolve();
      else setImmediate(tick);
    };
    tick();
  });
  const elapsed = performance.now() - t0;
  await pool.close();

  latencies.sort();
  return {
    requests: total,
    errors,
    achievedRate: Math.round((total / elapsed) * 1000),
    p50: percentile(latencies, 50),
    p90: percentile(latencies, 90),
    p99: percentile(latencies, 99),
    p999: percentile(latencies, 99.9),
    max: latencies[total - 1] as number,
  };
}

if (process.send !== undefined && import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  process.on('message', (m: { url: string; opts: FixedRateOptions }) => {
    fixedRate(m.url, m.opts).then((r) => process.send?.(r));
  });
  process.once('disconnect', () => process.exit(0));
}
