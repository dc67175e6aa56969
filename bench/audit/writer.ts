/**
 * Writer throughput: the whole per-record pipeline of the audit log, measured two ways.
 *
 * - **Parts, one thread**: `queued(entry)` (canonical JSON, the record id: what the request
 *   thread does) and `SqliteChain.append` (hash chain, multi-row inserts, one synchronous=FULL
 *   commit per batch, a signed checkpoint every 10,000 records, and the actor index brought up
 *   to date behind the writer every 16,384 records: what the writer thread does), timed apart.
 *   On every tenth batch the hash is timed again on a second encoding of the same entries
 *   (outside the timed parts; twice: the first pass also flattens the bodies, which are built by
 *   concatenation), and the index runs are timed by wrapping `indexIfDue`, so the writer's time
 *   splits into flattening, hashing, the actor index and SQLite (inserts and the commit's fsync).
 *   The writer's CPU time is measured too (process.cpuUsage: its wall time includes the fsync).
 * - **As deployed**: `AuditLog.record()` from this thread into the real writer thread
 *   (`postMessage` of each batch), with the gateway's defaults (queue 100,000, flush 10 ms),
 *   fed as fast as the queue takes entries; wall-clock records/s until everything is committed.
 *
 * Then `verifyChain` — what `keygate audit verify` runs — over the first file written.
 */
import { rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { exportJWK, generateKeyPair, type JWK } from 'jose';
import { AuditLog } from '../../src/audit/log.js';
import { type AuditEntry, chainStep, GENESIS_HASH } from '../../src/audit/record.js';
import { openAuditDb, type QueuedRecord, queued, SqliteChain, signerFor } from '../../src/audit/sqlite-chain.js';
import { verifyChain } from '../../src/audit/verify.js';
import { makeActors, makeEntry, rng } from './entries.js';

export interface WriterOptions {
  records: number;
  /** Batch sizes to measure, the gateway's default (5,000) first; the proxy's batches are small (what arrives in flushMs). */
  batches: number[];
  /** Also measure through AuditLog and its writer thread. */
  deployed: boolean;
  verify: boolean;
  /** Where the (temporary) audit files go. */
  dir: string;
}

export interface PartsResult {
  batch: number;
  records: number;
  encodeUs: number;
  /** Wall time in append, per record (includes waiting for fsync). */
  writerUs: number;
  /** CPU time (process-wide, this thread does the work) in append, per record. */
  writerCpuUs: number;
  /** Parts of writerUs: making the encoded body one flat string, hashing it, the actor index, the rest. */
  flattenUs: number;
  hashUs: number;
  indexUs: number;
  indexRuns: number;
  sqliteUs: number;
  /** One thread doing both parts. */
  serialPerS: number;
  /** Two threads, one part each: the slower part bounds. */
  pipelinedPerS: number;
  avgBodyBytes: number;
  fileBytes: number;
  seconds: number;
}

export interface DeployedResult {
  batch: number;
  records: number;
  perS: number;
  /** Time this thread spent in record() (encode and queue), per record. */
  recordUs: number;
  /** How often the producer found the queue full and waited for the writer. */
  waits: number;
  seconds: number;
}

export interface VerifyResult {
  records: number;
  checkpoints: number;
  ok: boolean;
  seconds: number;
  perS: number;
}

export interface WriterResult {
  parts: PartsResult[];
  deployed: DeployedResult[];
  verify?: VerifyResult;
}

const T0 = Date.UTC(2026, 10, 1);
const fileSize = (p: string) =>
  [p, `${p}-wal`].reduce((s, f) => {
    try {
      return s + statSync(f).size;
    } catch {
      return s;
    }
  }, 0);
const removeDb = (p: string) => {
  for (const f of [p, `${p}-wal`, `${p}-shm`]) rmSync(f, { force: true });
};

async function parts(
  o: WriterOptions,
  batch: number,
  key: { kid: string; jwk: JWK },
  path: string,
): Promise<PartsResult> {
  removeDb(path);
  const db = openAuditDb(path);
  const chain = new SqliteChain(db, { every: 10_000, everyMs: 60_000, sign: await signerFor(key) });
  let indexMs = 0;
  let indexRuns = 0;
  const indexIfDue = chain.indexIfDue.bind(chain);
  chain.indexIfDue = (now?: number) => {
    const before = chain.actorIndexedThrough;
    const t = performance.now();
    indexIfDue(now);
    indexMs += performance.now() - t;
    if (chain.actorIndexedThrough !== before) indexRuns++;
  };
  const actors = makeActors();
  const r = rng(batch);
  let encodeMs = 0;
  let writeMs = 0;
  let writeCpuMs = 0;
  let hashMs = 0;
  let flattenMs = 0;
  let hashed = 0;
  let bodyBytes = 0;
  const cpuMs = () => {
    const u = process.cpuUsage();
    return (u.user + u.system) / 1000;
  };
  const start = performance.now();
  for (let i = 0, n = 0; i < o.records; i += batch, n++) {
    const size = Math.min(batch, o.records - i);
    const sample = n % 10 === 0;
    const entries: AuditEntry[] = [];
    const q: QueuedRecord[] = new Array(size);
    // One entry at a time, encoded as soon as it is built, as the request thread does.
    for (let k = 0; k < size; k++) {
      const e = makeEntry(actors, r, T0 + (i + k) * 5);
      const t = performance.now();
      q[k] = queued(e);
      encodeMs += performance.now() - t;
      if (sample) entries.push(e);
    }
    for (const x of q) bodyBytes += x.body.length;
    if (sample) {
      // The hash, on a second encoding of the batch (the records themselves go to append as
      // built): the first pass also flattens each body (encodeEntry builds it by concatenation,
      // a rope that must be made one string before it can be hashed or sent), the second not.
      const bodies = entries.map((e) => queued(e).body);
      for (const pass of [0, 1]) {
        const t = performance.now();
        let h = GENESIS_HASH;
        for (let k = 0; k < size; k++) h = chainStep(h, i + k + 1, bodies[k] as string);
        if (pass === 0) flattenMs += performance.now() - t;
        else hashMs += performance.now() - t;
      }
      hashed += size;
    }
    const c = cpuMs();
    const t = performance.now();
    await chain.append(q);
    writeMs += performance.now() - t;
    writeCpuMs += cpuMs() - c;
  }
  const seconds = (performance.now() - start) / 1000;
  db.close();
  const N = o.records;
  const encodeUs = (encodeMs * 1000) / N;
  const writerUs = (writeMs * 1000) / N;
  const hashUs = (hashMs * 1000) / hashed;
  const flattenUs = ((flattenMs - hashMs) * 1000) / hashed;
  const indexUs = (indexMs * 1000) / N;
  return {
    batch,
    records: N,
    encodeUs,
    writerUs,
    writerCpuUs: (writeCpuMs * 1000) / N,
    flattenUs,
    hashUs,
    indexUs,
    indexRuns,
    sqliteUs: writerUs - flattenUs - hashUs - indexUs,
    serialPerS: 1e6 / (encodeUs + writerUs),
    pipelinedPerS: 1e6 / Math.max(encodeUs, writerUs),
    avgBodyBytes: bodyBytes / N,
    fileBytes: fileSize(path),
    seconds,
  };
}

async function deployed(
  o: WriterOptions,
  batch: number,
  key: { kid: string; jwk: JWK },
  path: string,
): Promise<DeployedResult> {
  removeDb(path);
  const maxQueue = 100_000;
  const log = await AuditLog.open({
    path,
    maxQueue,
    flushMs: 10,
    batchMax: batch,
    checkpointEvery: 10_000,
    checkpointEveryMs: 60_000,
    failOpen: false,
    key,
    log: {
      info: () => undefined,
      warn: () => undefined,
      error: (f, msg) => console.error(`audit: ${msg} ${JSON.stringify(f)}`),
    },
  });
  const actors = makeActors();
  const r = rng(batch + 1);
  let recordMs = 0;
  let waits = 0;
  const start = performance.now();
  for (let i = 0; i < o.records; ) {
    // The gateway refuses requests when the queue is full; a saturating client waits instead.
    if (!log.accepting || log.queued > maxQueue - 1000) {
      waits++;
      await new Promise((resolve) => setTimeout(resolve, 1));
      continue;
    }
    const n = Math.min(1000, o.records - i);
    const entries = Array.from({ length: n }, (_, k) => makeEntry(actors, r, T0 + (i + k) * 5));
    const t = performance.now();
    for (const e of entries) log.record(e);
    recordMs += performance.now() - t;
    i += n;
    // Let the writer's replies in, as the event loop does between requests.
    await new Promise((resolve) => setImmediate(resolve));
  }
  await log.flushed();
  const seconds = (performance.now() - start) / 1000;
  const committed = log.committedSeq;
  await log.close();
  removeDb(path);
  if (committed !== o.records) throw new Error(`deployed: ${committed} of ${o.records} records committed`);
  return {
    batch,
    records: o.records,
    perS: o.records / seconds,
    recordUs: (recordMs * 1000) / o.records,
    waits,
    seconds,
  };
}

export async function writerBench(o: WriterOptions, progress: (line: string) => void): Promise<WriterResult> {
  const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
  const key = { kid: 'bench', jwk: await exportJWK(privateKey) };
  const result: WriterResult = { parts: [], deployed: [] };
  const first = join(o.dir, 'writer-0.db');
  for (const [i, batch] of o.batches.entries()) {
    const path = i === 0 ? first : join(o.dir, `writer-${i}.db`);
    const p = await parts(o, batch, key, path);
    result.parts.push(p);
    progress(
      `parts, batch ${batch}: encode ${p.encodeUs.toFixed(2)} µs + writer ${p.writerUs.toFixed(2)} µs (CPU ${p.writerCpuUs.toFixed(2)}) ` +
        `(flatten ${p.flattenUs.toFixed(2)}, hash ${p.hashUs.toFixed(2)}, index ${p.indexUs.toFixed(2)} in ${p.indexRuns} runs, SQLite ${p.sqliteUs.toFixed(2)}) ` +
        `per record; ${p.serialPerS.toFixed(0)} records/s on one thread, ${p.seconds.toFixed(1)} s`,
    );
    if (i > 0) removeDb(path);
    if (o.deployed) {
      const d = await deployed(o, batch, key, join(o.dir, `deployed-${i}.db`));
      result.deployed.push(d);
      progress(
        `AuditLog + writer thread, batchMax ${batch}: ${d.perS.toFixed(0)} records/s ` +
          `(record() ${d.recordUs.toFixed(2)} µs on this thread, ${d.waits} waits for a full queue), ${d.seconds.toFixed(1)} s`,
      );
    }
  }
  if (o.verify) {
    const db = openAuditDb(first);
    const t = performance.now();
    const v = await verifyChain(db, { keys: [{ ...(await exportJWK(publicKey)), kid: 'bench', alg: 'ES256' }] });
    const seconds = (performance.now() - t) / 1000;
    db.close();
    result.verify = { records: v.records, checkpoints: v.checkpoints, ok: v.ok, seconds, perS: v.records / seconds };
    progress(`verify: ok=${v.ok}, ${v.records} records, ${v.checkpoints} checkpoints in ${seconds.toFixed(1)} s`);
  }
  removeDb(first);
  return result;
}
