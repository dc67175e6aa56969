import type { IncomingMessage } from 'node:http';
import proxyaddr from 'proxy-addr';

/**
 * The client's address: the socket peer, unless that peer is a configured trusted proxy,
 * in which case X-Forwarded-For is walked from the right up to the first untrusted hop.
 * X-Forwarded-* from anyone else is ignored.
 */
export function clientIpResolver(trustedProxies: readonly string[]): (req: IncomingMessage) => string {
  // A request whose socket is already gone (the client left mid-body) has no address left.
  if (trustedProxies.length === 0) return (req) => req.socket?.remoteAddress ?? '';
  const trust = proxyaddr.compile([...trustedProxies]);
  return (req) => (req.socket ? proxyaddr(req, trust) : '');
}
