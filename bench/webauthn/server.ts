/**
 * The server side of bench/webauthn, in its own process so its CPU time is only the server's:
 * a Keygate gateway on a temporary SQLite file, answering the runner over IPC with
 *   { op: 'cpu' }                        → this process's CPU time so far (all threads, µs)
 *   { op: 'bare', response, challenge, n } → CPU time of n bare @simplewebauthn/server verifies
 * The runner (bench/webauthn/http.ts) plays the browser and the authenticator over real HTTP.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type AuthenticationResponseJSON, verifyAuthenticationResponse } from '@simplewebauthn/server';
import { pino } from 'pino';
import { parseConfig } from '../../src/config/load.js';
import { Gateway } from '../../src/server/gateway.js';
import { SqliteStore } from '../../src/store/sqlite/index.js';

const dir = mkdtempSync(join(tmpdir(), 'kg-bench-webauthn-'));
const config = parseConfig({
  listen: { host: '127.0.0.1', port: 0 },
  dataDir: dir,
  log: { level: 'warn', requests: false },
  // The benchmark logs in thousands of times a minute from one address.
  rateLimits: { perIpPerMinute: 1_000_000, perAccountPerMinute: 1_000_000, apiPerIpPerMinute: 1_000_000 },
});
const gw = await Gateway.create({
  config,
  store: new SqliteStore({ path: join(dir, 'keygate.db') }),
  logger: pino({ level: 'warn' }),
});
await gw.listen();
const link = await gw.auth.enrollment.invite(gw.publicOrigin, { email: 'bench@example.com', createdBy: 'bench' });

const cpuNow = () => {
  const c = process.cpuUsage();
  return c.user + c.system;
};

type Message =
  | { op: 'cpu' }
  | { op: 'bare'; response: AuthenticationResponseJSON; challenge: string; credentialId: string; n: number };

process.on('message', async (m: Message) => {
  if (m.op === 'cpu') {
    process.send?.({ cpu: cpuNow() });
    return;
  }
  // The baseline: the library's verify of an equivalent assertion against the stored key.
  const cred = await gw.store.getCredential(m.credentialId);
  if (!cred) throw new Error('no credential');
  const c0 = cpuNow();
  const t0 = performance.now();
  for (let i = 0; i < m.n; i++) {
    const r = await verifyAuthenticationResponse({
      response: m.response,
      expectedChallenge: m.challenge,
      expectedOrigin: gw.publicOrigin,
      expectedRPID: 'localhost',
      credential: { id: cred.id, publicKey: new Uint8Array(cred.publicKey), counter: 0 },
      requireUserVerification: true,
    });
    if (!r.verified) throw new Error('bare verify failed');
  }
  process.send?.({ cpu: cpuNow() - c0, wallMs: performance.now() - t0 });
});

process.once('disconnect', async () => {
  await gw.close();
  rmSync(dir, { recursive: true, force: true });
  process.exit(0);
});
process.send?.({ url: `http://127.0.0.1:${new URL(gw.publicOrigin).port}`, origin: gw.publicOrigin, token: link.token });
