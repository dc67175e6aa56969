/**
 * Dashboard figures from the audit log: proxied requests per time bucket by decision, the top
 * principals and endpoints, denials, step-ups and authentication failures over a window. The
 * aggregation runs in SQLite over the window's seq range (from the time blocks), bounded to the
 * newest `maxRecords` records of the window so a busy day cannot stall the gateway; `partial`
 * says when the bound cut the window short.
 */
import type Database from 'better-sqlite3';
import { BLOCK } from './sqlite-chain.js';

export interface AuditStats {
  window: string;
  from: number;
  to: number;
  bucketMs: number;
  buckets: { t: number; allow: number; deny: number; step_up: number; error: number }[];
  topPrincipals: { id: string; type: string; email?: string; count: number }[];
  topEndpoints: { action: string; resource: string; count: number }[];
  requests: number;
  denials: number;
  stepUps: number;
  authFailures: number;
  /** True when the window held more records than were aggregated (the oldest were left out). */
  partial: boolean;
}

export const WINDOWS = { '1h': { ms: 3_600_000, bucketMs: 60_000 }, '24h': { ms: 86_400_000, bucketMs: 900_000 } };

export function auditStats(
  db: Database.Database,
  window: keyof typeof WINDOWS,
  now: number,
  maxRecords = 500_000,
): AuditStats {
  const { ms, bucketMs } = WINDOWS[window];
  const to = now;
  const from = Math.floor((now - ms) / bucketMs) * bucketMs + bucketMs;
  return db
    .transaction((): AuditStats => {
      const first = (
        db.prepare('SELECT min(block) AS b FROM audit_time_blocks WHERE max_at >= ?').get(from) as {
          b: number | null;
        }
      ).b;
      const head = (db.prepare('SELECT max(seq) AS s FROM audit_records').get() as { s: number | null }).s ?? 0;
      const lo0 = first === null ? head : Math.max(0, first * BLOCK - 1);
      const lo = Math.max(lo0, head - maxRecords);
      const range = { lo, hi: head, from, to };
      const where = 'seq > @lo AND seq <= @hi AND at >= @from AND at <= @to';
      const buckets = new Map<number, AuditStats['buckets'][number]>();
      for (let t = from; t <= to; t += bucketMs) buckets.set(t, { t, allow: 0, deny: 0, step_up: 0, error: 0 });
      let requests = 0;
      for (const r of db
        .prepare(
          `SELECT (at / ${bucketMs}) * ${bucketMs} AS t, decision, count(*) AS n FROM audit_records
          WHERE ${where} AND kind = 'http.request' GROUP BY t, decision`,
        )
        .iterate(range) as Iterable<{ t: number; decision: string | null; n: number }>) {
        const b = buckets.get(r.t);
        // No decision: refused before policy (no or bad credentials, a malformed request): a denial.
        const d = (r.decision ?? 'deny') as 'allow' | 'deny' | 'step_up' | 'error';
        if (b !== undefined && d in b) b[d] += r.n;
        requests += r.n;
      }
      const list = [...buckets.values()];
      const topPrincipals = (
        db
          .prepare(
            `SELECT actor_id AS id, max(seq) AS seq, count(*) AS count FROM audit_records
            WHERE ${where} AND kind = 'http.request' AND actor_id IS NOT NULL
            GROUP BY actor_id ORDER BY count DESC, id LIMIT 10`,
          )
          .all(range) as { id: string; seq: number; count: number }[]
      ).map((p) => {
        // Type and email from one of the principal's records.
        const a = db
          .prepare(
            "SELECT json_extract(body, '$.actor.type') AS type, json_extract(body, '$.actor.email') AS email FROM audit_records WHERE seq = ?",
          )
          .get(p.seq) as { type: string; email: string | null };
        return { id: p.id, type: a.type, ...(a.email === null ? {} : { email: a.email }), count: p.count };
      });
      const topEndpoints = db
        .prepare(
          `SELECT action, coalesce(json_extract(body, '$.request.resource'), '') AS resource, count(*) AS count
           FROM audit_records WHERE ${where} AND kind = 'http.request' AND action IS NOT NULL
          GROUP BY action, resource ORDER BY count DESC, action, resource LIMIT 10`,
        )
        .all(range) as { action: string; resource: string; count: number }[];
      const authFailures = (
        db
          .prepare(
            `SELECT count(*) AS n FROM audit_records
            WHERE ${where} AND kind IN ('auth.login', 'auth.step_up', 'auth.register')
              AND json_extract(body, '$.outcome') = 'failure'`,
          )
          .get(range) as { n: number }
      ).n;
      return {
        window,
        from,
        to,
        bucketMs,
        buckets: list,
        topPrincipals,
        topEndpoints,
        requests,
        denials: list.reduce((n, b) => n + b.deny, 0),
        stepUps: list.reduce((n, b) => n + b.step_up, 0),
        authFailures,
        partial: lo > lo0,
      };
    })
    .deferred();
}
