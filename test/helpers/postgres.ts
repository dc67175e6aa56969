/**
 * A throwaway PostgreSQL cluster from Debian's binaries (never downloaded ones): initdb and
 * pg_ctl in a temp dir, on a free loopback port, with durability off. When the binaries are
 * missing, PostgreSQL tests skip with a loud message locally and fail under CI=true.
 *
 * As root the server runs as OS user `postgres` (PostgreSQL refuses root); otherwise as the
 * current user. A cluster is stopped by its data dir, never by process name.
 */
import { execFile, execFileSync } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

export const PG_BIN = process.env.KEYGATE_PG_BIN ?? '/usr/lib/postgresql/15/bin';
const RUN_AS = 'postgres';

const run = promisify(execFile);
const asRoot = process.getuid?.() === 0;

/** As root, whether the OS user the server runs as exists. */
function runAsUserExists(): boolean {
  try {
    execFileSync('id', ['-u', RUN_AS], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

export function postgresAvailable(): boolean {
  const missing = ['initdb', 'pg_ctl', 'postgres'].filter((b) => !existsSync(join(PG_BIN, b)));
  if (asRoot && !runAsUserExists()) missing.push(`OS user ${RUN_AS}`);
  if (missing.length === 0) return true;
  const msg = `PostgreSQL not usable from ${PG_BIN} (missing ${missing.join(', ')}): install it with apt-get install -y postgresql-15`;
  if (process.env.CI === 'true') throw new Error(`${msg} (CI=true: PostgreSQL tests must run)`);
  console.warn(`\n!!! SKIPPING POSTGRESQL TESTS: ${msg} !!!\n`);
  return false;
}

export interface TestPostgres {
  /** `postgres://postgres@127.0.0.1:<port>/postgres` (trust auth). */
  url: string;
  /** Stops the cluster (immediate: the data is thrown away) and removes its directory. */
  stop(): Promise<void>;
  /** Stops the server but keeps its data (an outage); `resume` starts it again on the same port. */
  pause(): Promise<void>;
  resume(): Promise<void>;
}

/** A binary from PG_BIN, as `postgres` when this process is root; the cwd is one that user can read. */
function pg(dir: string, bin: string, args: string[]): Promise<unknown> {
  const file = join(PG_BIN, bin);
  const [cmd, argv] = asRoot ? ['runuser', ['-u', RUN_AS, '--', file, ...args]] : [file, args];
  return run(cmd, argv, { cwd: dir, timeout: 60_000 });
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === 'object' && addr !== null ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

export async function startPostgres(): Promise<TestPostgres> {
  const dir = mkdtempSync(join(tmpdir(), 'kg-pg-'));
  const data = join(dir, 'data');
  const stop = async (): Promise<void> => {
    try {
      if (existsSync(join(data, 'postmaster.pid')))
        await pg(dir, 'pg_ctl', ['-D', data, '-m', 'immediate', '-w', 'stop']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
  try {
    // postgres must be able to enter the directory (mkdtemp makes it 0700 root).
    if (asRoot) {
      const id = async (flag: string): Promise<number> => Number((await run('id', [flag, RUN_AS])).stdout.trim());
      chownSync(dir, await id('-u'), await id('-g'));
    }
    await pg(dir, 'initdb', [
      ...['-D', data, '-U', 'postgres', '-A', 'trust', '-E', 'UTF8'],
      ...['--locale=C.UTF-8', '--no-sync', '--no-instructions'],
    ]);
    // Another process may take the port between freePort and the server's bind: try a few.
    for (let attempt = 1; ; attempt++) {
      const port = await freePort();
      const opts = [
        ...['-c listen_addresses=127.0.0.1', `-p ${port}`, `-k ${dir}`],
        // Throwaway data: no durability.
        ...['-c fsync=off', '-c synchronous_commit=off', '-c full_page_writes=off'],
      ].join(' ');
      const start = () =>
        pg(dir, 'pg_ctl', ['-D', data, '-l', join(dir, 'server.log'), '-w', '-t', '30', '-o', opts, 'start']);
      try {
        await start();
        return {
          url: `postgres://postgres@127.0.0.1:${port}/postgres`,
          stop,
          pause: async () => {
            await pg(dir, 'pg_ctl', ['-D', data, '-m', 'fast', '-w', 'stop']);
          },
          resume: async () => {
            await start();
          },
        };
      } catch (e) {
        if (attempt >= 3) throw e;
      }
    }
  } catch (e) {
    await stop().catch(() => undefined);
    throw e;
  }
}
