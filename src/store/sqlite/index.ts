import { chmodSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { MIGRATIONS, type Migration } from '../migrations/index.js';
import type { MigrationStatus, SigningKeyRecord, Store } from '../types.js';

export interface SqliteStoreOptions {
  /** File path, or ':memory:' for tests. */
  path: string;
  /** Overridable for migration tests. */
  migrations?: readonly Migration[];
}

interface SigningKeyRow {
  kid: string;
  alg: 'ES256';
  use: SigningKeyRecord['use'];
  public_jwk: string;
  private_jwk: string;
  created_at: number;
  retires_at: number | null;
}

export class SqliteStore implements Store {
  readonly driver = 'sqlite' as const;
  readonly db: Database.Database;
  private readonly migrations: readonly Migration[];

  constructor(opts: SqliteStoreOptions) {
    if (opts.path !== ':memory:') {
      // The database holds private keys: keep its folder private to this user.
      mkdirSync(dirname(opts.path), { recursive: true, mode: 0o700 });
    }
    this.db = new Database(opts.path);
    if (opts.path !== ':memory:') chmodSync(opts.path, 0o600);
    this.db.pragma('journal_mode = WAL');
    // FULL: a transaction that returned is on disk, so a crash loses nothing acknowledged.
    this.db.pragma('synchronous = FULL');
    this.db.pragma('foreign_keys = ON');
    this.db.pragma('busy_timeout = 5000');
    this.migrations = opts.migrations ?? MIGRATIONS;
  }

  async migrate(): Promise<MigrationStatus> {
    this.db.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
      version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL) STRICT`);
    const applied: number[] = [];
    const known = Math.max(0, ...this.migrations.map((m) => m.version));
    const currentVersion = (): number =>
      (this.db.prepare('SELECT max(version) AS v FROM schema_migrations').get() as { v: number | null }).v ?? 0;
    if (currentVersion() > known) {
      throw new Error(
        `database schema version ${currentVersion()} is newer than this Keygate knows (${known}); refusing to start`,
      );
    }
    for (const m of [...this.migrations].sort((a, b) => a.version - b.version)) {
      // IMMEDIATE takes the write lock first, so two processes starting at once apply each migration once.
      const step = this.db.transaction(() => {
        if (this.db.prepare('SELECT 1 FROM schema_migrations WHERE version = ?').get(m.version)) return false;
        this.db.exec(m.sqlite);
        this.db
          .prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)')
          .run(m.version, m.name, Date.now());
        return true;
      });
      if (step.immediate()) applied.push(m.version);
    }
    return { applied, current: currentVersion() };
  }

  async ping(): Promise<void> {
    this.db.prepare('SELECT 1').get();
  }

  async close(): Promise<void> {
    if (this.db.open) this.db.close();
  }

  async getMeta(key: string): Promise<string | null> {
    const row = this.db.prepare('SELECT value FROM keygate_meta WHERE key = ?').get(key) as
      | { value: string }
      | undefined;
    return row?.value ?? null;
  }

  async initMeta(key: string, value: string): Promise<string> {
    this.db.prepare('INSERT INTO keygate_meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING').run(key, value);
    return (await this.getMeta(key)) as string;
  }

  async insertSigningKey(k: SigningKeyRecord): Promise<void> {
    this.db
      .prepare(
        `INSERT INTO signing_keys (kid, alg, use, public_jwk, private_jwk, created_at, retires_at)
         VALUES (?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(k.kid, k.alg, k.use, k.publicJwk, k.privateJwk, k.createdAt, k.retiresAt);
  }

  async listSigningKeys(use: SigningKeyRecord['use']): Promise<SigningKeyRecord[]> {
    const rows = this.db
      .prepare('SELECT * FROM signing_keys WHERE use = ? ORDER BY created_at DESC')
      .all(use) as SigningKeyRow[];
    return rows.map((r) => ({
      kid: r.kid,
      alg: r.alg,
      use: r.use,
      publicJwk: r.public_jwk,
      privateJwk: r.private_jwk,
      createdAt: r.created_at,
      retiresAt: r.retires_at,
    }));
  }
}
