/**
 * bench/webauthn (over sockets): the server-side cost of a whole WebAuthn login through Keygate — options and
 * verify of a valid ES256 assertion over real HTTP, with the challenge, the counter
 * compare-and-swap, the auth event and the new session written to SQLite — in logins per second
 * of one core, against the bare @simplewebauthn/server verify call measured in the same server
 * process. The gateway runs in its own process (bench/webauthn/server.ts, pinned to core 0
 * when it can be), so its CPU time excludes this runner, which plays the browser and the
 * authenticator (signing, HTTP client) on core 1.
 *
 *   npx tsx bench/webauthn/http.ts           # 5 rounds × 300 logins
 *   ROUNDS=3 LOGINS=100 npx tsx bench/webauthn/http.ts
 *   PROF=dir npx tsx bench/webauthn/http.ts  # and a CPU profile of the gateway process in dir
 */
import { execFileSync, fork } from 'node:child_process';
import { cpus } from 'node:os';
import type {
  PublicKeyCredentialCreationOptionsJSON,
  PublicKeyCredentialRequestOptionsJSON,
} from '@simplewebauthn/server';
import { BrowserClient } from '../../test/helpers/browser-client.js';
import { SoftAuthenticator } from '../../test/helpers/soft-authenticator.js';

const ROUNDS = Number(process.env.ROUNDS ?? 5);
const LOGINS = Number(process.env.LOGINS ?? 300);

const pinned = (() => {
  if (cpus().length < 2) return false;
  try {
    execFileSync('taskset', ['-V'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();
if (pinned) execFileSync('taskset', ['-apc', '1', String(process.pid)], { stdio: 'ignore' });

const server = fork(new URL('./server.ts', import.meta.url).pathname, [], {
  execArgv: ['--import', 'tsx', ...(process.env.PROF ? ['--cpu-prof', '--cpu-prof-dir=' + process.env.PROF] : [])],
  stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
});
if (pinned) execFileSync('taskset', ['-apc', '0', String(server.pid)], { stdio: 'ignore' });

function ask<T>(message: unknown): Promise<T> {
  return new Promise((resolve) => {
    server.once('message', (m) => resolve(m as T));
    if (message !== undefined) server.send(message as object);
  });
}

const { url, origin, token } = await ask<{ url: string; origin: string; token: string }>(undefined);
const browser = new BrowserClient(url, origin);
const authenticator = new SoftAuthenticator(origin);

// One enrolled person with a software security key, through the real API.
const regOpts = await browser.post<PublicKeyCredentialCreationOptionsJSON>('/.keygate/api/webauthn/registration/options', {
  enrollmentToken: token,
});
const reg = await browser.post('/.keygate/api/webauthn/registration/verify', {
  response: authenticator.create(regOpts.body),
  enrollmentToken: token,
});
if (reg.status !== 200) throw new Error(`enrollment failed: ${JSON.stringify(reg.body)}`);
const credentialId = [...authenticator.keys.keys()][0] as string;

async function login(): Promise<void> {
  const o = await browser.post<PublicKeyCredentialRequestOptionsJSON>('/.keygate/api/webauthn/authentication/options', {});
  if (o.status !== 200) throw new Error(`options failed: ${JSON.stringify(o.body)}`);
  const v = await browser.post('/.keygate/api/webauthn/authentication/verify', { response: authenticator.get(o.body) });
  if (v.status !== 200) throw new Error(`login failed: ${JSON.stringify(v.body)}`);
}

// The baseline's input: an equivalent assertion over a fixed challenge, signed once.
const fixedChallenge = Buffer.alloc(32, 1).toString('base64url');
const fixedResponse = authenticator.get({ challenge: fixedChallenge, rpId: 'localhost', allowCredentials: [] });
const bare = (n: number) =>
  ask<{ cpu: number; wallMs: number }>({ op: 'bare', response: fixedResponse, challenge: fixedChallenge, credentialId, n });
const serverCpu = async () => (await ask<{ cpu: number }>({ op: 'cpu' })).cpu;

// Warm-up: JIT, statement caches, WebCrypto.
for (let i = 0; i < 50; i++) await login();
await bare(50);

const bareCpu: number[] = [];
const loginCpu: number[] = [];
const loginWall: number[] = [];
for (let r = 0; r < ROUNDS; r++) {
  const b = await bare(LOGINS);
  bareCpu.push(b.cpu / LOGINS);
  const c0 = await serverCpu();
  const t0 = performance.now();
  for (let i = 0; i < LOGINS; i++) await login();
  const wall = performance.now() - t0;
  loginCpu.push(((await serverCpu()) - c0) / LOGINS);
  loginWall.push(wall / LOGINS);
}
server.disconnect();

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
const ratios = bareCpu.map((b, i) => (loginCpu[i] as number) / b);
const perSec = (us: number) => (1e6 / us).toFixed(0);
console.log(`machine: ${cpus()[0]?.model ?? 'unknown'} (${cpus().length} cores), node ${process.version}`);
console.log(`pinning: ${pinned ? 'gateway on core 0, this runner on core 1' : 'not pinned'}`);
console.log(`rounds: ${ROUNDS} × ${LOGINS}, interleaved; server CPU (all threads) per operation, medians`);
console.log(`bare @simplewebauthn/server verify : ${(median(bareCpu) / 1000).toFixed(3)} ms → ${perSec(median(bareCpu))} verifies/s per core`);
console.log(`Keygate login (options + verify)   : ${(median(loginCpu) / 1000).toFixed(3)} ms → ${perSec(median(loginCpu))} logins/s per core`);
console.log(`per-round ratios                   : ${ratios.map((x) => x.toFixed(2)).join(' ')}`);
const ratio = median(ratios);
console.log(`ratio (Keygate / bare), median     : ${ratio.toFixed(2)}× (target ≤ 1.5×) ${ratio <= 1.5 ? 'MET' : 'NOT MET'}`);
console.log(`end-to-end wall per login (client signing and HTTP included): ${median(loginWall).toFixed(3)} ms`);
