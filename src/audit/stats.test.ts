import type Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { AuditEntry } from './record.js';
import { openAuditDb, queued, SqliteChain } from './sqlite-chain.js';
import { auditStats } from './stats.js';

let db: Database.Database;
beforeEach(() => {
  db = openAuditDb(':memory:');
});
afterEach(() => db.close());

const NOW = Date.UTC(2026, 10, 29, 12, 0, 0);
const req = (
  at: number,
  actor: string,
  effect: 'allow' | 'deny' | 'step_up' | null,
  resource = 'Endpoint::fraud',
): AuditEntry => ({
  kind: 'http.request',
  at,
  actor: actor === '' ? { type: 'anonymous' } : { type: 'user', id: actor, email: `${actor}@example.com` },
  request: {
    method: 'POST',
    path: '/x',
    ip: '::1',
    ...(effect === null ? {} : { action: 'serving:invoke', resource }),
  },
  ...(effect === null ? {} : { decision: { effect, reasons: [] } }),
  status: effect === 'allow' ? 200 : 403,
});

describe('auditStats', () => {
  it('counts requests per minute by decision, top principals and endpoints, and auth failures, over the window', async () => {
    const chain = new SqliteChain(db, { every: 1e9, everyMs: 1e12, sign: undefined });
    const entries: AuditEntry[] = [
      // Two hours ago: outside the 1-hour window.
      req(NOW - 2 * 3_600_000, 'old', 'allow'),
      ...Array.from({ length: 5 }, (_, i) => req(NOW - 10 * 60_000 + i, 'alice', 'allow')),
      req(NOW - 10 * 60_000 + 10, 'bob', 'deny', 'Endpoint::prod'),
      req(NOW - 60_000, 'bob', 'step_up', 'Endpoint::prod'),
      req(NOW - 30_000, '', null),
      {
        kind: 'auth.login',
        at: NOW - 5_000,
        actor: { type: 'anonymous' },
        outcome: 'failure',
        reason: 'unknown_credential',
      },
      { kind: 'auth.login', at: NOW - 4_000, actor: { type: 'user', id: 'alice' }, outcome: 'success' },
    ];
    await chain.append(entries.map((e) => queued(e)));
    const s = auditStats(db, '1h', NOW);
    expect(s.bucketMs).toBe(60_000);
    expect(s.buckets).toHaveLength(60);
    expect(s.requests).toBe(8);
    expect(s.denials).toBe(2); // bob's deny and the anonymous refusal
    expect(s.stepUps).toBe(1);
    expect(s.authFailures).toBe(1);
    const tenMinAgo = s.buckets.find((b) => b.t === Math.floor((NOW - 10 * 60_000) / 60_000) * 60_000);
    expect(tenMinAgo).toMatchObject({ allow: 5, deny: 1 });
    expect(s.topPrincipals).toEqual([
      { id: 'alice', type: 'user', email: 'alice@example.com', count: 5 },
      { id: 'bob', type: 'user', email: 'bob@example.com', count: 2 },
    ]);
    expect(s.topEndpoints).toEqual([
      { action: 'serving:invoke', resource: 'Endpoint::fraud', count: 5 },
      { action: 'serving:invoke', resource: 'Endpoint::prod', count: 2 },
    ]);
    expect(s.partial).toBe(false);
    // The day window sees the old one too, in 15-minute buckets.
    const day = auditStats(db, '24h', NOW);
    expect(day.bucketMs).toBe(900_000);
    expect(day.requests).toBe(9);
    // Bounded: only the newest 3 records aggregated, and it says so.
    const cut = auditStats(db, '24h', NOW, 3);
    expect(cut.partial).toBe(true);
    expect(cut.requests).toBeLessThan(9);
  });
});
