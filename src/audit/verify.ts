/**
 * `keygate audit verify`: walk the chain in sequence order and the signed checkpoints, and
 * report the first record that is modified, missing, inserted or out of order, and any
 * checkpoint that does not verify or does not match the chain.
 */
import type Database from 'better-sqlite3';
import { compactVerify, createLocalJWKSet, type JSONWebKeySet } from 'jose';
import { type AuditEntry, chainStep, GENESIS_HASH } from './record.js';
import { type CheckpointRow, checkpointPayload } from './sqlite-chain.js';

export interface VerifyResult {
  ok: boolean;
  records: number;
  checkpoints: number;
  firstSeq: number | null;
  lastSeq: number | null;
  /** The first problem found, if any. */
  problem?: { seq: number; what: string };
}

export interface Row {
  seq: number;
  at: number;
  kind: string;
  actor_id: string | null;
  action: string | null;
  decision: string | null;
  body: string;
  hash: string;
}

/** Where a chain is read from: the SQLite file, or PostgreSQL (pg-chain.ts). */
export interface ChainSource {
  checkpoints(): Promise<CheckpointRow[]>;
  /** Every record in seq order, a page at a time. */
  pages(): AsyncIterable<Row[]>;
}

/** Rows per page when walking a chain. */
export const VERIFY_PAGE = 10_000;

/** The SQLite file as a chain source (keyset pages: no statement stays open between pages). */
export function sqliteSource(db: Database.Database): ChainSource {
  return {
    checkpoints: async () => db.prepare('SELECT * FROM audit_checkpoints ORDER BY seq').all() as CheckpointRow[],
    async *pages() {
      const page = db.prepare(
        'SELECT seq, at, kind, actor_id, action, decision, body, hash FROM audit_records WHERE seq > ? ORDER BY seq LIMIT ?',
      );
      for (let after = -1; ; ) {
        const rows = page.all(after, VERIFY_PAGE) as Row[];
        if (rows.length === 0) return;
        yield rows;
        after = (rows.at(-1) as Row).seq;
      }
    },
  };
}

export function verifyChain(db: Database.Database, keys: JSONWebKeySet): Promise<VerifyResult> {
  return verifySource(sqliteSource(db), keys);
}

export async function verifySource(source: ChainSource, keys: JSONWebKeySet): Promise<VerifyResult> {
  const checkpoints = await source.checkpoints();
  const bySeq = new Map(checkpoints.map((c) => [c.seq, c]));
  const result: VerifyResult = { ok: true, records: 0, checkpoints: checkpoints.length, firstSeq: null, lastSeq: null };
  const fail = (seq: number, what: string): VerifyResult => ({ ...result, ok: false, problem: { seq, what } });

  let expectedSeq: number | null = null;
  let prev = '';
  for await (const page of source.pages())
    for (const r of page) {
      if (expectedSeq === null) {
        // The chain starts at 1 from the genesis hash, or (after pruning) where a checkpoint anchors it.
        const anchor = r.seq === 1 ? GENESIS_HASH : bySeq.get(r.seq - 1)?.hash;
        if (anchor === undefined)
          return fail(r.seq, `records before ${r.seq} are missing and no checkpoint anchors the start`);
        prev = anchor;
        result.firstSeq = r.seq;
      } else if (r.seq !== expectedSeq) {
        return fail(expectedSeq, `record ${expectedSeq} is missing (next is ${r.seq})`);
      }
      // The link: this hash covers the previous one, this seq and these exact bytes.
      if (chainStep(prev, r.seq, r.body) !== r.hash) {
        return fail(r.seq, 'hash does not match the record and the one before it (modified, inserted or moved)');
      }
      // The columns queries filter on are not hashed: they must say what the hashed body says.
      let e: AuditEntry;
      try {
        e = JSON.parse(r.body) as AuditEntry;
      } catch {
        return fail(r.seq, 'body is not JSON');
      }
      if (
        e.at !== r.at ||
        e.kind !== r.kind ||
        (e.actor?.id ?? null) !== r.actor_id ||
        (e.request?.action ?? null) !== r.action ||
        (e.decision?.effect ?? null) !== r.decision
      ) {
        return fail(r.seq, 'columns do not match the hashed body');
      }
      const cp = bySeq.get(r.seq);
      if (cp !== undefined && cp.hash !== r.hash) return fail(r.seq, 'checkpoint names another hash for this record');
      prev = r.hash;
      expectedSeq = r.seq + 1;
      result.records++;
      result.lastSeq = r.seq;
    }

  // Every checkpoint: a valid signature by an audit key, over what it claims.
  const jwks = createLocalJWKSet(keys);
  for (const c of checkpoints) {
    // A checkpoint beyond the last record: records were cut from the end. (Pruning always
    // leaves at least one record after the checkpoint that anchors the new start.)
    if (result.lastSeq === null || c.seq > result.lastSeq) {
      return fail(
        c.seq,
        `checkpoint at ${c.seq} is beyond the last record (${result.lastSeq ?? 'none'}): records were removed`,
      );
    }
    try {
      const v = await compactVerify(c.jws, jwks, { algorithms: ['ES256'] });
      if (new TextDecoder().decode(v.payload) !== checkpointPayload(c))
        return fail(c.seq, 'checkpoint signature is over other values');
    } catch {
      return fail(c.seq, 'checkpoint signature does not verify');
    }
  }
  return result;
}
