import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BadCursorError, exportRange, queryAudit } from './query.js';
import { type AuditEntry, type ChainedRecord, chainHash } from './record.js';
import { openAuditDb, queued, SqliteChain } from './sqlite-chain.js';

const T0 = Date.UTC(2026, 10, 1);
const HOUR = 3_600_000;
let dir: string;
let db: Database.Database;

/** Record i: one every 6 minutes, 10 actors, every 7th denied, every 4th a login. */
const entry = (i: number): AuditEntry => ({
  kind: i % 4 === 0 ? 'auth.login' : 'http.request',
  at: T0 + i * 360_000,
  actor: { type: 'user', id: `u${i % 10}` },
  request: { method: 'GET', path: `/p/${i}`, ip: '::1', action: i % 2 === 0 ? 'serving:read' : 'jobs:run' },
  decision: { effect: i % 7 === 0 ? 'deny' : 'allow', reasons: [] },
});

async function write(n: number, index: { every: number; maxLagMs: number }) {
  const chain = new SqliteChain(db, { every: 1e9, everyMs: 1e12, sign: undefined }, () => T0, index);
  for (let i = 0; i < n; i += 50)
    await chain.append(Array.from({ length: Math.min(50, n - i) }, (_, k) => queued(entry(i + k))));
  return chain;
}

/** Every page of a query, following cursors. */
function all(f: Parameters<typeof queryAudit>[1], limit: number, maxScan?: number) {
  const seqs: number[] = [];
  let cursor: string | undefined;
  let pages = 0;
  for (;;) {
    const p = queryAudit(db, f, {
      limit,
      ...(cursor === undefined ? {} : { cursor }),
      ...(maxScan ? { maxScan } : {}),
    });
    pages++;
    seqs.push(...p.lines.map((l) => (JSON.parse(l) as ChainedRecord).seq));
    if (p.next === null) return { seqs, pages };
    cursor = p.next;
  }
}

/** What a filter should return, computed from the entries themselves. */
function expected(n: number, keep: (e: AuditEntry) => boolean): number[] {
  return Array.from({ length: n }, (_, i) => i)
    .filter((i) => keep(entry(i)))
    .map((i) => i + 1);
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'kg-audit-q-'));
  db = openAuditDb(join(dir, 'audit.db'));
});
afterEach(() => {
  db.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('queryAudit', () => {
  it('filters by actor, kind, action, decision and time, page by page in chain order', async () => {
    // 3,020 records with the actor index built every 1,000: part indexed, part not yet.
    const chain = await write(3020, { every: 1000, maxLagMs: 1e12 });
    expect(chain.actorIndexedThrough).toBe(3000);
    const since = T0 + 20 * HOUR;
    const until = T0 + 200 * HOUR;
    const cases: [Parameters<typeof queryAudit>[1], (e: AuditEntry) => boolean][] = [
      [{}, () => true],
      [{ actor: 'u3' }, (e) => e.actor.id === 'u3'],
      [{ actor: 'u4', kind: 'auth.login' }, (e) => e.actor.id === 'u4' && e.kind === 'auth.login'],
      [
        { decision: 'deny', action: 'jobs:run' },
        (e) => e.decision?.effect === 'deny' && e.request?.action === 'jobs:run',
      ],
      [{ since, until }, (e) => e.at >= since && e.at < until],
      [{ actor: 'u7', since, until }, (e) => e.actor.id === 'u7' && e.at >= since && e.at < until],
      [{ actor: 'nobody' }, () => false],
    ];
    for (const [f, keep] of cases) {
      const want = expected(3020, keep);
      const got = all(f, 37);
      expect(got.seqs, JSON.stringify(f)).toEqual(want);
      // ceil(n / 37) full pages, plus one empty last page when n divides evenly… or fewer.
      expect(got.pages).toBeLessThanOrEqual(Math.floor(want.length / 37) + 1);
    }
  });

  it('finds records the actor index does not cover yet, and the same ones once it does', async () => {
    const chain = await write(500, { every: 1e9, maxLagMs: 1e12 });
    expect(chain.actorIndexedThrough).toBe(0);
    const before = all({ actor: 'u2' }, 10).seqs;
    expect(before).toEqual(expected(500, (e) => e.actor.id === 'u2'));
    // Force the index up to date (no records waiting long enough otherwise).
    const indexed = new SqliteChain(db, { every: 1e9, everyMs: 1e12, sign: undefined }, () => T0 + 1e9, {
      every: 1,
      maxLagMs: 0,
    });
    indexed.indexIfDue();
    expect(indexed.actorIndexedThrough).toBe(500);
    expect(all({ actor: 'u2' }, 10).seqs).toEqual(before);
  });

  it('bounds the work of a page: a rare match comes back over short pages, none lost', async () => {
    await write(2000, { every: 1000, maxLagMs: 1e12 });
    const want = expected(2000, (e) => e.decision?.effect === 'deny' && e.kind === 'auth.login');
    const got = all({ decision: 'deny', kind: 'auth.login' }, 100, 150);
    expect(got.seqs).toEqual(want);
    expect(got.pages).toBeGreaterThanOrEqual(2000 / 150);
  });

  it('each line is the record with its chain members; the first after a gap links to the row before it', async () => {
    await write(120, { every: 1e9, maxLagMs: 1e12 });
    const page = queryAudit(db, { actor: 'u5' }, { limit: 3 });
    const records = page.lines.map((l) => JSON.parse(l) as ChainedRecord);
    expect(records.map((r) => r.seq)).toEqual([6, 16, 26]);
    for (const r of records) {
      const prev = (db.prepare('SELECT hash FROM audit_records WHERE seq = ?').get(r.seq - 1) as { hash: string }).hash;
      expect(r.prevHash).toBe(prev);
      expect(chainHash(r).hash).toBe(r.hash);
    }
  });

  it('refuses a cursor it did not issue', async () => {
    await write(10, { every: 1e9, maxLagMs: 1e12 });
    for (const bad of ['', 'xyz', Buffer.from('s-1').toString('base64url'), 'A'.repeat(100)]) {
      expect(() => queryAudit(db, {}, { limit: 5, cursor: bad })).toThrow(BadCursorError);
    }
  });
});

describe('exportRange', () => {
  it('a time range in chain order, linked; an empty range yields nothing', async () => {
    await write(300, { every: 1e9, maxLagMs: 1e12 });
    const lines = [...exportRange(db, T0 + 10 * HOUR, T0 + 11 * HOUR)].map((l) => JSON.parse(l) as ChainedRecord);
    expect(lines.map((r) => r.seq)).toEqual(expected(300, (e) => e.at >= T0 + 10 * HOUR && e.at < T0 + 11 * HOUR));
    for (const [i, r] of lines.entries()) {
      if (i > 0) expect(r.prevHash).toBe((lines[i - 1] as ChainedRecord).hash);
      expect(chainHash(r).hash).toBe(r.hash);
    }
    expect([...exportRange(db, T0 + 1000 * HOUR)]).toEqual([]);
    expect([...exportRange(db, undefined, T0)]).toEqual([]);
  });
});
