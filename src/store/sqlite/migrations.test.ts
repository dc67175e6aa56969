import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { MIGRATIONS, type Migration } from '../migrations/index.js';
import { SqliteStore } from './index.js';

function dbPath(): string {
  return join(mkdtempSync(join(tmpdir(), 'kg-mig-')), 'keygate.db');
}

function tables(path: string): string[] {
  const db = new Database(path, { readonly: true });
  const rows = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").all() as {
    name: string;
  }[];
  db.close();
  return rows.map((r) => r.name);
}

describe('SQLite migrations', () => {
  it('a fresh database gets every migration, in WAL mode', async () => {
    const path = dbPath();
    const s = new SqliteStore({ path });
    const st = await s.migrate();
    expect(st.applied).toEqual(MIGRATIONS.map((m) => m.version));
    expect(s.db.pragma('journal_mode', { simple: true })).toBe('wal');
    await s.close();
    expect(tables(path)).toEqual(expect.arrayContaining(['keygate_meta', 'schema_migrations', 'signing_keys']));
  });

  it('an existing database at an older version is brought up to date, keeping its data', async () => {
    const path = dbPath();
    const first = MIGRATIONS.slice(0, 1);
    const old = new SqliteStore({ path, migrations: first });
    expect((await old.migrate()).current).toBe(1);
    await old.initMeta('instance', 'abc');
    await old.close();

    const s = new SqliteStore({ path });
    const st = await s.migrate();
    expect(st.applied).toEqual(MIGRATIONS.slice(1).map((m) => m.version));
    expect(await s.getMeta('instance')).toBe('abc');
    // Running again applies nothing.
    expect((await s.migrate()).applied).toEqual([]);
    await s.close();
  });

  it('a migration that fails half-way leaves the database at the previous version', async () => {
    const path = dbPath();
    const broken: Migration = {
      version: 99,
      name: 'broken',
      sqlite: 'CREATE TABLE half_done (x INTEGER); INSERT INTO no_such_table VALUES (1);',
    };
    const s = new SqliteStore({ path, migrations: [...MIGRATIONS, broken] });
    await expect(s.migrate()).rejects.toThrow(/no such table/);
    const versions = s.db.prepare('SELECT version FROM schema_migrations ORDER BY version').all() as {
      version: number;
    }[];
    expect(versions.map((v) => v.version)).toEqual(MIGRATIONS.map((m) => m.version));
    await s.close();
    expect(tables(path)).not.toContain('half_done');

    // The store still works at the previous version.
    const again = new SqliteStore({ path });
    await again.migrate();
    await again.initMeta('k', 'v');
    expect(await again.getMeta('k')).toBe('v');
    await again.close();
  });

  it('refuses a database written by a newer Keygate', async () => {
    const path = dbPath();
    const future = new SqliteStore({
      path,
      migrations: [...MIGRATIONS, { version: 999, name: 'future', sqlite: 'CREATE TABLE f (x INTEGER);' }],
    });
    await future.migrate();
    await future.close();
    const s = new SqliteStore({ path });
    await expect(s.migrate()).rejects.toThrow(/newer than this Keygate knows/);
    await s.close();
  });

  it('initMeta is first-writer-wins', async () => {
    const s = new SqliteStore({ path: ':memory:' });
    await s.migrate();
    expect(await s.initMeta('instance', 'one')).toBe('one');
    expect(await s.initMeta('instance', 'two')).toBe('one');
    await s.close();
  });
});
