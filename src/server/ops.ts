import type { FastifyInstance } from 'fastify';
import { KeygateError } from '../errors/index.js';
import type { UpstreamRuntime } from '../proxy/forward.js';
import type { Store } from '../store/types.js';
import type { Metrics } from './metrics.js';

export interface OpsDeps {
  store: Store;
  metrics: Metrics;
  upstreams: readonly UpstreamRuntime[];
  isDraining: () => boolean;
  /** The audit log's state: 'ok', or why it cannot take records. */
  audit: () => string;
}

const CHECK_TIMEOUT_MS = 5_000;

async function within<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error('timed out')), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Liveness, readiness, Prometheus metrics and the public keys upstreams verify assertions with. */
export function registerOpsRoutes(app: FastifyInstance, deps: OpsDeps): void {
  app.get('/.keygate/healthz', async (_req, reply) => {
    reply.header('cache-control', 'no-store');
    return { status: 'ok' };
  });

  // Ready = the store answers and every upstream credential can be had now. Names what
  // failed, never why (the why is in the log).
  app.get('/.keygate/readyz', async (req, reply) => {
    reply.header('cache-control', 'no-store');
    if (deps.isDraining()) {
      reply.code(503);
      return { ...new KeygateError('TEMPORARILY_UNAVAILABLE').toWire(req.id), checks: { draining: 'yes' } };
    }
    const checks: Record<string, string> = {};
    let ok = true;
    try {
      await within(deps.store.ping(), CHECK_TIMEOUT_MS);
      checks.store = 'ok';
    } catch (e) {
      ok = false;
      checks.store = 'failed';
      req.log.error({ detail: (e as Error).message }, 'readiness: store check failed');
    }
    const audit = deps.audit();
    checks.audit = audit === 'ok' ? 'ok' : audit;
    if (audit !== 'ok') ok = false;
    await Promise.all(
      deps.upstreams.map(async (u) => {
        try {
          await within(u.credential.check(), CHECK_TIMEOUT_MS);
          checks[`upstream.${u.name}.credential`] = 'ok';
        } catch (e) {
          ok = false;
          checks[`upstream.${u.name}.credential`] = 'failed';
          req.log.error(
            { upstream: u.name, detail: (e as KeygateError).detail ?? (e as Error).message },
            'readiness: upstream credential check failed',
          );
        }
      }),
    );
    if (!ok) {
      reply.code(503);
      return { ...new KeygateError('TEMPORARILY_UNAVAILABLE').toWire(req.id), checks };
    }
    return { status: 'ready', checks };
  });

  app.get('/.keygate/metrics', async (_req, reply) => {
    reply.header('content-type', deps.metrics.registry.contentType).header('cache-control', 'no-store');
    return deps.metrics.registry.metrics();
  });
}
