import type { IncomingMessage } from 'node:http';
import type { Identifier, Identity } from './identity.js';

/**
 * The identification stage: identifiers are tried in order; the first that recognises a
 * credential decides. No identifier, or none that recognises the request, means anonymous
 * (null) — and the proxy refuses anonymous requests. There is no "auth off" mode.
 */
export function identifyRequest(
  identifiers: readonly Identifier[],
  req: IncomingMessage,
): Identity | null | Promise<Identity | null> {
  for (let i = 0; i < identifiers.length; i++) {
    const r = (identifiers[i] as Identifier).identify(req);
    if (r === null) continue;
    if (r instanceof Promise) return r.then((v) => (v === null ? identifyRest(identifiers, i + 1, req) : v));
    return r;
  }
  return null;
}

function identifyRest(
  identifiers: readonly Identifier[],
  from: number,
  req: IncomingMessage,
): Identity | null | Promise<Identity | null> {
  return identifyRequest(identifiers.slice(from), req);
}
