import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { postgresAvailable, startPostgres, type TestPostgres } from '../../../test/helpers/postgres.js';
import { MIGRATIONS, type SharedMigration } from '../migrations/index.js';
import { storeContract } from '../store.contract.js';
import { PostgresStore } from './index.js';

describe.skipIf(!postgresAvailable())('PostgresStore', () => {
  let cluster: TestPostgres | undefined;
  let admin: pg.Pool;
  let databases = 0;

  beforeAll(async () => {
    cluster = await startPostgres();
    admin = new pg.Pool({ connectionString: cluster.url, max: 1 });
  });

  afterAll(async () => {
    await admin?.end();
    await cluster?.stop();
  });

  /**
   * A new, empty database in the cluster; its URL. Its locale (ICU en-US) sorts and folds case
   * unlike SQLite ('data' < 'Eng', lower('É') = 'é'), so the suite shows the store does not
   * depend on it.
   */
  async function freshDatabase(): Promise<string> {
    const name = `kg_${++databases}`;
    await admin.query(`CREATE DATABASE ${name} TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US'`);
    const url = new URL((cluster as TestPostgres).url);
    url.pathname = `/${name}`;
    return url.toString();
  }

  storeContract({
    open: async () => new PostgresStore({ connectionString: await freshDatabase() }),
    openShared: async (n) => {
      const url = await freshDatabase();
      return Array.from({ length: n }, () => new PostgresStore({ connectionString: url }));
    },
  });

  describe('revocation notifications (LISTEN/NOTIFY)', () => {
    it("a revocation recorded by one replica's store wakes the listener of another, and unsubscribing stops it", async () => {
      const url = await freshDatabase();
      const [a, b] = [
        new PostgresStore({ connectionString: url }),
        new PostgresStore({ connectionString: url }),
      ] as const;
      try {
        await a.migrate();
        await b.migrate();
        let calls = 0;
        let wake: () => void = () => {};
        const listening = new Promise<void>((r) => {
          wake = r;
        });
        // The first call comes once LISTEN is in place (it polls what it may have missed).
        const stop = a.onRevocation(() => {
          calls++;
          wake();
        });
        await listening;
        const before = calls;
        const notified = new Promise<void>((r) => {
          wake = r;
        });
        await b.insertRevocation({ id: 'jti:x1', revokedAt: 1, expiresAt: 2 });
        await notified;
        expect(calls).toBe(before + 1);
        stop();
        await b.insertRevocation({ id: 'jti:x2', revokedAt: 1, expiresAt: 2 });
        // A round trip on b's pool after the NOTIFY: any notification for a would have been sent by now.
        await b.ping();
        await new Promise((r) => setTimeout(r, 200));
        expect(calls).toBe(before + 1);
      } finally {
        await a.close();
        await b.close();
      }
    });
  });

  describe('PostgreSQL migrations', () => {
    const stores: PostgresStore[] = [];
    const open = (url: string, migrations?: readonly SharedMigration[]): PostgresStore => {
      const s = new PostgresStore({ connectionString: url, ...(migrations ? { migrations } : {}) });
      stores.push(s);
      return s;
    };
    /** A PostgreSQL-only migration after the shipped ones. */
    const extra = (version: number, postgres: string): SharedMigration => ({
      version,
      name: `extra-${version}`,
      sqlite: '',
      postgres,
    });
    const versions = async (s: PostgresStore): Promise<number[]> =>
      (await s.pool.query('SELECT version FROM schema_migrations ORDER BY version')).rows.map((r) => r.version);

    afterEach(async () => {
      await Promise.all(stores.splice(0).map((s) => s.close()));
    });

    it('replicas starting together on a fresh database: one applies, the others wait and find it applied', async () => {
      const url = await freshDatabase();
      const replicas = [1, 2, 3, 4].map(() => open(url));
      const results = await Promise.all(replicas.map((s) => s.migrate()));
      expect(results.map((r) => r.applied.length).sort()).toEqual([0, 0, 0, MIGRATIONS.length]);
      expect(results.every((r) => r.current === MIGRATIONS.at(-1)?.version)).toBe(true);
      expect(await versions(replicas[0] as PostgresStore)).toEqual(MIGRATIONS.map((m) => m.version));
    });

    it('a migration that fails half-way leaves the database at the previous version', async () => {
      const url = await freshDatabase();
      const broken = extra(99, 'CREATE TABLE half_done (x INTEGER); INSERT INTO no_such_table VALUES (1);');
      const s = open(url, [...MIGRATIONS, broken]);
      await expect(s.migrate()).rejects.toThrow(/no_such_table/);
      expect(await versions(s)).toEqual(MIGRATIONS.map((m) => m.version));
      const half = await s.pool.query("SELECT to_regclass('half_done') AS t");
      expect(half.rows[0].t).toBeNull();
      // The lock went with the failed run: another store migrates, and the store works.
      const again = open(url);
      expect(await again.migrate()).toEqual({ applied: [], current: MIGRATIONS.at(-1)?.version });
      expect(await again.initMeta('k', 'v')).toBe('v');
    });

    it('refuses a database written by a newer Keygate', async () => {
      const url = await freshDatabase();
      await open(url, [...MIGRATIONS, extra(999, 'CREATE TABLE f (x INTEGER);')]).migrate();
      await expect(open(url).migrate()).rejects.toThrow(/newer than this Keygate knows/);
    });

    it('an existing database at an older version is brought up to date, keeping its data', async () => {
      const url = await freshDatabase();
      const old = open(url, MIGRATIONS.slice(0, 1));
      expect((await old.migrate()).current).toBe(1);
      await old.initMeta('instance', 'abc');
      const s = open(url);
      expect((await s.migrate()).applied).toEqual(MIGRATIONS.slice(1).map((m) => m.version));
      expect(await s.getMeta('instance')).toBe('abc');
    });
  });
});
