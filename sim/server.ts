// The composition root: one node:http server, anonymous routes first, then Bearer authentication,
// then the API routes. Every non-anonymous request is recorded for tests; no client mistake is a 500.
import { createServer, type IncomingHttpHeaders, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type Caller, TokenStore } from './auth.js';
import type { SimContext } from './context.js';
import { ApiError } from './errors.js';
import { Federation, validatePolicies } from './federation.js';
import { type ApiRequest, type BaseRequest, isStream, type JsonReply, parseJsonObject, type Reply, Router, readBody } from './http.js';
import { jobsRoutes } from './jobs.js';
import { mlflowRoutes } from './mlflow.js';
import { trainIris } from './model.js';
import { type Client, oauthRoutes } from './oauth.js';
import { servingRoutes } from './serving.js';
import type { RecordedRequest, Simulator, SimOptions, TokenRequestRecord } from './types.js';
import { workspaceRoutes } from './workspace.js';

export async function startSimulator(opts: SimOptions = {}): Promise<Simulator> {
  const now = opts.now ?? Date.now;
  const sink = opts.log;
  const log = (line: Record<string, unknown>): void => {
    try {
      sink?.({ time: now(), ...line });
    } catch {
      // A faulty log sink must not take the simulator down.
    }
  };
  // Validate options before listening, so a bad option leaves no server behind.
  const tokenTtlSeconds = count('tokenTtlSeconds', opts.tokenTtlSeconds, 3600, 1);
  const deployPolls = count('deployPolls', opts.deployPolls, 2, 0);
  const runPolls = count('runPolls', opts.runPolls, 2, 0);
  const streamChunkDelayMs = count('streamChunkDelayMs', opts.streamChunkDelayMs, 5, 0);
  const jwksCooldownSeconds = count('jwksCooldownSeconds', opts.jwksCooldownSeconds, 30, 0);
  const policies = validatePolicies(opts.federationPolicies ?? [], opts.accountId ?? '0d26daa6-5e44-4c97-a497-ef015f91254a');
  const requests: RecordedRequest[] = [];
  const tokenRequests: TokenRequestRecord[] = [];
  const tokens = await TokenStore.create(opts.pats ?? {}, now);
  const iris = trainIris();
  let closing = false;

  const server = createServer();
  // Short keep-alive so idle client sockets do not linger; close() kills the rest anyway.
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, opts.host ?? '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const url = `http://${urlHost(opts.host ?? '127.0.0.1')}:${port}`;

  const ctx: SimContext = {
    url,
    workspaceId: opts.workspaceId ?? '1234567890123456',
    tokenTtlSeconds,
    deployPolls,
    runPolls,
    streamChunkDelayMs,
    tokens,
    tokenRequests,
    now,
    log,
  };
  const sps = opts.servicePrincipals ?? [];
  const clients = new Map<string, Client>(sps.map((sp) => [sp.clientId, { secret: sp.clientSecret, identity: sp.identity }]));
  const federation = new Federation(
    policies,
    opts.users ?? [],
    new Map(sps.map((sp) => [sp.clientId, sp.identity])),
    now,
    jwksCooldownSeconds * 1000,
  );
  const anon = new Router<BaseRequest>(oauthRoutes(ctx, clients, federation));
  const api = new Router<ApiRequest>([...workspaceRoutes(ctx), ...servingRoutes(ctx, iris), ...mlflowRoutes(ctx, iris), ...jobsRoutes(ctx)]);

  const authenticate = (authorization: string | undefined): Caller => {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(authorization ?? '');
    if (!m?.[1]) throw new ApiError(401, 'UNAUTHENTICATED', 'Credential was not sent or was of an unsupported type for this API.');
    const found = tokens.lookup(m[1]);
    if (!found.ok) throw new ApiError(403, 'PERMISSION_DENIED', 'Invalid access token.', { 'x-databricks-reason-phrase': 'Invalid access token.' });
    return found.caller;
  };

  server.on('request', async (req, res) => {
    const started = now();
    const method = req.method ?? 'GET';
    let path = '/';
    let query = new URLSearchParams();
    try {
      const parsed = new URL(req.url ?? '/', 'http://sim.invalid');
      path = parsed.pathname;
      query = parsed.searchParams;
    } catch {
      // An unparsable request target falls through to the 404 below.
    }
    const anonMatch = anon.match(method, path);
    const record: RecordedRequest | null = anonMatch
      ? null
      : { at: started, method, path, status: 0, identity: null, tokenKind: null, headers: redact(req.headers) };
    let identity: string | null = null;

    const send = (reply: Reply): Promise<void> | undefined => {
      if (record) {
        record.status = reply.status;
        requests.push(record);
      }
      log({ msg: 'request', method, path, status: reply.status, identity, ms: now() - started });
      if (isStream(reply)) return stream(res, reply.status, reply.headers, reply.stream, () => closing);
      const body = JSON.stringify(reply.body ?? {});
      res.writeHead(reply.status, {
        'content-type': 'application/json',
        'content-length': Buffer.byteLength(body),
        ...reply.headers,
      });
      res.end(body);
      return undefined;
    };

    try {
      const rawBody = await readBody(req);
      let parsedBody: Record<string, unknown> | undefined;
      const json = (): Record<string, unknown> => {
        parsedBody ??= parseJsonObject(rawBody);
        return parsedBody;
      };
      const base: BaseRequest = {
        method,
        path,
        params: {},
        query,
        headers: req.headers,
        rawBody,
        json,
        input: () => ({ ...Object.fromEntries(query), ...(rawBody.length > 0 ? json() : {}) }),
      };
      if (anonMatch) {
        await send(await anonMatch.route.handle({ ...base, params: anonMatch.params }));
        return;
      }
      const caller = authenticate(req.headers.authorization);
      identity = caller.identity.userName;
      if (record) Object.assign(record, { identity, tokenKind: caller.tokenKind });
      const match = api.match(method, path);
      if (!match) throw new ApiError(404, 'ENDPOINT_NOT_FOUND', `No API found for '${method} ${path}'`);
      await send(await match.route.handle({ ...base, params: match.params, caller }));
    } catch (err) {
      if (res.headersSent) {
        res.destroy();
        return;
      }
      if (!(err instanceof ApiError)) log({ msg: 'internal error', method, path, error: err instanceof Error ? err.message : String(err) });
      await send(errorReply(err));
    }
  });

  log({ msg: 'simulator listening', url });
  return {
    url,
    port,
    requests,
    tokenRequests,
    reset() {
      requests.length = 0;
      tokenRequests.length = 0;
    },
    close() {
      closing = true;
      return new Promise<void>((resolve) => {
        server.close(() => resolve());
        // Keep-alive and streaming sockets would otherwise hold close() open.
        server.closeAllConnections();
      });
    },
  };
}

export function errorReply(err: unknown): JsonReply {
  if (err instanceof ApiError) return { status: err.status, body: { error_code: err.errorCode, message: err.message }, headers: err.headers };
  // Never leak a stack trace; the detail went to the log.
  return { status: 500, body: { error_code: 'INTERNAL_ERROR', message: 'The simulator failed to handle this request.' } };
}

async function stream(
  res: ServerResponse,
  status: number,
  headers: Record<string, string>,
  produce: (out: { write(chunk: string): void; readonly closed: boolean }) => Promise<void>,
  closing: () => boolean,
): Promise<void> {
  res.writeHead(status, headers);
  res.flushHeaders();
  const out = {
    get closed() {
      return closing() || res.destroyed || res.writableEnded;
    },
    write(chunk: string) {
      if (!this.closed) res.write(chunk);
    },
  };
  await produce(out);
  if (!out.closed) res.end();
}

function redact(headers: IncomingHttpHeaders): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined) continue;
    out[name] = name === 'authorization' ? '[redacted]' : Array.isArray(value) ? value.join(', ') : value;
  }
  return out;
}

function urlHost(host: string): string {
  if (host === '0.0.0.0') return '127.0.0.1';
  if (host === '::') return '[::1]';
  return host.includes(':') ? `[${host}]` : host;
}

/** Validates a numeric option once at start; a bad value is a programming error, so throw. */
function count(name: string, value: number | undefined, fallback: number, min: number): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value < min) throw new TypeError(`SimOptions.${name} must be an integer >= ${min}`);
  return value;
}
