/**
 * Three `keygate serve` processes (replicas behind one public URL) on one throwaway PostgreSQL,
 * as an operator runs them: the invitation made with the admin CLI on the shared store, a
 * registration whose challenge came from replica B completed on replica A, a login on replica C,
 * and a logout on A refused by B within a second. (The same refresh token raced on two replicas
 * is in postgres-replicas.test.ts: each replica there is its own authorization server with its
 * own caches, sharing only PostgreSQL, as processes do.) Then load on all three, one of them
 * SIGKILLed mid-load: the shared audit chain keeps every acknowledged record and verifies.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pgLib from 'pg';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BrowserClient } from '../../helpers/browser-client.js';
import { GATEWAY_IN_THIS_PROCESS, type RunningCli, runCli, startCli } from '../../helpers/cli.js';
import { freePort, type RunningUpstream, startRecordingUpstream, trueWithin } from '../../helpers/index.js';
import { clientCredentials } from '../../helpers/oauth.js';
import { postgresAvailable, startPostgres, type TestPostgres } from '../../helpers/postgres.js';
import { SoftAuthenticator } from '../../helpers/soft-authenticator.js';

const hasPostgres = postgresAvailable();
const dir = mkdtempSync(join(tmpdir(), 'kg-replicas-'));
let pg: TestPostgres;
let up: RunningUpstream & { seen: unknown[] };
let publicUrl: string;
const replicas: { name: string; url: string; config: string; args: string[]; proc: RunningCli }[] = [];

beforeAll(async () => {
  if (!hasPostgres) return;
  pg = await startPostgres();
  up = await startRecordingUpstream();
  const ports = [await freePort(), await freePort(), await freePort()];
  // The load balancer's address is the public URL; here, replica A's own port stands in for it.
  publicUrl = `http://localhost:${ports[0]}`;
  for (const [i, name] of ['a', 'b', 'c'].entries()) {
    const config = join(dir, `${name}.yaml`);
    // A and B name the store in their config; C gets it on the command line.
    const store = name === 'c' ? '' : `store: { driver: postgres, url: "${pg.url}" }\n`;
    writeFileSync(
      config,
      `publicUrl: ${publicUrl}\nlisten: { host: 127.0.0.1, port: ${ports[i]} }\ndataDir: ${join(dir, name)}\n${store}` +
        `upstreams:\n  ws: { url: "${up.url}", preset: databricks, credential: { type: none } }\n`,
    );
    const args = ['serve', '--config', config, ...(name === 'c' ? ['--store', pg.url] : [])];
    // C is SIGKILLed below: the gateway must be the process started (no one-CPU relaunch).
    const proc = startCli(args, {}, undefined, { nodeArgs: [...GATEWAY_IN_THIS_PROCESS] });
    replicas.push({ name, url: `http://127.0.0.1:${ports[i]}`, config, args, proc });
  }
  for (const r of replicas) {
    await r.proc.waitFor(/listening on/, 60_000).catch((e: unknown) => {
      throw new Error(
        `replica ${r.name} did not start: ${replicas.map((x) => `${x.name}: ${x.proc.output()}`).join(' | ')}`,
        {
          cause: e,
        },
      );
    });
  }
}, 120_000);

afterAll(async () => {
  for (const r of replicas) await r.proc.stop('SIGTERM');
  await up?.close();
  await pg?.stop();
});

const replica = (name: string) => replicas.find((r) => r.name === name) as (typeof replicas)[number];

/** A browser: its cookies, sent to whichever replica it talks to (as a load balancer would). */
function browserOn(name: string, from?: BrowserClient): BrowserClient {
  const b = new BrowserClient(replica(name).url, publicUrl);
  for (const [k, v] of from?.cookies ?? []) b.cookies.set(k, v);
  return b;
}

describe.skipIf(!hasPostgres)('three keygate serve processes on one PostgreSQL', () => {
  it('register on A with B’s challenge, log in on C, log out on A: B refuses within a second', async () => {
    // The admin CLI works on the shared store too.
    const invited = await runCli([
      'admin',
      'invite',
      '--role',
      'ml-reader',
      '--config',
      replica('a').config,
      'dana@example.com',
    ]);
    expect(invited.code, invited.stderr).toBe(0);
    const token = new URL(invited.stdout.trim()).searchParams.get('token') as string;
    expect(invited.stdout.trim().startsWith(`${publicUrl}/.keygate/enroll?token=`)).toBe(true);

    const authenticator = new SoftAuthenticator(publicUrl);
    const onB = browserOn('b');
    const options = await onB.post<Parameters<SoftAuthenticator['create']>[0]>(
      '/.keygate/api/webauthn/registration/options',
      { enrollmentToken: token },
    );
    expect(options.status).toBe(200);
    const registered = await browserOn('a', onB).post('/.keygate/api/webauthn/registration/verify', {
      response: authenticator.create(options.body),
      enrollmentToken: token,
      name: 'Replica key',
    });
    expect(registered.status).toBe(200);

    const onC = browserOn('c');
    const loginOptions = await onC.post<Parameters<SoftAuthenticator['get']>[0]>(
      '/.keygate/api/webauthn/authentication/options',
      {},
    );
    const loggedIn = await onC.post('/.keygate/api/webauthn/authentication/verify', {
      response: authenticator.get(loginOptions.body),
    });
    expect(loggedIn.status).toBe(200);
    // The session works on every replica.
    for (const name of ['a', 'b', 'c']) {
      expect((await browserOn(name, onC).get('/api/2.0/serving-endpoints')).status, name).toBe(200);
    }

    const onA = browserOn('a', onC);
    const onB2 = browserOn('b', onC);
    expect((await onB2.get('/.keygate/api/session')).status).toBe(200);
    expect((await onA.post('/.keygate/api/session/logout', {})).status).toBeLessThan(300);
    expect(
      await trueWithin(1_000, async () => (await onB2.get('/.keygate/api/session')).status === 401),
      'refused on B within a second',
    ).toBe(true);
    // C too (it polls on its own), and from then on nothing of that session reaches the upstream.
    const onC2 = browserOn('c', onC);
    await expect
      .poll(async () => (await onC2.get('/.keygate/api/session')).status, { timeout: 1_000, interval: 50 })
      .toBe(401);
    const seen = up.seen.length;
    expect((await onC2.get('/api/2.0/serving-endpoints')).status).toBe(401);
    expect(up.seen.length).toBe(seen);
  }, 60_000);

  it('one replica SIGKILLed under load: every acknowledged audit record is kept, the shared chain verifies', async () => {
    const created = await runCli([
      'admin',
      'sp',
      'create',
      'loadgen',
      '--role',
      'ml-reader',
      '--config',
      replica('a').config,
    ]);
    expect(created.code, created.stderr).toBe(0);
    const [clientId, secret] = created.stdout.trim().split(':') as [string, string];
    const at = (await clientCredentials(replica('b').url, clientId, secret)).body.access_token as string;
    const get = async (url: string, id: string) => {
      const r = await request(`${url}/api/2.0/serving-endpoints`, {
        headers: { authorization: `Bearer ${at}`, 'x-request-id': id },
      });
      await r.body.text();
      return r.statusCode;
    };
    const queued = async (url: string) => {
      const text = await (await request(`${url}/.keygate/metrics`)).body.text();
      return Number(/^keygate_audit_queue_length (\d+)/m.exec(text)?.[1] ?? Number.NaN);
    };
    const drained = async (names: string[]) => {
      for (const name of names)
        expect(await trueWithin(5_000, async () => (await queued(replica(name).url)) === 0), `${name} drained`).toBe(
          true,
        );
    };

    // Acknowledged: answered, and the replica's writer has committed everything it queued.
    const acknowledged: string[] = [];
    for (const name of ['a', 'b', 'c'])
      for (let i = 0; i < 20; i++) {
        expect(await get(replica(name).url, `ack-${name}-${i}`)).toBe(200);
        acknowledged.push(`ack-${name}-${i}`);
      }
    await drained(['a', 'b', 'c']);

    // Then load on all three, four clients each, and C killed in the middle of it.
    let flowing = true;
    const answered: Record<string, string[]> = { a: [], b: [], c: [] };
    const load = ['a', 'b', 'c'].flatMap((name) =>
      Array.from({ length: 4 }, async (_, w) => {
        for (let i = 0; flowing; i++) {
          const id = `load-${name}-${w}-${i}`;
          if ((await get(replica(name).url, id).catch(() => 0)) === 200) answered[name]?.push(id);
        }
      }),
    );
    await new Promise((r) => setTimeout(r, 500));
    const c = replica('c');
    c.proc.proc.kill('SIGKILL');
    await c.proc.exited;
    await new Promise((r) => setTimeout(r, 300));
    flowing = false;
    await Promise.all(load);
    await drained(['a', 'b']);
    expect(answered.a?.length).toBeGreaterThan(20);
    expect(answered.b?.length).toBeGreaterThan(20);

    // C comes back on the same chain.
    c.proc = startCli(c.args, {}, undefined, { nodeArgs: [...GATEWAY_IN_THIS_PROCESS] });
    await c.proc.waitFor(/listening on/, 60_000);
    expect(await get(c.url, 'after-restart')).toBe(200);
    await drained(['c']);

    const verify = await runCli(['audit', 'verify', '--config', replica('b').config]);
    expect(verify.code, verify.stdout + verify.stderr).toBe(0);
    expect(verify.stdout).toMatch(/^ok: \d+ records \(1–\d+\)/);

    const db = new pgLib.Client({ connectionString: pg.url });
    await db.connect();
    try {
      const rows = (await db.query<{ seq: string; body: string }>('SELECT seq, body FROM audit_records ORDER BY seq'))
        .rows;
      // One chain, no gap: 1…n.
      expect(rows.map((r) => Number(r.seq))).toEqual(rows.map((_, i) => i + 1));
      const ids = new Map<string, number>();
      for (const r of rows) {
        const id = (JSON.parse(r.body) as { request?: { requestId?: string } }).request?.requestId;
        if (id !== undefined) ids.set(id, (ids.get(id) ?? 0) + 1);
      }
      // Every acknowledged record, once; every request the survivors answered, once; and C's
      // restart recorded after them.
      for (const id of [...acknowledged, ...(answered.a ?? []), ...(answered.b ?? []), 'after-restart'])
        expect(ids.get(id), id).toBe(1);
      // Nothing C answered was recorded twice.
      for (const id of answered.c ?? []) expect(ids.get(id) ?? 0, id).toBeLessThanOrEqual(1);
      const started = rows.filter((r) => (JSON.parse(r.body) as { kind: string }).kind === 'audit.started');
      expect(started).toHaveLength(4);
    } finally {
      await db.end();
    }
  }, 120_000);
});
