/**
 * The SQLite audit chain: its own database file (audit.db beside keygate.db), so that batch
 * commits (synchronous FULL) never contend with the store's writes. One writer per file: the
 * chain head lives in memory and is read back at start, so a restart continues the chain.
 */
import { randomUUID } from 'node:crypto';
import Database from 'better-sqlite3';
import { CompactSign, type JWK, importJWK } from 'jose';
import { type AuditEntry, type AuditRecord, canonicalJson, chainHash, GENESIS_HASH } from './record.js';

export const AUDIT_SCHEMA = `
  CREATE TABLE IF NOT EXISTS audit_records (
    seq        INTEGER PRIMARY KEY,
    id         TEXT NOT NULL,           -- a UUID; not indexed (every index costs each write)
    at         INTEGER NOT NULL,
    kind       TEXT NOT NULL,
    actor_id   TEXT,
    action     TEXT,
    decision   TEXT,
    body       TEXT NOT NULL,   -- the record's canonical JSON (everything but its hash)
    prev_hash  TEXT NOT NULL,
    hash       TEXT NOT NULL
  ) STRICT;
  CREATE INDEX IF NOT EXISTS audit_records_actor ON audit_records (actor_id, at);
  CREATE INDEX IF NOT EXISTS audit_records_kind ON audit_records (kind, at);
  -- Signed checkpoints: a JWS (ES256) over {seq, hash, at} of the chain head.
  CREATE TABLE IF NOT EXISTS audit_checkpoints (
    seq  INTEGER PRIMARY KEY,
    hash TEXT NOT NULL,
    at   INTEGER NOT NULL,
    kid  TEXT NOT NULL,
    jws  TEXT NOT NULL
  ) STRICT;`;

/** Rows per multi-row INSERT (10 columns each; SQLite allows 32,766 parameters). */
const CHUNK = 50;

export interface ChainHead {
  seq: number;
  hash: string;
  /** Seq and time of the last checkpoint. */
  checkpointSeq: number;
  checkpointAt: number;
}

export interface CheckpointRow {
  seq: number;
  hash: string;
  at: number;
  kid: string;
  jws: string;
}

export type CheckpointSigner = (payload: {
  seq: number;
  hash: string;
  at: number;
}) => Promise<{ kid: string; jws: string }>;

export function openAuditDb(path: string, busyTimeoutMs = 5_000): Database.Database {
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  // Every batch commit is durable (fsync), whatever the store's own setting.
  db.pragma('synchronous = FULL');
  db.pragma(`busy_timeout = ${Math.floor(busyTimeoutMs)}`);
  db.exec(AUDIT_SCHEMA);
  return db;
}

export class SqliteChain {
  private head: ChainHead;
  private readonly insert: Database.Statement;
  /** One statement for CHUNK rows: fewer statement runs per batch. */
  private readonly insertChunk: Database.Statement;
  private readonly insertCheckpoint: Database.Statement;

  constructor(
    private readonly db: Database.Database,
    private readonly checkpoint: { every: number; everyMs: number; sign: CheckpointSigner | undefined },
    private readonly now: () => number = Date.now,
  ) {
    const last = db.prepare('SELECT seq, hash FROM audit_records ORDER BY seq DESC LIMIT 1').get() as
      | { seq: number; hash: string }
      | undefined;
    const cp = db.prepare('SELECT seq, at FROM audit_checkpoints ORDER BY seq DESC LIMIT 1').get() as
      | { seq: number; at: number }
      | undefined;
    this.head = {
      seq: last?.seq ?? 0,
      hash: last?.hash ?? GENESIS_HASH,
      checkpointSeq: cp?.seq ?? 0,
      checkpointAt: cp?.at ?? this.now(),
    };
    const columns = 'INSERT INTO audit_records (seq, id, at, kind, actor_id, action, decision, body, prev_hash, hash) VALUES ';
    const one = '(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)';
    this.insert = db.prepare(columns + one);
    this.insertChunk = db.prepare(columns + Array.from({ length: CHUNK }, () => one).join(', '));
    this.insertCheckpoint = db.prepare(
      'INSERT INTO audit_checkpoints (seq, hash, at, kid, jws) VALUES (?, ?, ?, ?, ?)',
    );
  }

  get current(): Readonly<ChainHead> {
    return this.head;
  }

  /**
   * Chain and commit a batch in one durable transaction (with a checkpoint when one is due).
   * Returns the last sequence number written. On failure nothing is written and the head is
   * unchanged, so the same batch can be retried.
   */
  async append(entries: readonly (AuditEntry & { id?: string })[]): Promise<number> {
    if (entries.length === 0) return this.head.seq;
    let seq = this.head.seq;
    let prev = this.head.hash;
    const rows: unknown[][] = [];
    for (const e of entries) {
      seq++;
      const record: AuditRecord = { ...e, id: e.id ?? randomUUID(), seq, prevHash: prev };
      const { body, hash } = chainHash(record);
      rows.push([
        seq,
        record.id,
        record.at,
        record.kind,
        record.actor.id ?? null,
        record.request?.action ?? null,
        record.decision?.effect ?? null,
        body,
        prev,
        hash,
      ]);
      prev = hash;
    }
    const now = this.now();
    const due =
      this.checkpoint.sign !== undefined &&
      (seq - this.head.checkpointSeq >= this.checkpoint.every ||
        now - this.head.checkpointAt >= this.checkpoint.everyMs);
    const cp = due
      ? {
          seq,
          hash: prev,
          at: now,
          ...(await (this.checkpoint.sign as CheckpointSigner)({ seq, hash: prev, at: now })),
        }
      : undefined;
    this.db.transaction(() => {
      let i = 0;
      for (; i + CHUNK <= rows.length; i += CHUNK) this.insertChunk.run(...rows.slice(i, i + CHUNK).flat());
      for (; i < rows.length; i++) this.insert.run(...(rows[i] as unknown[]));
      if (cp) this.insertCheckpoint.run(cp.seq, cp.hash, cp.at, cp.kid, cp.jws);
    })();
    this.head = {
      seq,
      hash: prev,
      checkpointSeq: cp ? cp.seq : this.head.checkpointSeq,
      checkpointAt: cp ? cp.at : this.head.checkpointAt,
    };
    return seq;
  }
}

/** The payload a checkpoint signs. */
export function checkpointPayload(p: { seq: number; hash: string; at: number }): string {
  return canonicalJson({ at: p.at, hash: p.hash, seq: p.seq, typ: 'keygate-audit-checkpoint' });
}

/** An ES256 checkpoint signer for a private JWK (undefined key: no checkpoints). */
export async function signerFor(key: { kid: string; jwk: JWK } | null): Promise<CheckpointSigner | undefined> {
  if (key === null) return undefined;
  const k = await importJWK(key.jwk, 'ES256');
  return async (p) => ({
    kid: key.kid,
    jws: await new CompactSign(new TextEncoder().encode(checkpointPayload(p)))
      .setProtectedHeader({ alg: 'ES256', kid: key.kid, typ: 'keygate-audit-checkpoint+jws' })
      .sign(k),
  });
}
