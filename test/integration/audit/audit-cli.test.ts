/** `keygate audit export` and `tail` on an audit log written by the chain itself. */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fromOcsf } from '../../../src/audit/ocsf.js';
import { type AuditEntry, type AuditRecord, type ChainedRecord, chainHash } from '../../../src/audit/record.js';
import { openAuditDb, queued, SqliteChain } from '../../../src/audit/sqlite-chain.js';
import { auditExport, auditTail } from '../../../src/cli/commands/audit.js';
import type { Output } from '../../../src/cli/output.js';

let dir: string;
let config: string;
const T0 = Date.UTC(2026, 10, 28, 12);

function capture(): Output & { lines: string[]; errors: string[] } {
  const lines: string[] = [];
  const errors: string[] = [];
  return { lines, errors, out: (l) => lines.push(l), err: (l) => errors.push(l) };
}

const entry = (i: number): AuditEntry => ({
  kind: i % 3 === 0 ? 'auth.login' : 'http.request',
  at: T0 + i * 60_000,
  actor: { type: 'user', id: i % 2 === 0 ? 'alice' : 'bob' },
  request: { method: 'GET', path: `/p/${i}`, ip: '127.0.0.1', ...(i % 5 === 0 ? { action: 'serving:invoke' } : {}) },
  ...(i % 5 === 0 ? { decision: { effect: i % 2 === 0 ? 'allow' : 'deny', reasons: [] } } : {}),
  status: 200,
});

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'kg-audit-cli-'));
  config = join(dir, 'keygate.yaml');
  writeFileSync(config, `dataDir: ${dir}\n`);
  const db = openAuditDb(join(dir, 'audit.db'));
  await new SqliteChain(db, { every: 1000, everyMs: 3_600_000, sign: undefined }).append(
    Array.from({ length: 30 }, (_, i) => queued(entry(i))),
  );
  db.close();
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('keygate audit export', () => {
  it('JSON Lines round-trip: each line is the hashed record plus its hash, and the chain re-checks from the export alone', async () => {
    const o = capture();
    expect(await auditExport({ config, format: 'jsonl' }, o)).toBe(0);
    expect(o.lines).toHaveLength(30);
    let prev = '0'.repeat(64);
    for (const l of o.lines) {
      const { hash, ...record } = JSON.parse(l) as AuditRecord & { hash: string };
      expect(record.prevHash).toBe(prev);
      expect(chainHash(record).hash).toBe(hash);
      prev = hash;
    }
  });

  it('OCSF round-trip: each event carries its record, and the chain re-checks from the OCSF export alone', async () => {
    const jsonl = capture();
    await auditExport({ config, format: 'jsonl' }, jsonl);
    const o = capture();
    expect(await auditExport({ config, format: 'ocsf' }, o)).toBe(0);
    expect(o.lines).toHaveLength(30);
    let prev = '0'.repeat(64);
    o.lines.forEach((l, i) => {
      const event = JSON.parse(l) as { class_uid: number; metadata: { sequence: number } };
      const record = fromOcsf(event);
      // The same record as the JSON Lines export, member for member.
      expect(record).toEqual(JSON.parse(jsonl.lines[i] as string) as ChainedRecord);
      expect(event.metadata.sequence).toBe(record.seq);
      expect(event.class_uid).toBe(record.kind === 'auth.login' ? 3002 : 6003);
      expect(record.prevHash).toBe(prev);
      expect(chainHash(record).hash).toBe(record.hash);
      prev = record.hash;
    });
  });

  it('--since (inclusive) and --until (exclusive) select a time range; bad times and formats are refused', async () => {
    const o = capture();
    await auditExport(
      { config, format: 'jsonl', since: new Date(T0 + 10 * 60_000).toISOString(), until: String(T0 + 20 * 60_000) },
      o,
    );
    expect(o.lines.map((l) => (JSON.parse(l) as AuditRecord).seq)).toEqual(
      Array.from({ length: 10 }, (_, i) => i + 11),
    );
    const bad = capture();
    expect(await auditExport({ config, format: 'jsonl', since: 'yesterday-ish' }, bad)).toBe(2);
    expect(bad.errors[0]).toContain('--since');
    expect(await auditExport({ config, format: 'xml' }, capture())).toBe(2);
  });
});

describe('keygate audit tail', () => {
  it('the last N records, filtered by kind and actor', async () => {
    const o = capture();
    await auditTail({ config, lines: 3, follow: false }, o);
    expect(o.lines.map((l) => (JSON.parse(l) as AuditRecord).seq)).toEqual([28, 29, 30]);
    const logins = capture();
    await auditTail({ config, lines: 100, kind: 'auth.login', actor: 'alice', follow: false }, logins);
    const seqs = logins.lines.map((l) => JSON.parse(l) as AuditRecord);
    expect(seqs.map((r) => r.seq)).toEqual([1, 7, 13, 19, 25]);
    expect(seqs.every((r) => r.kind === 'auth.login' && r.actor.id === 'alice')).toBe(true);
    const denied = capture();
    await auditTail({ config, lines: 100, decision: 'deny', action: 'serving:invoke', follow: false }, denied);
    expect(denied.lines.map((l) => (JSON.parse(l) as AuditRecord).seq)).toEqual([6, 16, 26]);
  });

  it('--follow prints records written after it started', async () => {
    const o = capture();
    const stop = new AbortController();
    const running = auditTail({ config, lines: 0, follow: true, pollMs: 20 }, o, process.env, stop.signal);
    await new Promise((r) => setTimeout(r, 50));
    const db = openAuditDb(join(dir, 'audit.db'));
    await new SqliteChain(db, { every: 1000, everyMs: 3_600_000, sign: undefined }).append([
      queued(entry(30)),
      queued(entry(31)),
    ]);
    db.close();
    for (let i = 0; i < 100 && o.lines.length < 2; i++) await new Promise((r) => setTimeout(r, 20));
    stop.abort();
    expect(await running).toBe(0);
    expect(o.lines.map((l) => (JSON.parse(l) as AuditRecord).seq)).toEqual([31, 32]);
  });
});
