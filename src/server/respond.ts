import type { ServerResponse } from 'node:http';
import type { KeygateError } from '../errors/index.js';

/** Send an error in the contract's JSON shape; after headers went out, cut the connection. */
export function sendError(res: ServerResponse, err: KeygateError, requestId: string): void {
  if (res.headersSent || res.destroyed) {
    res.destroy();
    return;
  }
  const body = JSON.stringify(err.toWire(requestId));
  const headers: Record<string, string | number> = {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(body),
    'x-request-id': requestId,
    'cache-control': 'no-store',
    ...err.headers,
  };
  res.writeHead(err.status, headers);
  res.end(body);
}
