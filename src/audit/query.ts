/**
 * Reading the audit log: records by filter, in chain (seq) order, a page at a time with an
 * opaque cursor; and whole time ranges for export. A time range becomes a seq range through the
 * per-block time spans the writer keeps; an actor's records come from the actor index plus a
 * scan of what it does not cover yet. Every page does bounded work: at most `maxScan` candidate
 * rows are examined, so a filter that matches rarely returns a short (even empty) page with a
 * cursor to continue from, never a long stall.
 */
import type Database from 'better-sqlite3';
import { GENESIS_HASH, recordLine } from './record.js';
import { auditMeta, BLOCK } from './sqlite-chain.js';

export interface AuditFilter {
  actor?: string;
  kind?: string;
  action?: string;
  decision?: string;
  /** Epoch ms, inclusive. */
  since?: number;
  /** Epoch ms, exclusive. */
  until?: number;
}

export interface AuditPage {
  /** Each record as one JSON line: seq, prevHash and hash, then the hashed body's members. */
  lines: string[];
  /** Pass back as `cursor` for the next page; null when the range is exhausted. */
  next: string | null;
}

export class BadCursorError extends Error {}

/** The cursor names the last seq looked at. */
export function encodeCursor(seq: number): string {
  return Buffer.from(`s${seq}`).toString('base64url');
}

export function decodeCursor(c: string): number {
  const m = c.length <= 32 ? /^s(\d{1,15})$/.exec(Buffer.from(c, 'base64url').toString()) : null;
  if (m === null) throw new BadCursorError('cursor is not one this server issued');
  return Number(m[1]);
}

interface Candidate {
  seq: number;
  at: number;
  kind: string;
  actor_id: string | null;
  action: string | null;
  decision: string | null;
}

const CANDIDATE = 'seq, at, kind, actor_id, action, decision';

function prepare(db: Database.Database) {
  return {
    firstBlock: db.prepare('SELECT min(block) AS b FROM audit_time_blocks WHERE max_at >= ?'),
    lastBlock: db.prepare('SELECT max(block) AS b FROM audit_time_blocks WHERE min_at < ?'),
    bySeq: db.prepare(`SELECT ${CANDIDATE} FROM audit_records WHERE seq > ? AND seq <= ? ORDER BY seq`),
    byActor: db.prepare('SELECT seq FROM audit_actor_index WHERE actor_id = ? AND seq > ? AND seq <= ? ORDER BY seq'),
    unindexed: db.prepare(
      `SELECT ${CANDIDATE} FROM audit_records WHERE seq > ? AND seq <= ? AND actor_id = ? ORDER BY seq`,
    ),
    row: db.prepare(`SELECT ${CANDIDATE} FROM audit_records WHERE seq = ?`),
    full: db.prepare(
      `SELECT r.seq, r.body, r.hash,
              COALESCE(p.hash, (SELECT c.hash FROM audit_checkpoints c WHERE c.seq = r.seq - 1)) AS prev
         FROM audit_records r LEFT JOIN audit_records p ON p.seq = r.seq - 1
        WHERE r.seq = ?`,
    ),
  };
}

/** Prepared statements per connection. */
const prepared = new WeakMap<Database.Database, ReturnType<typeof prepare>>();
function statements(db: Database.Database): ReturnType<typeof prepare> {
  let s = prepared.get(db);
  if (s === undefined) {
    s = prepare(db);
    prepared.set(db, s);
  }
  return s;
}

/** A record as its JSON line, with the hash before it (previous record, anchor checkpoint, genesis). */
export function lineAt(db: Database.Database, seq: number): string {
  const r = statements(db).full.get(seq) as { seq: number; body: string; hash: string; prev: string | null };
  return recordLine(r.seq, r.prev ?? (seq === 1 ? GENESIS_HASH : ''), r.hash, r.body);
}

/** The seq range (lo, hi] that can hold records with since ≤ at < until. */
function seqRange(db: Database.Database, since: number | undefined, until: number | undefined): [number, number] {
  const s = statements(db);
  const first = since === undefined ? null : (s.firstBlock.get(since) as { b: number | null }).b;
  const last = until === undefined ? null : (s.lastBlock.get(until) as { b: number | null }).b;
  if ((since !== undefined && first === null) || (until !== undefined && last === null)) return [0, 0];
  const lo = first === null ? 0 : first * BLOCK - 1;
  const hi = last === null ? Number.MAX_SAFE_INTEGER : (last + 1) * BLOCK - 1;
  return [Math.max(0, lo), hi];
}

function matches(c: Candidate, f: AuditFilter): boolean {
  return (
    (f.since === undefined || c.at >= f.since) &&
    (f.until === undefined || c.at < f.until) &&
    (f.kind === undefined || c.kind === f.kind) &&
    (f.action === undefined || c.action === f.action) &&
    (f.decision === undefined || c.decision === f.decision) &&
    (f.actor === undefined || c.actor_id === f.actor)
  );
}

/** An actor's candidates in seq order: from the actor index, then by scanning what it does not cover. */
function* actorCandidates(db: Database.Database, actor: string, lo: number, hi: number): Generator<Candidate> {
  const s = statements(db);
  const indexed = auditMeta(db, 'indexed_through');
  for (const i of s.byActor.iterate(actor, lo, Math.min(hi, indexed)) as Iterable<{ seq: number }>) {
    const c = s.row.get(i.seq) as Candidate | undefined;
    if (c !== undefined) yield c;
  }
  if (hi > indexed) yield* s.unindexed.iterate(Math.max(lo, indexed), hi, actor) as Iterable<Candidate>;
}

/** One page of records matching `f`, after `cursor`. */
export function queryAudit(
  db: Database.Database,
  f: AuditFilter,
  o: { limit: number; cursor?: string; maxScan?: number },
): AuditPage {
  const maxScan = o.maxScan ?? 100_000;
  // One read transaction: every statement sees the same snapshot of the log.
  return db
    .transaction((): AuditPage => {
      const [lo0, hi] = seqRange(db, f.since, f.until);
      const lo = o.cursor === undefined ? lo0 : Math.max(lo0, decodeCursor(o.cursor));
      const lines: string[] = [];
      let scanned = 0;
      let last = lo;
      const candidates =
        f.actor === undefined
          ? (statements(db).bySeq.iterate(lo, hi) as Iterable<Candidate>)
          : actorCandidates(db, f.actor, lo, hi);
      for (const c of candidates) {
        // A full page, or the work bound: continue after the last row looked at.
        if (lines.length >= o.limit || scanned >= maxScan) return { lines, next: encodeCursor(last) };
        scanned++;
        last = c.seq;
        if (matches(c, f)) lines.push(lineAt(db, c.seq));
      }
      return { lines, next: null };
    })
    .deferred();
}

/** Every record with since ≤ at < until, in chain order, each as its JSON line. */
export function* exportRange(db: Database.Database, since?: number, until?: number): Generator<string> {
  const [lo, hi] = seqRange(db, since, until);
  const stmt = db.prepare('SELECT seq, at, body, hash FROM audit_records WHERE seq > ? AND seq <= ? ORDER BY seq');
  let prev: string | null = null;
  let prevSeq = -1;
  for (const r of stmt.iterate(lo, hi) as Iterable<{ seq: number; at: number; body: string; hash: string }>) {
    if ((since === undefined || r.at >= since) && (until === undefined || r.at < until)) {
      // Consecutive rows link to each other; otherwise look the previous hash up.
      yield r.seq === prevSeq + 1 && prev !== null ? recordLine(r.seq, prev, r.hash, r.body) : lineAt(db, r.seq);
    }
    prev = r.hash;
    prevSeq = r.seq;
  }
}

/** Every record after `seq`, in chain order, each as its JSON line (a sink catching up). */
export function* linesAfter(db: Database.Database, seq: number): Generator<string> {
  let prev: string | null = null;
  for (const r of db
    .prepare('SELECT seq, body, hash FROM audit_records WHERE seq > ? ORDER BY seq')
    .iterate(seq) as Iterable<{ seq: number; body: string; hash: string }>) {
    yield prev === null ? lineAt(db, r.seq) : recordLine(r.seq, prev, r.hash, r.body);
    prev = r.hash;
  }
}
