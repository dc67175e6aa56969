import type { IncomingMessage } from 'node:http';
import { KeygateError } from '../errors/index.js';
import { isCrossSite, readCookie } from './cookies.js';
import type { Identifier, Identity } from './identity.js';
import type { ResolvedSession, Sessions } from './sessions.js';

/**
 * Recognises the browser session cookie on proxied requests. A cookie that names no live
 * session is treated as absent (the browser is sent to log in); a state-changing request
 * carrying the cookie from another site is refused.
 */
export function sessionIdentifier(sessions: Sessions, allowedOrigins: () => readonly string[]): Identifier {
  const toIdentity = (r: ResolvedSession | null): Identity | null => (r === null ? null : r.identity);
  return {
    name: 'session',
    identify(req: IncomingMessage) {
      const value = readCookie(req.headers.cookie, sessions.cookieName);
      if (value === undefined) return null;
      if (isCrossSite(req, allowedOrigins())) {
        throw new KeygateError('CROSS_SITE_REQUEST', { detail: `origin ${String(req.headers.origin)}` });
      }
      const r = sessions.resolve(value);
      return r instanceof Promise ? r.then(toIdentity) : toIdentity(r);
    },
  };
}
