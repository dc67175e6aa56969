/**
 * The `keygate` binary as a user runs it: config check, serve with graceful SIGTERM, demo.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningUpstream, startUpstream } from '../../helpers/index.js';
import { runCli, startCli } from '../../helpers/cli.js';

const dir = mkdtempSync(join(tmpdir(), 'kg-cli-'));
let up: RunningUpstream;

function file(name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}

beforeAll(async () => {
  up = await startUpstream((_req, res) => {
    res.end('ok');
  });
});

afterAll(async () => {
  await up?.close();
});

describe('keygate config check', () => {
  it('prints "ok" for a valid file and exits 0', async () => {
    const f = file(
      'good.yaml',
      `upstreams:\n  ws:\n    url: ${up.url}\n    credential: { type: static, tokenEnv: WS_TOKEN }\n`,
    );
    const r = await runCli(['config', 'check', f], { WS_TOKEN: 'x' });
    expect(r).toMatchObject({ code: 0, stdout: `${f}: ok\n` });
  });

  it('prints one line per problem, naming the path, and exits 1', async () => {
    const f = file(
      'bad.yaml',
      'listen:\n  prot: 1\nupstreams:\n  ws:\n    url: nope\n    credential: { type: static, tokenEnv: T }\nroutes:\n  - { prefix: /, upstream: ws }\n  - { prefix: /a, upstream: ws }\n  - { prefix: /b, upstream: other }\n',
    );
    const r = await runCli(['config', 'check', f]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`${f}: listen.prot: unknown key`);
    expect(r.stderr).toContain(`${f}: upstreams.ws.url: must be a URL`);
    expect(r.stderr).toContain(`${f}: routes[2].upstream: unknown upstream "other"`);
  });

  it('names a missing environment variable', async () => {
    const f = file(
      'env.yaml',
      `upstreams:\n  ws:\n    url: ${up.url}\n    credential: { type: static, tokenEnv: WS_TOKEN }\n`,
    );
    const r = await runCli(['config', 'check', f]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`${f}: upstreams.ws.credential.tokenEnv: environment variable WS_TOKEN is not set\n`);
  });

  it('an unknown command is a usage error (exit 2)', async () => {
    const r = await runCli(['frobnicate']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("unknown command 'frobnicate'");
  });
});

describe('keygate serve', () => {
  it('serves, answers, and on SIGTERM drains and exits 0', async () => {
    const f = file(
      'serve.yaml',
      `listen: { port: 0 }\ndataDir: ${join(dir, 'data')}\nlog: { level: warn }\nupstreams:\n  ws:\n    url: ${up.url}\n    credential: { type: static, tokenEnv: WS_TOKEN }\n`,
    );
    const p = startCli(['serve', '--config', f], { WS_TOKEN: 'x' });
    try {
      const [, url] = await p.waitFor(/listening on (http:\/\/\S+)/);
      const h = await request(`${url}/.keygate/healthz`);
      expect(h.statusCode).toBe(200);
      await h.body.text();
      const anon = await request(`${url}/api/2.0/x`);
      expect(anon.statusCode).toBe(401);
      await anon.body.text();
      expect(await p.stop('SIGTERM')).toBe(0);
      expect(p.output()).toContain('SIGTERM: draining in-flight requests');
    } finally {
      await p.stop('SIGKILL');
    }
  });

  it('refuses to start with a broken config, naming the problem', async () => {
    const f = file('broken.yaml', 'listen: { port: -1 }\n');
    const r = await runCli(['serve', '--config', f]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('listen.port: must be at least 0');
  });

  it.each([
    [
      'a TLS key that is not a file',
      (d: string) => `tls: { certFile: ${d}/missing.pem, keyFile: ${d} }\n`,
      'tls.certFile: cannot read',
    ],
    [
      'an upstream secret file that cannot be read',
      (d: string) => `upstreams:\n  ws: { url: "http://127.0.0.1:9", credential: { type: static, tokenFile: ${d} } }\n`,
      'upstreams.ws.credential: cannot read',
    ],
  ])('%s: start-up fails with one line naming it (no stack trace)', async (_name, conf, says) => {
    const f = file(
      `unreadable-${says.length}.yaml`,
      `listen: { port: 0 }\ndataDir: ${join(dir, 'unreadable')}\n${conf(dir)}`,
    );
    const r = await runCli(['serve', '--config', f]);
    expect(r.code).toBe(1);
    const lines = r.stderr
      .trim()
      .split('\n')
      // Not about the failure: a library's runtime warning, and on a one-CPU machine the line
      // saying node was relaunched with a single-threaded collector (src/server/relaunch.ts).
      .filter((l) => !l.includes('oidc-provider WARNING') && !l.startsWith('keygate: 1 CPU available'));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain(says);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  it('exits 1 with the reason when it cannot start (an unreachable PostgreSQL), leaving nothing running', async () => {
    const f = file(
      'no-db.yaml',
      `listen: { port: 0 }
dataDir: ${join(dir, 'no-db')}
store: { driver: postgres, url: "postgres://nobody@127.0.0.1:1/none" }
`,
    );
    const r = await runCli(['serve', '--config', f]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('ECONNREFUSED');
  });
});

describe('keygate admin (local store, before any admin exists)', () => {
  it('invite prints a one-time enrollment URL; recover a recovery URL; unknown users and bad emails fail clearly', async () => {
    const f = file('admin.yaml', `publicUrl: https://kg.example.com\ndataDir: ${join(dir, 'admin-data')}\n`);
    const inv = await runCli(['admin', 'invite', '--role', 'admin', '--config', f, 'Root@Example.com']);
    expect(inv.code).toBe(0);
    expect(inv.stdout).toMatch(/^https:\/\/kg\.example\.com\/\.keygate\/enroll\?token=[A-Za-z0-9_-]{43}\n$/);
    expect(inv.stderr).toContain('One-time enrollment link for root@example.com');
    const rec = await runCli(['admin', 'recover', '--config', f, 'root@example.com']);
    expect(rec.code).toBe(0);
    expect(rec.stdout).toMatch(/\/\.keygate\/enroll\?token=/);
    expect(rec.stdout).not.toBe(inv.stdout);
    const unknown = await runCli(['admin', 'recover', '--config', f, 'nobody@example.com']);
    expect(unknown).toMatchObject({ code: 1, stderr: 'keygate: no user with email nobody@example.com\n' });
    const bad = await runCli(['admin', 'invite', '--config', f, 'not-an-email']);
    expect(bad.code).toBe(2);
  });
});

describe('keygate policy test', () => {
  it('prints the decision, reasons and step-up; --expect makes it scriptable', async () => {
    const f = file(
      'policy.yaml',
      `dataDir: ${join(dir, 'policy-data')}\nauthorization:\n  bindings:\n    - { group: ml-team, roles: [ml-deployer] }\n`,
    );
    const step = await runCli([
      'policy',
      'test',
      '-c',
      f,
      '--principal',
      'user:alice@example.com',
      '--groups',
      'ml-team',
      '--action',
      'serving:manage',
      '--resource',
      'Endpoint::fraud',
      '--auth-age',
      '600',
      '--expect',
      'step_up',
    ]);
    expect(step.code).toBe(0);
    expect(step.stdout).toContain(
      'decision: step_up (a user-verified login at most 300 s old is required; this one is 600 s old)',
    );
    expect(step.stdout).toContain('reasons:  keygate:step-up');
    const mint = await runCli([
      'policy',
      'test',
      '-c',
      f,
      '--principal',
      'user:alice@example.com',
      '--roles',
      'admin',
      '--method',
      'POST',
      '--path',
      '/api/2.0/serving-endpoints/../token/create',
      '--expect',
      'allow',
    ]);
    expect(mint.code).toBe(1);
    expect(mint.stdout).toContain('action:   credentials:mint');
    expect(mint.stdout).toContain('reasons:  keygate:deny-credential-minting');
    expect(mint.stderr).toBe('expected allow, got deny\n');
  });

  it('a Cedar policy file with a typo fails, naming the file and line', async () => {
    const cedarFile = file(
      'extra.cedar',
      '// extra rules\n\n@id("uv-only")\nforbid (principal, action, resource)\n  unless { context.auth.uvv };\n',
    );
    const f = file(
      'bad-policy.yaml',
      `dataDir: ${join(dir, 'policy-data2')}\nauthorization:\n  policyFiles: [${cedarFile}]\n`,
    );
    const r = await runCli([
      'policy',
      'test',
      '-c',
      f,
      '--principal',
      'user:a@example.com',
      '--action',
      'serving:read',
    ]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`${cedarFile}:5: `);
    expect(r.stderr).toContain('auth.uvv');
  });
});

describe('keygate demo (what npm start runs)', () => {
  it('starts the simulator and a gateway holding its credential; prints both URLs and what to do next', async () => {
    const data = join(dir, 'demo');
    const p = startCli(['demo', '--port', '0', '--sim-port', '0', '--data-dir', data], {});
    try {
      const [, gwUrl] = await p.waitFor(/Gateway\s+(http:\/\/\S+)/);
      const [, simUrl] = await p.waitFor(/Workspace\s+(http:\/\/\S+)/);
      const [, link] = await p.waitFor(/(http:\/\/\S+\/\.keygate\/enroll\?token=\S+)/);
      // The printed first-admin link is live: it names the admin.
      const token = new URL(link as string).searchParams.get('token');
      const info = await request(`${gwUrl}/.keygate/api/enrollment?token=${token}`);
      expect(info.statusCode).toBe(200);
      expect(await info.body.json()).toEqual({ email: 'admin@example.com', displayName: 'admin', kind: 'enroll' });
      const ready = await request(`${gwUrl}/.keygate/readyz`);
      expect(ready.statusCode).toBe(200);
      expect(await ready.body.json()).toMatchObject({ status: 'ready' });
      const anon = await request(`${gwUrl}/api/2.0/serving-endpoints`);
      expect(anon.statusCode).toBe(401);
      await anon.body.text();
      // The simulator itself wants a credential the user never sees.
      const direct = await request(`${simUrl}/api/2.0/serving-endpoints`);
      expect(direct.statusCode).toBe(401);
      await direct.body.text();
      expect(await p.stop()).toBe(0);
    } finally {
      await p.stop('SIGKILL');
    }
  });
});
