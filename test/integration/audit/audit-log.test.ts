/**
 * The audit log in a running gateway: what a proxied request and a login record, that requests
 * are refused (503, nothing forwarded) while the log cannot be written, that `keygate audit
 * verify` reports an intact and a tampered chain, and that a SIGKILL loses nothing committed,
 * never breaks the chain, and the next start continues it.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuditRecord } from '../../../src/audit/record.js';
import { openAuditDb } from '../../../src/audit/sqlite-chain.js';
import { GATEWAY_IN_THIS_PROCESS, KEYGATE_BIN, runCli } from '../../helpers/cli.js';
import { asUser, startGateway, startRecordingUpstream, type TestGateway } from '../../helpers/index.js';
import { clientCredentials } from '../../helpers/oauth.js';
import { enroll, invite, login } from '../../helpers/people.js';

let dir: string;
let up: Awaited<ReturnType<typeof startRecordingUpstream>>;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'kg-audit-it-'));
  up = await startRecordingUpstream();
});
afterAll(async () => {
  await up?.close();
  rmSync(dir, { recursive: true, force: true });
});

function records(path: string): AuditRecord[] {
  const db = new Database(path, { readonly: true });
  try {
    return (
      db.prepare('SELECT seq, body FROM audit_records ORDER BY seq').all() as { seq: number; body: string }[]
    ).map((r) => ({ ...(JSON.parse(r.body) as AuditRecord), seq: r.seq }));
  } finally {
    db.close();
  }
}

describe('what is recorded', () => {
  let g: TestGateway;
  const path = () => join(dir, 'records.db');

  beforeAll(async () => {
    g = await startGateway({
      upstreams: { ws: { url: up.url, preset: 'databricks', credential: { type: 'none' } } },
      audit: { path: path(), flushInterval: '1ms' },
    });
  });
  afterAll(async () => {
    await g?.close();
  });

  it('a proxied request: actor, the auth event behind it, action, decision, upstream outcome', async () => {
    const res = await request(`${g.url}/api/2.0/serving-endpoints?secret=do-not-log`, {
      headers: asUser('alice', { 'x-request-id': 'req-audit-1', 'user-agent': 'audit-test' }),
    });
    expect(res.statusCode).toBe(200);
    await res.body.text();
    await g.gw.audit.flushed();
    const r = records(path()).find((x) => x.request?.requestId === 'req-audit-1');
    expect(r).toMatchObject({
      kind: 'http.request',
      actor: { type: 'user', id: 'alice', method: 'test' },
      request: {
        method: 'GET',
        path: '/api/2.0/serving-endpoints',
        action: 'serving:read',
        resource: 'Workspace::workspace',
        ip: '127.0.0.1',
        userAgent: 'audit-test',
      },
      decision: { effect: 'allow' },
      upstream: { name: 'ws', status: 200 },
      status: 200,
    });
    expect(r?.actor.authEventId).toBeTruthy();
    // The query string (which may carry secrets) is never recorded.
    expect(JSON.stringify(r)).not.toContain('do-not-log');
  });

  it('refusals: anonymous 401 and a policy 403, each with its reason; nothing reached the upstream', async () => {
    const before = up.seen.length;
    const anon = await request(`${g.url}/api/2.0/serving-endpoints`, { headers: { 'x-request-id': 'req-audit-anon' } });
    await anon.body.text();
    const denied = await request(`${g.url}/api/2.0/token/create`, {
      method: 'POST',
      headers: asUser('alice', { 'x-request-id': 'req-audit-mint', 'content-type': 'application/json' }),
      body: '{}',
    });
    await denied.body.text();
    expect([anon.statusCode, denied.statusCode]).toEqual([401, 403]);
    expect(up.seen.length).toBe(before);
    await g.gw.audit.flushed();
    const all = records(path());
    expect(all.find((x) => x.request?.requestId === 'req-audit-anon')).toMatchObject({
      actor: { type: 'anonymous' },
      status: 401,
      decision: { effect: 'deny', reasons: ['UNAUTHENTICATED'] },
    });
    expect(all.find((x) => x.request?.requestId === 'req-audit-mint')).toMatchObject({
      actor: { id: 'alice' },
      status: 403,
      request: { action: 'credentials:mint' },
      decision: { effect: 'deny', reasons: expect.arrayContaining(['keygate:deny-credential-minting']) },
    });
  });

  it('logins, success and failure, with the credential, authenticator and reason', async () => {
    const { browser, authenticator } = await enroll(g, 'audit@example.com', {
      token: await invite(g, 'audit@example.com'),
    });
    expect((await login(browser, authenticator)).status).toBe(200);
    expect((await login(browser, authenticator, { bend: { badSignature: true } })).status).toBe(401);
    await g.gw.audit.flushed();
    const logins = records(path()).filter((x) => x.kind === 'auth.login');
    const ok = logins.find((x) => x.outcome === 'success');
    const bad = logins.find((x) => x.outcome === 'failure');
    expect(ok?.actor).toMatchObject({
      type: 'user',
      credentialId: expect.any(String),
      authenticator: expect.any(String),
      uv: true,
    });
    expect(bad?.reason).toBeTruthy();
    expect(records(path()).some((x) => x.kind === 'auth.register' && x.outcome === 'success')).toBe(true);
  });
});

describe('when the audit log cannot be written', () => {
  it('requests get 503 and reach nothing; readiness says why; writes resume when the file frees up', async () => {
    const path = join(dir, 'blocked.db');
    const g = await startGateway({
      upstreams: { ws: { url: up.url, preset: 'databricks', credential: { type: 'none' } } },
      audit: { path, flushInterval: '1ms', busyTimeout: '20ms', maxQueue: 100 },
    });
    try {
      await g.gw.audit.flushed();
      // Another process holds the write lock on the audit file.
      const blocker = openAuditDb(path, 0);
      blocker.exec('BEGIN IMMEDIATE');
      const r1 = await request(`${g.url}/api/2.0/serving-endpoints`, { headers: asUser('alice') });
      await r1.body.text();
      for (let i = 0; i < 300 && g.gw.audit.state !== 'failing'; i++) await new Promise((r) => setTimeout(r, 10));
      const before = up.seen.length;
      const refused = await request(`${g.url}/api/2.0/serving-endpoints`, { headers: asUser('alice') });
      expect(refused.statusCode).toBe(503);
      expect(((await refused.body.json()) as { error_code: string }).error_code).toBe('TEMPORARILY_UNAVAILABLE');
      expect(up.seen.length).toBe(before);
      const ready = await request(`${g.url}/.keygate/readyz`);
      expect(ready.statusCode).toBe(503);
      expect(((await ready.body.json()) as { checks: Record<string, string> }).checks.audit).toBe('failing');
      blocker.exec('COMMIT');
      blocker.close();
      await g.gw.audit.flushed();
      const after = await request(`${g.url}/api/2.0/serving-endpoints`, { headers: asUser('alice') });
      expect(after.statusCode).toBe(200);
      await after.body.text();
    } finally {
      await g.close();
    }
  });
});

// ---- a real process, killed ------------------------------------------------------------------

/** Every process started here, stopped by its pid in afterAll whatever happened. */
const started: ChildProcess[] = [];
afterAll(() => {
  for (const p of started) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
});

function serve(config: string): Promise<{ proc: ChildProcess; url: string }> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, [...GATEWAY_IN_THIS_PROCESS, KEYGATE_BIN, 'serve', '--config', config], {
      env: { PATH: process.env.PATH, HOME: process.env.HOME },
    });
    started.push(proc);
    let err = '';
    const timer = setTimeout(() => reject(new Error(`serve did not start: ${err}`)), 20_000);
    proc.stderr.on('data', (d: Buffer) => {
      err += d.toString();
      const m = /listening on (\S+)/.exec(err);
      if (m) {
        clearTimeout(timer);
        resolve({ proc, url: m[1] as string });
      }
    });
    proc.stdout.resume();
  });
}

async function metric(url: string, name: string): Promise<number> {
  const text = await (await request(`${url}/.keygate/metrics`)).body.text();
  return Number(new RegExp(`^${name} (\\d+)`, 'm').exec(text)?.[1] ?? Number.NaN);
}

describe('a SIGKILL while requests flow', () => {
  it('loses nothing committed, leaves a chain that verifies, and the next start continues it', async () => {
    const data = join(dir, 'crash');
    const config = join(dir, 'crash.yaml');
    writeFileSync(
      config,
      `listen: { port: 0 }\npublicUrl: http://localhost:18999\ndataDir: ${data}\nlog: { level: warn }\nrateLimits: { apiPerIpPerMinute: 100000 }\naudit: { flushInterval: 2ms, sinks: { file: { path: ${join(dir, 'crash.jsonl')} } } }\nupstreams:\n  ws:\n    url: ${up.url}\n    preset: generic\n    credential: { type: none }\n`,
    );
    const created = await runCli(['admin', 'sp', 'create', 'loadgen', '--role', 'ml-reader', '--config', config]);
    expect(created.code, created.stderr).toBe(0);
    const [clientId, secret] = created.stdout.trim().split(':') as [string, string];

    const first = await serve(config);
    const token = async (url: string) => (await clientCredentials(url, clientId, secret)).body.access_token as string;
    const at = await token(first.url);
    const get = (url: string, id: string) =>
      request(`${url}/v1/models`, { headers: { authorization: `Bearer ${at}`, 'x-request-id': id } }).then(
        async (r) => {
          await r.body.text();
          return r.statusCode;
        },
      );

    // 40 requests, then wait until the writer has committed all of them (queue empty).
    for (let i = 0; i < 40; i++) expect(await get(first.url, `committed-${i}`)).toBe(200);
    for (let i = 0; i < 500 && (await metric(first.url, 'keygate_audit_queue_length')) > 0; i++) {
      await new Promise((r) => setTimeout(r, 10));
    }
    const committed = await metric(first.url, 'keygate_audit_committed_seq');
    expect(committed).toBeGreaterThanOrEqual(42);

    // Then a flood, killed in the middle.
    let flowing = true;
    const flood = Array.from({ length: 8 }, async (_, w) => {
      for (let i = 0; flowing; i++) await get(first.url, `flood-${w}-${i}`).catch(() => undefined);
    });
    await new Promise((r) => setTimeout(r, 300));
    first.proc.kill('SIGKILL');
    flowing = false;
    await Promise.all(flood);
    await new Promise<void>((r) =>
      first.proc.exitCode !== null || first.proc.signalCode !== null ? r() : first.proc.once('exit', () => r()),
    );

    // The kill can land between a batch's commit and its copy to the sink: make that happen for
    // sure by cutting the sink's last five lines (and leaving half of one).
    const sinkPath = join(dir, 'crash.jsonl');
    const cut = readFileSync(sinkPath, 'utf8').split('\n').slice(0, -6);
    writeFileSync(sinkPath, `${cut.join('\n')}\n{"seq":${cut.length + 1},"prevHash":"`);

    const second = await serve(config);
    try {
      expect(await get(second.url, 'after-restart')).toBe(200);
      for (let i = 0; i < 500 && (await metric(second.url, 'keygate_audit_queue_length')) > 0; i++) {
        await new Promise((r) => setTimeout(r, 10));
      }
    } finally {
      second.proc.kill('SIGTERM');
      await new Promise<void>((r) => second.proc.once('exit', () => r()));
    }
    const verify = await runCli(['audit', 'verify', '--config', config]);
    expect(verify.code, verify.stdout + verify.stderr).toBe(0);
    expect(verify.stdout).toMatch(/^ok: \d+ records/);

    const all = records(join(data, 'audit.db'));
    const ids = new Set(all.map((r) => r.request?.requestId));
    for (let i = 0; i < 40; i++) expect(ids.has(`committed-${i}`), `committed-${i}`).toBe(true);
    // Sequence numbers are contiguous across the crash; the second process announced itself.
    expect(all.map((r) => r.seq)).toEqual(all.map((_, i) => i + 1));
    const restarts = all.filter((r) => r.kind === 'audit.started');
    expect(restarts).toHaveLength(2);
    expect((restarts[1] as AuditRecord).seq).toBeGreaterThan(committed);
    expect(ids.has('after-restart')).toBe(true);

    // The JSON Lines sink holds exactly what the chain holds: what was committed just before
    // the kill reached it on the next start (no gap), nothing twice.
    const exported = await runCli(['audit', 'export', '--config', config]);
    expect(exported.code).toBe(0);
    const sink = readFileSync(sinkPath, 'utf8');
    expect(sink).toBe(exported.stdout);

    // And tampering is found: change one committed record.
    const db = new Database(join(data, 'audit.db'));
    db.prepare(
      'UPDATE audit_records SET body = replace(body, \'"status":200\', \'"status":201\') WHERE seq = 10',
    ).run();
    db.close();
    const broken = await runCli(['audit', 'verify', '--config', config]);
    expect(broken.code).toBe(1);
    expect(broken.stdout).toContain('BROKEN at record 10');
  }, 60_000);
});
