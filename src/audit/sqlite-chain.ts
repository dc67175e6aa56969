/**
 * The SQLite audit chain: its own database file (audit.db beside keygate.db), so that batch
 * commits (synchronous FULL) never contend with the store's writes. One writer per file: the
 * chain head lives in memory and is read back at start, so a restart continues the chain.
 * The file's `user_version` is the record format; a file of another format is refused.
 */
import { randomUUID } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { CompactSign, importJWK, type JWK } from 'jose';
import { type AuditEntry, canonicalJson, chainStep, encodeEntry, GENESIS_HASH, recordLine } from './record.js';

export const AUDIT_FORMAT = 2;

export const AUDIT_SCHEMA = `
  CREATE TABLE IF NOT EXISTS audit_records (
    seq        INTEGER PRIMARY KEY,
    at         INTEGER NOT NULL,
    kind       TEXT NOT NULL,
    actor_id   TEXT,
    action     TEXT,
    decision   TEXT,
    body       TEXT NOT NULL,   -- the record's canonical JSON (all but seq, prevHash and hash)
    hash       TEXT NOT NULL    -- SHA-256(previous hash, seq, body); the link is the previous row
  ) STRICT;
  -- Time → seq: the earliest and latest time in each block of 1,024 records. Times grow with
  -- seq (nearly: entries are stamped when queued), so a time range is a short seq range.
  CREATE TABLE IF NOT EXISTS audit_time_blocks (
    block  INTEGER PRIMARY KEY,  -- floor(seq / 1024)
    min_at INTEGER NOT NULL,
    max_at INTEGER NOT NULL
  ) STRICT;
  -- Per actor, built behind the writer in large sorted runs (see indexIfDue): an index updated
  -- on every commit costs a page write per distinct actor per batch.
  CREATE TABLE IF NOT EXISTS audit_actor_index (
    actor_id TEXT NOT NULL,
    seq      INTEGER NOT NULL,
    PRIMARY KEY (actor_id, seq)
  ) STRICT, WITHOUT ROWID;
  CREATE TABLE IF NOT EXISTS audit_meta (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
  ) STRICT;
  -- Signed checkpoints: a JWS (ES256) over {seq, hash, at} of the chain head.
  CREATE TABLE IF NOT EXISTS audit_checkpoints (
    seq  INTEGER PRIMARY KEY,
    hash TEXT NOT NULL,
    at   INTEGER NOT NULL,
    kid  TEXT NOT NULL,
    jws  TEXT NOT NULL
  ) STRICT;`;

/** Records per time block: block = floor(seq / BLOCK). */
export const BLOCK = 1024;

/** Rows per multi-row INSERT (8 columns each; SQLite allows 32,766 parameters). */
const CHUNK = 64;

/** A record ready for the chain: its body and the columns that queries filter on. */
export interface QueuedRecord {
  body: string;
  at: number;
  kind: string;
  actor: string | null;
  action: string | null;
  decision: string | null;
}

/** Encode an entry for the chain (the request thread does this; the writer only hashes). */
export function queued(e: AuditEntry, id: string = randomUUID()): QueuedRecord {
  const body = encodeEntry(e, id);
  // The body is built by concatenation: a tree of dozens of string pieces. Reading one character
  // makes V8 flatten it into one string now, while it is young; kept as a tree in a long queue it
  // costs the garbage collector on every pass and is flattened later anyway (to be sent to the
  // writer thread and hashed). Measured: 39,000 → 60,000 records/s through AuditLog.
  body.charCodeAt(0);
  return {
    body,
    at: e.at,
    kind: e.kind,
    actor: e.actor.id ?? null,
    action: e.request?.action ?? null,
    decision: e.decision?.effect ?? null,
  };
}

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
  // Its folder may not exist yet (a store elsewhere, in PostgreSQL, did not create dataDir).
  if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const db = new Database(path);
  db.pragma(`busy_timeout = ${Math.floor(busyTimeoutMs)}`);
  db.pragma('journal_mode = WAL');
  // Every batch commit is durable (fsync), whatever the store's own setting.
  db.pragma('synchronous = FULL');
  const version = db.pragma('user_version', { simple: true }) as number;
  const hasRecords = db.prepare("SELECT 1 FROM sqlite_master WHERE name = 'audit_records'").get() !== undefined;
  if (version !== AUDIT_FORMAT && (hasRecords || version > AUDIT_FORMAT)) {
    db.close();
    throw new Error(
      `${path} holds an audit log in format ${version}, this Keygate writes format ${AUDIT_FORMAT}: ` +
        'verify and export it with the Keygate that wrote it, then move it aside',
    );
  }
  db.exec(AUDIT_SCHEMA);
  if (version !== AUDIT_FORMAT) db.pragma(`user_version = ${AUDIT_FORMAT}`);
  return db;
}

/** How far behind the writer the actor index may fall before it is brought up to date. */
export interface IndexPolicy {
  /** Records not yet indexed that trigger an index run after a commit. */
  every: number;
  /** Longest a record stays unindexed (checked after commits and by `indexIfDue`). */
  maxLagMs: number;
}

export const DEFAULT_INDEX_POLICY: IndexPolicy = { every: 16_384, maxLagMs: 2_000 };

export class SqliteChain {
  private head: ChainHead;
  private indexedThrough: number;
  /** When the oldest unindexed record was committed (0: none waiting). */
  private unindexedSince = 0;
  private readonly insert: Database.Statement;
  /** One statement for CHUNK rows: fewer statement runs per batch. */
  private readonly insertChunk: Database.Statement;
  private readonly insertCheckpoint: Database.Statement;
  private readonly indexRange: Database.Statement;
  private readonly setIndexed: Database.Statement;
  private readonly widenBlock: Database.Statement;
  private readonly findAnchor: Database.Statement;
  private readonly firstSeq: Database.Statement;
  private readonly actorsIn: Database.Statement;
  private readonly unindexActor: Database.Statement;
  private readonly deleteRecords: Database.Statement;
  private readonly deleteBlocks: Database.Statement;
  private readonly deleteCheckpoints: Database.Statement;
  private tail: Promise<unknown> = Promise.resolve();
  /** Committed records as JSON lines, for the sinks (set only when there are sinks). */
  onCommit: ((lines: string[]) => void) | undefined;
  /** Failures after a commit (index, sinks): reported, never failing the committed batch. */
  onError: (e: unknown) => void = () => {};

  constructor(
    private readonly db: Database.Database,
    private readonly checkpoint: { every: number; everyMs: number; sign: CheckpointSigner | undefined },
    private readonly now: () => number = Date.now,
    private readonly indexPolicy: IndexPolicy = DEFAULT_INDEX_POLICY,
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
    this.indexedThrough = auditMeta(db, 'indexed_through');
    if (this.indexedThrough < this.head.seq) this.unindexedSince = this.now();
    const columns = 'INSERT INTO audit_records (seq, at, kind, actor_id, action, decision, body, hash) VALUES ';
    const one = '(?, ?, ?, ?, ?, ?, ?, ?)';
    this.insert = db.prepare(columns + one);
    this.insertChunk = db.prepare(columns + Array.from({ length: CHUNK }, () => one).join(', '));
    this.insertCheckpoint = db.prepare(
      'INSERT INTO audit_checkpoints (seq, hash, at, kid, jws) VALUES (?, ?, ?, ?, ?)',
    );
    // Sorted by the index key, so each index page is written once per run.
    this.indexRange = db.prepare(
      `INSERT OR IGNORE INTO audit_actor_index (actor_id, seq)
         SELECT actor_id, seq FROM audit_records
          WHERE seq > ? AND seq <= ? AND actor_id IS NOT NULL
          ORDER BY actor_id, seq`,
    );
    this.widenBlock = db.prepare(
      `INSERT INTO audit_time_blocks (block, min_at, max_at) VALUES (?, ?, ?)
         ON CONFLICT (block) DO UPDATE SET min_at = min(min_at, excluded.min_at), max_at = max(max_at, excluded.max_at)`,
    );
    this.findAnchor = db.prepare(
      'SELECT seq FROM audit_checkpoints WHERE at < ? AND seq < ? ORDER BY seq DESC LIMIT 1',
    );
    this.firstSeq = db.prepare('SELECT min(seq) AS s FROM audit_records');
    this.actorsIn = db.prepare(
      'SELECT DISTINCT actor_id FROM audit_records WHERE seq BETWEEN ? AND ? AND actor_id IS NOT NULL',
    );
    this.unindexActor = db.prepare('DELETE FROM audit_actor_index WHERE actor_id = ? AND seq <= ?');
    this.deleteRecords = db.prepare('DELETE FROM audit_records WHERE seq BETWEEN ? AND ?');
    // Blocks wholly before the slice's end (block b holds seqs b·1024 … b·1024 + 1023).
    this.deleteBlocks = db.prepare('DELETE FROM audit_time_blocks WHERE block < ?');
    this.deleteCheckpoints = db.prepare('DELETE FROM audit_checkpoints WHERE seq < ?');
    this.setIndexed = db.prepare(
      "INSERT INTO audit_meta (key, value) VALUES ('indexed_through', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    );
  }

  get current(): Readonly<ChainHead> {
    return this.head;
  }

  /** The last seq the actor index covers; records after it are found by scanning. */
  get actorIndexedThrough(): number {
    return this.indexedThrough;
  }

  /**
   * Chain and commit a batch in one durable transaction (with a checkpoint when one is due).
   * Returns the last sequence number written. On failure nothing is written and the head is
   * unchanged, so the same batch can be retried.
   */
  append(records: readonly QueuedRecord[]): Promise<number> {
    return this.serial(() => this.appendNow(records));
  }

  /** One chain operation at a time: an append awaits its checkpoint signature mid-way. */
  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.tail.then(fn, fn);
    this.tail = run.catch(() => undefined);
    return run;
  }

  private async appendNow(records: readonly QueuedRecord[]): Promise<number> {
    if (records.length === 0) return this.head.seq;
    let seq = this.head.seq;
    let prev = this.head.hash;
    const lines: string[] | undefined = this.onCommit === undefined ? undefined : [];
    const args: unknown[] = new Array(records.length * 8);
    // The time span of each 1,024-record block this batch writes into.
    const blocks: [block: number, min: number, max: number][] = [];
    let j = 0;
    for (const r of records) {
      seq++;
      const b = blocks.at(-1);
      const block = Math.floor(seq / BLOCK);
      if (b === undefined || b[0] !== block) blocks.push([block, r.at, r.at]);
      else if (r.at < b[1]) b[1] = r.at;
      else if (r.at > b[2]) b[2] = r.at;
      const hash = chainStep(prev, seq, r.body);
      if (lines !== undefined) lines.push(recordLine(seq, prev, hash, r.body));
      prev = hash;
      args[j++] = seq;
      args[j++] = r.at;
      args[j++] = r.kind;
      args[j++] = r.actor;
      args[j++] = r.action;
      args[j++] = r.decision;
      args[j++] = r.body;
      args[j++] = prev;
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
      const n = records.length;
      let i = 0;
      for (; i + CHUNK <= n; i += CHUNK) this.insertChunk.run(...args.slice(i * 8, (i + CHUNK) * 8));
      for (; i < n; i++) this.insert.run(...args.slice(i * 8, i * 8 + 8));
      for (const b of blocks) this.widenBlock.run(b[0], b[1], b[2]);
      if (cp) this.insertCheckpoint.run(cp.seq, cp.hash, cp.at, cp.kid, cp.jws);
    })();
    this.head = {
      seq,
      hash: prev,
      checkpointSeq: cp ? cp.seq : this.head.checkpointSeq,
      checkpointAt: cp ? cp.at : this.head.checkpointAt,
    };
    // Committed: from here on nothing may fail the append (a retry would write the batch twice).
    if (lines !== undefined) this.afterCommit(() => this.onCommit?.(lines));
    if (this.unindexedSince === 0) this.unindexedSince = now;
    this.afterCommit(() => this.indexIfDue(now));
    return seq;
  }

  private afterCommit(fn: () => void): void {
    try {
      fn();
    } catch (e) {
      this.onError(e);
    }
  }

  /**
   * Retention: remove records stamped before `cutoff`, up to the newest signed checkpoint that
   * was written before the cutoff and is not the head. That checkpoint stays and anchors the
   * new start (verify checks the first remaining record against it), and at least one record
   * always remains after it. Deletes in slices, one transaction each, so batches are not held
   * up for long; ends with an `audit.pruned` record. Returns what was removed, or null.
   */
  async prune(cutoff: number, slice = 20_000): Promise<{ through: number; removed: number } | null> {
    const anchor = await this.serial(async () => {
      const a = this.findAnchor.get(cutoff, this.head.seq) as { seq: number } | undefined;
      const first = this.firstSeq.get() as { s: number | null };
      return a === undefined || first.s === null || first.s > a.seq ? null : { through: a.seq, from: first.s };
    });
    if (anchor === null) return null;
    let removed = 0;
    for (let lo = anchor.from; lo <= anchor.through; lo += slice) {
      const hi = Math.min(anchor.through, lo + slice - 1);
      removed += await this.serial(async () => {
        let n = 0;
        this.db.transaction(() => {
          // The actor index, actor by actor (its key starts with the actor).
          for (const r of this.actorsIn.all(lo, hi) as { actor_id: string }[]) this.unindexActor.run(r.actor_id, hi);
          n = this.deleteRecords.run(lo, hi).changes;
          this.deleteBlocks.run(Math.floor((hi + 1) / BLOCK));
          this.deleteCheckpoints.run(anchor.through);
        })();
        return n;
      });
    }
    await this.append([
      queued({
        kind: 'audit.pruned',
        at: this.now(),
        actor: { type: 'system' },
        detail: { through: anchor.through, removed, cutoff },
        outcome: 'success',
      }),
    ]);
    return { through: anchor.through, removed };
  }

  /** Bring the actor index up to date when enough records, or old enough ones, wait for it. */
  indexIfDue(now: number = this.now()): void {
    const waiting = this.head.seq - this.indexedThrough;
    if (waiting <= 0) return;
    if (waiting < this.indexPolicy.every && now - this.unindexedSince < this.indexPolicy.maxLagMs) return;
    const through = this.head.seq;
    this.db.transaction(() => {
      this.indexRange.run(this.indexedThrough, through);
      this.setIndexed.run(through);
    })();
    this.indexedThrough = through;
    this.unindexedSince = 0;
  }
}

/** An integer kept in audit_meta (0 when unset). */
export function auditMeta(db: Database.Database, key: string): number {
  const row = db.prepare('SELECT value FROM audit_meta WHERE key = ?').get(key) as { value: number } | undefined;
  return row?.value ?? 0;
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
