/**
 * Audit records and the hash chain (DESIGN §8). A record's `hash` is SHA-256 over the previous
 * record's hash and the record's canonical JSON (every field except `hash`, keys sorted — for
 * the strings, integers, booleans and nulls records hold this is RFC 8785's form). Changing,
 * removing, inserting or reordering any record changes every hash after it.
 */
import { createHash } from 'node:crypto';
import type { AuditKind } from './catalogue.js';

/** The hash before the first record. */
export const GENESIS_HASH = '0'.repeat(64);

export interface AuditActor {
  type: 'user' | 'service_principal' | 'agent' | 'anonymous' | 'system';
  id?: string;
  email?: string;
  /** The authentication event behind the action: a ceremony, or a token issuance. */
  authEventId?: string;
  method?: string;
  credentialId?: string;
  aaguid?: string;
  authenticator?: string;
  uv?: boolean;
  /** Epoch ms of that authentication. */
  authTime?: number;
  sessionId?: string;
  tokenId?: string;
  deviceBound?: boolean;
  /** Service principals: the secret id or federation trust used. */
  via?: string;
}

export interface AuditRequest {
  method: string;
  path: string;
  action?: string;
  resource?: string;
  ip: string;
  userAgent?: string;
  requestId?: string;
}

/** What the caller hands the audit log; id, seq and hashes are added by the writer. */
export interface AuditEntry {
  kind: AuditKind;
  /** Epoch ms. */
  at: number;
  actor: AuditActor;
  request?: AuditRequest;
  decision?: { effect: 'allow' | 'deny' | 'step_up' | 'error'; reasons: string[] };
  upstream?: { name: string; status: number; latencyMs: number; bytes: number };
  /** The HTTP status Keygate answered (proxied requests). */
  status?: number;
  outcome?: 'success' | 'failure';
  reason?: string;
  /** Kind-specific facts (never secrets). */
  detail?: Record<string, string | number | boolean | null>;
}

export interface AuditRecord extends AuditEntry {
  id: string;
  seq: number;
  prevHash: string;
}

export interface ChainedRecord extends AuditRecord {
  hash: string;
}

/** JSON with object keys sorted at every level, and undefined members dropped. */
export function canonicalJson(v: unknown): string {
  if (v === null || typeof v !== 'object') return JSON.stringify(v);
  if (Array.isArray(v)) {
    let out = '[';
    for (let i = 0; i < v.length; i++) {
      if (i > 0) out += ',';
      out += v[i] === undefined ? 'null' : canonicalJson(v[i]);
    }
    return `${out}]`;
  }
  const o = v as Record<string, unknown>;
  const keys = Object.keys(o).sort();
  let out = '{';
  let first = true;
  for (const k of keys) {
    const x = o[k];
    if (x === undefined) continue;
    if (!first) out += ',';
    first = false;
    out += `${JSON.stringify(k)}:${canonicalJson(x)}`;
  }
  return `${out}}`;
}

/** The chain step: hash = SHA-256(prev_hash ‖ canonical JSON of the record without its hash). */
export function chainHash(record: AuditRecord): { body: string; hash: string } {
  const body = canonicalJson(record);
  const hash = createHash('sha256').update(record.prevHash).update('\n').update(body).digest('hex');
  return { body, hash };
}
