/**
 * `keygate proxy`'s local forwarder: listens on 127.0.0.1 only and forwards every request to
 * the gateway with the person's DPoP-bound access token and a fresh proof, so that tools that
 * know only `DATABRICKS_HOST` and a bearer token work unmodified. Whatever credential the
 * tool sends is removed. Bodies stream both ways; redirects are passed back, never followed.
 *
 * A local port that adds credentials is a target for web pages in the user's browser, so the
 * forwarder answers only requests addressed to its own loopback name (no DNS rebinding) and
 * refuses cross-site browser requests (no CSRF riding on the login).
 */
import { once } from 'node:events';
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pipeline } from 'node:stream/promises';
import { type Dispatcher, Pool } from 'undici';
import type { ErrorCode } from '../../errors/index.js';
import type { Clock } from '../../lib/clock.js';
import { HOP_BY_HOP } from '../../proxy/headers.js';
import { dpopProof } from './dpop.js';
import type { Fresh, Session } from './session.js';

/** Request headers the forwarder replaces or drops: the tool's own credential and proof, and Host. */
const REPLACED = new Set(['authorization', 'dpop', 'host', 'expect']);
const DRAIN_MS = 10_000;

export interface ForwarderOptions {
  /** 0 = any free port. */
  port: number;
  gateway: string;
  session: Session;
  clock: Clock;
  /** One line per failed request (for the terminal). */
  onError?: (line: string) => void;
}

export interface Forwarder {
  url: string;
  close(): Promise<void>;
}

function connectionTokens(h: IncomingHttpHeaders | Record<string, string | string[] | undefined>): Set<string> {
  const v = h.connection;
  const list = Array.isArray(v) ? v.join(',') : (v ?? '');
  return new Set(
    list
      .split(',')
      .map((s) => s.trim().toLowerCase())
      .filter((s) => s !== ''),
  );
}

/** An error in the workspace's own shape (its SDKs show `message`), with Keygate's codes. */
function refuse(res: ServerResponse, status: number, code: ErrorCode, message: string): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = JSON.stringify({ error_code: code, message });
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

export async function startForwarder(o: ForwarderOptions): Promise<Forwarder> {
  const gateway = new URL(o.gateway);
  // Never follows redirects: undici's Pool has no redirect handling unless asked for.
  const pool = new Pool(gateway.origin);
  let ownOrigins = new Set<string>();

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    // Step 1: addressed to this listener by its loopback name (defeats DNS rebinding).
    const host = (req.headers.host ?? '').toLowerCase();
    if (!ownOrigins.has(`http://${host}`)) {
      refuse(res, 403, 'PERMISSION_DENIED', `keygate proxy: unexpected Host "${host}"; use ${[...ownOrigins][0]}`);
      return;
    }
    // Step 2: not a cross-site request from a web page.
    const site = req.headers['sec-fetch-site'];
    const origin = req.headers.origin;
    if (site === 'cross-site' || site === 'same-site' || (origin !== undefined && !ownOrigins.has(origin))) {
      refuse(res, 403, 'PERMISSION_DENIED', 'keygate proxy: cross-site browser requests are not forwarded');
      return;
    }
    const raw = req.url ?? '/';
    if (!raw.startsWith('/')) {
      refuse(res, 400, 'BAD_REQUEST', 'keygate proxy: only origin-form request targets are forwarded');
      return;
    }
    // Step 3: a fresh access token (refreshed once for all waiting requests).
    let fresh: Fresh;
    try {
      fresh = await o.session.fresh();
    } catch (e) {
      refuse(res, 401, 'UNAUTHENTICATED', `keygate proxy: ${(e as Error).message}`);
      return;
    }
    // Step 4: the headers to send — the tool's own, less hop-by-hop ones and its credential.
    const drop = connectionTokens(req.headers);
    const headers: Record<string, string | string[]> = {};
    for (const [name, value] of Object.entries(req.headers)) {
      if (value === undefined || HOP_BY_HOP.has(name) || REPLACED.has(name) || drop.has(name)) continue;
      headers[name] = value;
    }
    // RFC 9449 §4.2: htu is the target URI without query and fragment, as the gateway sees it.
    const target = new URL(raw, gateway.origin);
    headers.authorization = `DPoP ${fresh.accessToken}`;
    headers.dpop = await dpopProof(fresh.key, o.clock, req.method ?? 'GET', target, fresh.accessToken);

    const hasBody = req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? 0) > 0;
    const abort = new AbortController();
    res.on('close', () => {
      if (!res.writableFinished) abort.abort();
    });
    let up: Dispatcher.ResponseData;
    try {
      up = await pool.request({
        method: (req.method ?? 'GET') as Dispatcher.HttpMethod,
        path: raw,
        headers,
        body: hasBody ? req : null,
        signal: abort.signal,
      });
    } catch (e) {
      if (abort.signal.aborted) return;
      const code = (e as { code?: string }).code ?? (e as Error).message;
      o.onError?.(`keygate proxy: ${req.method} ${target.pathname}: the gateway could not be reached (${code})`);
      refuse(
        res,
        502,
        'UPSTREAM_UNAVAILABLE',
        `keygate proxy: the gateway at ${gateway.origin} could not be reached (${code})`,
      );
      return;
    }
    // A refused token may have been revoked or replaced (`keygate login` elsewhere): re-read it next time.
    if (up.statusCode === 401 && /invalid_token/.test(String(up.headers['www-authenticate'] ?? ''))) {
      o.session.forget(fresh.accessToken);
    }
    // Step 5: the answer, streamed back; a redirect to the gateway points back at this proxy.
    const dropBack = connectionTokens(up.headers);
    const out: Record<string, string | string[]> = {};
    for (const [name, value] of Object.entries(up.headers)) {
      if (value === undefined || HOP_BY_HOP.has(name) || dropBack.has(name)) continue;
      out[name] = value;
    }
    if (typeof out.location === 'string') out.location = localLocation(out.location, gateway, `http://${host}`);
    res.writeHead(up.statusCode, out);
    try {
      await pipeline(up.body, res);
    } catch {
      // The client went away or the gateway cut the stream: nothing more to send.
      res.destroy();
    }
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((e: unknown) => {
      o.onError?.(`keygate proxy: ${req.method} ${req.url}: ${(e as Error).message}`);
      refuse(res, 500, 'INTERNAL_ERROR', 'keygate proxy: internal error');
    });
  });
  // Only this machine: never 0.0.0.0.
  server.listen(o.port, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  ownOrigins = new Set([`http://127.0.0.1:${port}`, `http://localhost:${port}`]);

  return {
    url: `http://127.0.0.1:${port}`,
    async close() {
      const closed = new Promise<void>((r) => server.close(() => r()));
      server.closeIdleConnections();
      // Long streams (SSE) get a grace period, then are cut.
      const timer = setTimeout(() => server.closeAllConnections(), DRAIN_MS);
      await closed;
      clearTimeout(timer);
      await pool.close();
    },
  };
}

function localLocation(location: string, gateway: URL, local: string): string {
  try {
    const u = new URL(location, gateway.origin);
    if (u.origin !== gateway.origin || !/^[a-z]+:/i.test(location)) return location;
    return `${local}${u.pathname}${u.search}${u.hash}`;
  } catch {
    return location;
  }
}
