/**
 * `keygate logout`: revoke the refresh token at the gateway (RFC 7009; the gateway ends the
 * whole family, and with it the access tokens it issued) and delete the local credentials.
 * If the gateway cannot be told, the credentials are kept so that the logout can be retried.
 */
import { systemClock, type Clock } from '../../lib/clock.js';
import { clientContext, failed } from '../client/context.js';
import { ClientError } from '../client/errors.js';
import { discover, revokeRefreshToken } from '../client/oauth.js';
import { EXIT, type Output } from '../output.js';

export async function logout(
  o: { gateway?: string },
  out: Output,
  env: NodeJS.ProcessEnv = process.env,
  clock: Clock = systemClock,
): Promise<number> {
  try {
    const { store, gateway } = clientContext(o.gateway, env, clock);
    const creds = store.load(gateway);
    if (creds === undefined) {
      out.out(`Not logged in to ${gateway}.`);
      return EXIT.OK;
    }
    try {
      await revokeRefreshToken(gateway, await discover(gateway), creds.refreshToken);
    } catch (e) {
      throw new ClientError(
        e instanceof ClientError ? e.code : 'GATEWAY_UNREACHABLE',
        `${(e as Error).message}; the local credentials are kept: run keygate logout again`,
      );
    }
    store.remove(gateway);
    out.out(`Logged out of ${gateway}.`);
    return EXIT.OK;
  } catch (e) {
    return failed(out, e);
  }
}
