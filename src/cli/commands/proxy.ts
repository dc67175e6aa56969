/**
 * `keygate proxy`: a local forwarder on 127.0.0.1 that signs every request with the person's
 * DPoP-bound token, so that unmodified tools work with `DATABRICKS_HOST=http://127.0.0.1:PORT`
 * (and any `DATABRICKS_TOKEN`, which the forwarder replaces).
 */
import { systemClock, type Clock } from '../../lib/clock.js';
import { clientContext, failed } from '../client/context.js';
import { startForwarder } from '../client/forwarder.js';
import { claimsOf } from '../client/oauth.js';
import { Session } from '../client/session.js';
import { EXIT, type Output } from '../output.js';
import { stopOnSignals } from './serve.js';

export interface ProxyOptions {
  port: number;
  gateway?: string;
}

export async function proxy(
  o: ProxyOptions,
  out: Output,
  env: NodeJS.ProcessEnv = process.env,
  clock: Clock = systemClock,
): Promise<number> {
  let started: Awaited<ReturnType<typeof startForwarder>>;
  let who: string;
  let gateway: string;
  try {
    const ctx = clientContext(o.gateway, env, clock);
    gateway = ctx.gateway;
    const session = new Session(gateway, ctx.store, clock);
    // Logged in (and the refresh family alive) before anything listens.
    const c = claimsOf((await session.fresh()).accessToken);
    who = c.email ?? c.sub ?? 'unknown';
    started = await startForwarder({ port: o.port, gateway, session, clock, onError: (l) => out.err(l) });
  } catch (e) {
    return failed(out, e);
  }
  out.out(`Forwarding ${started.url} → ${gateway} as ${who}`);
  await stopOnSignals(() => started.close(), out);
  return EXIT.OK;
}
