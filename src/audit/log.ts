/**
 * The audit log as the request path sees it: `record()` puts an entry in a bounded queue and
 * returns; a writer commits queued entries in batches, one durable transaction per batch, on
 * its own thread (a response never waits for the disk). If the writer cannot keep up or
 * fails, `accepting` turns false and the gateway refuses new requests with 503 rather than
 * serve them unaudited — unless the operator chose fail-open.
 */
import { Worker } from 'node:worker_threads';
import Database from 'better-sqlite3';
import type { JWK } from 'jose';
import { PgChain } from './pg-chain.js';
import { type AuditFilter, type AuditPage, queryAudit } from './query.js';
import type { AuditEntry } from './record.js';
import { FileSink, type SinkOptions, writeStdout } from './sinks.js';
import { openAuditDb, type QueuedRecord, queued, SqliteChain, signerFor } from './sqlite-chain.js';
import { type AuditStats, auditStats, type WINDOWS } from './stats.js';
import { type VerifyResult, verifyChain, verifySource } from './verify.js';
import { packBatch, type WorkerInit, type WorkerReply, type WorkerRequest } from './worker-batch.js';

export interface AuditOptions {
  /** SQLite file of the audit chain, or ':memory:' (tests: written on this thread). */
  path: string;
  /**
   * A PostgreSQL connection string: the chain lives there, one chain shared by every replica
   * on the database (pg-chain.ts), and `path` is not used.
   */
  postgres?: string;
  /** Entries that may wait for the writer; beyond this, new requests are refused. */
  maxQueue: number;
  /** Longest an entry waits before its batch is written. */
  flushMs: number;
  /** Most entries in one batch. */
  batchMax: number;
  /** Checkpoint every this many records, or this many ms, whichever first. */
  checkpointEvery: number;
  checkpointEveryMs: number;
  /** How long a batch waits for another writer's lock before it counts as failed. */
  busyTimeoutMs?: number;
  /** Serve requests even when the audit log cannot take them (loudly discouraged). */
  failOpen: boolean;
  /** The checkpoint signing key (private JWK with kid). */
  key: { kid: string; jwk: JWK } | null;
  /** Keep records this long (null or absent: forever), pruned every `pruneEveryMs`. */
  retentionMs?: number | null;
  pruneEveryMs?: number;
  /** Copies of committed records for a SIEM. */
  sinks?: SinkOptions;
  log: {
    info(o: object, msg: string): void;
    warn(o: object, msg: string): void;
    error(o: object, msg: string): void;
  };
}

/** A worker thread running one of this folder's modules: worker.js when built; the TypeScript source through tsx in tests. */
function moduleWorker(name: string, workerData: unknown): Worker {
  if (import.meta.url.endsWith('.ts')) {
    const url = JSON.stringify(new URL(`./${name}.ts`, import.meta.url).href);
    return new Worker(`import('tsx/esm/api').then((t) => { t.register(); return import(${url}); })`, {
      eval: true,
      workerData,
    });
  }
  return new Worker(new URL(`./${name}.js`, import.meta.url), { workerData });
}

/** Where AuditLog's batches go (exported for tests, which drive AuditLog through a fake). */
export interface Sink {
  /**
   * Batches that may be in flight at once. More than one only where the sink commits them in
   * the order sent and refuses every batch sent after one that failed (WorkerSink).
   */
  readonly depth: number;
  /** `resume`: the first batch after a failure (the sink stops refusing). */
  append(records: QueuedRecord[], resume?: boolean): Promise<number>;
  query(f: AuditFilter, o: { limit: number; cursor?: string }): Promise<AuditPage>;
  stats(window: keyof typeof WINDOWS, now: number): Promise<AuditStats>;
  verify(keys: JWK[]): Promise<VerifyResult>;
  close(): Promise<void>;
}

/** The SQLite sinks read the file through a connection on the request thread (bounded work per page). */
abstract class SqliteReading {
  abstract reader(): Database.Database;
  async query(f: AuditFilter, o: { limit: number; cursor?: string }): Promise<AuditPage> {
    return queryAudit(this.reader(), f, o);
  }
  async stats(window: keyof typeof WINDOWS, now: number): Promise<AuditStats> {
    return auditStats(this.reader(), window, now);
  }
}

class InlineSink extends SqliteReading implements Sink {
  readonly depth = 1;
  private constructor(
    private readonly chain: SqliteChain,
    private readonly db: Database.Database,
  ) {
    super();
  }
  static async open(o: AuditOptions): Promise<InlineSink> {
    const db = openAuditDb(o.path, o.busyTimeoutMs);
    return new InlineSink(
      new SqliteChain(db, { every: o.checkpointEvery, everyMs: o.checkpointEveryMs, sign: await signerFor(o.key) }),
      db,
    );
  }
  append(records: QueuedRecord[]): Promise<number> {
    return this.chain.append(records);
  }
  reader(): Database.Database {
    return this.db;
  }
  verify(keys: JWK[]): Promise<VerifyResult> {
    return verifyChain(this.db, { keys });
  }
  async close(): Promise<void> {
    this.db.close();
  }
}

/** The SQLite chain on its writer thread (exported for tests of the thread's batch protocol). */
export class WorkerSink extends SqliteReading implements Sink {
  /** The writer thread commits in order and refuses what follows a failed batch (worker.ts). */
  readonly depth = 2;
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (n: number) => void; reject: (e: Error) => void }>();
  private closed: (() => void) | undefined;

  private readConnection: Database.Database | undefined;

  private constructor(
    private readonly worker: Worker,
    private readonly path: string,
    log: AuditOptions['log'],
  ) {
    super();
    worker.on('message', (m: WorkerReply) => {
      if (m.type === 'log') {
        log[m.level]({ detail: m.detail }, m.msg);
        return;
      }
      if (m.type === 'committed' || m.type === 'failed') {
        const p = this.pending.get(m.id);
        this.pending.delete(m.id);
        if (m.type === 'committed') p?.resolve(m.through);
        else p?.reject(new Error(m.error));
      } else if (m.type === 'closed') this.closed?.();
    });
    worker.on('error', (e) => {
      for (const p of this.pending.values()) p.reject(e);
      this.pending.clear();
    });
  }

  static async open(o: AuditOptions): Promise<WorkerSink> {
    const init: WorkerInit = {
      path: o.path,
      every: o.checkpointEvery,
      everyMs: o.checkpointEveryMs,
      key: o.key,
      busyTimeoutMs: o.busyTimeoutMs ?? 5_000,
      retentionMs: o.retentionMs ?? null,
      pruneEveryMs: o.pruneEveryMs ?? 3_600_000,
      sinks: o.sinks ?? { stdout: false },
    };
    const worker = moduleWorker('worker', init);
    await new Promise<void>((resolve, reject) => {
      const onMessage = (m: WorkerReply) => {
        if (m.type === 'ready') {
          worker.off('error', reject);
          resolve();
        }
      };
      worker.once('message', onMessage);
      worker.once('error', reject);
    });
    return new WorkerSink(worker, o.path, o.log);
  }

  append(records: QueuedRecord[], resume = false): Promise<number> {
    const id = this.nextId++;
    const { text, lengths, at } = packBatch(records);
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ type: 'batch', id, text, lengths, at, resume } satisfies WorkerRequest, [
        lengths.buffer,
        at.buffer,
      ]);
    });
  }

  reader(): Database.Database {
    if (this.readConnection === undefined) {
      const db = new Database(this.path, { readonly: true, fileMustExist: true });
      db.pragma('busy_timeout = 1000');
      this.readConnection = db;
    }
    return this.readConnection;
  }

  /** Walking a long log takes seconds: on a thread of its own, through its own connection. */
  async verify(keys: JWK[]): Promise<VerifyResult> {
    const worker = moduleWorker('verify-worker', { path: this.path, keys });
    try {
      const m = await new Promise<{ ok: boolean; result?: VerifyResult; error?: string }>((resolve, reject) => {
        worker.once('message', resolve);
        worker.once('error', reject);
      });
      if (!m.ok) throw new Error(m.error);
      return m.result as VerifyResult;
    } finally {
      await worker.terminate();
    }
  }

  async close(): Promise<void> {
    this.readConnection?.close();
    await new Promise<void>((resolve) => {
      this.closed = resolve;
      this.worker.postMessage({ type: 'close' } satisfies WorkerRequest);
      setTimeout(resolve, 2_000).unref();
    });
    await this.worker.terminate();
  }
}

/**
 * The chain in PostgreSQL, shared by the replicas (pg-chain.ts). No writer thread: the writes
 * are network round trips, not fsyncs on this thread. Sinks get the records this replica
 * committed; retention runs on whichever replica gets the prune lock.
 */
class PgSink implements Sink {
  /** Two transactions on two pool connections could commit out of order: one at a time. */
  readonly depth = 1;
  private pruneTimers: NodeJS.Timeout[] = [];
  private file: FileSink | undefined;

  private constructor(
    private readonly chain: PgChain,
    o: AuditOptions,
  ) {
    const sinks = o.sinks ?? { stdout: false };
    this.file = sinks.file === undefined ? undefined : new FileSink(sinks.file);
    const file = this.file;
    if (file !== undefined || sinks.stdout) {
      chain.onCommit = (lines) => {
        if (file !== undefined) file.write(lines);
        if (sinks.stdout) writeStdout(lines);
      };
    }
    chain.onError = (e) =>
      o.log.warn({ detail: (e as Error).message }, 'audit sink write failed (the records are committed)');
    if (o.retentionMs !== undefined && o.retentionMs !== null) {
      const retention = o.retentionMs;
      const prune = () => {
        chain
          .prune(Date.now() - retention, (detail) =>
            queued({ kind: 'audit.pruned', at: Date.now(), actor: { type: 'system' }, detail, outcome: 'success' }),
          )
          .then(
            (r) => {
              if (r !== null) o.log.info({ through: r.through, removed: r.removed }, 'audit records pruned');
            },
            (e: unknown) =>
              o.log.warn({ detail: (e as Error).message }, 'audit pruning failed (retried at the next interval)'),
          );
      };
      this.pruneTimers.push(setTimeout(prune, 10_000), setInterval(prune, o.pruneEveryMs ?? 3_600_000));
      for (const t of this.pruneTimers) t.unref();
    }
  }

  static async open(o: AuditOptions): Promise<PgSink> {
    const chain = new PgChain({
      connectionString: o.postgres as string,
      checkpoint: { every: o.checkpointEvery, everyMs: o.checkpointEveryMs, sign: await signerFor(o.key) },
    });
    return new PgSink(chain, o);
  }

  append(records: QueuedRecord[]): Promise<number> {
    return this.chain.append(records);
  }
  query(f: AuditFilter, o: { limit: number; cursor?: string }): Promise<AuditPage> {
    return this.chain.query(f, o);
  }
  stats(window: keyof typeof WINDOWS, now: number): Promise<AuditStats> {
    return this.chain.stats(window, now);
  }
  verify(keys: JWK[]): Promise<VerifyResult> {
    return verifySource(this.chain.source(), { keys });
  }
  async close(): Promise<void> {
    for (const t of this.pruneTimers) clearTimeout(t);
    this.file?.close();
    await this.chain.close();
  }
}

/**
 * A second batch is sent while one is in flight only when this many records are waiting: under
 * a flood the writer thread then never waits for the request thread; under ordinary load the
 * records gather into one larger batch instead (fewer commits).
 */
const PIPELINE_AT = 1_000;

export class AuditLog {
  /** Records not yet committed, oldest first; the first `sent` of them are in flight. */
  private queue: QueuedRecord[] = [];
  private sent = 0;
  /** Sizes of the batches in flight, in the order sent (the sink answers in that order). */
  private readonly inFlight: number[] = [];
  /** A batch failed: no new batch until every one in flight is answered, then a retry. */
  private draining = false;
  private timer: NodeJS.Timeout | undefined;
  private failing = false;
  private retryMs = 0;
  private enqueued = 0;
  private committed = 0;
  private lastSeq = 0;
  private readonly waiters: { upTo: number; resolve: () => void }[] = [];
  private closing = false;

  private constructor(
    private readonly sink: Sink,
    private readonly o: AuditOptions,
  ) {}

  static async open(o: AuditOptions): Promise<AuditLog> {
    const sink =
      o.postgres !== undefined
        ? await PgSink.open(o)
        : o.path === ':memory:'
          ? await InlineSink.open(o)
          : await WorkerSink.open(o);
    return new AuditLog(sink, o);
  }

  /** An AuditLog over a sink of the caller's (tests). */
  static over(sink: Sink, o: AuditOptions): AuditLog {
    return new AuditLog(sink, o);
  }

  /** False when new requests must be refused: the writer is failing or too far behind. */
  get accepting(): boolean {
    if (this.o.failOpen) return true;
    return !this.failing && this.queue.length < this.o.maxQueue;
  }

  /** Why `accepting` is false, for readiness and logs. */
  get state(): 'ok' | 'failing' | 'backlogged' {
    return this.failing ? 'failing' : this.queue.length >= this.o.maxQueue ? 'backlogged' : 'ok';
  }

  /** Entries waiting for the writer. */
  get queued(): number {
    return this.queue.length;
  }

  /** Sequence number of the last committed record. */
  get committedSeq(): number {
    return this.lastSeq;
  }

  /**
   * Walk the whole chain and its checkpoints (what `keygate audit verify` does), on a thread of
   * its own when the log is a file.
   */
  verify(keys: JWK[]): Promise<VerifyResult> {
    return this.sink.verify(keys);
  }

  /** Dashboard figures over a window (see stats.ts). */
  stats(window: keyof typeof WINDOWS, now: number): Promise<AuditStats> {
    return this.sink.stats(window, now);
  }

  /** One page of records matching a filter, in chain order (see query.ts). */
  query(f: AuditFilter, o: { limit: number; cursor?: string }): Promise<AuditPage> {
    return this.sink.query(f, o);
  }

  /**
   * Queue an entry; it is committed within `flushMs` (or sooner when a batch fills). It is
   * encoded here, at once (its id assigned), so the writer thread only hashes and writes.
   * False when it was not queued (shutting down, or fail-open and far behind).
   */
  record(e: AuditEntry, id?: string): boolean {
    if (this.closing) return false;
    if (this.queue.length >= this.o.maxQueue * 2) {
      // Fail-open and far behind: keep memory bounded; the loss is logged.
      this.o.log.error({ kind: e.kind }, 'audit queue overflow: record dropped');
      return false;
    }
    this.queue.push(id === undefined ? queued(e) : queued(e, id));
    this.enqueued++;
    const waiting = this.queue.length - this.sent;
    if (waiting >= this.o.batchMax || (waiting >= PIPELINE_AT && this.inFlight.length > 0)) this.kick(0);
    else if (this.timer === undefined) this.kick(this.o.flushMs);
    return true;
  }

  /** Resolves when everything recorded so far is committed. */
  flushed(): Promise<void> {
    if (this.committed >= this.enqueued) return Promise.resolve();
    return new Promise((resolve) => {
      this.waiters.push({ upTo: this.enqueued, resolve });
      this.kick(0);
    });
  }

  async close(): Promise<void> {
    // Commit what is queued; a failing writer gets a few seconds, then what is left is reported.
    await Promise.race([this.flushed(), new Promise((r) => setTimeout(r, 5_000).unref())]);
    if (this.queue.length > 0) this.o.log.error({ lost: this.queue.length }, 'audit records not committed at shutdown');
    this.closing = true;
    if (this.timer) clearTimeout(this.timer);
    await this.sink.close();
  }

  /** True when a batch could be sent now (the sink has room; nothing is being drained). */
  private get canSend(): boolean {
    if (this.draining || this.inFlight.length >= this.sink.depth) return false;
    const waiting = this.queue.length - this.sent;
    return waiting > 0 && (this.inFlight.length === 0 || waiting >= PIPELINE_AT);
  }

  private kick(ms: number): void {
    if (!this.canSend) return;
    if (this.timer !== undefined) {
      if (ms > 0) return;
      clearTimeout(this.timer);
    }
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.write();
    }, ms);
  }

  /** Send the next batch: the oldest records not yet in flight. */
  private write(): void {
    if (!this.canSend) return;
    const batch = this.queue.slice(this.sent, this.sent + this.o.batchMax);
    // The first batch after a failure tells the sink to stop refusing.
    const resume = this.failing && this.inFlight.length === 0;
    this.sent += batch.length;
    this.inFlight.push(batch.length);
    this.sink.append(batch, resume).then(
      (seq) => this.settled(batch.length, seq),
      (e: unknown) => this.settled(batch.length, e instanceof Error ? e : new Error(String(e))),
    );
    // Room for another while this one is written (a flood: see PIPELINE_AT).
    if (this.canSend) this.kick(0);
  }

  /** A batch answered; batches answer in the order they were sent. */
  private settled(size: number, result: number | Error): void {
    this.inFlight.shift();
    if (typeof result === 'number' && !this.draining) {
      this.lastSeq = result;
      this.queue.splice(0, size);
      this.sent -= size;
      this.committed += size;
      if (this.failing) this.o.log.warn({}, 'audit log writable again');
      this.failing = false;
      this.retryMs = 0;
      for (let i = this.waiters.length - 1; i >= 0; i--) {
        const w = this.waiters[i] as { upTo: number; resolve: () => void };
        if (this.committed >= w.upTo) {
          this.waiters.splice(i, 1);
          w.resolve();
        }
      }
    } else if (typeof result !== 'number' && !this.draining) {
      // Nothing of this batch was written, nor of any sent after it (the sink refuses them):
      // once all in flight have answered, everything is sent again from the oldest record.
      if (!this.failing) this.o.log.error({ detail: result.message }, 'audit log write failed');
      this.failing = true;
      this.draining = true;
      // Backoff capped at 5 s: a database back from an outage is written to (and readiness
      // green again) within seconds.
      this.retryMs = Math.min(5_000, Math.max(100, this.retryMs * 2));
    }
    // (A batch answered while draining was sent after the failed one and refused by the sink.)
    if (this.inFlight.length === 0 && this.draining) {
      this.draining = false;
      this.sent = 0;
    }
    if (this.queue.length > this.sent)
      this.kick(
        this.failing && this.inFlight.length === 0
          ? this.retryMs
          : this.queue.length - this.sent >= this.o.batchMax
            ? 0
            : this.o.flushMs,
      );
  }
}
