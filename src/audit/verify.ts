/**
 * `keygate audit verify`: walk the chain in sequence order and the signed checkpoints, and
 * report the first record that is modified, missing, inserted or out of order, and any
 * checkpoint that does not verify or does not match the chain.
 */
import type Database from 'better-sqlite3';
import { compactVerify, createLocalJWKSet, type JSONWebKeySet } from 'jose';
import { chainHash, GENESIS_HASH, type AuditRecord } from './record.js';
import { checkpointPayload, type CheckpointRow } from './sqlite-chain.js';

export interface VerifyResult {
  ok: boolean;
  records: number;
  checkpoints: number;
  firstSeq: number | null;
  lastSeq: number | null;
  /** The first problem found, if any. */
  problem?: { seq: number; what: string };
}

interface Row {
  seq: number;
  id: string;
  at: number;
  kind: string;
  body: string;
  prev_hash: string;
  hash: string;
}

export async function verifyChain(db: Database.Database, keys: JSONWebKeySet): Promise<VerifyResult> {
  const checkpoints = db.prepare('SELECT * FROM audit_checkpoints ORDER BY seq').all() as CheckpointRow[];
  const bySeq = new Map(checkpoints.map((c) => [c.seq, c]));
  const result: VerifyResult = { ok: true, records: 0, checkpoints: checkpoints.length, firstSeq: null, lastSeq: null };
  const fail = (seq: number, what: string): VerifyResult => ({ ...result, ok: false, problem: { seq, what } });

  let expectedSeq: number | null = null;
  let prev: string | null = null;
  for (const r of db
    .prepare('SELECT seq, id, at, kind, body, prev_hash, hash FROM audit_records ORDER BY seq')
    .iterate() as Iterable<Row>) {
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
    let record: AuditRecord;
    try {
      record = JSON.parse(r.body) as AuditRecord;
    } catch {
      return fail(r.seq, 'body is not JSON');
    }
    if (record.seq !== r.seq || record.id !== r.id || record.at !== r.at || record.kind !== r.kind) {
      return fail(r.seq, 'columns do not match the hashed body');
    }
    if (r.prev_hash !== prev || record.prevHash !== prev)
      return fail(r.seq, 'prev_hash does not link to the previous record');
    const { body, hash } = chainHash(record);
    if (body !== r.body || hash !== r.hash) return fail(r.seq, 'hash does not match the record (modified)');
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
