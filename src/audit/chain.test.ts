import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportJWK, generateKeyPair, type JWK } from 'jose';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AuditLog, type Sink, WorkerSink } from './log.js';
import { type AuditEntry, canonicalJson, chainStep, encodeEntry, GENESIS_HASH } from './record.js';
import { openAuditDb, queued, SqliteChain, signerFor } from './sqlite-chain.js';
import { verifyChain } from './verify.js';

let dir: string;
let key: { kid: string; jwk: JWK };
let publicJwks: { keys: JWK[] };

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'kg-audit-'));
  const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
  key = { kid: 'audit-1', jwk: await exportJWK(privateKey) };
  publicJwks = { keys: [{ ...(await exportJWK(publicKey)), kid: 'audit-1', alg: 'ES256' }] };
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const entry = (i: number): AuditEntry => ({
  kind: 'http.request',
  at: 1_800_000_000_000 + i,
  actor: { type: 'user', id: `u${i % 3}`, authEventId: `ev${i}` },
  request: { method: 'GET', path: `/api/2.0/x/${i}`, action: 'serving:read', ip: '127.0.0.1', requestId: `r${i}` },
  decision: { effect: 'allow', reasons: ['role:ml-reader:0'] },
  status: 200,
});

async function chainWith(n: number, every = 10) {
  const db = openAuditDb(join(dir, 'audit.db'));
  const chain = new SqliteChain(db, { every, everyMs: 3_600_000, sign: await signerFor(key) });
  for (let i = 0; i < n; i += 7)
    await chain.append(Array.from({ length: Math.min(7, n - i) }, (_, k) => queued(entry(i + k))));
  return { db, chain };
}

describe('canonical JSON', () => {
  it('sorts keys at every level and drops undefined members', () => {
    expect(canonicalJson({ b: 1, a: { d: [1, { z: true, y: null }], c: 'x' }, u: undefined })).toBe(
      '{"a":{"c":"x","d":[1,{"y":null,"z":true}]},"b":1}',
    );
    // Numbers as ECMAScript writes them (RFC 8785); key order by UTF-16 code units; escapes.
    expect(canonicalJson({ é: 1e21, Z: 0.1, a: -0, b: 'line\n"q"' })).toBe(
      '{"Z":0.1,"a":0,"b":"line\\n\\"q\\"","é":1e+21}',
    );
  });

  it('the per-request encoder writes exactly the canonical JSON, for every member of an entry', () => {
    // Required<…>: adding a member to AuditEntry breaks this line until the test (and so the
    // encoder) covers it.
    const full: Required<AuditEntry> = {
      kind: 'http.request',
      at: 1_800_000_000_123,
      actor: Object.freeze({
        type: 'user',
        id: 'u1',
        email: 'a@example.com',
        authEventId: 'ev',
        uv: true,
        authTime: 1,
      }),
      request: {
        method: 'POST',
        path: '/x',
        action: 'serving:invoke',
        resource: 'Endpoint::"a\\b"',
        ip: '::1',
        userAgent: 'ua "q" \u0001 é',
        requestId: 'r',
      },
      decision: { effect: 'deny', reasons: ['b', 'a'] },
      upstream: {
        name: 'ws',
        status: 502,
        latencyMs: 12.5,
        bytes: 0,
        identity: { type: 'service-principal', subject: 'sp-1', fallback: 'UPSTREAM_IDENTITY_REJECTED' },
      },
      status: 502,
      outcome: 'failure',
      reason: 'upstream_unreachable',
      detail: { z: 1, a: null, m: 'x', b: false },
      change: { op: 'x.update', target: 'x:1', before: { roles: ['b', 'a'] }, after: { roles: [], n: 2 } },
    };
    expect(encodeEntry(full, 'id-1')).toBe(canonicalJson({ ...full, id: 'id-1' }));
    // Twice: the second comes from the actor cache.
    expect(encodeEntry(full, 'id-2')).toBe(canonicalJson({ ...full, id: 'id-2' }));
    // Shared frozen decisions and upstream identities (remembered), and upstreams without one.
    const shared: AuditEntry = {
      ...full,
      decision: Object.freeze({ effect: 'allow' as const, reasons: Object.freeze(['p1']) as string[] }),
      upstream: { ...full.upstream, identity: Object.freeze({ type: 'static' as const }) },
    };
    for (const id of ['s1', 's2']) expect(encodeEntry(shared, id)).toBe(canonicalJson({ ...shared, id }));
    const { identity: _none, ...bare } = full.upstream;
    const noIdentity: AuditEntry = { ...full, upstream: bare };
    expect(encodeEntry(noIdentity, 'n')).toBe(canonicalJson({ ...noIdentity, id: 'n' }));
    const undefinedIdentity = { ...full, upstream: { ...bare, identity: undefined } } as unknown as AuditEntry;
    expect(encodeEntry(undefinedIdentity, 'u')).toBe(canonicalJson({ ...undefinedIdentity, id: 'u' }));
    // An object that is not frozen is never remembered: a change shows in the next record.
    const mutable: AuditEntry = { ...full, decision: { effect: 'allow', reasons: ['x'] } };
    encodeEntry(mutable, 'm1');
    (mutable.decision as { reasons: string[] }).reasons.push('y');
    expect(encodeEntry(mutable, 'm2')).toContain('"reasons":["x","y"]');
    // A decision is encoded as its two members only, whatever else the object carries; a frozen
    // one (the decision cache's, which the gateway passes as is) the same from memory.
    const cached = Object.freeze({ effect: 'allow' as const, reasons: Object.freeze(['role:admin:0']), extra: 'x' });
    const withCached: AuditEntry = { ...full, decision: cached as unknown as NonNullable<AuditEntry['decision']> };
    for (const id of ['c1', 'c2']) {
      const body = encodeEntry(withCached, id);
      expect(body).toContain('"decision":{"effect":"allow","reasons":["role:admin:0"]}');
      expect(body).not.toContain('extra');
    }
    // A frozen decision whose reasons array is not frozen is not remembered either.
    const half: AuditEntry = { ...full, decision: Object.freeze({ effect: 'deny' as const, reasons: ['a'] }) };
    encodeEntry(half, 'h1');
    half.decision?.reasons.push('b');
    expect(encodeEntry(half, 'h2')).toContain('"reasons":["a","b"]');
    // Random subsets of members.
    let seed = 7;
    const rnd = () => {
      seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    const keys = Object.keys(full) as (keyof AuditEntry)[];
    for (let i = 0; i < 300; i++) {
      const e: Record<string, unknown> = {
        kind: full.kind,
        at: Math.floor(rnd() * 2e12),
        actor: { type: 'anonymous' },
      };
      for (const k of keys) if (rnd() < 0.5) e[k] = full[k];
      // Requests with some of their members (the optional ones left out, or undefined).
      if (e.request !== undefined && rnd() < 0.5) {
        const r: Record<string, unknown> = {};
        for (const [k, v] of Object.entries(full.request as object)) {
          const x = rnd();
          if (x < 0.6) r[k] = v;
          else if (x < 0.8) r[k] = undefined;
        }
        e.request = r;
      }
      expect(encodeEntry(e as unknown as AuditEntry, `id${i}`)).toBe(canonicalJson({ ...e, id: `id${i}` }));
    }
  });
});

describe('the hash chain', () => {
  it('a chain step is SHA-256 over prev hash, seq and the UTF-8 body (a fixed vector: logs written before stay verifiable)', () => {
    // printf '%s\n1\n{"a":"é","ua":"Mozilla/5.0 ✓"}' "$(printf '0%.0s' $(seq 64))" | sha256sum
    expect(chainStep(GENESIS_HASH, 1, '{"a":"é","ua":"Mozilla/5.0 ✓"}')).toBe(
      '73e1b750d0b0f05eed0f0aaf152b9c7f4c6554bedff2d81e2155f7543a1807c7',
    );
  });

  it('an intact chain with checkpoints verifies', async () => {
    const { db } = await chainWith(95);
    const r = await verifyChain(db, publicJwks);
    expect(r).toMatchObject({ ok: true, records: 95, firstSeq: 1, lastSeq: 95 });
    // Batches of 7 with a checkpoint due every 10 records: after 14, 28, … 84 and 95.
    expect(r.checkpoints).toBe(7);
    db.close();
  });

  it('detects a modified record', async () => {
    const { db } = await chainWith(40);
    const body = (db.prepare('SELECT body FROM audit_records WHERE seq = 17').get() as { body: string }).body;
    db.prepare('UPDATE audit_records SET body = ? WHERE seq = 17').run(body.replace('"allow"', '"deny"'));
    expect((await verifyChain(db, publicJwks)).problem).toEqual({
      seq: 17,
      what: 'hash does not match the record and the one before it (modified, inserted or moved)',
    });
    db.close();
  });

  it('detects a modified record whose hash was recomputed (the next link breaks)', async () => {
    const { db } = await chainWith(40);
    const row = db.prepare('SELECT body FROM audit_records WHERE seq = 17').get() as { body: string };
    const prev = (db.prepare('SELECT hash FROM audit_records WHERE seq = 16').get() as { hash: string }).hash;
    const body = row.body.replace('"allow"', '"deny"');
    db.prepare("UPDATE audit_records SET body = ?, hash = ?, decision = 'deny' WHERE seq = 17").run(
      body,
      chainStep(prev, 17, body),
    );
    const r = await verifyChain(db, publicJwks);
    expect(r.ok).toBe(false);
    expect(r.problem?.seq).toBe(18);
    db.close();
  });

  it('detects a query column that no longer says what the hashed body says', async () => {
    const { db } = await chainWith(20);
    db.prepare("UPDATE audit_records SET actor_id = 'someone-else' WHERE seq = 9").run();
    expect((await verifyChain(db, publicJwks)).problem).toEqual({
      seq: 9,
      what: 'columns do not match the hashed body',
    });
    db.close();
  });

  it('refuses to open a log written in another format', async () => {
    const path = join(dir, 'old.db');
    const old = openAuditDb(path);
    old.pragma('user_version = 1');
    old.close();
    expect(() => openAuditDb(path)).toThrow(/holds an audit log in format 1, this Keygate writes format 2/);
  });

  it('detects a deleted record', async () => {
    const { db } = await chainWith(40);
    db.prepare('DELETE FROM audit_records WHERE seq = 23').run();
    expect((await verifyChain(db, publicJwks)).problem).toEqual({ seq: 23, what: 'record 23 is missing (next is 24)' });
    db.close();
  });

  it('detects an inserted record (renumbered to fit) and reordered records', async () => {
    const { db } = await chainWith(40);
    // Insert: shift 30.. up by one and put a forged record at 30.
    db.exec(
      'UPDATE audit_records SET seq = -seq WHERE seq >= 30; UPDATE audit_records SET seq = -seq + 1 WHERE seq < 0',
    );
    db.prepare(
      'INSERT INTO audit_records SELECT 30, at, kind, actor_id, action, decision, body, hash FROM audit_records WHERE seq = 29',
    ).run();
    const r1 = await verifyChain(db, publicJwks);
    expect(r1.ok).toBe(false);
    expect(r1.problem?.seq).toBe(30);
    db.close();

    const { db: db2 } = await (async () => {
      rmSync(join(dir, 'audit.db'));
      rmSync(join(dir, 'audit.db-wal'), { force: true });
      rmSync(join(dir, 'audit.db-shm'), { force: true });
      return chainWith(40);
    })();
    // Reorder: swap records 12 and 13.
    db2.exec(
      'UPDATE audit_records SET seq = -1 WHERE seq = 12; UPDATE audit_records SET seq = 12 WHERE seq = 13; UPDATE audit_records SET seq = 13 WHERE seq = -1',
    );
    const r2 = await verifyChain(db2, publicJwks);
    expect(r2.ok).toBe(false);
    expect(r2.problem?.seq).toBe(12);
    db2.close();
  });

  it('detects records cut from the end when a checkpoint covered them, and forged checkpoints', async () => {
    const { db } = await chainWith(40, 10);
    db.prepare('DELETE FROM audit_records WHERE seq > 35').run();
    expect((await verifyChain(db, publicJwks)).problem?.what).toMatch(/checkpoint at 40 is beyond the last record/);
    db.close();

    rmSync(join(dir, 'audit.db'));
    rmSync(join(dir, 'audit.db-wal'), { force: true });
    rmSync(join(dir, 'audit.db-shm'), { force: true });
    const { db: db2 } = await chainWith(30, 10);
    // A checkpoint signed by another key.
    const other = await generateKeyPair('ES256', { extractable: true });
    const forge = await signerFor({ kid: 'audit-1', jwk: await exportJWK(other.privateKey) });
    const head = db2.prepare('SELECT seq, hash FROM audit_records WHERE seq = 15').get() as {
      seq: number;
      hash: string;
    };
    const f = await (forge as NonNullable<typeof forge>)({ seq: 15, hash: head.hash, at: 1 });
    db2
      .prepare('INSERT INTO audit_checkpoints (seq, hash, at, kid, jws) VALUES (15, ?, 1, ?, ?)')
      .run(head.hash, f.kid, f.jws);
    expect((await verifyChain(db2, publicJwks)).problem).toEqual({
      seq: 15,
      what: 'checkpoint signature does not verify',
    });
    db2.close();
  });

  it('a restart continues the chain where it ended', async () => {
    const { db } = await chainWith(12);
    db.close();
    const { db: again, chain } = await chainWith(5);
    expect(chain.current.seq).toBe(17);
    expect((await verifyChain(again, publicJwks)).ok).toBe(true);
    again.close();
  });
});

describe('retention', () => {
  it('prunes up to a signed checkpoint before the cutoff; the rest still verifies, from that anchor', async () => {
    const db = openAuditDb(join(dir, 'audit.db'));
    // 100 records, one a second from T; a checkpoint every 10 (stamped with the batch's time).
    const T = 1_800_000_000_000;
    let now = T;
    const chain = new SqliteChain(db, { every: 10, everyMs: 3_600_000, sign: await signerFor(key) }, () => now);
    for (let i = 0; i < 100; i += 5) {
      now = T + (i + 4) * 1000;
      await chain.append(Array.from({ length: 5 }, (_, k) => queued({ ...entry(i + k), at: T + (i + k) * 1000 })));
    }
    // Keep what is younger than record 57: the newest checkpoint written before it is at 50.
    const r = await chain.prune(T + 57_000, 7);
    expect(r).toEqual({ through: 50, removed: 50 });
    const left = db.prepare('SELECT min(seq) AS lo, max(seq) AS hi FROM audit_records').get();
    expect(left).toEqual({ lo: 51, hi: 101 });
    const v = await verifyChain(db, publicJwks);
    expect(v).toMatchObject({ ok: true, firstSeq: 51, lastSeq: 101 });
    // The pruning itself is on the record.
    const last = JSON.parse(
      (db.prepare('SELECT body FROM audit_records WHERE seq = 101').get() as { body: string }).body,
    );
    expect(last).toMatchObject({ kind: 'audit.pruned', detail: { through: 50, removed: 50 } });
    // Nothing of the pruned records is left in the indexes.
    expect(db.prepare('SELECT count(*) AS n FROM audit_actor_index WHERE seq <= 50').get()).toEqual({ n: 0 });
    expect(db.prepare('SELECT min(seq) AS s FROM audit_checkpoints').get()).toEqual({ s: 50 });
    // Removing the anchor is detected.
    db.prepare('DELETE FROM audit_checkpoints WHERE seq = 50').run();
    expect((await verifyChain(db, publicJwks)).problem).toEqual({
      seq: 51,
      what: 'records before 51 are missing and no checkpoint anchors the start',
    });
    db.close();
  });

  it('never removes the head, and does nothing when no checkpoint is old enough', async () => {
    const db = openAuditDb(join(dir, 'audit.db'));
    let now = 1_800_000_000_000;
    const chain = new SqliteChain(db, { every: 10, everyMs: 3_600_000, sign: await signerFor(key) }, () => now);
    await chain.append(Array.from({ length: 10 }, (_, k) => queued(entry(k))));
    expect(await chain.prune(now - 1)).toBeNull();
    // Everything is older than the cutoff, but the only checkpoint is the head: kept.
    now += 1000;
    expect(await chain.prune(now + 1)).toBeNull();
    await chain.append([queued(entry(10))]);
    now += 1000;
    const r = await chain.prune(now + 1);
    expect(r).toEqual({ through: 10, removed: 10 });
    expect(await verifyChain(db, publicJwks)).toMatchObject({ ok: true, firstSeq: 11, lastSeq: 12 });
    db.close();
  });
});

describe('AuditLog', () => {
  const log = { info: () => undefined, warn: () => undefined, error: () => undefined };
  const opts = (path: string) => ({
    path,
    maxQueue: 1000,
    flushMs: 2,
    batchMax: 256,
    checkpointEvery: 100,
    checkpointEveryMs: 60_000,
    failOpen: false,
    key,
    log,
  });

  it('commits through its writer thread in batches; the chain verifies', async () => {
    const path = join(dir, 'audit.db');
    const a = await AuditLog.open(opts(path));
    for (let i = 0; i < 1000; i++) a.record(entry(i));
    await a.flushed();
    expect(a.committedSeq).toBe(1000);
    await a.close();
    const db = openAuditDb(path);
    expect(await verifyChain(db, publicJwks)).toMatchObject({ ok: true, records: 1000 });
    db.close();
  });

  it('verifies the chain on a thread of its own, and reports a tampered record', async () => {
    const path = join(dir, 'audit.db');
    const a = await AuditLog.open(opts(path));
    for (let i = 0; i < 300; i++) a.record(entry(i));
    await a.flushed();
    expect(await a.verify(publicJwks.keys)).toMatchObject({ ok: true, records: 300, firstSeq: 1, lastSeq: 300 });
    const db = openAuditDb(path);
    db.prepare('UPDATE audit_records SET body = replace(body, \'"allow"\', \'"deny"\') WHERE seq = 150').run();
    db.close();
    expect((await a.verify(publicJwks.keys)).problem?.seq).toBe(150);
    await a.close();
  });

  it('refuses to accept more once the writer fails, and recovers when it can write again', async () => {
    const path = join(dir, 'audit.db');
    const a = await AuditLog.open({ ...opts(path), maxQueue: 10, busyTimeoutMs: 20 });
    a.record(entry(0));
    await a.flushed();
    expect(a.accepting).toBe(true);
    // Another connection holds the write lock: batches fail (busy) until it lets go.
    const blocker = openAuditDb(path);
    blocker.pragma('busy_timeout = 0');
    blocker.exec('BEGIN IMMEDIATE');
    for (let i = 1; i <= 12; i++) a.record(entry(i));
    // Wait (bounded) for the writer to report the failure.
    for (let i = 0; i < 200 && a.state !== 'failing'; i++) await new Promise((r) => setTimeout(r, 10));
    expect(a.state).toBe('failing');
    expect(a.accepting).toBe(false);
    blocker.exec('COMMIT');
    blocker.close();
    await a.flushed();
    expect(a.accepting).toBe(true);
    expect(a.committedSeq).toBe(13);
    await a.close();
  });

  it('the writer thread refuses, unwritten, every batch sent after one that failed, until told to resume', async () => {
    const path = join(dir, 'audit.db');
    const w = await WorkerSink.open({ ...opts(path), busyTimeoutMs: 20 });
    // A fractional time cannot go into the STRICT INTEGER column: that batch alone fails.
    const bad = { ...queued(entry(0)), at: 0.5 };
    const first = w.append([bad]);
    const second = w.append([queued(entry(1))]);
    await expect(first).rejects.toThrow(/INTEGER/);
    await expect(second).rejects.toThrow('an earlier batch failed');
    await expect(w.append([queued(entry(2))])).rejects.toThrow('an earlier batch failed');
    expect(await w.append([queued(entry(1))], true)).toBe(1);
    expect(await w.append([queued(entry(2))])).toBe(2);
    await w.close();
    const db = openAuditDb(path);
    expect((db.prepare('SELECT count(*) AS n FROM audit_records').get() as { n: number }).n).toBe(2);
    db.close();
  });

  it('under a flood sends a second batch while one is in flight; after a failure it resends everything from the oldest record, once, in order', async () => {
    // A sink that commits in order and, like the writer thread, refuses what follows a failure.
    const chain: string[] = [];
    const calls: { size: number; resume: boolean; inFlight: number }[] = [];
    let inFlight = 0;
    let failNext = 1; // the first batch fails
    let refusing = false;
    const sink: Sink = {
      depth: 2,
      async append(records, resume = false) {
        inFlight++;
        calls.push({ size: records.length, resume, inFlight });
        await new Promise((r) => setTimeout(r, 5));
        inFlight--;
        if (resume) refusing = false;
        if (refusing) throw new Error('an earlier batch failed');
        if (failNext > 0) {
          failNext--;
          refusing = true;
          throw new Error('disk I/O error');
        }
        for (const r of records) chain.push(r.body);
        return chain.length;
      },
      query: () => Promise.reject(new Error('unused')),
      stats: () => Promise.reject(new Error('unused')),
      verify: () => Promise.reject(new Error('unused')),
      close: async () => undefined,
    };
    const a = AuditLog.over(sink, { ...opts(':memory:'), maxQueue: 100_000, batchMax: 500 });
    const n = 5_000;
    for (let i = 0; i < n; i++) a.record(entry(i), `id${i}`);
    await a.flushed();
    expect(a.committedSeq).toBe(n);
    // Two batches were in flight at once, and the first failed with the second behind it.
    expect(calls[0]).toEqual({ size: 500, resume: false, inFlight: 1 });
    expect(calls[1]).toEqual({ size: 500, resume: false, inFlight: 2 });
    // The retry starts again at the oldest record, marked resume.
    expect(calls[2]).toEqual({ size: 500, resume: true, inFlight: 1 });
    expect(chain.map((b) => (JSON.parse(b) as { id: string }).id)).toEqual(
      Array.from({ length: n }, (_, i) => `id${i}`),
    );
    await a.close();
  });
});
