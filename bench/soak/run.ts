/**
 * bench/soak: mixed traffic at a steady rate for a long time, with many idle keep-alive
 * connections held open, sampling the gateway every 10 s. A benchmark, run by hand:
 *
 *   npx tsx bench/soak/run.ts [--minutes 10] [--rate 200] [--idle 10000] [--people 4]
 *
 * The mix (open loop: requests leave on a timetable whatever the gateway does, and latency is
 * measured from the scheduled time):
 *   35 %  browser sessions reading (GET serving-endpoints, a passkey login's cookie)
 *   20 %  a service principal's bearer token (serving invocations)
 *   10 %  a DPoP-bound token (a fresh proof per request, openid-client)
 *   15 %  denied: a reader's job run (403) and no identity at all (401)
 *   15 %  streaming chat (server-sent events, read to the end)
 *    5 %  WebAuthn logins (options + verify with a software authenticator)
 * Every answer other than the intended one counts as an error. Each sample records throughput,
 * p50/p99/p99.9 latency, errors, the gateway process's RSS, V8 heap and open descriptors, and
 * how many idle connections are open; every 60 s the gateway runs a full garbage collection
 * first, so that sample's heap is the live heap (what a leak would grow). The simulator runs in
 * a process of its own, so the figures are the gateway's. The idle connections are opened evenly
 * over `--spread` seconds (clients do not all arrive in the same second); the gateway closes
 * each 30 s after its last response and the runner opens a new one for each that closes, so the
 * number held stays at `--idle`.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { availableParallelism, cpus } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import * as oidc from 'openid-client';
import { Pool } from 'undici';
import { BrowserClient } from '../../test/helpers/browser-client.js';
import { SoftAuthenticator } from '../../test/helpers/soft-authenticator.js';
import { percentile } from '../proxy/fixed-rate.js';

const HERE = fileURLToPath(new URL('.', import.meta.url));
const { values: args } = parseArgs({
  options: {
    minutes: { type: 'string', default: '10' },
    rate: { type: 'string', default: '200' },
    idle: { type: 'string', default: '10000' },
    people: { type: 'string', default: '4' },
    spread: { type: 'string', default: '30' },
  },
});
const durationMs = Number(args.minutes) * 60_000;
const rate = Number(args.rate);
const idleTarget = Number(args.idle);
const SAMPLE_MS = 10_000;

// ---- the servers ------------------------------------------------------------------------------
const child: ChildProcess = fork(join(HERE, 'servers.ts'), [], {
  execArgv: ['--import', 'tsx', '--expose-gc'],
  env: { ...process.env, SOAK_PEOPLE: args.people },
  stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
});
const stop = () => {
  if (child.exitCode === null && child.pid !== undefined) process.kill(child.pid, 'SIGTERM');
};
process.once('exit', stop);
process.once('SIGINT', () => process.exit(130));
const [hello] = (await once(child, 'message')) as [
  {
    url: string;
    publicOrigin: string;
    invites: { email: string; token: string }[];
    sp: { id: string; secret: string };
  },
];
child.send({ type: 'pid' });
const [{ pid }] = (await once(child, 'message')) as [{ pid: number }];
const { url, publicOrigin } = hello;
type Mem = NodeJS.MemoryUsage;
function gatewayMem(gc: boolean): Promise<Mem> {
  return new Promise((resolve) => {
    const on = (m: { type?: string; mem?: Mem }) => {
      if (m.type !== 'mem') return;
      child.off('message', on);
      resolve(m.mem as Mem);
    };
    child.on('message', on);
    child.send({ type: 'mem', gc });
  });
}
const port = Number(new URL(url).port);

// ---- identities: people (passkeys, sessions), a bearer token, a DPoP-bound token -------------
interface Person {
  email: string;
  browser: BrowserClient;
  authenticator: SoftAuthenticator;
  engineer: boolean;
  /**
   * One login at a time per person: an authenticator's signature counter only grows, and two
   * assertions verified out of order look like a cloned key — Keygate then flags the key and
   * ends its sessions (as it should), which a benchmark must not provoke by accident.
   */
  logins: Promise<unknown>;
}
const people: Person[] = [];
for (const [i, inv] of hello.invites.entries()) {
  const browser = new BrowserClient(url, publicOrigin);
  const authenticator = new SoftAuthenticator(publicOrigin);
  const options = await browser.post<Parameters<SoftAuthenticator['create']>[0]>(
    '/.keygate/api/webauthn/registration/options',
    { enrollmentToken: inv.token },
  );
  const done = await browser.post('/.keygate/api/webauthn/registration/verify', {
    response: authenticator.create(options.body),
    enrollmentToken: inv.token,
    name: 'soak key',
  });
  if (done.status !== 200) throw new Error(`enrollment failed: ${done.status}`);
  people.push({ email: inv.email, browser, authenticator, engineer: i % 2 === 0, logins: Promise.resolve() });
}
const engineers = people.filter((p) => p.engineer);
const readers = people.filter((p) => !p.engineer);
const oidcConfig = await oidc.discovery(
  new URL(publicOrigin),
  hello.sp.id,
  undefined,
  oidc.ClientSecretBasic(hello.sp.secret),
  {
    execute: [oidc.allowInsecureRequests],
    [oidc.customFetch]: (u: string, init: oidc.CustomFetchOptions) =>
      fetch(u.replace(publicOrigin, url), init as RequestInit),
  },
);
const dpopKey = await oidc.randomDPoPKeyPair('ES256');
const dpop = oidc.getDPoPHandle(oidcConfig, dpopKey);
// Machine tokens live 15 minutes: like any client, the runner gets new ones well before.
let bearer = '';
let bound = '';
async function machineTokens(): Promise<void> {
  bearer = (await oidc.clientCredentialsGrant(oidcConfig, {})).access_token;
  bound = (await oidc.clientCredentialsGrant(oidcConfig, {}, { DPoP: dpop })).access_token;
}
await machineTokens();
const renewTokens = setInterval(
  () => void machineTokens().catch((e: unknown) => console.error('token renewal failed', e)),
  5 * 60_000,
);

// ---- idle keep-alive connections ----------------------------------------------------------------
let idleOpen = 0;
let idleReopened = 0;
let stopping = false;
function openIdle(): void {
  const s: Socket = connect(port, '127.0.0.1');
  s.setNoDelay(true);
  let counted = false;
  s.on('connect', () => {
    // One complete request, then silence: an idle keep-alive connection.
    s.write('GET /.keygate/healthz HTTP/1.1\r\nHost: localhost\r\n\r\n');
    idleOpen++;
    counted = true;
  });
  s.on('data', () => undefined);
  s.on('error', () => undefined);
  s.on('close', () => {
    if (counted) idleOpen--;
    if (!stopping) {
      idleReopened++;
      setTimeout(openIdle, 10);
    }
  });
}
// Opened evenly over --spread seconds, in the background while the mix starts.
const spreadMs = Number(args.spread) * 1000;
const idleStarted = performance.now();
let idleOpened = 0;
const opener = setInterval(() => {
  const due = Math.min(idleTarget, Math.ceil(((performance.now() - idleStarted) / spreadMs) * idleTarget));
  for (; idleOpened < due; idleOpened++) openIdle();
  if (idleOpened >= idleTarget) clearInterval(opener);
}, 20);

// ---- the mix ----------------------------------------------------------------------------------
const pool = new Pool(url, { connections: 64 });
type Kind = 'session' | 'bearer' | 'dpop' | 'denied' | 'anonymous' | 'chat' | 'login';
const MIX: [Kind, number][] = [
  ['session', 35],
  ['bearer', 20],
  ['dpop', 10],
  ['denied', 10],
  ['anonymous', 5],
  ['chat', 15],
  ['login', 5],
];
const wheel: Kind[] = MIX.flatMap(([k, n]) => Array.from({ length: n }, () => k));
const IRIS = JSON.stringify({
  dataframe_records: [{ sepal_length: 5.1, sepal_width: 3.5, petal_length: 1.4, petal_width: 0.2 }],
});
const CHAT = JSON.stringify({ messages: [{ role: 'user', content: 'Hello there' }], stream: true, max_tokens: 32 });

async function status(method: 'GET' | 'POST', path: string, headers: Record<string, string>, body?: string) {
  const r = await pool.request({ method, path, headers, ...(body === undefined ? {} : { body }) });
  await r.body.dump();
  return r.statusCode;
}

/** One request of a kind; true when it got the intended answer. */
async function run(kind: Kind, n: number): Promise<boolean> {
  switch (kind) {
    case 'session': {
      const p = people[n % people.length] as Person;
      return (await status('GET', '/api/2.0/serving-endpoints', { cookie: p.browser.cookieHeader() })) === 200;
    }
    case 'bearer':
      return (
        (await status(
          'POST',
          '/serving-endpoints/iris/invocations',
          { authorization: `Bearer ${bearer}`, 'content-type': 'application/json' },
          IRIS,
        )) === 200
      );
    case 'dpop': {
      const r = await oidc.fetchProtectedResource(
        oidcConfig,
        bound,
        new URL(`${url}/api/2.0/serving-endpoints`),
        'GET',
        undefined,
        undefined,
        { DPoP: dpop },
      );
      await r.arrayBuffer();
      return r.status === 200;
    }
    case 'denied': {
      const p = readers[n % readers.length] as Person;
      return (
        (await status(
          'POST',
          '/api/2.1/jobs/run-now',
          { cookie: p.browser.cookieHeader(), 'content-type': 'application/json', origin: publicOrigin },
          '{"job_id":1}',
        )) === 403
      );
    }
    case 'anonymous':
      return (await status('GET', '/api/2.0/serving-endpoints', { accept: 'application/json' })) === 401;
    case 'chat': {
      const p = engineers[n % engineers.length] as Person;
      const r = await pool.request({
        method: 'POST',
        path: '/serving-endpoints/chat-llm/invocations',
        headers: { cookie: p.browser.cookieHeader(), 'content-type': 'application/json' },
        body: CHAT,
      });
      const text = await r.body.text();
      return r.statusCode === 200 && text.includes('data: [DONE]');
    }
    case 'login': {
      const p = people[n % people.length] as Person;
      const login = async () => {
        const b = new BrowserClient(url, publicOrigin);
        const o = await b.post<Parameters<SoftAuthenticator['get']>[0]>(
          '/.keygate/api/webauthn/authentication/options',
          {},
        );
        const v = await b.post('/.keygate/api/webauthn/authentication/verify', {
          response: p.authenticator.get(o.body),
        });
        return v.status === 200;
      };
      const done = p.logins.then(login, login);
      p.logins = done.catch(() => undefined);
      return done;
    }
  }
}

// ---- sampling ---------------------------------------------------------------------------------
interface Sample {
  t: number;
  requests: number;
  rps: number;
  errors: number;
  p50: number;
  p99: number;
  p999: number;
  rssMiB: number;
  /** V8 heap in use; after a full collection when `liveHeap` is set. */
  heapMiB: number;
  liveHeap: boolean;
  /** What V8 holds for its heap (used and free): part of RSS. */
  heapTotalMiB: number;
  externalMiB: number;
  fds: number;
  idleOpen: number;
}
const samples: Sample[] = [];
let window: number[] = [];
const all: number[] = [];
const byKind = new Map<Kind, number[]>();
let errors = 0;
const errorsByKind = new Map<Kind, number>();
let windowErrors = 0;

function gatewayRssMiB(): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Math.round(Number(m?.[1] ?? 0) / 102.4) / 10;
}
const gatewayFds = () => readdirSync(`/proc/${pid}/fd`).length;

const MiB = (n: number) => Math.round(n / 104857.6) / 10;
const started = performance.now();
let lastSample = started;
let sampleNo = 0;
const sampler = setInterval(async () => {
  const now = performance.now();
  const liveHeap = ++sampleNo % 6 === 0;
  const mem = await gatewayMem(liveHeap);
  const sorted = Float64Array.from(window).sort();
  const s: Sample = {
    t: Math.round((now - started) / 1000),
    requests: window.length,
    rps: Math.round((window.length * 1000) / (now - lastSample)),
    errors: windowErrors,
    p50: Math.round(percentile(sorted, 50) * 10) / 10,
    p99: Math.round(percentile(sorted, 99) * 10) / 10,
    p999: Math.round(percentile(sorted, 99.9) * 10) / 10,
    rssMiB: gatewayRssMiB(),
    heapMiB: MiB(mem.heapUsed),
    liveHeap,
    heapTotalMiB: MiB(mem.heapTotal),
    externalMiB: MiB(mem.external),
    fds: gatewayFds(),
    idleOpen,
  };
  samples.push(s);
  console.error(JSON.stringify(s));
  window = [];
  windowErrors = 0;
  lastSample = now;
}, SAMPLE_MS);

// ---- the open loop ----------------------------------------------------------------------------
const interval = 1000 / rate;
const total = Math.floor((durationMs / 1000) * rate);
let inflight = 0;
await new Promise<void>((resolve) => {
  let i = 0;
  const tick = () => {
    const due = Math.min(total, Math.floor((performance.now() - started) / interval) + 1);
    for (; i < due; i++) {
      const scheduled = started + i * interval;
      const kind = wheel[(i * 37) % wheel.length] as Kind;
      inflight++;
      run(kind, i).then(
        (ok) => settle(ok, kind, scheduled),
        () => settle(false, kind, scheduled),
      );
    }
    if (i >= total) {
      const wait = () => (inflight === 0 ? resolve() : setTimeout(wait, 50));
      wait();
      return;
    }
    setTimeout(tick, 2);
  };
  const settle = (ok: boolean, kind: Kind, scheduled: number) => {
    inflight--;
    const ms = performance.now() - scheduled;
    window.push(ms);
    all.push(ms);
    const k = byKind.get(kind) ?? [];
    if (k.length === 0) byKind.set(kind, k);
    k.push(ms);
    if (!ok) {
      errors++;
      windowErrors++;
      errorsByKind.set(kind, (errorsByKind.get(kind) ?? 0) + 1);
    }
  };
  tick();
});
clearInterval(sampler);
clearInterval(renewTokens);
stopping = true;

// ---- the report -------------------------------------------------------------------------------
const sortedAll = Float64Array.from(all).sort();
const afterWarmup = samples.filter((s) => s.t >= 60);
const range = (xs: number[]) => `${Math.min(...xs)}–${Math.max(...xs)}`;
const summary = {
  machine: `${availableParallelism()} cores (${cpus()[0]?.model.trim() ?? 'unknown'})`,
  minutes: Number(args.minutes),
  rate,
  idleTarget,
  requests: all.length,
  errors,
  errorsByKind: Object.fromEntries(errorsByKind),
  p50: percentile(sortedAll, 50),
  p99: percentile(sortedAll, 99),
  p999: percentile(sortedAll, 99.9),
  idleReopened,
  latencyByKind: Object.fromEntries(
    [...byKind].map(([k, xs]) => {
      const sorted = Float64Array.from(xs).sort();
      return [
        k,
        { n: xs.length, p50: percentile(sorted, 50), p99: percentile(sorted, 99), p999: percentile(sorted, 99.9) },
      ];
    }),
  ),
  rssAfterWarmupMiB: afterWarmup.length ? range(afterWarmup.map((s) => s.rssMiB)) : 'n/a',
  liveHeapAfterWarmupMiB: afterWarmup.some((s) => s.liveHeap)
    ? range(afterWarmup.filter((s) => s.liveHeap).map((s) => s.heapMiB))
    : 'n/a',
  fdsAfterWarmup: afterWarmup.length ? range(afterWarmup.map((s) => s.fds)) : 'n/a',
  samples,
};
mkdirSync(join(HERE, '../results'), { recursive: true });
const out = join(HERE, `../results/soak-${new Date().toISOString().replaceAll(':', '-')}.json`);
writeFileSync(out, JSON.stringify(summary, null, 2));
console.log(
  `bench/soak — ${summary.machine}, ${args.minutes} min at ${rate} req/s, ${idleTarget} idle connections held`,
);
console.log(
  `requests ${summary.requests}, errors ${errors} ${JSON.stringify(summary.errorsByKind)}, p50 ${summary.p50.toFixed(1)} ms, p99 ${summary.p99.toFixed(1)} ms, p99.9 ${summary.p999.toFixed(1)} ms`,
);
console.log(
  `after the first minute: RSS ${summary.rssAfterWarmupMiB} MiB, live heap (after a full GC) ${summary.liveHeapAfterWarmupMiB} MiB, descriptors ${summary.fdsAfterWarmup}; idle connections re-opened after the gateway closed them: ${idleReopened}`,
);
console.log(
  '\n| t (s) | req/s | errors | p50 ms | p99 ms | p99.9 ms | RSS MiB | heap MiB | heap total MiB | external MiB | fds | idle open |\n|---|---|---|---|---|---|---|---|---|---|---|---|',
);
for (const s of samples)
  console.log(
    `| ${s.t} | ${s.rps} | ${s.errors} | ${s.p50} | ${s.p99} | ${s.p999} | ${s.rssMiB} | ${s.heapMiB}${s.liveHeap ? ' (live)' : ''} | ${s.heapTotalMiB} | ${s.externalMiB} | ${s.fds} | ${s.idleOpen} |`,
  );
console.log(`\n(raw: ${out})`);
await pool.close();
stop();
process.exit(0);
