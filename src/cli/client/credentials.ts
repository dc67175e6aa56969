/**
 * The CLI's credentials, one JSON file per gateway origin:
 *
 *   $KEYGATE_HOME/                      (default ~/.keygate; 0700)
 *     credentials/                      (0700)
 *       https_keygate.example.com_443.json   (0600) DPoP private key, access and refresh token
 *       https_keygate.example.com_443.lock   held while a refresh is in flight
 *       last-gateway                    the gateway of the last login
 *
 * Every write checks (and repairs) the modes and is atomic — a temporary file in the same
 * directory, fsync, rename — so that a crash leaves either the old file or the new one, never
 * a torn one: a rotated refresh token is the only one that still works.
 */
import {
  chmodSync,
  closeSync,
  fsyncSync,
  lstatSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  type Stats,
  statSync,
  writeSync,
} from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import { randomId } from '../../crypto/random.js';
import type { Clock } from '../../lib/clock.js';
import { ClientError } from './errors.js';

const DIR_MODE = 0o700;
const FILE_MODE = 0o600;
/** A refresh lock older than this is left over from a crashed process. */
const LOCK_STALE_MS = 30_000;
const LOCK_WAIT_MS = 35_000;

const privateEcJwk = z.object({
  kty: z.literal('EC'),
  crv: z.literal('P-256'),
  x: z.string().min(1),
  y: z.string().min(1),
  d: z.string().min(1),
});

const credentialsSchema = z.object({
  version: z.literal(1),
  gateway: z.string().min(1),
  /** The DPoP private key (ES256). It never leaves this file except as signatures. */
  dpopKey: privateEcJwk,
  accessToken: z.string().min(1),
  /** Epoch ms. */
  accessTokenExpiresAt: z.number(),
  refreshToken: z.string().min(1),
  scope: z.string().optional(),
  /** Epoch ms of the last write. */
  savedAt: z.number(),
});

export type Credentials = z.infer<typeof credentialsSchema>;
export type PrivateEcJwk = z.infer<typeof privateEcJwk>;

const checksModes = process.platform !== 'win32';

export function keygateHome(env: NodeJS.ProcessEnv): string {
  const h = env.KEYGATE_HOME;
  return h !== undefined && h !== '' ? h : join(homedir(), '.keygate');
}

/** A file name for an origin: `https://kg.example.com` → `https_kg.example.com_443`. */
export function slugFor(origin: string): string {
  const u = new URL(origin);
  const port = u.port !== '' ? u.port : u.protocol === 'https:' ? '443' : '80';
  return `${u.protocol.slice(0, -1)}_${u.hostname.replace(/[^a-z0-9.-]/gi, '_')}_${port}`;
}

export class CredentialStore {
  readonly dir: string;

  constructor(
    readonly home: string,
    private readonly clock: Clock,
  ) {
    this.dir = join(home, 'credentials');
  }

  fileFor(gateway: string): string {
    return join(this.dir, `${slugFor(gateway)}.json`);
  }

  /** The credentials for a gateway, or undefined when there are none. */
  load(gateway: string): Credentials | undefined {
    const file = this.fileFor(gateway);
    let text: string;
    try {
      const st = lstatSync(file);
      this.checkFile(file, st);
      text = readFileSync(file, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw e;
    }
    let parsed: Credentials;
    try {
      parsed = credentialsSchema.parse(JSON.parse(text));
    } catch {
      throw new ClientError('CREDENTIALS_UNUSABLE', `${file} is not a valid credentials file: run keygate login`);
    }
    // A file copied from another gateway's slot is not this gateway's credentials.
    if (parsed.gateway !== gateway)
      throw new ClientError('CREDENTIALS_UNUSABLE', `${file} holds credentials for ${parsed.gateway}, not ${gateway}`);
    return parsed;
  }

  /** Write the credentials atomically (and fix the directory's modes first). */
  save(c: Omit<Credentials, 'version' | 'savedAt'>): Credentials {
    const full: Credentials = { version: 1, ...c, savedAt: this.clock.now() };
    this.ensureDirs();
    this.writeAtomic(this.fileFor(c.gateway), `${JSON.stringify(full, null, 2)}\n`);
    return full;
  }

  /**
   * Delete a gateway's credentials. With `ifRefreshToken`, only when the file still holds that
   * refresh token (another process may have replaced it meanwhile).
   */
  remove(gateway: string, ifRefreshToken?: string): void {
    if (ifRefreshToken !== undefined) {
      let current: Credentials | undefined;
      try {
        current = this.load(gateway);
      } catch {
        current = undefined;
      }
      if (current !== undefined && current.refreshToken !== ifRefreshToken) return;
    }
    rmSync(this.fileFor(gateway), { force: true });
  }

  lastGateway(): string | undefined {
    try {
      const v = readFileSync(join(this.dir, 'last-gateway'), 'utf8').trim();
      return v === '' ? undefined : v;
    } catch {
      return undefined;
    }
  }

  setLastGateway(gateway: string): void {
    this.ensureDirs();
    this.writeAtomic(join(this.dir, 'last-gateway'), `${gateway}\n`);
  }

  /**
   * Run `fn` holding the gateway's refresh lock, across processes: two `keygate token` runs
   * refreshing at once would present the same refresh token twice, and the second
   * presentation revokes the whole family (reuse detection).
   */
  async withLock<T>(gateway: string, fn: () => Promise<T>): Promise<T> {
    this.ensureDirs();
    const lock = join(this.dir, `${slugFor(gateway)}.lock`);
    // Lock waits and lock ages are real time (file mtimes are wall-clock), not the injected clock.
    const deadline = Date.now() + LOCK_WAIT_MS;
    for (;;) {
      try {
        const fd = openSync(lock, 'wx', FILE_MODE);
        writeSync(fd, `${process.pid}\n`);
        closeSync(fd);
        break;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      }
      if (this.lockIsStale(lock)) {
        rmSync(lock, { force: true });
        continue;
      }
      if (Date.now() > deadline)
        throw new ClientError('CREDENTIALS_UNUSABLE', `another keygate process holds ${lock}; remove it if none runs`);
      await sleep(50);
    }
    try {
      return await fn();
    } finally {
      rmSync(lock, { force: true });
    }
  }

  private lockIsStale(lock: string): boolean {
    let st: Stats;
    let pid: number;
    try {
      st = statSync(lock);
      pid = Number(readFileSync(lock, 'utf8').trim());
    } catch {
      return false; // gone already, or being written: try again
    }
    if (Date.now() - st.mtimeMs > LOCK_STALE_MS) return true;
    if (!Number.isInteger(pid) || pid <= 0) return false;
    try {
      process.kill(pid, 0);
      return false;
    } catch (e) {
      return (e as NodeJS.ErrnoException).code === 'ESRCH';
    }
  }

  /** KEYGATE_HOME and its credentials directory: directories, ours, 0700. */
  private ensureDirs(): void {
    for (const d of [this.home, this.dir]) {
      mkdirSync(d, { recursive: true, mode: DIR_MODE });
      // The credentials directory itself must not be a link to somewhere else.
      const st = d === this.dir ? lstatSync(d) : statSync(d);
      if (!st.isDirectory()) throw new ClientError('CREDENTIALS_UNUSABLE', `${d} is not a directory`);
      if (!checksModes) continue;
      const uid = process.getuid?.();
      if (uid !== undefined && st.uid !== uid)
        throw new ClientError('CREDENTIALS_UNUSABLE', `${d} belongs to another user (uid ${st.uid})`);
      if ((st.mode & 0o777) !== DIR_MODE) chmodOrFail(d, DIR_MODE);
    }
  }

  private checkFile(file: string, st: Stats): void {
    if (!st.isFile()) throw new ClientError('CREDENTIALS_UNUSABLE', `${file} is not a regular file`);
    if (!checksModes) return;
    const uid = process.getuid?.();
    if (uid !== undefined && st.uid !== uid)
      throw new ClientError('CREDENTIALS_UNUSABLE', `${file} belongs to another user (uid ${st.uid})`);
    if ((st.mode & 0o777) !== FILE_MODE) chmodOrFail(file, FILE_MODE);
  }

  private writeAtomic(file: string, text: string): void {
    const tmp = join(this.dir, `.${randomId(9)}.tmp`);
    // O_EXCL with 0600: the secret is never in a file anyone else could open, even briefly.
    const fd = openSync(tmp, 'wx', FILE_MODE);
    try {
      try {
        writeSync(fd, text);
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      renameSync(tmp, file);
    } catch (e) {
      rmSync(tmp, { force: true });
      throw e;
    }
    if (checksModes) {
      const st = lstatSync(file);
      if ((st.mode & 0o777) !== FILE_MODE) chmodOrFail(file, FILE_MODE);
    }
    syncDir(this.dir);
  }
}

function chmodOrFail(path: string, mode: number): void {
  try {
    chmodSync(path, mode);
  } catch (e) {
    throw new ClientError(
      'CREDENTIALS_UNUSABLE',
      `${path} has unsafe permissions and they could not be fixed: ${(e as Error).message}`,
    );
  }
}

/** Make the rename durable: fsync the directory entry (not possible on every platform). */
function syncDir(dir: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(dir, 'r');
    fsyncSync(fd);
  } catch {
    // Windows cannot open a directory; the rename is still atomic there.
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}
