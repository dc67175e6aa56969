/**
 * `keygate token`: print an access token for the gateway, refreshed when it has less than a
 * minute left. By default a short plain bearer token, exchanged (RFC 8693) for the DPoP-bound
 * one, for tools that can only send `Authorization: Bearer`; with --dpop the bound token itself.
 */
import { systemClock, type Clock } from '../../lib/clock.js';
import { clientContext, failed } from '../client/context.js';
import { Session } from '../client/session.js';
import { EXIT, type Output } from '../output.js';

export interface TokenOptions {
  gateway?: string;
  dpop?: boolean;
}

export async function token(
  o: TokenOptions,
  out: Output,
  env: NodeJS.ProcessEnv = process.env,
  clock: Clock = systemClock,
): Promise<number> {
  try {
    const { store, gateway } = clientContext(o.gateway, env, clock);
    const session = new Session(gateway, store, clock);
    out.out(o.dpop ? (await session.fresh()).accessToken : (await session.bearer()).access_token);
    return EXIT.OK;
  } catch (e) {
    return failed(out, e);
  }
}
