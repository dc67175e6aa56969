/**
 * `keygate admin sp …` and `keygate admin keys rotate` on the local store, then the gateway on
 * that store: the printed secret works at the token endpoint, rotation keeps two secrets at
 * most, a revoked or superseded secret is refused, and a rotated signing key stays published.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeProtectedHeader } from 'jose';
import { pino } from 'pino';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ChainedRecord } from '../../../src/audit/record.js';
import { parseConfig } from '../../../src/config/load.js';
import { Gateway } from '../../../src/server/gateway.js';
import { SqliteStore } from '../../../src/store/sqlite/index.js';
import { runCli } from '../../helpers/cli.js';
import { startRecordingUpstream } from '../../helpers/index.js';
import { clientCredentials } from '../../helpers/oauth.js';

let dir: string;
let cfgFile: string;
let up: Awaited<ReturnType<typeof startRecordingUpstream>>;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'kg-admin-sp-'));
  up = await startRecordingUpstream();
  cfgFile = join(dir, 'keygate.yaml');
  writeFileSync(
    cfgFile,
    `listen: { port: 0 }\ndataDir: ${join(dir, 'data')}\nlog: { level: warn }\nupstreams:\n  api:\n    url: ${up.url}\n    preset: generic\n    credential: { type: none }\n`,
  );
});
afterAll(async () => {
  await up?.close();
  rmSync(dir, { recursive: true, force: true });
});

async function withGateway<T>(fn: (url: string, gw: Gateway) => Promise<T>): Promise<T> {
  const config = parseConfig({
    listen: { host: '127.0.0.1', port: 0 },
    // One issuer across the gateway restarts below (the port changes, the public URL does not).
    publicUrl: 'http://localhost:18443',
    dataDir: join(dir, 'data'),
    log: { level: 'warn' },
    upstreams: { api: { url: up.url, preset: 'generic', credential: { type: 'none' } } },
  });
  const gw = await Gateway.create({ config, logger: pino({ level: 'silent' }) });
  const url = await gw.listen();
  try {
    return await fn(url, gw);
  } finally {
    await gw.close();
  }
}

const token = clientCredentials;

describe('keygate admin sp', () => {
  it('create prints CLIENT_ID:SECRET once; the secret works and only its hash is stored', async () => {
    const r = await runCli(['admin', 'sp', 'create', 'ci-deployer', '--role', 'ml-reader', '--config', cfgFile]);
    expect(r.code, r.stderr).toBe(0);
    const [clientId, secret] = r.stdout.trim().split(':') as [string, string];
    expect(secret).toMatch(/^kgs_[A-Za-z0-9_-]{43}$/);
    expect(r.stderr).toContain('shown once');
    const dup = await runCli(['admin', 'sp', 'create', 'ci-deployer', '--config', cfgFile]);
    expect(dup.code).toBe(1);
    expect(dup.stderr).toContain('exists already');
    await withGateway(async (url) => {
      const ok = await token(url, clientId, secret);
      expect(ok.status).toBe(200);
      expect(ok.body.token_type).toBe('Bearer');
      const proxied = await request(`${url}/v1/models`, {
        headers: { authorization: `Bearer ${ok.body.access_token}` },
      });
      expect(proxied.statusCode).toBe(200);
      await proxied.body.text();
      const wrong = await token(url, clientId, `${secret.slice(0, -2)}xx`);
      expect(wrong.status).toBe(401);
      expect(wrong.body.error).toBe('invalid_client');
    });
    const list = await runCli(['admin', 'sp', 'list', '--config', cfgFile]);
    expect(list.stdout).toContain(`ci-deployer\t${clientId}\tml-reader\tsecrets: `);
    expect(list.stdout).not.toContain(secret);
  });

  it('rotate keeps the previous secret working, a second rotation retires the oldest, revoke-secret ends one', async () => {
    const created = await runCli(['admin', 'sp', 'create', 'nightly', '--config', cfgFile]);
    const [clientId, s1] = created.stdout.trim().split(':') as [string, string];
    const r2 = await runCli(['admin', 'sp', 'rotate', 'nightly', '--config', cfgFile]);
    expect(r2.code, r2.stderr).toBe(0);
    const s2 = r2.stdout.trim().split(':')[1] as string;
    await withGateway(async (url) => {
      expect((await token(url, clientId, s1)).status).toBe(200);
      expect((await token(url, clientId, s2)).status).toBe(200);
    });
    const r3 = await runCli(['admin', 'sp', 'rotate', clientId, '--config', cfgFile]);
    const s3 = r3.stdout.trim().split(':')[1] as string;
    expect(r3.stderr).toContain('older ones were revoked');
    await withGateway(async (url) => {
      const old = await token(url, clientId, s1);
      expect(old.status).toBe(401);
      expect(old.body.error).toBe('invalid_client');
      expect((await token(url, clientId, s2)).status).toBe(200);
      expect((await token(url, clientId, s3)).status).toBe(200);
    });
    const list = await runCli(['admin', 'sp', 'list', '--config', cfgFile]);
    const line = list.stdout.split('\n').find((l) => l.startsWith('nightly\t')) as string;
    const ids = [...line.matchAll(/(sec_[A-Za-z0-9_-]{12}) \(expires/g)].map((m) => m[1] as string);
    expect(ids).toHaveLength(2);
    // Revoke the older of the two live secrets (s2); s3 keeps working.
    const rev = await runCli(['admin', 'sp', 'revoke-secret', 'nightly', ids[1] as string, '--config', cfgFile]);
    expect(rev.code, rev.stderr).toBe(0);
    await withGateway(async (url) => {
      expect((await token(url, clientId, s2)).status).toBe(401);
      expect((await token(url, clientId, s3)).status).toBe(200);
    });
  });

  it('a federation-only principal has no secret and cannot use client_credentials', async () => {
    const r = await runCli(['admin', 'sp', 'create', 'gha', '--no-secret', '--config', cfgFile]);
    expect(r.code, r.stderr).toBe(0);
    const clientId = r.stdout.trim();
    expect(clientId).toMatch(/^[0-9a-f-]{36}$/);
    await withGateway(async (url) => {
      const t = await request(`${url}/.keygate/oauth/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: `grant_type=client_credentials&client_id=${clientId}`,
      });
      const body = (await t.body.json()) as { error: string; error_description: string };
      expect(t.statusCode).toBe(400);
      // oidc-provider's wording for a grant the client is not registered for.
      expect(body.error).toBe('invalid_request');
      expect(body.error_description).toBe('requested grant type is not allowed for this client');
    });
  });
});

describe('keygate admin keys rotate', () => {
  it('a new key signs new tokens; the old public key stays in the JWKS so its tokens still verify', async () => {
    const created = await runCli(['admin', 'sp', 'create', 'rotator', '--role', 'ml-reader', '--config', cfgFile]);
    const [clientId, secret] = created.stdout.trim().split(':') as [string, string];
    const before = await withGateway(async (url) => (await token(url, clientId, secret)).body.access_token as string);
    const oldKid = decodeProtectedHeader(before).kid;
    const rot = await runCli(['admin', 'keys', 'rotate', '--config', cfgFile]);
    expect(rot.code, rot.stderr).toBe(0);
    const newKid = rot.stdout.trim();
    expect(newKid).not.toBe(oldKid);
    await withGateway(async (url) => {
      const after = (await token(url, clientId, secret)).body.access_token as string;
      expect(decodeProtectedHeader(after).kid).toBe(newKid);
      const jwks = (await (await request(`${url}/.keygate/oauth/jwks`)).body.json()) as { keys: { kid: string }[] };
      const kids = jwks.keys.map((k) => k.kid);
      expect(kids).toContain(oldKid);
      expect(kids).toContain(newKid);
      // A token signed by the retired key is still accepted until it expires.
      const old = await request(`${url}/v1/models`, { headers: { authorization: `Bearer ${before}` } });
      expect(old.statusCode).toBe(200);
      await old.body.text();
    });
  });
});

describe('changes made with the admin CLI', () => {
  it('wait in the store outbox and reach the audit chain once a gateway runs, secrets never included', async () => {
    const r = await runCli(['admin', 'sp', 'create', 'outboxed', '--role', 'ml-reader', '--config', cfgFile]);
    expect(r.code, r.stderr).toBe(0);
    const [id, secret] = r.stdout.trim().split(':') as [string, string];
    const store = new SqliteStore({ path: join(dir, 'data', 'keygate.db') });
    await store.migrate();
    const waiting = await store.listAuditOutbox(1000);
    await store.close();
    expect(waiting.map((w) => JSON.parse(w.entry).change?.target)).toContain(`service_principal:${id}`);
    expect(JSON.stringify(waiting)).not.toContain(secret);

    await withGateway(async (_url, gw) => {
      // The gateway drains the outbox at start; wait (bounded) until it is empty.
      for (let i = 0; i < 200 && (await gw.store.listAuditOutbox(1)).length > 0; i++) {
        await new Promise((res) => setTimeout(res, 20));
      }
      expect(await gw.store.listAuditOutbox(1)).toEqual([]);
      const records = (await gw.audit.query({ kind: 'admin.change' }, { limit: 1000 }))
        .lines.map((l) => JSON.parse(l) as ChainedRecord);
      const mine = records.find((x) => x.change?.target === `service_principal:${id}`);
      expect(mine).toMatchObject({
        actor: { type: 'system', method: 'cli' },
        change: { op: 'service_principal.create', after: { name: 'outboxed', roles: ['ml-reader'] } },
        detail: { via: 'cli', command: 'admin sp create' },
      });
      expect(mine?.actor.id).toMatch(/^cli:.+@.+$/);
      // The id it waited under is the record's id.
      expect(waiting.map((w) => w.id)).toContain(mine?.id);
      expect(records.map((x) => JSON.stringify(x)).join('')).not.toContain(secret);
    });
  });
});
