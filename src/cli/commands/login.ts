/**
 * `keygate login`: sign this terminal in to a gateway. In a browser (authorization code + PKCE
 * with a loopback redirect on 127.0.0.1) or, with --device, on any device (RFC 8628). The
 * tokens are bound to a DPoP key made here, which never leaves the credentials file.
 */
import { systemClock, type Clock } from '../../lib/clock.js';
import { type ClientContext, clientContext, failed } from '../client/context.js';
import type { Credentials } from '../client/credentials.js';
import { generateDpopKey } from '../client/dpop.js';
import {
  browserLogin,
  claimsOf,
  credentialFields,
  deviceLogin,
  discover,
  revokeRefreshToken,
} from '../client/oauth.js';
import { openBrowser } from '../client/open-browser.js';
import { EXIT, type Output } from '../output.js';

export interface LoginOptions {
  gateway?: string;
  device?: boolean;
  /** false with --no-browser: only print the URL. */
  browser: boolean;
}

/** How long the browser login waits for the redirect back. */
export const BROWSER_LOGIN_TIMEOUT_MS = 5 * 60_000;

export async function login(
  o: LoginOptions,
  out: Output,
  env: NodeJS.ProcessEnv = process.env,
  clock: Clock = systemClock,
): Promise<number> {
  try {
    const ctx = clientContext(o.gateway, env, clock);
    const { gateway } = ctx;
    const config = await discover(gateway);
    const key = await generateDpopKey();
    const tokens = o.device
      ? await deviceLogin(gateway, config, key, (da) => {
          out.out(`Open ${da.verification_uri} and enter the code: ${da.user_code}`);
          if (da.verification_uri_complete !== undefined) out.out(`Or open ${da.verification_uri_complete}`);
          out.out(
            `Waiting for the sign-in to be approved (the code expires in ${Math.round(da.expires_in / 60)} minutes)…`,
          );
        })
      : await browserLogin(gateway, config, key, {
          show: (url) => {
            out.out(
              o.browser
                ? 'Opening a browser to sign in. If none opens, visit this URL:'
                : 'Open this URL in a browser to sign in:',
            );
            out.out(`  ${url}`);
            out.out('Waiting for the sign-in (5 minutes)…');
          },
          open: (url) => {
            if (o.browser) openBrowser(url);
          },
          timeoutMs: BROWSER_LOGIN_TIMEOUT_MS,
        });
    const previous = previousCredentials(ctx);
    const saved = ctx.store.save(credentialFields(gateway, key, tokens, clock.now()));
    ctx.store.setLastGateway(gateway);
    // The previous login on this machine is replaced: end its refresh-token family too.
    if (previous !== undefined && previous.refreshToken !== saved.refreshToken) {
      await revokeRefreshToken(gateway, config, previous.refreshToken).catch(() => undefined);
    }
    const c = claimsOf(saved.accessToken);
    out.out(`Logged in to ${gateway} as ${c.email ?? c.sub ?? 'unknown'}`);
    return EXIT.OK;
  } catch (e) {
    return failed(out, e);
  }
}

function previousCredentials(ctx: ClientContext): Credentials | undefined {
  try {
    return ctx.store.load(ctx.gateway);
  } catch {
    return undefined;
  }
}
