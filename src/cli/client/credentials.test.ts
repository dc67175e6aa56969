import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../lib/clock.js';
import { type Credentials, CredentialStore, keygateHome, slugFor } from './credentials.js';
import { ClientError } from './errors.js';

const GW = 'https://kg.example.com';
const KEY = { kty: 'EC', crv: 'P-256', x: 'x', y: 'y', d: 'd' } as const;

function fields(refreshToken = 'rt-1', gateway = GW): Omit<Credentials, 'version' | 'savedAt'> {
  return { gateway, dpopKey: { ...KEY }, accessToken: 'at', accessTokenExpiresAt: 1, refreshToken };
}

function newStore(): CredentialStore {
  return new CredentialStore(join(mkdtempSync(join(tmpdir(), 'kg-cred-')), 'home'), new ManualClock());
}

const mode = (p: string) => statSync(p).mode & 0o777;

describe('credentials file', () => {
  it('lives in KEYGATE_HOME, else ~/.keygate, one file per gateway origin', () => {
    expect(keygateHome({ KEYGATE_HOME: '/x/y' })).toBe('/x/y');
    expect(keygateHome({})).toMatch(/\.keygate$/);
    expect(slugFor('https://kg.example.com')).toBe('https_kg.example.com_443');
    expect(slugFor('http://localhost:8443')).toBe('http_localhost_8443');
    expect(slugFor('http://[::1]:80')).not.toContain('/');
  });

  it.skipIf(process.platform === 'win32')('is written 0600 in 0700 directories, whatever the umask', () => {
    const store = newStore();
    const old = process.umask(0);
    try {
      store.save(fields());
    } finally {
      process.umask(old);
    }
    expect(mode(store.home)).toBe(0o700);
    expect(mode(store.dir)).toBe(0o700);
    expect(mode(store.fileFor(GW))).toBe(0o600);
  });

  it.skipIf(process.platform === 'win32')('repairs loose permissions on the next write', () => {
    const store = newStore();
    store.save(fields());
    chmodSync(store.home, 0o755);
    chmodSync(store.dir, 0o777);
    chmodSync(store.fileFor(GW), 0o644);
    store.save(fields('rt-2'));
    expect(mode(store.home)).toBe(0o700);
    expect(mode(store.dir)).toBe(0o700);
    expect(mode(store.fileFor(GW))).toBe(0o600);
  });

  it('replaces the file by rename (a new inode), never rewriting it in place, and leaves no temp file', () => {
    const store = newStore();
    store.save(fields('rt-1'));
    const before = statSync(store.fileFor(GW)).ino;
    store.save(fields('rt-2'));
    expect(statSync(store.fileFor(GW)).ino).not.toBe(before);
    expect(store.load(GW)?.refreshToken).toBe('rt-2');
    expect(readdirSync(store.dir).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });

  it('a failed write leaves the previous credentials intact', () => {
    const store = newStore();
    store.save(fields('rt-1'));
    // The target name becomes a non-empty directory: the rename fails.
    const other = 'https://other.example.com';
    mkdirSync(join(store.fileFor(other), 'x'), { recursive: true });
    expect(() => store.save(fields('rt-9', other))).toThrow();
    expect(store.load(GW)?.refreshToken).toBe('rt-1');
    expect(readdirSync(store.dir).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });

  it('reads back what it wrote; nothing for an unknown gateway; refuses a file of another gateway', () => {
    const store = newStore();
    const saved = store.save(fields());
    expect(store.load(GW)).toEqual(saved);
    expect(store.load('https://unknown.example.com')).toBeUndefined();
    writeFileSync(store.fileFor('https://b.example.com'), readFileSync(store.fileFor(GW)), { mode: 0o600 });
    expect(() => store.load('https://b.example.com')).toThrow(ClientError);
  });

  it('refuses a malformed file with a way out', () => {
    const store = newStore();
    store.save(fields());
    writeFileSync(store.fileFor(GW), '{"version":1}');
    expect(() => store.load(GW)).toThrow(/not a valid credentials file: run keygate login/);
  });

  it('removes only the refresh token it was asked to (another process may have replaced it)', () => {
    const store = newStore();
    store.save(fields('rt-new'));
    store.remove(GW, 'rt-old');
    expect(store.load(GW)?.refreshToken).toBe('rt-new');
    store.remove(GW, 'rt-new');
    expect(store.load(GW)).toBeUndefined();
  });

  it('remembers the last gateway', () => {
    const store = newStore();
    expect(store.lastGateway()).toBeUndefined();
    store.setLastGateway(GW);
    expect(store.lastGateway()).toBe(GW);
  });

  it('serializes holders of the refresh lock, and takes over a lock left by a dead process', async () => {
    const store = newStore();
    const order: string[] = [];
    const hold = (name: string) =>
      store.withLock(GW, async () => {
        order.push(`${name}+`);
        await new Promise((r) => setTimeout(r, 30));
        order.push(`${name}-`);
      });
    await Promise.all([hold('a'), hold('b')]);
    expect(order).toEqual(['a+', 'a-', 'b+', 'b-']);

    // A lock file naming a process that no longer exists.
    writeFileSync(join(store.dir, `${slugFor(GW)}.lock`), '2147483646\n');
    await expect(store.withLock(GW, async () => 'ran')).resolves.toBe('ran');
    expect(readdirSync(store.dir).filter((f) => f.endsWith('.lock'))).toEqual([]);
  });
});
