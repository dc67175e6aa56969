/**
 * Which gateway a command talks to: `--gateway`, else `$KEYGATE_GATEWAY`, else the last one
 * logged in to, else the local default. Only the origin counts: the gateway serves everything
 * (its API, discovery, the workspace paths) at the root of its public URL.
 */
import { isIP } from 'node:net';
import { ClientError } from './errors.js';

export const DEFAULT_GATEWAY = 'http://localhost:8443';

function isLoopback(hostname: string): boolean {
  const h = hostname.replace(/^\[|\]$/g, '');
  if (h === 'localhost' || h.endsWith('.localhost')) return true;
  if (isIP(h) === 4) return h.startsWith('127.');
  return h === '::1';
}

/**
 * The origin of a gateway URL. Plain http is accepted only for loopback addresses: tokens and
 * refresh tokens must not cross a network in clear.
 */
export function parseGatewayUrl(raw: string): string {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw new ClientError('BAD_GATEWAY_URL', `not a URL: ${raw}`);
  }
  if (u.protocol !== 'https:' && u.protocol !== 'http:')
    throw new ClientError('BAD_GATEWAY_URL', `the gateway URL must be http(s): ${raw}`);
  if (u.username !== '' || u.password !== '')
    throw new ClientError('BAD_GATEWAY_URL', 'the gateway URL must not contain a user name or password');
  if (u.protocol === 'http:' && !isLoopback(u.hostname))
    throw new ClientError(
      'BAD_GATEWAY_URL',
      `refusing plain http to a non-loopback gateway: use https:// (${u.origin})`,
    );
  return u.origin;
}

export function resolveGateway(flag: string | undefined, env: NodeJS.ProcessEnv, lastUsed: string | undefined): string {
  const fromEnv = env.KEYGATE_GATEWAY === '' ? undefined : env.KEYGATE_GATEWAY;
  return parseGatewayUrl(flag ?? fromEnv ?? lastUsed ?? DEFAULT_GATEWAY);
}
