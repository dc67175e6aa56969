/** `keygate whoami`: who the current access token belongs to, read from its claims. */
import { systemClock, type Clock } from '../../lib/clock.js';
import { clientContext, failed } from '../client/context.js';
import { claimsOf } from '../client/oauth.js';
import { Session } from '../client/session.js';
import { EXIT, type Output } from '../output.js';

function iso(epochS: number | undefined): string {
  return epochS === undefined ? 'unknown' : new Date(epochS * 1000).toISOString();
}

function inWords(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  return s < 120 ? `${s} s` : `${Math.round(s / 60)} min`;
}

export async function whoami(
  o: { gateway?: string },
  out: Output,
  env: NodeJS.ProcessEnv = process.env,
  clock: Clock = systemClock,
): Promise<number> {
  try {
    const { store, gateway } = clientContext(o.gateway, env, clock);
    const fresh = await new Session(gateway, store, clock).fresh();
    const c = claimsOf(fresh.accessToken);
    const rows: [string, string][] = [
      ['email', c.email ?? 'unknown'],
      ['user id', c.sub ?? 'unknown'],
      ...(c.name ? ([['name', c.name]] as [string, string][]) : []),
      ['roles', c.roles && c.roles.length > 0 ? c.roles.join(', ') : '(none)'],
      ['gateway', gateway],
      ['token expires', `${new Date(fresh.expiresAt).toISOString()} (in ${inWords(fresh.expiresAt - clock.now())})`],
      ['auth time', iso(c.auth_time)],
    ];
    for (const [k, v] of rows) out.out(`${k.padEnd(14)}${v}`);
    return EXIT.OK;
  } catch (e) {
    return failed(out, e);
  }
}
