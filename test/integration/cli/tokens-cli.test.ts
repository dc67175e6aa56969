/**
 * The people's CLI as a person uses it: the real `bin/keygate.js` against a gateway in front of
 * the workspace simulator, approved in Chromium with a virtual authenticator. `login --device`,
 * `whoami`, `token` (a plain bearer token that reaches the workspace) and `token --dpop` (a
 * bound token that is refused as a bearer), `proxy` (unmodified requests, any Authorization,
 * signed on the way), a refresh that rotates the refresh token, `logout` (the refresh token is
 * dead at the gateway, the CLI is logged out), the browser login with its loopback redirect, and
 * a refresh family ended at the gateway; `admin … --gateway` through the admin API as the person.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WorkspaceClient } from '@databricks/sdk-experimental';
import { calculateJwkThumbprint, decodeJwt, importJWK, type JWK } from 'jose';
import * as oidc from 'openid-client';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { demoSimOptions, type Simulator, startSimulator } from '../../../sim/index.js';
import { addVirtualAuthenticator, chromiumAvailable, launchChromium } from '../../helpers/chromium.js';
import { type RunningCli, runCli, startCli } from '../../helpers/cli.js';
import { simUpstream, startGateway, type TestGateway } from '../../helpers/index.js';

const hasBrowser = chromiumAvailable();
const EMAIL = 'cli-person@example.com';

let browser: Browser;
let context: BrowserContext;
let page: Page;
let sim: Simulator;
let g: TestGateway;
let gateway: string;
let userId: string;
const home = mkdtempSync(join(tmpdir(), 'kg-cli-home-'));
const env = { KEYGATE_HOME: home };
const running: RunningCli[] = [];

interface StoredCredentials {
  gateway: string;
  dpopKey: JWK;
  accessToken: string;
  accessTokenExpiresAt: number;
  refreshToken: string;
}

function credentialsFile(): string {
  const port = new URL(gateway).port;
  return join(home, 'credentials', `http_localhost_${port}.json`);
}

function stored(): StoredCredentials {
  return JSON.parse(readFileSync(credentialsFile(), 'utf8')) as StoredCredentials;
}

function cli(args: string[]) {
  return runCli(args, env);
}

/** A request straight to the gateway (not through the proxy); how many requests the simulator saw meanwhile. */
async function direct(path: string, headers: Record<string, string>) {
  const before = sim.requests.length;
  const res = await request(`${g.url}${path}`, { headers });
  const body = await res.body.text();
  return { status: res.statusCode, body, reached: sim.requests.length - before };
}

/** The CLI's client at the gateway, as a second client would see it (openid-client). */
function cliClient(): Promise<oidc.Configuration> {
  return oidc.discovery(new URL(gateway), 'keygate-cli', undefined, oidc.None(), {
    execute: [oidc.allowInsecureRequests],
  });
}

/** Whether the gateway still considers a refresh token live (RFC 7662; a public client may ask about its own). */
async function active(refreshToken: string): Promise<boolean> {
  const r = await oidc.tokenIntrospection(await cliClient(), refreshToken, { token_type_hint: 'refresh_token' });
  return r.active;
}

/** The Keygate login page in Chromium: a discoverable passkey login (the virtual authenticator answers). */
async function signInIfAsked(): Promise<void> {
  if (new URL(page.url()).pathname === '/.keygate/login') await page.click('#signin');
}

beforeAll(async () => {
  if (!hasBrowser) return;
  // Stream chunks spaced out, so that buffering anywhere on the way would show.
  sim = await startSimulator({ ...demoSimOptions(), streamChunkDelayMs: 150 });
  // WebAuthn needs a domain RP ID: the browser and the CLI use http://localhost:PORT.
  g = await startGateway({ upstreams: simUpstream(sim.url) }, { identifiers: [] });
  gateway = g.gw.publicOrigin;
  browser = await launchChromium();
  context = await browser.newContext();
  page = await context.newPage();
  await addVirtualAuthenticator(page, 'internal');
  // Enrollment: the invitation link, a passkey registered in the virtual authenticator.
  const link = await g.gw.auth.enrollment.invite(gateway, { email: EMAIL, roles: ['ml-engineer'], createdBy: 'test' });
  userId = link.user.id;
  await page.goto(link.url);
  await page.fill('#key-name', 'CLI test key');
  await page.click('#register');
  await page
    .locator('#status')
    .filter({ hasText: /registered/i })
    .waitFor({ timeout: 15_000 });
  // A fresh browser state for the device approval: the person signs in on the device page.
  await context.clearCookies();
}, 90_000);

afterAll(async () => {
  for (const p of running) await p.stop('SIGKILL');
  await context?.close();
  await browser?.close();
  await g?.close();
  await sim?.close();
});

describe.skipIf(!hasBrowser)('keygate login, token, whoami, proxy, logout', () => {
  it('login --device: the printed code is approved in the browser after a passkey login', async () => {
    const p = startCli(['login', '--device', '--gateway', gateway], env);
    running.push(p);
    const [, uri, code] = await p.waitFor(/Open (\S+) and enter the code: (\S+)/);
    expect(uri).toBe(`${gateway}/.keygate/oauth/device`);
    // The complete URI is printed on the next line: wait for it rather than race the output.
    const [, complete] = await p.waitFor(/Or open (\S+)/);
    expect(complete).toBe(`${gateway}/.keygate/oauth/device?user_code=${code}`);

    await page.goto(uri as string);
    await page.fill('input[name="user_code"]', code as string);
    await page.click('button[form="op.deviceInputForm"]');
    expect(await page.textContent('#user-code')).toBe(code);
    await page.click('#confirm');
    await page.waitForURL((u) => u.pathname === '/.keygate/login', { timeout: 15_000 });
    await page.click('#signin');
    await page.waitForSelector('#done', { timeout: 15_000 }).catch((e: unknown) => {
      throw new Error(`the device approval did not finish after one passkey login; the browser is at ${page.url()}`, {
        cause: e,
      });
    });

    expect(await p.exited).toBe(0);
    expect(p.output()).toContain(`Logged in to ${gateway} as ${EMAIL}`);
  }, 60_000);

  it('keeps the credentials in a 0600 file in a 0700 directory, with the DPoP key the token is bound to', async () => {
    expect(statSync(join(home, 'credentials')).mode & 0o777).toBe(0o700);
    expect(statSync(credentialsFile()).mode & 0o777).toBe(0o600);
    const c = stored();
    expect(c.gateway).toBe(gateway);
    expect(c.dpopKey).toMatchObject({ kty: 'EC', crv: 'P-256' });
    expect(typeof c.dpopKey.d).toBe('string');
    const { d: _private, ...publicJwk } = c.dpopKey;
    const claims = decodeJwt(c.accessToken) as { cnf?: { jkt?: string } };
    expect(claims.cnf?.jkt).toBe(await calculateJwkThumbprint(publicJwk));
    // No temporary file is left behind by the atomic writes.
    expect(readdirSync(join(home, 'credentials')).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });

  it('whoami (gateway remembered from the login) names the person, roles, gateway and times', async () => {
    const r = await cli(['whoami']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`^email +${EMAIL}$`, 'm'));
    expect(r.stdout).toMatch(new RegExp(`^user id +${userId}$`, 'm'));
    expect(r.stdout).toMatch(/^roles +ml-engineer$/m);
    expect(r.stdout).toMatch(new RegExp(`^gateway +${gateway}$`, 'm'));
    expect(r.stdout).toMatch(/^token expires +\d{4}-\d\d-\d\dT.+Z \(in \d+ (s|min)\)$/m);
    expect(r.stdout).toMatch(/^auth time +\d{4}-\d\d-\d\dT.+Z$/m);
  });

  it('token: a plain bearer token that reaches the workspace through the gateway', async () => {
    const r = await cli(['token', '--gateway', gateway]);
    expect(r.code, r.stderr).toBe(0);
    const tok = r.stdout.trim();
    const claims = decodeJwt(tok) as { cnf?: unknown; kg_gty?: string; email?: string };
    expect(claims.cnf).toBeUndefined();
    expect(claims).toMatchObject({ kg_gty: 'token-exchange', email: EMAIL });
    const a = await direct('/api/2.0/serving-endpoints', { authorization: `Bearer ${tok}` });
    expect(a.status, a.body).toBe(200);
    expect(a.reached).toBe(1);
    expect((JSON.parse(a.body) as { endpoints: { name: string }[] }).endpoints.map((e) => e.name)).toContain('iris');
  });

  it('token --dpop: the bound token, refused when presented as a plain bearer token', async () => {
    const r = await cli(['token', '--dpop']);
    expect(r.code, r.stderr).toBe(0);
    const tok = r.stdout.trim();
    expect(tok).toBe(stored().accessToken);
    const a = await direct('/api/2.0/serving-endpoints', { authorization: `Bearer ${tok}` });
    expect(a.status).toBe(401);
    expect(a.body).toContain('DPoP-bound token presented as a bearer token');
    expect(a.reached).toBe(0);
  });

  it('admin --gateway: goes through the admin API as the person; policy decides, changes are audited as theirs', async () => {
    // An ml-engineer: the admin API refuses, and the CLI says why in one line.
    const denied = await cli(['admin', 'users', 'list', '--gateway', gateway]);
    expect(denied.code).toBe(1);
    expect(denied.stderr).toMatch(/^keygate: PERMISSION_DENIED: This needs admin:read on Keygate::users/);
    // Made an admin by a binding (the login a minute ago is fresh enough for changes).
    await g.gw.store.insertRoleBinding({
      id: 'cli-admin',
      subjectType: 'user',
      subject: EMAIL,
      role: 'admin',
      createdAt: Date.now(),
      createdBy: 'test',
    });
    await g.gw.reloadBindings();
    const list = await cli(['admin', 'users', 'list']);
    expect(list.code, list.stderr).toBe(0);
    expect(list.stdout).toMatch(new RegExp(`^${EMAIL}\t${userId}\tml-engineer\t-\tactive$`, 'm'));

    const made = await cli(['admin', 'groups', 'create', 'ml-platform', '-d', 'serving fleet']);
    expect(made.code, made.stderr).toBe(0);
    const groupId = made.stdout.trim();
    const add = await cli(['admin', 'groups', 'add', 'ml-platform', EMAIL]);
    expect(add.code, add.stderr).toBe(0);
    const shown = await cli(['admin', 'users', 'show', EMAIL]);
    expect(shown.stdout).toMatch(/^groups +ml-platform$/m);
    expect(shown.stdout).toMatch(/^key +\S+ +CLI test key \(/m);
    const groups = await cli(['admin', 'groups', 'list']);
    expect(groups.stdout).toContain(`ml-platform\t${groupId}\t1 members\t-`);

    const sp = await cli(['admin', 'sp', 'create', 'cli-made', '-r', 'ml-reader', '--gateway', gateway]);
    expect(sp.code, sp.stderr).toBe(0);
    expect(sp.stdout.trim()).toMatch(/^[0-9a-f-]{36}:\S{20,}$/);
    expect(sp.stderr).toContain('shown once');

    await g.gw.audit.flushed();
    const changes = (await g.gw.audit.query({ kind: 'admin.change', actor: userId }, { limit: 100 })).lines.map(
      (l) => JSON.parse(l) as { change: { op: string }; actor: { method: string; email: string } },
    );
    expect(changes.map((c) => c.change.op)).toEqual(['group.create', 'group.member_add', 'service_principal.create']);
    expect(changes[0]?.actor).toMatchObject({ email: EMAIL, method: 'dpop' });
    await g.gw.store.deleteRoleBinding('cli-admin');
    await g.gw.reloadBindings();
  });

  it('agent grant, list, revoke: a delegation made through the gateway as the person', async () => {
    await g.gw.oauth.sps.create({ name: 'cli-agent', roles: [], createdBy: 'test' });
    const made = await cli([
      'agent',
      'grant',
      '--agent',
      'cli-agent',
      '--actions',
      'serving:invoke, serving:read',
      '--ttl',
      '2h',
    ]);
    expect(made.code, made.stderr).toBe(0);
    const id = made.stdout.trim();
    expect(id).toMatch(/^dlg_[A-Za-z0-9_-]{24}$/);
    expect(made.stderr).toContain('Delegated serving:invoke, serving:read to cli-agent until ');
    const stored = await g.gw.store.getAgentGrant(id);
    expect(stored).toMatchObject({ userId, actions: ['serving:invoke', 'serving:read'], revokedAt: null });
    expect((stored?.expiresAt ?? 0) - (stored?.createdAt ?? 0)).toBe(2 * 3_600_000);
    expect((await cli(['agent', 'list'])).stdout).toMatch(
      new RegExp(`^${id}  cli-agent  serving:invoke,serving:read  until \\S+  live$`, 'm'),
    );
    // Keygate's administration cannot be delegated; an unknown agent is named.
    const admin = await cli(['agent', 'grant', '--agent', 'cli-agent', '--actions', 'admin:manage']);
    expect(admin.code).toBe(1);
    expect(admin.stderr).toMatch(/^keygate: BAD_REQUEST: "admin:manage" cannot be delegated/);
    const unknown = await cli(['agent', 'grant', '--agent', 'nobody', '--actions', 'serving:read']);
    expect(unknown.stderr).toMatch(/^keygate: BAD_REQUEST: No service principal "nobody"/);

    const revoked = await cli(['agent', 'revoke', id]);
    expect(revoked.code, revoked.stderr).toBe(0);
    expect((await g.gw.store.getAgentGrant(id))?.revokedAt).not.toBeNull();
    expect((await cli(['agent', 'list'])).stdout).toMatch(new RegExp(`^${id} .* revoked$`, 'm'));
    expect((await cli(['agent', 'revoke', id])).stderr).toMatch(/^keygate: NOT_FOUND:/);
  });

  it('proxy: forwards unmodified requests with the person’s token, replacing any Authorization', async () => {
    const p = startCli(['proxy', '--port', '0'], env);
    running.push(p);
    const [, local] = await p.waitFor(new RegExp(`Forwarding (http://127\\.0\\.0\\.1:\\d+) → ${gateway} as ${EMAIL}`));
    const bogus = { authorization: 'Bearer dapi-not-a-real-token' };

    // The same bogus credential straight to the gateway is refused…
    expect((await direct('/api/2.0/serving-endpoints', bogus)).status).toBe(401);
    // …and through the proxy it is replaced, so the request reaches the workspace.
    const before = sim.requests.length;
    const res = await request(`${local}/api/2.0/serving-endpoints?page_size=5`, { headers: bogus });
    const body = await res.body.text();
    expect(res.statusCode, body).toBe(200);
    expect((JSON.parse(body) as { endpoints: { name: string }[] }).endpoints.map((e) => e.name)).toContain('iris');
    expect(sim.requests.length - before).toBe(1);
    expect(sim.requests.at(-1)?.path).toBe('/api/2.0/serving-endpoints');

    // A POST with a streamed body goes through too (the simulator answers the invocation).
    const inv = await request(`${local}/serving-endpoints/iris/invocations`, {
      method: 'POST',
      headers: { ...bogus, 'content-type': 'application/json' },
      body: JSON.stringify({
        dataframe_records: [{ sepal_length: 5.1, sepal_width: 3.5, petal_length: 1.4, petal_width: 0.2 }],
      }),
    });
    expect(inv.statusCode, await inv.body.text()).toBe(200);

    // The official Databricks SDK, unmodified: DATABRICKS_HOST is the proxy, any token will do.
    const w = new WorkspaceClient({
      host: local as string,
      token: 'dapi-whatever',
      authType: 'pat',
      env: {},
      retryTimeoutSeconds: 5,
    });
    const names: string[] = [];
    for await (const ep of w.servingEndpoints.list()) names.push(ep.name ?? '');
    expect(names).toEqual(['iris', 'chat-llm']);
    expect((await w.currentUser.me()).userName).toBeDefined();

    // A streamed answer (SSE) arrives chunk by chunk, not buffered until the end.
    const t0 = Date.now();
    const sse = await request(`${local}/serving-endpoints/chat-llm/invocations`, {
      method: 'POST',
      headers: { ...bogus, 'content-type': 'application/json' },
      body: JSON.stringify({ messages: [{ role: 'user', content: 'hello there' }], max_tokens: 6, stream: true }),
    });
    expect(sse.statusCode).toBe(200);
    expect(sse.headers['content-type']).toMatch(/^text\/event-stream/);
    const arrivals: number[] = [];
    let text = '';
    for await (const piece of sse.body) {
      arrivals.push(Date.now() - t0);
      text += piece.toString();
    }
    expect(text.trimEnd().endsWith('data: [DONE]')).toBe(true);
    expect(text.match(/^data: /gm)?.length ?? 0).toBeGreaterThanOrEqual(3);
    // The first chunk came well before the last (each is 150 ms after the previous one).
    expect((arrivals.at(-1) ?? 0) - (arrivals[0] ?? 0)).toBeGreaterThanOrEqual(250);

    // A web page in the user's browser cannot ride on the login, nor reach it by another name.
    const n = sim.requests.length;
    const crossSite = await request(`${local}/api/2.0/serving-endpoints`, {
      headers: { 'sec-fetch-site': 'cross-site', origin: 'https://evil.example' },
    });
    expect(crossSite.statusCode).toBe(403);
    await crossSite.body.dump();
    const rebound = await request(`${local}/api/2.0/serving-endpoints`, {
      headers: { host: 'attacker.example:80' },
    });
    expect(rebound.statusCode).toBe(403);
    await rebound.body.dump();
    expect(sim.requests.length).toBe(n);

    expect(await p.stop('SIGTERM')).toBe(0);
  }, 30_000);

  it('refreshes an access token about to expire, saving the rotated refresh token first', async () => {
    const before = stored();
    // Pretend the access token has 30 s left (under the 60 s margin).
    writeFileSync(credentialsFile(), JSON.stringify({ ...before, accessTokenExpiresAt: Date.now() + 30_000 }), {
      mode: 0o600,
    });
    const r = await cli(['token', '--dpop']);
    expect(r.code, r.stderr).toBe(0);
    const after = stored();
    expect(r.stdout.trim()).toBe(after.accessToken);
    expect(after.accessToken).not.toBe(before.accessToken);
    expect(after.refreshToken).not.toBe(before.refreshToken);
    expect(after.accessTokenExpiresAt).toBeGreaterThan(Date.now() + 5 * 60_000);
    expect(after.dpopKey).toEqual(before.dpopKey);
    // The grant's history: the device login, then this refresh.
    expect((decodeJwt(after.accessToken) as { kg_gty?: string }).kg_gty).toBe('device_code refresh_token');
    expect(statSync(credentialsFile()).mode & 0o777).toBe(0o600);
    // And the refreshed token still works for a plain bearer token.
    const t = await cli(['token']);
    expect((await direct('/api/2.0/serving-endpoints', { authorization: `Bearer ${t.stdout.trim()}` })).status).toBe(
      200,
    );
  });

  it('concurrent `keygate token` runs wait for the refresh lock, then share one refresh', async () => {
    const before = stored();
    writeFileSync(credentialsFile(), JSON.stringify({ ...before, accessTokenExpiresAt: Date.now() }), { mode: 0o600 });
    // Another live process (this one) is refreshing: the runs must wait for it, not present the
    // same refresh token again (a second presentation revokes the whole family).
    const lock = credentialsFile().replace(/\.json$/, '.lock');
    writeFileSync(lock, `${process.pid}\n`);
    const finished: number[] = [];
    const runs = Array.from({ length: 4 }, () =>
      cli(['token', '--dpop']).then((r) => {
        finished.push(Date.now());
        return r;
      }),
    );
    await new Promise((r) => setTimeout(r, 3_000));
    expect(finished).toEqual([]);
    const released = Date.now();
    rmSync(lock);
    const results = await Promise.all(runs);
    for (const r of results) expect(r.code, r.stderr).toBe(0);
    for (const t of finished) expect(t).toBeGreaterThanOrEqual(released);
    // One refresh: every run printed the same new token, and the family is alive.
    const after = stored();
    expect(new Set(results.map((r) => r.stdout.trim()))).toEqual(new Set([after.accessToken]));
    expect(after.accessToken).not.toBe(before.accessToken);
    expect(await active(after.refreshToken)).toBe(true);
  }, 30_000);

  it('logout revokes the refresh-token family at the gateway and deletes the credentials', async () => {
    const before = stored();
    expect(await active(before.refreshToken)).toBe(true);
    const r = await cli(['logout']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`Logged out of ${gateway}`);
    expect(() => statSync(credentialsFile())).toThrow(/ENOENT/);

    // The refresh token is dead at the gateway: inactive, and refused even with a proof of its key.
    expect(await active(before.refreshToken)).toBe(false);
    const config = await cliClient();
    const { d: _private, ...publicJwk } = before.dpopKey;
    const keyPair = {
      privateKey: (await importJWK(before.dpopKey, 'ES256')) as oidc.CryptoKey,
      publicKey: (await importJWK(publicJwk, 'ES256', { extractable: true })) as oidc.CryptoKey,
    };
    const refused = await oidc
      .refreshTokenGrant(config, before.refreshToken, undefined, { DPoP: oidc.getDPoPHandle(config, keyPair) })
      .then(
        () => 'accepted',
        (e: unknown) => (e as { error?: string }).error,
      );
    expect(refused).toBe('invalid_grant');

    const t = await cli(['token']);
    expect(t.code).toBe(1);
    expect(t.stdout).toBe('');
    expect(t.stderr.trim().split('\n').at(-1)).toBe(`keygate: not logged in: run keygate login (gateway ${gateway})`);
  });

  it('login in the browser: authorization code + PKCE, back through the loopback redirect', async () => {
    await context.clearCookies();
    const p = startCli(['login', '--no-browser', '--gateway', gateway], env);
    running.push(p);
    const [, url] = await p.waitFor(/^ {2}(http:\/\/localhost:\d+\/\.keygate\/oauth\/authorize\?\S+)$/m);
    const asked = new URL(url as string);
    expect(asked.searchParams.get('code_challenge_method')).toBe('S256');
    expect(asked.searchParams.get('redirect_uri')).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/callback$/);
    expect(asked.searchParams.get('dpop_jkt')).toMatch(/^[A-Za-z0-9_-]{43}$/);

    await page.goto(url as string);
    await page.waitForURL((u) => u.pathname === '/.keygate/login' || u.hostname === '127.0.0.1', { timeout: 15_000 });
    await signInIfAsked();
    await page
      .waitForURL((u) => u.hostname === '127.0.0.1' && u.pathname === '/callback', { timeout: 15_000 })
      .catch((e: unknown) => {
        throw new Error(`the browser login did not come back to the CLI; the browser is at ${page.url()}`, {
          cause: e,
        });
      });
    expect(await page.textContent('h1')).toBe('Signed in');

    expect(await p.exited).toBe(0);
    expect(p.output()).toContain(`Logged in to ${gateway} as ${EMAIL}`);
    const c = stored();
    expect((decodeJwt(c.accessToken) as { kg_gty?: string }).kg_gty).toBe('authorization_code');
    expect(asked.searchParams.get('dpop_jkt')).toBe(
      await calculateJwkThumbprint({ kty: 'EC', crv: 'P-256', x: c.dpopKey.x as string, y: c.dpopKey.y as string }),
    );
    const who = await cli(['whoami']);
    expect(who.stdout).toMatch(new RegExp(`^email +${EMAIL}$`, 'm'));
  }, 60_000);

  it('when the refresh family ends at the gateway, the next refresh says "not logged in" and drops the credentials', async () => {
    const c = stored();
    // Ended elsewhere (an administrator, another logout): revoked at the gateway.
    await oidc.tokenRevocation(await cliClient(), c.refreshToken, { token_type_hint: 'refresh_token' });
    writeFileSync(credentialsFile(), JSON.stringify({ ...c, accessTokenExpiresAt: Date.now() }), { mode: 0o600 });
    const t = await cli(['token']);
    expect(t.code).toBe(1);
    expect(t.stdout).toBe('');
    expect(t.stderr.trim().split('\n').at(-1)).toBe(`keygate: not logged in: run keygate login (gateway ${gateway})`);
    expect(() => statSync(credentialsFile())).toThrow(/ENOENT/);
  });
});
