/**
 * Shared test fixtures: real servers on ephemeral loopback ports, a gateway built from a
 * config object, and an identifier that tests (and benchmarks) inject programmatically.
 * Nothing here is reachable from configuration: there is no "auth off" switch.
 */
import { once } from 'node:events';
import { createServer, type IncomingMessage, type RequestListener, type Server } from 'node:http';
import { type AddressInfo, createServer as createNetServer } from 'node:net';
import pino from 'pino';
import type { ChainedRecord } from '../../src/audit/record.js';
import type { Identifier, Identity } from '../../src/authenticate/identity.js';
import { parseConfig } from '../../src/config/load.js';
import type { ConfigInput } from '../../src/config/schema.js';
import { DEMO_SP, DEMO_SP_SECRET } from '../../sim/index.js';
import { Gateway, type GatewayOptions } from '../../src/server/gateway.js';
import { SqliteStore } from '../../src/store/sqlite/index.js';

export const TEST_SECRET = 'test-identity-secret';

/** Recognises `x-test-identity: <secret>:<user id>`; a wrong secret is an invalid credential. */
export function testIdentifier(secret = TEST_SECRET): Identifier {
  const identities = new Map<string, Identity>();
  return {
    name: 'test',
    identify(req: IncomingMessage): Identity | null {
      const h = req.headers['x-test-identity'];
      if (typeof h !== 'string') return null;
      const [s, user] = h.split(':');
      if (s !== secret || !user) return null;
      // Like a session, the same identity object serves a user's requests for a while (the
      // session cache does this in production); a minute later it is re-made, still fresh.
      const now = Date.now();
      const cached = identities.get(user);
      if (cached !== undefined && now - cached.auth.authTime < 60_000) return cached;
      const identity: Identity = {
        principal: { type: 'user', id: user, email: `${user}@example.com`, groups: ['ml-engineers'], roles: ['admin'] },
        auth: { method: 'test', authEventId: `evt-${user}`, authTime: now, uv: true, deviceBound: false },
        cacheKey: `test:${user}`,
      };
      identities.set(user, identity);
      return identity;
    },
  };
}

export interface RunningUpstream {
  url: string;
  server: Server;
  close(): Promise<void>;
}

export async function startUpstream(handler: RequestListener): Promise<RunningUpstream> {
  const server = createServer(handler);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    server,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

export interface TestGateway {
  gw: Gateway;
  url: string;
  close(): Promise<void>;
}

export async function startGateway(
  config: ConfigInput,
  opts: Omit<GatewayOptions, 'config'> & { logLines?: string[] } = {},
): Promise<TestGateway> {
  const cfg = parseConfig({
    listen: { host: '127.0.0.1', port: 0 },
    shutdown: { drainTimeout: '5s' },
    // In memory, like the store: tests that need the audit file set audit.path.
    audit: { path: ':memory:' },
    ...config,
  });
  const lines = opts.logLines;
  const logger =
    opts.logger ??
    pino({ level: 'info' }, {
      write: (s: string) => (lines ? lines.push(s) : undefined),
    } as unknown as pino.DestinationStream);
  const gw = await Gateway.create({
    // In memory, unless the test asks for PostgreSQL in the config.
    ...(cfg.store.driver === 'postgres' ? {} : { store: new SqliteStore({ path: ':memory:' }) }),
    identifiers: [testIdentifier()],
    ...opts,
    config: cfg,
    logger,
  });
  const url = await gw.listen();
  return { gw, url, close: () => gw.close() };
}

export function asUser(user = 'alice', extra: Record<string, string> = {}): Record<string, string> {
  return { 'x-test-identity': `${TEST_SECRET}:${user}`, ...extra };
}

/** An upstream entry for the workspace simulator, with the demo service principal's secret in `env`. */
export function simUpstream(simUrl: string, env = 'TEST_SIM_SP_SECRET') {
  process.env[env] = DEMO_SP_SECRET;
  return {
    workspace: {
      url: simUrl,
      credential: { type: 'databricks-m2m' as const, clientId: DEMO_SP.userName, clientSecretEnv: env },
    },
  };
}

export interface SeenRequest {
  method: string;
  url: string;
  body: Buffer;
}

/** An upstream that records every request it receives (method, path as sent, body bytes) and answers 200. */
export async function startRecordingUpstream(): Promise<RunningUpstream & { seen: SeenRequest[] }> {
  const seen: SeenRequest[] = [];
  const up = await startUpstream((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      seen.push({ method: req.method ?? '', url: req.url ?? '', body: Buffer.concat(chunks) });
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"ok":true}');
    });
  });
  return Object.assign(up, { seen });
}

/** A port free on 127.0.0.1 right now (for a gateway whose URL another party must know first). */
export async function freePort(): Promise<number> {
  const s = createNetServer().listen(0, '127.0.0.1');
  await new Promise((r) => s.once('listening', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

/** The newest audit record of `kind` (default admin.change) about `target`, once the log has flushed. */
export async function lastChange(
  g: TestGateway,
  target: string,
  kind: 'admin.change' | 'scim.change' = 'admin.change',
): Promise<ChainedRecord | undefined> {
  await g.gw.audit.flushed();
  return (await g.gw.audit.query({ kind }, { limit: 1000 }))
    .lines.map((l) => JSON.parse(l) as ChainedRecord)
    .filter((r) => r.change?.target === target)
    .at(-1);
}

/**
 * Whether `check` comes true within `ms` (asked every 50 ms): how "seen by every replica within
 * a second" is tested. True as soon as it does.
 */
export async function trueWithin(ms: number, check: () => Promise<boolean>): Promise<boolean> {
  const t0 = Date.now();
  while (Date.now() - t0 < ms) {
    if (await check()) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return false;
}
