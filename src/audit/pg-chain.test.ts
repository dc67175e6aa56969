/**
 * The audit chain in PostgreSQL: several writers (replicas) appending at once form one chain
 * with no gap; it verifies, a tampered record is found, retention anchors the new start; and
 * reading it (query pages, export, stats) gives exactly what the SQLite chain gives for the
 * same records.
 */
import { generateKeyPairSync } from 'node:crypto';
import type Database from 'better-sqlite3';
import { exportJWK, type JWK } from 'jose';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { postgresAvailable, startPostgres, type TestPostgres } from '../../test/helpers/postgres.js';
import { PostgresStore } from '../store/postgres/index.js';
import { PgChain } from './pg-chain.js';
import { type AuditFilter, exportRange, queryAudit } from './query.js';
import type { AuditEntry } from './record.js';
import { openAuditDb, queued, SqliteChain, signerFor } from './sqlite-chain.js';
import { auditStats } from './stats.js';
import { verifyChain, verifySource } from './verify.js';

const T0 = Date.UTC(2026, 10, 1);

/** Record i: one every 6 minutes, 10 actors, every 7th denied, every 4th a failed login. */
const entry = (i: number): AuditEntry => ({
  kind: i % 4 === 0 ? 'auth.login' : 'http.request',
  at: T0 + i * 360_000,
  actor: { type: 'user', id: `u${i % 10}`, email: `u${i % 10}@example.com` },
  request: {
    method: 'GET',
    path: `/p/${i % 3}`,
    ip: '::1',
    action: i % 2 === 0 ? 'serving:read' : 'jobs:run',
    resource: `r${i % 3}`,
  },
  decision: { effect: i % 7 === 0 ? 'deny' : 'allow', reasons: [] },
  ...(i % 4 === 0 ? { outcome: 'failure' as const } : {}),
});

describe.skipIf(!postgresAvailable())('the audit chain in PostgreSQL', () => {
  let cluster: TestPostgres | undefined;
  let admin: pg.Pool;
  let databases = 0;
  let key: { kid: string; jwk: JWK };
  let publicJwk: JWK;

  beforeAll(async () => {
    cluster = await startPostgres();
    admin = new pg.Pool({ connectionString: cluster.url, max: 1 });
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    key = { kid: 'audit-1', jwk: { ...(await exportJWK(privateKey)), kid: 'audit-1' } };
    publicJwk = { ...(await exportJWK(publicKey)), kid: 'audit-1', alg: 'ES256' };
  });
  afterAll(async () => {
    await admin?.end();
    await cluster?.stop();
  });

  /** A migrated, empty database; its URL. */
  async function freshDatabase(): Promise<string> {
    const name = `kg_audit_${++databases}`;
    await admin.query(`CREATE DATABASE ${name}`);
    const url = new URL((cluster as TestPostgres).url);
    url.pathname = `/${name}`;
    const store = new PostgresStore({ connectionString: url.toString() });
    await store.migrate();
    await store.close();
    return url.toString();
  }

  const chainOn = async (url: string, every = 25, now: () => number = Date.now) =>
    new PgChain({ connectionString: url, checkpoint: { every, everyMs: 1e12, sign: await signerFor(key) }, now });

  it('three writers appending at once make one contiguous chain that verifies, with checkpoints', async () => {
    const url = await freshDatabase();
    const writers = await Promise.all([chainOn(url), chainOn(url), chainOn(url)]);
    try {
      // 3 writers × 20 batches × 1–10 records, all in flight together.
      const sent = new Set<string>();
      await Promise.all(
        writers.map(async (w, n) => {
          for (let b = 0; b < 20; b++) {
            const batch = Array.from({ length: 1 + ((b * 7 + n) % 10) }, (_, i) => {
              const e = entry(b * 10 + i);
              const id = `w${n}-b${b}-${i}`;
              sent.add(id);
              return queued(e, id);
            });
            await w.append(batch);
          }
        }),
      );
      const r = await verifySource((writers[0] as PgChain).source(), { keys: [publicJwk] });
      expect(r).toMatchObject({ ok: true, records: sent.size, firstSeq: 1, lastSeq: sent.size });
      expect(r.checkpoints).toBeGreaterThanOrEqual(Math.floor(sent.size / 25) - 1);
      // Every record written, once.
      const c = new pg.Client({ connectionString: url });
      await c.connect();
      try {
        const bodies = (await c.query<{ body: string }>('SELECT body FROM audit_records ORDER BY seq')).rows;
        expect(new Set(bodies.map((b) => (JSON.parse(b.body) as { id: string }).id))).toEqual(sent);
        // Each writer's batches are whole: a batch's records are consecutive in the chain.
        const order = bodies.map((b) => (JSON.parse(b.body) as { id: string }).id);
        for (const w of ['w0', 'w1', 'w2'])
          for (let b = 0; b < 20; b++) {
            const at = order
              .map((id, i) => (id.startsWith(`${w}-b${b}-`) ? i : -1))
              .filter((i) => i >= 0)
              .sort((x, y) => x - y);
            expect((at.at(-1) as number) - (at[0] as number)).toBe(at.length - 1);
          }
      } finally {
        await c.end();
      }
    } finally {
      for (const w of writers) await w.close();
    }
  });

  it('finds a modified record and a removed one', async () => {
    const url = await freshDatabase();
    const w = await chainOn(url);
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    try {
      await w.append(Array.from({ length: 40 }, (_, i) => queued(entry(i))));
      await c.query(`UPDATE audit_records SET body = replace(body, '"deny"', '"allow"') WHERE seq = 8`);
      const modified = await verifySource(w.source(), { keys: [publicJwk] });
      expect(modified.ok).toBe(false);
      expect(modified.problem).toEqual({
        seq: 8,
        what: 'hash does not match the record and the one before it (modified, inserted or moved)',
      });
      await c.query(`UPDATE audit_records SET body = replace(body, '"allow"', '"deny"') WHERE seq = 8`);
      expect((await verifySource(w.source(), { keys: [publicJwk] })).ok).toBe(true);
      await c.query('DELETE FROM audit_records WHERE seq = 20');
      const removed = await verifySource(w.source(), { keys: [publicJwk] });
      expect(removed.problem).toEqual({ seq: 20, what: 'record 20 is missing (next is 21)' });
    } finally {
      await c.end();
      await w.close();
    }
  });

  it('retention removes records up to a checkpoint before the cutoff, which anchors the new start', async () => {
    const url = await freshDatabase();
    let clock = T0;
    const w = await chainOn(url, 10, () => clock);
    try {
      for (let i = 0; i < 5; i++) {
        clock = T0 + i * 1000;
        await w.append(Array.from({ length: 10 }, (_, k) => queued({ ...entry(i * 10 + k), at: clock })));
      }
      const r = await w.prune(T0 + 2500, (detail) =>
        queued({ kind: 'audit.pruned', at: clock, actor: { type: 'system' }, detail, outcome: 'success' }),
      );
      // Checkpoints at 10, 20, 30, 40, 50 (at T0, +1 s, +2 s …): the newest before +2.5 s is 30.
      expect(r).toEqual({ through: 30, removed: 30 });
      const v = await verifySource(w.source(), { keys: [publicJwk] });
      expect(v).toMatchObject({ ok: true, firstSeq: 31, lastSeq: 51, records: 21 });
      // Nothing more to prune at the same cutoff.
      expect(await w.prune(T0 + 2500, () => queued(entry(0)))).toBeNull();
    } finally {
      await w.close();
    }
  });

  describe('reads what the SQLite chain reads', () => {
    let url: string;
    let w: PgChain;
    let db: Database.Database;
    const N = 2_500;

    beforeAll(async () => {
      url = await freshDatabase();
      w = new PgChain({ connectionString: url, checkpoint: { every: 1e9, everyMs: 1e12, sign: undefined } });
      db = openAuditDb(':memory:');
      const sqlite = new SqliteChain(db, { every: 1e9, everyMs: 1e12, sign: undefined }, () => T0);
      // The same records, the same ids, in the same batches: the same chain, hash for hash.
      for (let i = 0; i < N; i += 100) {
        const batch = Array.from({ length: 100 }, (_, k) => queued(entry(i + k), `id-${i + k}`));
        await sqlite.append(batch);
        await w.append(batch);
      }
    });
    afterAll(async () => {
      await w?.close();
      db?.close();
    });

    /** Every page of a query on both, following cursors. */
    async function pagesOf(f: AuditFilter, limit: number, maxScan: number) {
      const out: { sqlite: string[][]; pg: string[][] } = { sqlite: [], pg: [] };
      for (const side of ['sqlite', 'pg'] as const) {
        let cursor: string | undefined;
        for (let guard = 0; guard < 1000; guard++) {
          const o = { limit, maxScan, ...(cursor === undefined ? {} : { cursor }) };
          const p = side === 'sqlite' ? queryAudit(db, f, o) : await w.query(f, o);
          out[side].push(p.lines);
          if (p.next === null) break;
          cursor = p.next;
        }
      }
      return out;
    }

    it('the same records for every filter, in chain order, lines byte for byte', async () => {
      const filters: AuditFilter[] = [
        {},
        { actor: 'u3' },
        { kind: 'auth.login' },
        { decision: 'deny', action: 'jobs:run' },
        { since: T0 + 100 * 360_000, until: T0 + 1_900 * 360_000 },
        { actor: 'u7', since: T0 + 500 * 360_000 },
        { actor: 'nobody' },
        { since: T0 + N * 360_000 * 2 },
      ];
      for (const f of filters) {
        const p = await pagesOf(f, 97, 400);
        expect(p.pg.flat(), JSON.stringify(f)).toEqual(p.sqlite.flat());
        for (const page of p.pg) expect(page.length).toBeLessThanOrEqual(97);
      }
      // And the whole log verifies the same.
      expect(await verifySource(w.source(), { keys: [] })).toEqual(await verifyChain(db, { keys: [] }));
    });

    it('tail (`keygate audit tail`): the last records matching a filter, oldest first, then those after a seq', async () => {
      const u3 = (await pagesOf({ actor: 'u3' }, 1000, 100_000)).sqlite.flat();
      const last = await w.latest({ actor: 'u3' }, 5);
      expect(last.map((r) => r.line)).toEqual(u3.slice(-5));
      // Record i (seq i + 1) is a login when i % 4 = 0.
      const after = await w.latest({ kind: 'auth.login' }, 3, 2_000);
      expect(after.map((r) => r.seq)).toEqual([2_001, 2_005, 2_009]);
    });

    it('export gives the same lines, and stats the same figures', async () => {
      const range = [T0 + 300 * 360_000, T0 + 1_300 * 360_000] as const;
      const fromPg: string[] = [];
      for await (const l of w.exportRange(...range)) fromPg.push(l);
      expect(fromPg).toEqual([...exportRange(db, ...range)]);
      expect(fromPg).toHaveLength(1_000);
      for (const at of [T0 + 2_000 * 360_000, T0 + 2_400 * 360_000 + 1])
        for (const window of ['1h', '24h'] as const) {
          const s = await w.stats(window, at);
          expect(s).toEqual(auditStats(db, window, at));
          expect(s.requests).toBeGreaterThan(0);
          expect(s.authFailures).toBeGreaterThan(0);
        }
    });
  });
});
